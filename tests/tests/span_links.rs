//! Span links through the public API of both pipelines, as the test harness shows them.

use foundations::set_span_finish_callback;
use foundations::telemetry::TelemetryContext;
use foundations::telemetry::tracing::{
    self, MAX_LINKS, Span, StartTraceOptions, Tag, TagValue, TraceState, TraceparentContext,
};
use foundations::telemetry::user_tracing;
use foundations_tests::Tenant;

fn served(i: u8) -> TraceparentContext {
    format!("00-{:032x}-{:016x}-01", u128::from(i) + 1, u64::from(i) + 1)
        .parse()
        .unwrap()
}

#[test]
fn a_batch_span_links_the_requests_it_serves() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _batch = tracing::start_trace("batch", StartTraceOptions::default());
        for i in 0..3 {
            let state = TraceState::parse(b"vendor=x").unwrap();
            tracing::add_link(
                served(i),
                Some(state),
                [Tag::new("batch.index", i64::from(i))],
            );
        }
    });
    let batch = &ctx.traces(Default::default())[0];
    assert_eq!(batch.links.len(), 3);
    assert_eq!(batch.dropped_links_count, 0);
    for (i, link) in batch.links.iter().enumerate() {
        assert_eq!(link.context, served(i as u8));
        assert_eq!(link.trace_state.as_ref().unwrap().header_str(), "vendor=x");
        assert_eq!(link.attributes[0].value(), &TagValue::Integer(i as i64));
    }
    assert_ne!(
        batch.links[0].context.trace_id, batch.trace_id,
        "other traces"
    );
}

#[test]
fn links_beyond_the_limit_are_dropped_and_counted() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _batch = tracing::start_trace("batch", StartTraceOptions::default());
        for i in 0..MAX_LINKS + 5 {
            tracing::add_link(served((i % 200) as u8), None, []);
        }
    });
    let batch = &ctx.traces(Default::default())[0];
    assert_eq!(batch.links.len(), MAX_LINKS);
    assert_eq!(batch.dropped_links_count, 5);
}

#[test]
fn links_survive_a_finish_callback_and_unsampled_spans_keep_none() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        tracing::add_link(served(1), None, []);
        set_span_finish_callback!(|span: &mut Span| {
            // A span finished inside the callback has links of its own, kept apart.
            span.set_tag(|| Tag::new("cb", true));
            let _inner = tracing::start_trace("inner", StartTraceOptions::default());
            tracing::add_link(served(2), None, []);
        });
        let _off = tracing::start_trace("off", StartTraceOptions::default().force_sampling(false));
        tracing::add_link(served(3), None, []);
    });
    let traces = ctx.traces(Default::default());
    let root = traces.iter().find(|t| t.name == "root").unwrap();
    assert_eq!(root.tag("cb"), Some(&TagValue::Boolean(true)));
    assert_eq!(root.links.len(), 1);
    assert_eq!(root.links[0].context, served(1));
    let inner = traces.iter().find_map(|t| t.find("inner")).unwrap();
    assert_eq!(inner.links.len(), 1);
    assert_eq!(inner.links[0].context, served(2));
    assert!(traces.iter().all(|t| t.find("off").is_none()));
}

#[test]
fn user_spans_take_links_and_internal_spans_do_not_see_them() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _internal = tracing::start_trace("internal", StartTraceOptions::default());
        let _user = user_tracing::start_user_trace("request", Tenant::new("t"), None);
        user_tracing::add_user_link(served(7), None, [Tag::new("k", "v")]);
    });
    let user = &ctx.user_traces(Default::default())[0];
    assert_eq!(user.links.len(), 1);
    assert_eq!(user.links[0].context, served(7));
    assert!(ctx.traces(Default::default())[0].links.is_empty());
}
