//! `TelemetryContext` carries spans across `.await`, `tokio::spawn` on a multi-thread
//! runtime, `std::thread`, and forks.

use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::{self, TelemetryContext};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn context_survives_await_on_a_multi_thread_runtime() {
    let ctx = TelemetryContext::test();
    ctx.apply(async {
        let root = tracing::start_trace("root", StartTraceOptions::default());
        let trace_id = tracing::trace_id();
        root.into_context()
            .apply(async move {
                for i in 0..20 {
                    // Yield and sleep so the task hops between worker threads.
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    assert_eq!(tracing::trace_id(), trace_id, "iteration {i}");
                }
                let _child = tracing::span("after_awaits");
            })
            .await;
        // Outside the applied future the root is no longer current.
        assert!(tracing::trace_id().is_none());
    })
    .await;

    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].children[0].name, "after_awaits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spawned_tasks_inherit_the_context() {
    let ctx = TelemetryContext::test();
    ctx.apply(async {
        let root = tracing::start_trace("root", StartTraceOptions::default()).into_context();
        let _scope = root.scope();
        let handles: Vec<_> = (0..16)
            .map(|i| {
                telemetry::spawn(async move {
                    tokio::task::yield_now().await;
                    // A scope cannot be held across `.await` (it is not `Send`): carry the
                    // span in a context instead.
                    let child = tracing::span(format!("task-{i}")).into_context();
                    child
                        .apply(async {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            let _grandchild = tracing::span("inner");
                        })
                        .await;
                })
            })
            .collect();
        drop(_scope);
        for handle in handles {
            handle.await.unwrap();
        }
    })
    .await;

    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 1, "every task span joined the root's trace");
    let root = &traces[0];
    assert_eq!(root.children.len(), 16);
    for child in &root.children {
        assert_eq!(child.parent_id, Some(root.span_id));
        assert_eq!(child.children.len(), 1);
        assert_eq!(child.children[0].name, "inner");
    }
}

#[test]
fn std_threads_use_the_captured_context() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        let captured = TelemetryContext::current();
        std::thread::spawn(move || {
            let _scope = captured.scope();
            let _child = tracing::span("on_thread");
        })
        .join()
        .unwrap();
    });
    let root = &ctx.traces(Default::default())[0];
    assert_eq!(root.children[0].name, "on_thread");
    assert_eq!(root.children[0].parent_id, Some(root.span_id));
}

#[test]
fn entering_a_context_hides_the_threads_current_span() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        let empty = TelemetryContext::default();
        empty.scope_and(|| assert!(tracing::trace_id().is_none()));
        assert!(tracing::trace_id().is_some());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_keeps_the_trace_of_the_context_not_of_the_forking_task() {
    let test = TelemetryContext::test();
    let (request_ctx, request_trace) = test.scope_and(|| {
        let ctx = tracing::start_trace("request", StartTraceOptions::default()).into_context();
        let trace_id = ctx.scope_and(tracing::trace_id);
        (ctx, trace_id)
    });

    // Fork on another task, where an unrelated trace is current.
    let forked_on_other_task = test
        .apply(async move {
            let _other = tracing::start_trace("unrelated", StartTraceOptions::default());
            let fork = request_ctx.with_forked_trace("fork");
            tokio::task::yield_now().await;
            fork.scope_and(|| {
                let _work = tracing::span("fork_work");
                tracing::trace_id()
            })
        })
        .await;
    assert_eq!(forked_on_other_task, request_trace);

    let traces = test.traces(Default::default());
    let request = traces.iter().find(|t| t.name == "request").unwrap();
    let fork = request
        .find("fork")
        .expect("the fork hangs under the request span");
    assert_eq!(fork.parent_id, Some(request.span_id));
    assert_eq!(fork.children[0].name, "fork_work");
    let unrelated = traces.iter().find(|t| t.name == "unrelated").unwrap();
    assert!(unrelated.children.is_empty());
    assert_ne!(unrelated.trace_id, request.trace_id);
}

#[tokio::test(flavor = "current_thread")]
async fn span_finishes_when_its_last_context_is_dropped() {
    let test = TelemetryContext::test();
    let ctx = test.scope_and(|| {
        tracing::start_trace("long_lived", StartTraceOptions::default()).into_context()
    });
    assert!(
        test.traces(Default::default()).is_empty(),
        "still held by ctx"
    );
    let clone = ctx.clone();
    drop(ctx);
    assert!(
        test.traces(Default::default()).is_empty(),
        "still held by the clone"
    );
    drop(clone);
    assert_eq!(test.traces(Default::default()).len(), 1);
}
