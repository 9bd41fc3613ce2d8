//! Queue memory per span: a million finished internal spans (roots of traces of 10 and
//! their children, each child with one tag) waiting in the queue cost at most 128 bytes
//! each, measured as the process's resident memory, and the balance holds. (The user
//! pipeline's figure, with a routing per trace, is in `queue_memory_user.rs`.)
//!
//! Alone in its file: the measurement reads this process's resident set.

use foundations::add_span_tags;
use foundations::telemetry::testing::{FinishedSpan, HarnessOptions, install_tracing};
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations_tests::memory::{assert_drains_traces_of_ten_in_order, resident_bytes};

const SPANS: usize = 1_000_000;

#[test]
fn a_million_queued_spans_cost_at_most_128_bytes_each() {
    let drain = install_tracing(HarnessOptions::default().max_queue_size(Some(SPANS))).unwrap();
    // Warm up: the first trace registers the thread's ring and interns the tag name.
    {
        let _root = tracing::start_trace("request", StartTraceOptions::default());
    }
    assert!(drain.try_recv().is_some());

    let before = resident_bytes();
    for _ in 0..SPANS / 10 {
        let _root = tracing::start_trace("request", StartTraceOptions::default());
        for _ in 0..9 {
            let _child = tracing::span("child");
            add_span_tags!("key" => "value");
        }
    }
    let after = resident_bytes();

    assert_eq!(drain.len(), SPANS);
    let stats = drain.stats();
    assert_eq!(stats.queued, SPANS as u64 + 1);
    assert_eq!(stats.dropped_queue_full + stats.dropped_after_close, 0);
    let per_span = after.saturating_sub(before) as f64 / SPANS as f64;
    println!(
        "queue memory: size_of::<FinishedSpan>() = {} bytes, {per_span:.1} bytes/span at {SPANS} \
         queued spans",
        std::mem::size_of::<FinishedSpan>()
    );
    assert!(std::mem::size_of::<FinishedSpan>() <= 120);
    assert!(per_span <= 128.0, "{per_span:.1} bytes per queued span");

    // Every span comes out, in its thread's order: each root after its nine children.
    assert_drains_traces_of_ten_in_order(&drain, SPANS);
}
