//! Tests of recording: finish callbacks, shared spans, out-of-order ends, tag order.

use crate::telemetry::TelemetryContext;
use crate::telemetry::tracing::{self, Span, StartTraceOptions, Tag, TagValue};
use crate::{add_span_log_fields, add_span_tags, set_span_finish_callback};

#[test]
fn spans_opened_by_a_finish_callback_are_recorded() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        let _child = tracing::span("child");
        set_span_finish_callback!(|_: &mut Span| drop(tracing::span("from_callback")));
    });
    let traces = ctx.traces(Default::default());
    assert!(
        traces
            .iter()
            .any(|root| root.find("from_callback").is_some()),
        "the callback ran outside the stack's borrow"
    );
}

#[test]
fn a_span_captured_mid_way_keeps_recording_and_parenting() {
    let ctx = TelemetryContext::test();
    let captured = ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        let _child = tracing::span("child");
        add_span_tags!("before" => 1);
        let captured = TelemetryContext::current();
        add_span_tags!("after" => 2);
        drop(tracing::span("grandchild"));
        captured
    });
    // The child is still referenced by `captured`: not finished yet.
    let root = &ctx.traces(Default::default())[0];
    assert!(root.find("child").is_none());
    drop(captured);
    let root = &ctx.traces(Default::default())[0];
    let child = root.find("child").expect("finished with its last handle");
    assert_eq!(child.tag("before"), Some(&TagValue::Integer(1)));
    assert_eq!(child.tag("after"), Some(&TagValue::Integer(2)));
    assert_eq!(child.children[0].name, "grandchild");
}

#[test]
fn out_of_order_ends_keep_the_stack_consistent() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let root = tracing::start_trace("root", StartTraceOptions::default());
        let a = tracing::span("a");
        let b = tracing::span("b");
        let c = tracing::span("c");
        drop(b);
        drop(tracing::span("under_c"));
        drop(a);
        drop(tracing::span("still_under_c"));
        drop(c);
        drop(tracing::span("under_root"));
        drop(root);
        // Every entry is vacant again: a new trace starts from an empty stack.
        assert!(tracing::trace_id().is_none());
        drop(tracing::start_trace("next", StartTraceOptions::default()));
    });
    let traces = ctx.traces(Default::default());
    let root = &traces[0];
    let c = root.find("c").unwrap();
    let names: Vec<_> = c.children.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["under_c", "still_under_c"]);
    assert!(root.children.iter().any(|s| s.name == "under_root"));
    assert_eq!(traces[1].name, "next");
    assert_eq!(traces.iter().map(|t| t.iter().count()).sum::<usize>(), 8);
}

#[test]
fn tags_set_before_and_after_a_log_are_all_kept_in_order() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        add_span_tags!("a" => 1, "b" => 2);
        add_span_log_fields!("event" => "x");
        add_span_tags!("a" => 3, "c" => 4);
    });
    let root = &ctx.traces(Default::default())[0];
    assert_eq!(root.logs.len(), 1);
    assert_eq!(root.tag("a"), Some(&TagValue::Integer(3)));
    assert_eq!(root.tag("b"), Some(&TagValue::Integer(2)));
    assert_eq!(root.tag("c"), Some(&TagValue::Integer(4)));
}

#[test]
fn children_of_a_shared_span_inherit_its_finish_callback() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let root = tracing::start_trace("root", StartTraceOptions::default());
        set_span_finish_callback!(|span: &mut Span| span.set_tag(|| Tag::new("cb", true)));
        let shared = root.into_context();
        shared.scope_and(|| drop(tracing::span("child")));
    });
    // A registry test running in parallel may hold the shared root's last handle for a
    // moment while it reads its tags (`live_traces`): the root then finishes on that thread,
    // just after this scope.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let traces = loop {
        let traces = ctx.traces(Default::default());
        if traces.iter().any(|root| root.name == "root") || std::time::Instant::now() > deadline {
            break traces;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    let root = &traces[0];
    assert_eq!(root.name, "root");
    assert_eq!(root.tag("cb"), Some(&TagValue::Boolean(true)));
    assert_eq!(root.children[0].tag("cb"), Some(&TagValue::Boolean(true)));
}

#[test]
fn events_and_the_end_fall_within_the_span_whatever_the_threads_anchor_says() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        // The anchor 5 ms ahead of the wall clock: the span's start, converted by it, is
        // ahead of what the wall clock says at its events.
        crate::telemetry::core::clock::skew_this_threads_anchor(5_000_000);
        let _root = tracing::start_trace("skewed", StartTraceOptions::default());
        add_span_log_fields!("event" => "first");
        add_span_log_fields!("event" => "second");
    });
    let root = &ctx.traces(Default::default())[0];
    assert_eq!(root.logs.len(), 2);
    for log in &root.logs {
        assert!(
            root.start_time <= log.time,
            "an event before its span's start"
        );
        assert!(
            log.time <= root.finish_time,
            "an event after its span's end"
        );
    }
    assert!(root.logs[0].time <= root.logs[1].time);
}
