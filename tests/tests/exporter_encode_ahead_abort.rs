//! The worker encodes its next batch while a request is in flight. Here the receiver never
//! answers the first request, the next batch is encoded behind it, and shutdown's deadline
//! passes: the request in flight and the batch encoded behind it are both counted as
//! dropped at shutdown, never sent, and the balance holds.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations_tests::{OtlpSink, Reply, Tenant};
use std::time::{Duration, Instant};

/// A root and nine children: one full batch at `max_batch_size: 10`.
fn trace(name: &'static str) {
    let _root = user_tracing::start_user_trace(name, Tenant::new(7), None);
    for _ in 0..9 {
        let _child = user_tracing::user_span("child");
    }
}

#[test]
fn a_batch_encoded_behind_a_stalled_request_is_counted_at_shutdown() {
    let sink = OtlpSink::with_policy(|n| if n == 0 { Reply::Hang } else { Reply::Ok });
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  num_tasks: 1\n  max_batch_size: 10\n  \
         flush_interval_ms: 300000\n  request_timeout_ms: 60000\n",
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    trace("first");
    sink.wait_until(Duration::from_secs(10), |received| received.len() == 1);
    // A full batch while the first request hangs: the worker takes and encodes it.
    trace("second");
    let deadline = Instant::now() + Duration::from_secs(5);
    while driver.user_stats().unwrap().spans_queued < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Time for the worker to take the batch out of the queue and encode it.
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    let report = driver.shutdown(Duration::from_millis(300));
    assert!(
        !report.flushed,
        "the hung request keeps shutdown from flushing"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown is bounded"
    );
    let stats = report.user.unwrap();
    assert_eq!(stats.produced(), 20, "{stats:?}");
    assert_eq!(stats.spans_exported, 0, "{stats:?}");
    assert_eq!(stats.dropped_at_shutdown, 20, "{stats:?}");
    assert_eq!(stats.dropped(), 20, "{stats:?}");
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert_eq!(
        stats.produced(),
        stats.spans_exported + stats.dropped() + stats.pending(),
        "{stats:?}"
    );
    // One request in flight per worker: the encoded batch never went out.
    assert_eq!(sink.request_count(), 1);
    assert_eq!(stats.requests, 1, "{stats:?}");
    assert_eq!(sink.connections(), 1);
}
