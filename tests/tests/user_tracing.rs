//! The user pipeline through its public API, observed with the in-memory test harness.

use foundations::telemetry::tracing::{
    self, StartTraceOptions, TagValue, TraceState, TraceparentContext,
};
use foundations::telemetry::user_tracing::{self, UserSpan};
use foundations::telemetry::{self, TelemetryContext, TestSpan};
use foundations::{add_user_span_log_fields, add_user_span_tags, set_user_span_finish_callback};
use foundations_tests::Tenant;
use std::collections::HashSet;
use std::time::Duration;

const INBOUND: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn all_spans(traces: &[TestSpan]) -> Vec<&TestSpan> {
    traces.iter().flat_map(TestSpan::iter).collect()
}

#[test]
fn user_spans_nest_and_carry_the_routing_of_their_root() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = user_tracing::start_user_trace("request", Tenant::new("acme"), None);
        let _a = user_tracing::user_span("a");
        add_user_span_tags!("k" => "v", "n" => 3);
        add_user_span_log_fields!("event" => "hit");
        let _b = user_tracing::user_span("b");
    });
    let traces = ctx.user_traces(Default::default());
    assert_eq!(traces.len(), 1);
    let root = &traces[0];
    let names: Vec<_> = root.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["request", "a", "b"]);
    for span in root.iter() {
        assert_eq!(span.routing.as_deref(), Some("tenant=acme"));
        assert_eq!(span.trace_id, root.trace_id);
        assert!(span.flags.is_sampled());
    }
    let a = root.find("a").unwrap();
    assert_eq!(a.tag("k"), Some(&TagValue::from("v")));
    assert_eq!(a.tag("n"), Some(&TagValue::Integer(3)));
    assert_eq!(a.logs[0].fields, [("event".to_owned(), "hit".to_owned())]);
}

#[test]
fn pipelines_are_isolated_both_ways() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _user = user_tracing::start_user_trace("user_root", Tenant::new("t"), None);
        let _internal = tracing::start_trace("internal_root", StartTraceOptions::default());
        let _u = user_tracing::user_span("user_child");
        let _i = tracing::span("internal_child");
        let _both = tracing::span("both").with_user_span();
    });
    let internal: HashSet<String> = all_spans(&ctx.traces(Default::default()))
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let user: HashSet<String> = all_spans(&ctx.user_traces(Default::default()))
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(
        internal,
        HashSet::from([
            "internal_root".into(),
            "internal_child".into(),
            "both".into()
        ])
    );
    assert_eq!(
        user,
        HashSet::from(["user_root".into(), "user_child".into(), "both".into()])
    );
    for span in all_spans(&ctx.traces(Default::default())) {
        assert!(span.routing.is_none(), "internal spans carry no routing");
    }
}

#[test]
fn user_trace_ids_are_independent_of_internal_ones() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _internal = tracing::start_trace("internal", StartTraceOptions::default());
        let _user = user_tracing::start_user_trace("user", Tenant::new("t"), None);
        assert_ne!(
            tracing::w3c_traceparent().unwrap().trace_id,
            user_tracing::w3c_traceparent().unwrap().trace_id
        );
    });
}

#[test]
fn without_a_user_trace_every_user_api_is_inert() {
    let ctx = TelemetryContext::test();
    let evaluated = std::cell::Cell::new(false);
    let probe = || {
        evaluated.set(true);
        "v"
    };
    ctx.scope_and(|| {
        let _internal = tracing::start_trace("internal", StartTraceOptions::default());
        let scope = user_tracing::user_span("orphan");
        assert!(!scope.is_active());
        let _both = tracing::span("internal_only").with_user_span();
        let _dual = user_tracing::dual_span("dual");
        add_user_span_tags!("k" => probe());
        add_user_span_log_fields!("k" => probe());
        set_user_span_finish_callback!(|_span: &mut tracing::Span| panic!("never set"));
        assert!(user_tracing::w3c_traceparent().is_none());
        assert!(user_tracing::w3c_tracestate().is_none());
        assert!(!user_tracing::is_active());
        assert!(!UserSpan::current().child("x").is_active());
    });
    assert!(!evaluated.get());
    assert!(ctx.user_traces(Default::default()).is_empty());
    // The internal side still recorded everything.
    assert_eq!(all_spans(&ctx.traces(Default::default())).len(), 3);
}

#[test]
fn with_user_span_works_under_an_unsampled_internal_trace() {
    // Unsampled internal children are normally joined into their parent's stack entry; one
    // opened while a user trace is active must keep its own, so that its user span can
    // follow.
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _user = user_tracing::start_user_trace("request", Tenant::new("t"), None);
        let unsampled = StartTraceOptions::default().force_sampling(false);
        let _internal = tracing::start_trace("internal", unsampled);
        let internal_ids = (tracing::trace_id(), tracing::span_id());
        {
            let _a = tracing::span("a").with_user_span();
            let _b = tracing::span("b").with_user_span();
            assert_eq!(tracing::trace_id(), internal_ids.0, "same trace");
            assert_ne!(
                tracing::span_id(),
                internal_ids.1,
                "an unsampled span's own id"
            );
        }
        let _c = tracing::span("c").with_user_span();
    });
    assert!(ctx.traces(Default::default()).is_empty());
    let user = ctx.user_traces(Default::default());
    let root = &user[0];
    assert_eq!(
        root.children.len(),
        2,
        "a and c are children of the user root"
    );
    assert_eq!(root.children[0].name, "a");
    assert_eq!(root.children[0].children[0].name, "b");
    assert_eq!(root.children[1].name, "c");
}

#[test]
fn inbound_traceparent_is_continued_with_tracestate_and_random_flag() {
    let ctx = TelemetryContext::test();
    let inbound: TraceparentContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"
        .parse()
        .unwrap();
    let tracestate = TraceState::parse(b"acme=abc,other=1").unwrap();
    let outbound = ctx.scope_and(|| {
        let _root = user_tracing::start_user_trace_continuing(
            "request",
            Tenant::new("acme"),
            inbound,
            Some(tracestate.clone()),
        );
        let _child = user_tracing::user_span("child");
        (
            user_tracing::w3c_traceparent().unwrap(),
            user_tracing::w3c_tracestate(),
        )
    });
    let traces = ctx.user_traces(Default::default());
    assert_eq!(traces.len(), 1, "the continued root is a root");
    let root = &traces[0];
    assert_eq!(root.trace_id, inbound.trace_id);
    assert_eq!(root.parent_id, Some(inbound.parent_id));
    assert!(root.remote_parent);
    assert_eq!(root.trace_state.as_ref(), Some(&tracestate));
    assert_eq!(outbound.0.trace_id, inbound.trace_id);
    assert_eq!(outbound.0.parent_id, root.children[0].span_id);
    assert!(outbound.0.flags.is_random(), "random flag kept");
    assert!(outbound.0.flags.is_sampled());
    assert_eq!(outbound.1, Some(tracestate));
}

#[test]
fn unsampled_inbound_is_still_recorded_because_starting_is_the_decision() {
    let ctx = TelemetryContext::test();
    let unsampled: TraceparentContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        .parse()
        .unwrap();
    let flags = ctx.scope_and(|| {
        let _root = user_tracing::start_user_trace("request", Tenant::new("t"), Some(unsampled));
        user_tracing::w3c_traceparent().unwrap().flags
    });
    assert!(flags.is_sampled());
    assert!(!flags.is_random(), "random flag unset inbound stays unset");
    assert_eq!(
        ctx.user_traces(Default::default())[0].trace_id,
        unsampled.trace_id
    );
}

#[test]
fn w3c_traceparent_names_the_user_span_for_an_unsampled_random_inbound() {
    let ctx = TelemetryContext::test();
    let inbound: TraceparentContext = "00-12345678901234567890123456789012-1234567890123456-02"
        .parse()
        .unwrap();
    ctx.scope_and(|| {
        let _root = user_tracing::start_user_trace("request", Tenant::new("t"), Some(inbound));
        let root = user_tracing::w3c_traceparent().unwrap();
        assert_eq!(root.trace_id, inbound.trace_id);
        assert_ne!(root.parent_id, inbound.parent_id, "the user root's own id");
        assert!(root.flags.is_random(), "random flag kept");
        let _child = user_tracing::user_span("child");
        let child = user_tracing::w3c_traceparent().unwrap();
        assert_ne!(child.parent_id, root.parent_id, "the child's own id");
        assert!(child.flags.is_random());
    });
}

#[test]
fn malformed_inbound_headers_start_a_fresh_user_trace() {
    let ctx = TelemetryContext::test();
    let bad: [&[u8]; 4] = [
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-trailing",
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        b"not a header",
        b"\x00\xff",
    ];
    for value in bad {
        ctx.scope_and(|| {
            let _root = user_tracing::start_user_trace_from_headers(
                "request",
                Tenant::new("t"),
                Some(value),
                Some(b"acme=1"),
            );
            assert!(user_tracing::w3c_tracestate().is_none());
        });
    }
    // A valid traceparent with a malformed tracestate: continued, tracestate dropped.
    ctx.scope_and(|| {
        let _root = user_tracing::start_user_trace_from_headers(
            "continued",
            Tenant::new("t"),
            Some(INBOUND.as_bytes()),
            Some(b"UPPER=1"),
        );
        assert!(user_tracing::w3c_tracestate().is_none());
    });
    let traces = ctx.user_traces(Default::default());
    assert_eq!(traces.len(), 5);
    let inbound: TraceparentContext = INBOUND.parse().unwrap();
    let fresh: Vec<_> = traces.iter().filter(|t| t.name == "request").collect();
    assert!(
        fresh
            .iter()
            .all(|t| t.parent_id.is_none() && t.trace_id != inbound.trace_id)
    );
    let ids: HashSet<_> = fresh.iter().map(|t| t.trace_id).collect();
    assert_eq!(ids.len(), 4, "each fresh trace has its own id");
    let continued = traces.iter().find(|t| t.name == "continued").unwrap();
    assert_eq!(continued.trace_id, inbound.trace_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routing_and_parentage_survive_await_spawn_and_threads() {
    let ctx = TelemetryContext::test();
    ctx.apply(async {
        let root = user_tracing::start_user_trace("request", Tenant::new("spawned"), None);
        root.into_context()
            .apply(async {
                tokio::task::yield_now().await;
                let tasks: Vec<_> = (0..8)
                    .map(|i| {
                        telemetry::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            let scope = user_tracing::user_span(format!("task-{i}"));
                            scope
                                .into_context()
                                .apply(async {
                                    tokio::task::yield_now().await;
                                    let _leaf = user_tracing::user_span("leaf");
                                })
                                .await;
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                let captured = TelemetryContext::current();
                std::thread::spawn(move || {
                    let _scope = captured.scope();
                    let _on_thread = user_tracing::user_span("on_thread");
                })
                .join()
                .unwrap();
            })
            .await;
    })
    .await;

    let traces = ctx.user_traces(Default::default());
    assert_eq!(traces.len(), 1);
    let root = &traces[0];
    assert_eq!(root.children.len(), 9);
    assert_eq!(root.iter().count(), 1 + 8 * 2 + 1);
    for span in root.iter() {
        assert_eq!(span.routing.as_deref(), Some("tenant=spawned"));
        assert_eq!(span.trace_id, root.trace_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_context_carries_the_ambient_user_span() {
    let ctx = TelemetryContext::test();
    ctx.apply(async {
        let _user = user_tracing::start_user_trace("user_root", Tenant::new("t"), None);
        let internal_ctx = tracing::span("internal").into_context();
        drop(_user);
        tokio::spawn(internal_ctx.apply(async {
            tokio::task::yield_now().await;
            let _u = user_tracing::user_span("user_child_via_internal_ctx");
        }))
        .await
        .unwrap();
    })
    .await;
    let user = ctx.user_traces(Default::default());
    assert_eq!(user.len(), 1);
    assert_eq!(user[0].children[0].name, "user_child_via_internal_ctx");
}

#[test]
fn with_user_span_and_dual_span_open_parallel_spans() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _user = user_tracing::start_user_trace("root", Tenant::new("t"), None);
        let _internal = tracing::start_trace("root", StartTraceOptions::default());
        {
            let _a = tracing::span(format!("owned-{}", 1)).with_user_span();
            let _b = user_tracing::dual_span("dual");
        }
        // Dropped: both sides are closed again.
        let _c = user_tracing::user_span("after");
    });
    let user = &ctx.user_traces(Default::default())[0];
    let internal = &ctx.traces(Default::default())[0];
    let owned = user.find("owned-1").unwrap();
    assert_eq!(owned.children[0].name, "dual");
    assert_eq!(user.find("after").unwrap().parent_id, Some(user.span_id));
    assert_eq!(internal.find("owned-1").unwrap().children[0].name, "dual");
}

#[test]
fn user_span_handles_make_concurrent_siblings() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = user_tracing::start_user_trace("fan_out", Tenant::new("t"), None);
        let parent = UserSpan::current();
        let workers: Vec<_> = (0..4)
            .map(|i| {
                let span = parent.child(format!("worker-{i}"));
                std::thread::spawn(move || {
                    span.set_tag("worker", i as i64);
                    let _scope = span.enter();
                    let _inner = user_tracing::user_span("inner");
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
    });
    let root = &ctx.user_traces(Default::default())[0];
    assert_eq!(root.children.len(), 4);
    for child in &root.children {
        assert_eq!(child.parent_id, Some(root.span_id));
        assert_eq!(child.children[0].name, "inner");
        assert!(child.tag("worker").is_some());
    }
}

#[test]
fn user_finish_callback_runs_on_the_user_span() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = user_tracing::start_user_trace("root", Tenant::new("t"), None);
        set_user_span_finish_callback!(|span: &mut tracing::Span| {
            span.set_tag(|| tracing::Tag::new("finished", true))
        });
    });
    let root = &ctx.user_traces(Default::default())[0];
    assert_eq!(root.tag("finished"), Some(&TagValue::Boolean(true)));
}
