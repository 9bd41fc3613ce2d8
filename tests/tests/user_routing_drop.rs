//! A user trace whose spans are all refused by a full queue: the last reference to its
//! routing goes with the root's refused record, as the root's scope ends in place. The
//! application's `Drop` of the routing metadata must then run with the scope stacks
//! released (code in it may trace), and every refused span is counted.

use foundations::telemetry::testing::{HarnessOptions, install_user_tracing};
use foundations::telemetry::user_tracing::{self, RoutingMetadata};
use foundations_tests::Tenant;
use std::sync::atomic::{AtomicU8, Ordering};

/// What the metadata's drop saw: 0 not run, 1 a user trace it started was current (the
/// stack was free), 2 it was not (the stack was still borrowed).
static DROP_SAW: AtomicU8 = AtomicU8::new(0);

#[derive(Debug)]
struct TracesInDrop;

impl RoutingMetadata for TracesInDrop {
    fn group_key(&self) -> String {
        "traces-in-drop".into()
    }

    fn encode(&self) -> String {
        "tenant=traces-in-drop".into()
    }
}

impl Drop for TracesInDrop {
    fn drop(&mut self) {
        let _trace = user_tracing::start_user_trace("from_drop", Tenant::new(99), None);
        let seen = if user_tracing::is_active() { 1 } else { 2 };
        DROP_SAW.store(seen, Ordering::SeqCst);
    }
}

#[test]
fn a_routing_dropped_with_a_refused_record_drops_outside_the_scope_stacks() {
    let drain = install_user_tracing(HarnessOptions::default().max_queue_size(Some(1))).unwrap();
    // Fill the queue, so that every later span is refused.
    drop(user_tracing::start_user_trace(
        "filler",
        Tenant::new(1),
        None,
    ));
    assert_eq!(drain.stats().queued, 1);

    {
        let _root = user_tracing::start_user_trace("root", TracesInDrop, None);
        let _child = user_tracing::user_span("child");
    }
    assert_eq!(
        DROP_SAW.load(Ordering::SeqCst),
        1,
        "the metadata was dropped, with the user stack free"
    );

    // The balance: the filler queued; child, root and the drop's own trace refused.
    let stats = drain.stats();
    assert_eq!(stats.queued, 1);
    assert_eq!(stats.dropped_queue_full, 3);
    let span = drain.try_recv().expect("the filler");
    assert_eq!(span.name(), "filler");
    assert!(drain.try_recv().is_none());
}
