//! What the queue-memory tests share: this process's resident memory, and the check that a
//! drain holds whole traces of ten in their thread's order.

use foundations::telemetry::testing::SpanDrain;

/// This process's resident memory (`VmRSS`), in bytes.
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Drains `spans` spans, traces of a root named `request` and nine children named `child`,
/// and asserts that every one comes out in its thread's order (each root after its nine
/// children) and that the queue counted one more (the warm-up trace's root).
pub fn assert_drains_traces_of_ten_in_order(drain: &SpanDrain, spans: usize) {
    let mut received = 0;
    while let Some(span) = drain.try_recv() {
        received += 1;
        let expected = if received % 10 == 0 {
            "request"
        } else {
            "child"
        };
        assert_eq!(span.name(), expected);
    }
    assert_eq!(received, spans);
    assert_eq!(drain.stats().queued, spans as u64 + 1);
}
