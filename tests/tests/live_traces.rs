//! The live registry in a process of its own (its switches are process-wide): defaults,
//! descendant tracking switched on and off, registration off, a trace parked across
//! `.await` in a spawned task, and user spans (`dual_span`, user traces) never listed.

use foundations::telemetry::testing::{HarnessOptions, install_tracing, install_user_tracing};
use foundations::telemetry::tracing::{self, LiveTrace, StartTraceOptions, TraceId};
use foundations::telemetry::{self, user_tracing};
use foundations_tests::Tenant;
use std::time::Duration;

fn listed(trace_id: TraceId) -> Option<LiveTrace> {
    tracing::live_traces()
        .into_iter()
        .find(|trace| trace.root.trace_id == trace_id)
}

fn names(trace: &LiveTrace) -> Vec<&str> {
    trace.descendants.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn the_registry_follows_its_switches_and_never_lists_user_spans() {
    let _internal = install_tracing(HarnessOptions::default()).unwrap();
    let _user = install_user_tracing(HarnessOptions::default()).unwrap();
    assert!(tracing::live_traces_enabled());
    assert!(!tracing::live_descendants_enabled(), "off by default");

    // Defaults: the root is listed, its descendants are not tracked.
    let early = tracing::start_trace("early", StartTraceOptions::default());
    let early_id = tracing::trace_id().unwrap();
    let _early_child = tracing::span("early_child");
    assert_eq!(names(&listed(early_id).unwrap()), Vec::<&str>::new());

    // Descendants on: roots started from now on list theirs; the earlier root does not.
    tracing::set_live_descendants_enabled(true);
    let later_ctx = tracing::start_trace("later", StartTraceOptions::default()).into_context();
    let later_id = later_ctx.scope_and(|| tracing::trace_id().unwrap());
    later_ctx.scope_and(|| {
        let _child = tracing::span("later_child");
        let _grandchild = tracing::span("later_grandchild");
        assert_eq!(
            names(&listed(later_id).unwrap()),
            ["later_child", "later_grandchild"]
        );
        // User spans opened in the middle of it are never listed.
        let _user_root = user_tracing::start_user_trace("user_root", Tenant::new(1), None);
        let user_trace = user_tracing::w3c_traceparent().unwrap().trace_id;
        let _dual = user_tracing::dual_span("dual");
        let _user_child = user_tracing::user_span("user_child");
        let all: Vec<_> = tracing::live_traces();
        assert!(all.iter().all(|t| t.root.trace_id != user_trace));
        assert!(
            all.iter()
                .flat_map(|t| std::iter::once(&t.root).chain(&t.descendants))
                .all(|s| !s.name.starts_with("user_")),
        );
        assert_eq!(
            names(&listed(later_id).unwrap()),
            ["later_child", "later_grandchild", "dual"]
        );
    });
    assert_eq!(names(&listed(early_id).unwrap()), Vec::<&str>::new());
    drop(_early_child);
    drop(early);
    assert!(listed(early_id).is_none());

    // A trace parked across `.await` in a spawned task stays listed, with the span it is
    // stuck in: what an operator looks for.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (opened, is_open) = std::sync::mpsc::channel();
    let task = later_ctx.scope_and(|| {
        let _guard = runtime.enter();
        telemetry::spawn(async move {
            let ctx = tracing::span("waiting_on_backend").into_context();
            ctx.apply(async move {
                opened.send(()).unwrap();
                released.await.unwrap();
            })
            .await;
        })
    });
    is_open.recv_timeout(Duration::from_secs(10)).unwrap();
    let stuck = listed(later_id).unwrap();
    assert!(names(&stuck).contains(&"waiting_on_backend"), "{stuck:?}");
    assert!(
        stuck
            .descendants
            .iter()
            .all(|s| s.start_time >= stuck.root.start_time)
    );
    release.send(()).unwrap();
    runtime.block_on(task).unwrap();
    assert!(!names(&listed(later_id).unwrap()).contains(&"waiting_on_backend"));
    drop(later_ctx);
    assert!(listed(later_id).is_none());

    // Registration off: new roots are not listed; unsampled roots never are.
    tracing::set_live_traces_enabled(false);
    let _off = tracing::start_trace("off", StartTraceOptions::default());
    assert!(listed(tracing::trace_id().unwrap()).is_none());
    drop(_off);
    tracing::set_live_traces_enabled(true);
    let _quiet = tracing::start_trace("quiet", StartTraceOptions::default().force_sampling(false));
    assert!(listed(tracing::trace_id().unwrap()).is_none());
}
