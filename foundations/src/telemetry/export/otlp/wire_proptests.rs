//! Property test of the direct protobuf writer: on randomized spans (names, typed tags
//! including the ones that map to kind and status, log entries, links, inbound parents,
//! tracestate, span limits), its bytes equal prost's encoding of the `opentelemetry-proto`
//! structs built from the same record, and they decode back to the same span.

use super::tests::to_proto;
use super::view::ConversionCounts;
use super::wire::write_span;
use crate::telemetry::core::finished::FinishedSpan;
use crate::telemetry::tracing::__private::INTERNAL;
use crate::telemetry::tracing::{
    self, LogField, StartTraceOptions, Tag, TagValue, TraceparentContext,
};
use crate::telemetry::{SpanLimits, TelemetryContext};
use opentelemetry_proto::tonic::trace::v1::Span;
use proptest::prelude::*;
use prost::Message;

/// One tag: a key (some of them the magic ones) and a typed value.
fn tag() -> impl Strategy<Value = Tag> {
    let key = prop_oneof![
        3 => "[a-z.]{0,12}",
        1 => Just("span.kind".to_string()),
        1 => Just("error".to_string()),
        1 => Just("error.message".to_string()),
        1 => Just("otel.status_code".to_string()),
    ];
    let value = prop_oneof![
        prop_oneof![
            Just("server".to_string()),
            Just("client".to_string()),
            Just("ERROR".to_string()),
            Just("OK".to_string()),
            "\\PC{0,20}",
        ]
        .prop_map(TagValue::from),
        any::<i64>().prop_map(TagValue::from),
        any::<bool>().prop_map(TagValue::from),
        any::<f64>().prop_map(TagValue::from),
    ];
    (key, value).prop_map(|(key, value)| Tag::new(key, value))
}

/// What one span records.
#[derive(Debug, Clone)]
struct Recipe {
    name: String,
    tags: Vec<Tag>,
    logs: Vec<Vec<(String, String)>>,
    links: Vec<(u128, u64, u8)>,
    /// An inbound parent (trace id, span id, flags) for the root.
    inbound: Option<(u128, u64, u8)>,
    tracestate: bool,
}

fn recipe() -> impl Strategy<Value = Recipe> {
    let field = ("[a-z]{0,6}|event", "\\PC{0,12}");
    (
        "\\PC{0,30}",
        prop::collection::vec(tag(), 0..12),
        prop::collection::vec(prop::collection::vec(field, 0..4), 0..4),
        prop::collection::vec((1..=u128::MAX, 1..=u64::MAX, 0..=3u8), 0..3),
        prop::option::of((1..=u128::MAX, 1..=u64::MAX, 0..=3u8)),
        any::<bool>(),
    )
        .prop_map(|(name, tags, logs, links, inbound, tracestate)| Recipe {
            name,
            tags,
            logs,
            links,
            inbound,
            tracestate,
        })
}

fn traceparent((trace, span, flags): (u128, u64, u8)) -> TraceparentContext {
    format!("00-{trace:032x}-{span:016x}-{flags:02x}")
        .parse()
        .expect("valid traceparent")
}

/// Records a root from `root` with a child from `child` under `limits`.
fn record(root: &Recipe, child: &Recipe, limits: SpanLimits) -> Vec<FinishedSpan> {
    let ctx = TelemetryContext::test_with_span_limits(limits);
    ctx.scope_and(|| {
        let mut options = StartTraceOptions::default();
        if let Some(inbound) = root.inbound {
            let header = traceparent(inbound).to_string();
            let state = root.tracestate.then_some(b"vendor=a,other=b".as_slice());
            options = options.continue_from_headers(Some(header.as_bytes()), state);
        }
        let _root = tracing::start_trace(root.name.clone(), options.force_sampling(true));
        for (recipe, _scope) in [
            (root, None),
            (child, Some(tracing::span(child.name.clone()))),
        ] {
            for tag in &recipe.tags {
                INTERNAL.set_tags([tag.clone()]);
            }
            for fields in &recipe.logs {
                let field = |i: usize| LogField::new(fields[i].0.clone(), fields[i].1.clone());
                match fields.len() {
                    0 => INTERNAL.log([]),
                    1 => INTERNAL.log([field(0)]),
                    2 => INTERNAL.log([field(0), field(1)]),
                    _ => INTERNAL.log([field(0), field(1), field(2)]),
                }
            }
            for &link in &recipe.links {
                tracing::add_link(traceparent(link), None, [Tag::new("link.attr", 1)]);
            }
            drop(_scope);
        }
    });
    ctx.finished_internal_spans()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn direct_writer_matches_prost_on_random_spans(
        root in recipe(),
        child in recipe(),
        max_attributes in 0..16usize,
        max_events in 0..4usize,
    ) {
        let limits = SpanLimits::default()
            .with_max_attributes(max_attributes)
            .with_max_events(max_events)
            .with_max_attributes_per_event(2)
            .with_max_links(2);
        let spans = record(&root, &child, limits);
        prop_assert_eq!(spans.len(), 2);
        for span in spans {
            let mut reference_counts = ConversionCounts::default();
            let reference = to_proto(&span, &mut reference_counts);
            let mut expected = Vec::new();
            prost::encoding::message::encode(2, &reference, &mut expected);
            let mut counts = ConversionCounts::default();
            let mut actual = Vec::new();
            write_span(&span, &[], &mut actual, &mut counts);
            prop_assert_eq!(&actual, &expected, "span {:?}", span.name());
            prop_assert_eq!(counts, reference_counts);
            // Field by field, through the decoder: the span's own bytes, after the field key
            // and length prost wrote in front of them.
            let body = &actual[actual.len() - reference.encoded_len()..];
            let decoded = Span::decode(body).expect("decodes");
            prop_assert_eq!(decoded, reference);
        }
    }
}
