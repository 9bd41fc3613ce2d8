//! OTLP mapping and framing tests: the direct writer against the `opentelemetry-proto`
//! reference ([`to_proto`]), and request bodies that decode under the size limit.

use super::view::{
    ConversionCounts, MAX_ATTRIBUTE_VALUE_BYTES, WireValue, parent_and_flags, unix_nanos, view,
};
use super::wire::write_span;
use super::{OtlpEncoder, string_attribute};
use crate::telemetry::core::finished::FinishedSpan;
use crate::telemetry::tracing::{self, StartTraceOptions};
use crate::telemetry::{SpanLimits, TelemetryContext};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use prost::Message;

/// Converts one finished span into the `opentelemetry-proto` message: the reference that
/// tests hold the direct encoding ([`write_span`]) to.
pub(super) fn to_proto(span: &FinishedSpan, counts: &mut ConversionCounts) -> Span {
    let state = span.state();
    let tags = span.tags();
    let view = view(span, &tags, &[], counts);
    let (parent, flags) = parent_and_flags(span);
    let any = |value: WireValue<'_>| AnyValue {
        value: Some(match value {
            WireValue::Str(s) => any_value::Value::StringValue(s.to_owned()),
            WireValue::Bool(b) => any_value::Value::BoolValue(b),
            WireValue::Int(i) => any_value::Value::IntValue(i),
            WireValue::Double(f) => any_value::Value::DoubleValue(f),
        }),
    };
    Span {
        trace_id: state.trace_id().to_bytes().to_vec(),
        span_id: state.span_id().to_bytes().to_vec(),
        trace_state: state
            .trace_state()
            .map(|ts| ts.to_header_value())
            .unwrap_or_default(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        flags,
        name: span.name().to_owned(),
        kind: view.kind as i32,
        start_time_unix_nano: unix_nanos(span.start_time()),
        end_time_unix_nano: unix_nanos(span.finish_time()),
        attributes: view
            .attributes
            .iter()
            .map(|(key, value)| KeyValue {
                key: (*key).to_owned(),
                value: Some(any(*value)),
                ..Default::default()
            })
            .collect(),
        events: view
            .events
            .iter()
            .map(|event| Event {
                time_unix_nano: event.time,
                name: event.name.to_owned(),
                attributes: event
                    .attributes
                    .iter()
                    .map(|(key, value)| string_attribute((*key).to_owned(), (*value).to_owned()))
                    .collect(),
                dropped_attributes_count: event.dropped_attributes,
            })
            .collect(),
        dropped_attributes_count: view.dropped_attributes,
        dropped_events_count: view.dropped_events,
        links: view
            .links
            .iter()
            .map(|link| Link {
                trace_id: link.trace_id.to_vec(),
                span_id: link.span_id.to_vec(),
                trace_state: link.trace_state.to_owned(),
                attributes: link
                    .attributes
                    .iter()
                    .map(|(key, value)| KeyValue {
                        key: (*key).to_owned(),
                        value: Some(any(*value)),
                        ..Default::default()
                    })
                    .collect(),
                dropped_attributes_count: 0,
                flags: link.flags,
            })
            .collect(),
        dropped_links_count: view.dropped_links,
        status: view.status.map(|(code, message)| Status {
            code: match code {
                crate::telemetry::core::status::StatusCode::Unset => StatusCode::Unset,
                crate::telemetry::core::status::StatusCode::Ok => StatusCode::Ok,
                crate::telemetry::core::status::StatusCode::Error => StatusCode::Error,
            } as i32,
            message: message.to_owned(),
        }),
    }
}

fn finished(f: impl FnOnce()) -> Vec<FinishedSpan> {
    let ctx = TelemetryContext::test();
    ctx.scope_and(f);
    ctx.finished_internal_spans()
}

#[test]
fn maps_ids_kind_status_attributes_events_and_flags() {
    let inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let spans = finished(|| {
        let options = StartTraceOptions::default()
            .continue_from_headers(Some(inbound.as_bytes()), Some(b"k=v".as_slice()));
        let _root = tracing::start_trace("server", options);
        crate::add_span_tags!(
            "span.kind" => "server",
            "error" => true,
            "error.message" => "boom",
            "n" => 7,
            "b" => false,
            "f" => 1.5,
            "s" => "x"
        );
        crate::add_span_log_fields!("event" => "retry", "attempt" => "2");
    });
    let mut counts = ConversionCounts::default();
    let proto = to_proto(&spans[0], &mut counts);
    assert_eq!(hex(&proto.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&proto.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(proto.span_id.len(), 8);
    assert_eq!(proto.flags, 0x01 | 0x100 | 0x200);
    assert_eq!(proto.kind, SpanKind::Server as i32);
    assert_eq!(
        proto.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
    assert_eq!(proto.status.as_ref().unwrap().message, "boom");
    assert_eq!(proto.trace_state, "k=v");
    let attr = |k: &str| {
        proto
            .attributes
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
    };
    assert_eq!(attr("n"), Some(any_value::Value::IntValue(7)));
    assert_eq!(attr("b"), Some(any_value::Value::BoolValue(false)));
    assert_eq!(attr("f"), Some(any_value::Value::DoubleValue(1.5)));
    assert_eq!(attr("s"), Some(any_value::Value::StringValue("x".into())));
    assert!(attr("span.kind").is_none() && attr("error").is_none());
    assert_eq!(proto.events[0].name, "retry");
    assert_eq!(proto.events[0].attributes[0].key, "attempt");
    assert!(proto.end_time_unix_nano >= proto.start_time_unix_nano);
}

#[test]
fn new_root_has_no_parent_and_local_children_are_not_remote() {
    let spans = finished(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        let _child = tracing::span("child");
        crate::add_span_tags!("error" => "yes");
    });
    let mut counts = ConversionCounts::default();
    let child = to_proto(&spans[0], &mut counts);
    let root = to_proto(&spans[1], &mut counts);
    assert!(root.parent_span_id.is_empty());
    assert_eq!(child.parent_span_id, root.span_id);
    assert_eq!(child.flags & 0x300, 0x100);
    assert!(child.status.is_none(), "only error = true marks an error");
    assert_eq!(root.flags & 0xff, 0x03, "sampled and random");
}

#[test]
fn huge_values_are_truncated_and_counted() {
    let huge = "é".repeat(MAX_ATTRIBUTE_VALUE_BYTES);
    let spans = finished(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        crate::add_span_tags!("huge" => huge.clone());
    });
    let mut counts = ConversionCounts::default();
    let proto = to_proto(&spans[0], &mut counts);
    let Some(any_value::Value::StringValue(value)) =
        proto.attributes[0].value.clone().and_then(|v| v.value)
    else {
        panic!("string attribute");
    };
    assert!(value.len() <= MAX_ATTRIBUTE_VALUE_BYTES);
    assert_eq!(counts.truncated_values, 1);
}

#[test]
fn requests_are_split_under_the_limit_and_decode() {
    let spans = finished(|| {
        for i in 0..100 {
            let _root = tracing::start_trace(format!("span-{i}"), StartTraceOptions::default());
            crate::add_span_tags!("payload" => "x".repeat(100));
        }
    });
    let encoder = OtlpEncoder::new(
        "svc",
        vec![("deployment.environment.name".into(), "test".into())],
    );
    let mut counts = ConversionCounts::default();
    let (requests, oversized) = encoder.encode(&spans, 2_000, &mut counts);
    assert_eq!(oversized, 0);
    assert!(requests.len() > 5);
    let mut total = 0;
    for request in &requests {
        assert!(request.body.len() <= 2_000, "{}", request.body.len());
        let decoded = ExportTraceServiceRequest::decode(&request.body[..]).unwrap();
        assert_eq!(decoded.resource_spans.len(), 1);
        let resource = decoded.resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(resource.attributes[0].key, "service.name");
        assert_eq!(decoded.resource_spans[0].scope_spans.len(), 1);
        assert_eq!(
            decoded.resource_spans[0].scope_spans[0]
                .scope
                .as_ref()
                .unwrap()
                .name,
            "foundations"
        );
        total += decoded.resource_spans[0].scope_spans[0].spans.len();
        assert_eq!(
            decoded.resource_spans[0].scope_spans[0].spans.len(),
            request.spans
        );
    }
    assert_eq!(total, 100);
    // A limit below one span's size: every span is oversized, nothing is sent.
    let (requests, oversized) = encoder.encode(&spans, 150, &mut counts);
    assert!(requests.is_empty());
    assert_eq!(oversized, 100);
}

#[test]
fn direct_encoding_matches_prost_byte_for_byte() {
    let inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
    let spans = finished(|| {
        let options = StartTraceOptions::default()
            .continue_from_headers(Some(inbound.as_bytes()), Some(b"a=1,b=2".as_slice()));
        let _root = tracing::start_trace("root", options);
        crate::add_span_tags!("span.kind" => "client", "neg" => -5, "zero" => 0, "f" => -0.25,
            "t" => true, "no" => false, "empty" => "", "error" => true, "kind2" => "x");
        crate::add_span_log_fields!("event" => "e1", "k" => "v", "" => "empty key");
        crate::add_span_log_fields!("only" => "fields");
        let _child = tracing::span("");
        crate::add_span_tags!("span.kind" => "bogus", "error.message" => 5, "big" => "y".repeat(70_000));
        let _plain = tracing::span("plain");
    });
    assert_eq!(spans.len(), 3);
    // Over every span limit: the dropped counts of span and events are encoded too.
    let limits = SpanLimits::default()
        .with_max_attributes(3)
        .with_max_events(2)
        .with_max_attributes_per_event(1)
        .with_max_links(1);
    let ctx = TelemetryContext::test_with_span_limits(limits);
    ctx.scope_and(|| {
        let _root = tracing::start_trace("limited", StartTraceOptions::default());
        for i in 0..300 {
            crate::add_span_tags!(format!("tag{i}") => i);
        }
        crate::add_span_log_fields!("event" => "e1", "a" => "1", "b" => "2", "c" => "3");
        crate::add_span_log_fields!("event" => "e2", "a" => "1");
        crate::add_span_log_fields!("event" => "e3");
    });
    let limited = ctx.finished_internal_spans();
    assert_eq!(limited[0].dropped_attributes_count(), 297);
    assert_eq!(limited[0].dropped_events_count(), 1);
    assert_eq!(limited[0].event_dropped_attributes_count(0), 2);
    let spans: Vec<FinishedSpan> = spans.into_iter().chain(limited).collect();
    for span in &spans {
        let mut reference_counts = ConversionCounts::default();
        let mut expected = Vec::new();
        prost::encoding::message::encode(2, &to_proto(span, &mut reference_counts), &mut expected);
        let mut counts = ConversionCounts::default();
        let mut actual = Vec::new();
        write_span(span, &[], &mut actual, &mut counts);
        assert_eq!(actual, expected, "span {:?}", span.name());
        assert_eq!(counts, reference_counts);
    }
    // The framing is canonical: decoding and re-encoding gives the same bytes.
    let encoder = OtlpEncoder::new("svc", vec![]);
    let (requests, _) = encoder.encode(&spans, usize::MAX, &mut ConversionCounts::default());
    let decoded = ExportTraceServiceRequest::decode(&requests[0].body[..]).unwrap();
    assert_eq!(decoded.encode_to_vec(), &requests[0].body[..]);
    let decoded_spans = &decoded.resource_spans[0].scope_spans[0].spans;
    assert_eq!(decoded_spans.len(), 4);
    assert_eq!(decoded_spans[3].attributes.len(), 3);
    assert_eq!(decoded_spans[3].dropped_attributes_count, 297);
    assert_eq!(decoded_spans[3].events.len(), 2);
    assert_eq!(decoded_spans[3].dropped_events_count, 1);
    assert_eq!(decoded_spans[3].events[0].dropped_attributes_count, 2);
    assert_eq!(decoded_spans[3].events[1].dropped_attributes_count, 0);
}

#[test]
fn static_tags_are_added_unless_the_span_sets_them() {
    let spans = finished(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        crate::add_span_tags!("region" => "span-wins");
    });
    let encoder = OtlpEncoder::new("svc", vec![]).with_static_tags(vec![
        ("region".into(), "static".into()),
        ("team".into(), "edge".into()),
    ]);
    let (requests, _) = encoder.encode(&spans, usize::MAX, &mut ConversionCounts::default());
    let decoded = ExportTraceServiceRequest::decode(&requests[0].body[..]).unwrap();
    let span = &decoded.resource_spans[0].scope_spans[0].spans[0];
    let value = |key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone()?.value)
    };
    assert_eq!(
        value("region"),
        Some(any_value::Value::StringValue("span-wins".into()))
    );
    assert_eq!(
        value("team"),
        Some(any_value::Value::StringValue("edge".into()))
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug)]
struct Outer(std::io::Error);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("loading config")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn typed_kind_status_and_recorded_errors_map_to_otlp_byte_for_byte() {
    use crate::telemetry::tracing::{SpanKind as Kind, SpanStatus};
    let spans = finished(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        tracing::set_span_kind(Kind::Consumer);
        tracing::set_span_status(SpanStatus::Ok);
        {
            let _failed = tracing::span("failed");
            tracing::set_span_kind(Kind::Client);
            let error = Outer(std::io::Error::other("disk on fire"));
            tracing::record_error(&error);
        }
        {
            // The tags keep working, and the last status written wins.
            let _legacy = tracing::span("legacy");
            tracing::set_span_status(SpanStatus::error("first"));
            crate::add_span_tags!("error" => false);
        }
    });
    let by_name = |name: &str| spans.iter().find(|s| s.name() == name).unwrap();
    let mut counts = ConversionCounts::default();
    let root = to_proto(by_name("root"), &mut counts);
    assert_eq!(root.kind, SpanKind::Consumer as i32);
    assert_eq!(root.status.as_ref().unwrap().code, StatusCode::Ok as i32);
    assert!(root.attributes.is_empty(), "status tags are not attributes");
    let failed = to_proto(by_name("failed"), &mut counts);
    assert_eq!(failed.kind, SpanKind::Client as i32);
    let status = failed.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "loading config: disk on fire");
    let event = &failed.events[0];
    assert_eq!(event.name, "exception");
    let attr = |key: &str| {
        event
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone()?.value)
    };
    assert_eq!(
        attr("exception.message"),
        Some(any_value::Value::StringValue(
            "loading config: disk on fire".into()
        ))
    );
    let Some(any_value::Value::StringValue(ty)) = attr("exception.type") else {
        panic!("exception.type is a string");
    };
    assert!(ty.ends_with("Outer"), "{ty}");
    let legacy = to_proto(by_name("legacy"), &mut counts);
    assert!(
        legacy.status.is_none(),
        "error = false after an error status: unset"
    );
    for span in &spans {
        let mut expected = Vec::new();
        let proto = to_proto(span, &mut ConversionCounts::default());
        prost::encoding::message::encode(2, &proto, &mut expected);
        let mut actual = Vec::new();
        write_span(span, &[], &mut actual, &mut ConversionCounts::default());
        assert_eq!(actual, expected, "span {:?}", span.name());
    }
}

#[test]
fn links_map_to_otlp_bounded_and_byte_for_byte() {
    use crate::telemetry::tracing::{MAX_LINKS, Tag, TraceState, TraceparentContext};
    let linked: TraceparentContext = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03"
        .parse()
        .unwrap();
    let state = TraceState::parse(b"v=1").unwrap();
    let spans = finished(|| {
        let _root = tracing::start_trace("batch", StartTraceOptions::default());
        tracing::add_link(
            linked,
            Some(state.clone()),
            [Tag::new("index", 0), Tag::new("kind", "request")],
        );
        for _ in 0..MAX_LINKS + 2 {
            tracing::add_link(linked, None, []);
        }
        {
            // A span that becomes a `cf_rustracing` span (a log entry) keeps its links too.
            let _logged = tracing::span("logged");
            tracing::add_link(linked, None, [Tag::new("via", "full")]);
            crate::add_span_log_fields!("event" => "x");
        }
    });
    let by_name = |name: &str| spans.iter().find(|s| s.name() == name).unwrap();
    let batch = to_proto(by_name("batch"), &mut ConversionCounts::default());
    assert_eq!(batch.links.len(), MAX_LINKS);
    assert_eq!(batch.dropped_links_count, 3);
    let first = &batch.links[0];
    assert_eq!(hex(&first.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&first.span_id), "b7ad6b7169203331");
    assert_eq!(first.trace_state, "v=1");
    assert_eq!(first.flags, 0x03);
    assert_eq!(first.attributes.len(), 2);
    let logged = to_proto(by_name("logged"), &mut ConversionCounts::default());
    assert_eq!(logged.links.len(), 1);
    assert_eq!(logged.links[0].attributes[0].key, "via");
    for span in &spans {
        let mut expected = Vec::new();
        let proto = to_proto(span, &mut ConversionCounts::default());
        prost::encoding::message::encode(2, &proto, &mut expected);
        let mut actual = Vec::new();
        write_span(span, &[], &mut actual, &mut ConversionCounts::default());
        assert_eq!(actual, expected, "span {:?}", span.name());
    }
}

#[test]
fn plain_spans_take_the_fast_path_byte_for_byte() {
    let inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let spans = finished(|| {
        let options = StartTraceOptions::default()
            .continue_from_headers(Some(inbound.as_bytes()), Some(b"a=1".as_slice()));
        let _continued = tracing::start_trace("continued", options);
        crate::add_span_tags!("key" => "value");
        {
            let _child = tracing::span("untagged");
        }
        {
            let _child = tracing::span("int");
            crate::add_span_tags!("n" => -7);
        }
        {
            let _child = tracing::span("float");
            crate::add_span_tags!("f" => 0.5);
        }
        {
            let _child = tracing::span("bool");
            crate::add_span_tags!("b" => false);
        }
        {
            let _child = tracing::span("");
            crate::add_span_tags!("" => "");
        }
        // The tags that set kind or status leave the fast path.
        for (name, value) in [
            ("span.kind", "server"),
            ("span.kind", "bogus"),
            ("error", "true"),
            ("error.message", "boom"),
            ("otel.status_code", "OK"),
            ("otel.status_code", "maybe"),
        ] {
            let _child = tracing::span("status");
            crate::add_span_tags!(name => value);
        }
        let _root = tracing::start_trace("root", StartTraceOptions::default());
    });
    assert_eq!(spans.len(), 13);
    let mut plain = 0;
    for span in &spans {
        plain += usize::from(span.plain_tag().is_some());
        let mut reference_counts = ConversionCounts::default();
        let mut expected = Vec::new();
        prost::encoding::message::encode(2, &to_proto(span, &mut reference_counts), &mut expected);
        let mut counts = ConversionCounts::default();
        let mut actual = Vec::new();
        write_span(span, &[], &mut actual, &mut counts);
        assert_eq!(actual, expected, "span {:?}", span.name());
        assert_eq!(counts, reference_counts);
    }
    assert_eq!(plain, spans.len(), "every span here is plain");
}
