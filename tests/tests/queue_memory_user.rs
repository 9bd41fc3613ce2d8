//! Queue memory per span, user pipeline: a million finished user spans (roots of traces of
//! 10 and their children, each child with one tag) waiting in the queue. Each trace's
//! routing (the application's `Tenant`, its encoded header and the `Arc` holding both:
//! about 144 bytes per trace) lives as long as its spans do, so a span costs the record
//! (at most 120 bytes, as in `queue_memory.rs`) plus a tenth of that.
//!
//! Alone in its file: the measurement reads this process's resident set.

use foundations::add_user_span_tags;
use foundations::telemetry::testing::{FinishedSpan, HarnessOptions, install_user_tracing};
use foundations::telemetry::user_tracing;
use foundations_tests::Tenant;
use foundations_tests::memory::{assert_drains_traces_of_ten_in_order, resident_bytes};

const SPANS: usize = 1_000_000;

#[test]
fn a_million_queued_user_spans_cost_the_record_and_a_share_of_their_routing() {
    let drain =
        install_user_tracing(HarnessOptions::default().max_queue_size(Some(SPANS))).unwrap();
    // Warm up: the first trace registers the thread's ring and interns the tag name.
    {
        let _root = user_tracing::start_user_trace("request", Tenant::new(7), None);
    }
    assert!(drain.try_recv().is_some());

    let before = resident_bytes();
    for _ in 0..SPANS / 10 {
        let _root = user_tracing::start_user_trace("request", Tenant::new(7), None);
        for _ in 0..9 {
            let _child = user_tracing::user_span("child");
            add_user_span_tags!("key" => "value");
        }
    }
    let after = resident_bytes();

    assert_eq!(drain.len(), SPANS);
    let stats = drain.stats();
    assert_eq!(stats.queued, SPANS as u64 + 1);
    assert_eq!(stats.dropped_queue_full + stats.dropped_after_close, 0);
    let per_span = after.saturating_sub(before) as f64 / SPANS as f64;
    println!(
        "user queue memory: size_of::<FinishedSpan>() = {} bytes, {per_span:.1} bytes/span at {SPANS} \
         queued spans",
        std::mem::size_of::<FinishedSpan>()
    );
    assert!(std::mem::size_of::<FinishedSpan>() <= 120);
    // The record, a tenth of a routing (about 14.4 bytes) and the allocator's slack.
    assert!(
        per_span <= 120.0 + 24.0,
        "{per_span:.1} bytes per queued span"
    );

    // Every span comes out, in its thread's order: each root after its nine children.
    assert_drains_traces_of_ten_in_order(&drain, SPANS);
}
