//! The internal pipeline through its public API, observed with the in-memory test harness.
//!
//! Every test uses its own `TelemetryContext::test()`: they run in parallel in this one
//! process, and `test_contexts_are_isolated` proves they cannot see each other's spans.

use foundations::telemetry::tracing::{
    self, Span, SpanId, StartTraceOptions, Tag, TagValue, TraceFlags, TraceId, TraceState,
    TraceparentContext,
};
use foundations::telemetry::{TelemetryContext, TestSpan};
use foundations::{add_span_log_fields, add_span_tags, set_span_finish_callback};

const INBOUND: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn inbound() -> TraceparentContext {
    INBOUND.parse().unwrap()
}

fn names(span: &TestSpan) -> Vec<String> {
    span.iter().map(|s| s.name.clone()).collect()
}

#[test]
fn children_nest_under_the_current_span() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        {
            let _a = tracing::span("a");
            let _a1 = tracing::span("a1");
        }
        let _b = tracing::span("b");
    });

    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 1);
    let root = &traces[0];
    assert_eq!(names(root), ["root", "a", "a1", "b"]);
    assert_eq!(root.parent_id, None);
    let a = root.find("a").unwrap();
    assert_eq!(a.parent_id, Some(root.span_id));
    assert_eq!(a.children[0].parent_id, Some(a.span_id));
    assert_eq!(root.find("b").unwrap().parent_id, Some(root.span_id));
    for span in root.iter() {
        assert_eq!(span.trace_id, root.trace_id);
        assert!(span.flags.is_sampled());
        assert!(span.start_time <= span.finish_time);
    }
    let ids: std::collections::HashSet<SpanId> = root.iter().map(|s| s.span_id).collect();
    assert_eq!(ids.len(), 4, "span ids are unique");
}

#[test]
fn out_of_order_drop_never_reparents() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        let a = tracing::span("a");
        let b = tracing::span("b");
        drop(a);
        let c = tracing::span("c");
        drop(c);
        drop(b);
    });

    let root = &ctx.traces(Default::default())[0];
    let a = root.find("a").unwrap();
    let b = a.find("b").expect("b was opened while a was current");
    let c = root.find("c").unwrap();
    assert_eq!(
        c.parent_id,
        Some(b.span_id),
        "c is a child of b, not of root"
    );
}

#[test]
fn span_without_current_span_starts_a_root() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        drop(tracing::span("first"));
        drop(tracing::span("second"));
    });
    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 2);
    assert_ne!(traces[0].trace_id, traces[1].trace_id);
    assert!(traces.iter().all(|t| t.parent_id.is_none()));
}

#[test]
fn tags_logs_and_finish_callback_are_recorded() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        add_span_tags!("str" => "v", "int" => 7, "flag" => true, "ratio" => 0.5);
        add_span_tags!("str" => format!("replaced-{}", 1));
        add_span_log_fields!("event" => "cache_miss", "key" => "user/1");
        set_span_finish_callback!(|span: &mut Span| span.set_tag(|| Tag::new("done", true)));
        let _child = tracing::span("child");
    });

    let root = &ctx.traces(Default::default())[0];
    assert_eq!(
        root.tag("str"),
        Some(&TagValue::from("replaced-1".to_string()))
    );
    assert_eq!(root.tag("int"), Some(&TagValue::Integer(7)));
    assert_eq!(root.tag("flag"), Some(&TagValue::Boolean(true)));
    assert_eq!(root.tag("ratio"), Some(&TagValue::Float(0.5)));
    assert_eq!(root.tag("done"), Some(&TagValue::Boolean(true)));
    // Children inherit the finish callback.
    assert_eq!(root.children[0].tag("done"), Some(&TagValue::Boolean(true)));
    assert_eq!(root.logs.len(), 1);
    assert_eq!(
        root.logs[0].fields,
        [
            ("event".into(), "cache_miss".into()),
            ("key".into(), "user/1".into())
        ]
    );
}

#[test]
fn macros_do_not_evaluate_arguments_without_a_recorded_span() {
    let ctx = TelemetryContext::test();
    let evaluated = std::cell::Cell::new(false);
    let probe = || {
        evaluated.set(true);
        "value"
    };
    ctx.scope_and(|| add_span_tags!("k" => probe()));
    assert!(!evaluated.get());
    // Unsampled trace: still nothing evaluated.
    ctx.scope_and(|| {
        let _root = tracing::start_trace("r", StartTraceOptions::default().force_sampling(false));
        add_span_tags!("k" => probe());
    });
    assert!(!evaluated.get());
}

#[test]
fn finish_callback_may_open_spans_without_panicking() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        let _child = tracing::span("child");
        // Runs while the scope stack is being updated; must not deadlock or panic.
        set_span_finish_callback!(|_span: &mut Span| {
            drop(tracing::span("opened_in_callback"));
        });
    });
    assert!(!ctx.traces(Default::default()).is_empty());
}

#[test]
fn inbound_traceparent_is_continued() {
    let ctx = TelemetryContext::test();
    let tracestate = TraceState::parse(b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7").unwrap();
    let outbound = ctx.scope_and(|| {
        let _root = tracing::start_trace(
            "server",
            StartTraceOptions::default().continue_trace(inbound(), Some(tracestate.clone())),
        );
        let _child = tracing::span("child");
        (
            tracing::w3c_traceparent().unwrap(),
            tracing::w3c_tracestate(),
        )
    });

    let traces = ctx.traces(Default::default());
    assert_eq!(
        traces.len(),
        1,
        "a continued root is a root in the test harness"
    );
    let root = &traces[0];
    assert_eq!(root.trace_id, inbound().trace_id);
    assert_eq!(root.parent_id, Some(inbound().parent_id));
    assert!(root.remote_parent);
    assert_ne!(root.span_id, inbound().parent_id);
    assert_eq!(root.trace_state.as_ref(), Some(&tracestate));
    let child = &root.children[0];
    assert!(!child.remote_parent);

    assert_eq!(outbound.0.trace_id, inbound().trace_id);
    assert_eq!(outbound.0.parent_id, child.span_id);
    assert!(outbound.0.flags.is_sampled());
    assert!(
        !outbound.0.flags.is_random(),
        "random flag unset inbound stays unset"
    );
    assert_eq!(outbound.1, Some(tracestate));
}

#[test]
fn random_flag_is_kept_on_continued_traces_and_set_on_new_ones() {
    let ctx = TelemetryContext::test();
    let inbound = TraceparentContext::new(
        TraceId::from_u128(0xabc),
        SpanId::from_u64(0xdef),
        TraceFlags::SAMPLED.with_random(true),
    );
    ctx.scope_and(|| {
        let _root = tracing::start_trace(
            "c",
            StartTraceOptions::default().continue_trace(inbound, None),
        );
        let flags = tracing::w3c_traceparent().unwrap().flags;
        assert!(flags.is_random() && flags.is_sampled());
    });
    ctx.scope_and(|| {
        let _root = tracing::start_trace("n", StartTraceOptions::default());
        assert!(tracing::w3c_traceparent().unwrap().flags.is_random());
    });
}

#[test]
fn unknown_inbound_flag_bits_are_not_forwarded() {
    let ctx = TelemetryContext::test();
    let inbound: TraceparentContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff"
        .parse()
        .unwrap();
    let header = ctx.scope_and(|| {
        let _root = tracing::start_trace(
            "c",
            StartTraceOptions::default().continue_trace(inbound, None),
        );
        tracing::w3c_traceparent().unwrap().to_string()
    });
    assert!(header.ends_with("-03"), "{header}");
}

#[test]
fn unsampled_inbound_is_not_recorded_and_propagated_unsampled() {
    let ctx = TelemetryContext::test();
    let unsampled: TraceparentContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        .parse()
        .unwrap();
    ctx.scope_and(|| {
        let _root = tracing::start_trace(
            "c",
            StartTraceOptions::default().continue_trace(unsampled, None),
        );
        let _child = tracing::span("child");
        assert!(!tracing::span_is_sampled());
        let outbound = tracing::w3c_traceparent().unwrap();
        assert_eq!(outbound.trace_id, unsampled.trace_id);
        assert!(!outbound.flags.is_sampled());
        // The service took part: the downstream parent is its own (unrecorded) span.
        assert_ne!(outbound.parent_id, unsampled.parent_id);
        assert_eq!(Some(outbound.parent_id), tracing::span_id());
        assert!(outbound.to_string().ends_with("-00"));
    });
    assert!(ctx.traces(Default::default()).is_empty());
}

#[test]
fn force_sampling_overrides_the_inbound_flag() {
    let ctx = TelemetryContext::test();
    let unsampled: TraceparentContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        .parse()
        .unwrap();
    ctx.scope_and(|| {
        let options = StartTraceOptions::default()
            .continue_trace(unsampled, None)
            .force_sampling(true);
        let _root = tracing::start_trace("forced", options);
        assert!(tracing::w3c_traceparent().unwrap().flags.is_sampled());
    });
    ctx.scope_and(|| {
        let _root = tracing::start_trace("off", StartTraceOptions::default().force_sampling(false));
        assert!(!tracing::span_is_sampled());
        assert!(
            tracing::trace_id().is_some(),
            "an unsampled trace still has an id"
        );
    });
    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].name, "forced");
}

#[test]
fn malformed_inbound_headers_start_a_fresh_root() {
    let ctx = TelemetryContext::test();
    let bad_values: [&[u8]; 6] = [
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        b"\xff\xfe garbage",
        b"",
    ];
    for bad in bad_values {
        ctx.scope_and(|| {
            let options = StartTraceOptions::default()
                .continue_from_headers(Some(bad), Some(b"vendor=value".as_slice()));
            let _root = tracing::start_trace("fresh", options);
            assert_ne!(tracing::trace_id(), Some(inbound().trace_id));
            assert!(
                tracing::w3c_tracestate().is_none(),
                "tracestate ignored too"
            );
        });
    }
    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), bad_values.len());
    assert!(traces.iter().all(|t| t.parent_id.is_none()));
}

#[test]
fn malformed_tracestate_alone_is_dropped() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let options = StartTraceOptions::default()
            .continue_from_headers(Some(INBOUND.as_bytes()), Some(b"Bad Key=1".as_slice()));
        let _root = tracing::start_trace("r", options);
        assert_eq!(tracing::trace_id(), Some(inbound().trace_id));
        assert!(tracing::w3c_tracestate().is_none());
    });
}

#[test]
fn accessors_are_empty_without_a_span() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        assert!(tracing::trace_id().is_none());
        assert!(tracing::span_id().is_none());
        assert!(tracing::w3c_traceparent().is_none());
        assert!(tracing::w3c_tracestate().is_none());
        assert!(!tracing::span_is_sampled());
    });
}

#[test]
fn test_contexts_are_isolated() {
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let ctx = TelemetryContext::test();
                for _ in 0..50 {
                    ctx.scope_and(|| {
                        let name = format!("root-{i}");
                        let _root = tracing::start_trace(name, StartTraceOptions::default());
                        let _child = tracing::span("child");
                    });
                }
                let traces = ctx.traces(Default::default());
                assert_eq!(traces.len(), 50);
                assert!(traces.iter().all(|t| t.name == format!("root-{i}")));
                assert!(traces.iter().all(|t| t.children.len() == 1));
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn spans_outside_any_context_go_nowhere() {
    // No harness installed in this test binary: spans are inert.
    let scope = tracing::start_trace("nothing", StartTraceOptions::default());
    assert!(!scope.is_sampled());
    assert!(tracing::trace_id().is_none());
    drop(scope);
    let ctx = TelemetryContext::test();
    assert!(ctx.traces(Default::default()).is_empty());
}
