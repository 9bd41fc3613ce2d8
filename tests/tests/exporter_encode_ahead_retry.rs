//! The worker encodes its next batch while a request is in flight. Here the receiver stalls
//! the first request until it times out: the batch encoded behind it waits its turn, the
//! first is retried and delivered before it, and every span is delivered exactly once.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations_tests::{OtlpSink, Reply, Tenant};
use std::time::Duration;

/// A root and nine children: one full batch at `max_batch_size: 10`.
fn trace(name: &'static str) {
    let _root = user_tracing::start_user_trace(name, Tenant::new(7), None);
    for _ in 0..9 {
        let _child = user_tracing::user_span("child");
    }
}

#[test]
fn a_batch_encoded_behind_a_failed_request_goes_out_after_its_retry() {
    let sink = OtlpSink::with_policy(|n| if n == 0 { Reply::Hang } else { Reply::Ok });
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  num_tasks: 1\n  max_batch_size: 10\n  \
         flush_interval_ms: 300000\n  request_timeout_ms: 500\n  retry:\n    \
         initial_backoff_ms: 10\n",
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    trace("first");
    sink.wait_until(Duration::from_secs(10), |received| received.len() == 1);
    // A full batch while the first request hangs: the worker takes and encodes it.
    trace("second");
    assert!(driver.flush(Duration::from_secs(10)).flushed);

    let received = sink.received();
    let roots: Vec<(String, String)> = received
        .iter()
        .map(|request| {
            let spans = request.spans();
            assert_eq!(spans.len(), 10, "a request is one whole batch");
            let root = spans.iter().find(|span| span.parent_span_id.is_empty());
            (
                root.expect("each batch holds its root").name.clone(),
                request.reply.clone(),
            )
        })
        .collect();
    let expected = [("first", "hang"), ("first", "ok"), ("second", "ok")]
        .map(|(name, reply)| (name.to_owned(), reply.to_owned()));
    assert_eq!(
        roots, expected,
        "the retry goes out before the batch behind it"
    );

    let stats = driver.shutdown(Duration::from_secs(5)).user.unwrap();
    assert_eq!(stats.produced(), 20, "{stats:?}");
    assert_eq!(stats.spans_exported, 20, "{stats:?}");
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert_eq!(stats.pending(), 0, "{stats:?}");
    assert_eq!(stats.retries, 1, "{stats:?}");
    assert_eq!(stats.requests, 3, "{stats:?}");
}
