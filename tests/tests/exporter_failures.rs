//! Retry policy against a scripted receiver: three `503 Retry-After: 1` then success (the
//! waits honoured); then a `400` (final, not retried, counted); then a partial success
//! (counted, not retried).

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations_tests::{OtlpSink, Reply, Tenant};
use std::time::Duration;

fn send_trace(name: &'static str, spans: usize) {
    let _root = user_tracing::start_user_trace(name, Tenant::new("zone"), None);
    for _ in 1..spans {
        let _child = user_tracing::user_span("child");
    }
}

#[test]
fn retryable_statuses_are_retried_and_final_ones_are_not() {
    let sink = OtlpSink::with_policy(|n| match n {
        0..=2 => Reply::Status {
            code: 503,
            retry_after: Some("1".into()),
        },
        3 => Reply::Ok,
        4 => Reply::Status {
            code: 400,
            retry_after: None,
        },
        5 => Reply::Partial {
            rejected: 2,
            message: "2 spans too old".into(),
        },
        _ => Reply::Ok,
    });
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  flush_interval_ms: 20\n  retry:\n    \
         max_attempts: 5\n    initial_backoff_ms: 10\n",
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    // 1) Three 503s with Retry-After: 1, then 200.
    send_trace("retried", 3);
    sink.wait_until(Duration::from_secs(20), |r| r.len() >= 4);
    let received = sink.received();
    for pair in received[..4].windows(2) {
        let waited = pair[1].at - pair[0].at;
        assert!(
            waited >= Duration::from_millis(950),
            "Retry-After honoured: {waited:?}"
        );
    }
    assert!(
        received[..4].iter().all(|r| r.spans().len() == 3),
        "same request each time"
    );
    // The sink records a request before the exporter has read its response: wait for it.
    let stats = settled(|stats| stats.spans_exported == 3);
    assert_eq!(stats.spans_exported, 3);
    assert_eq!(stats.retries, 3);

    // 2) 400: final.
    send_trace("rejected", 2);
    sink.wait_until(Duration::from_secs(10), |r| r.len() >= 5);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.received().len(), 5, "a 400 is never retried");
    let stats = settled(|stats| stats.dropped_rejected == 2);
    assert_eq!(stats.dropped_rejected, 2);

    // 3) Partial success: 2 of 4 rejected, not retried.
    send_trace("partial", 4);
    sink.wait_until(Duration::from_secs(10), |r| r.len() >= 6);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sink.received().len(),
        6,
        "a partial success is never retried"
    );

    let report = driver.shutdown(Duration::from_secs(10));
    let stats = report.user.unwrap();
    assert_eq!(stats.spans_queued, 9);
    assert_eq!(stats.spans_exported, 3 + 2);
    assert_eq!(stats.dropped_rejected, 2 + 2);
    assert_eq!(stats.spans_exported + stats.dropped(), stats.spans_queued);
    assert_eq!(stats.requests, 6);
}

/// The user exporter's counters once `done` says they settled, or after 10 s.
fn settled(done: impl Fn(&telemetry::ExporterStats) -> bool) -> telemetry::ExporterStats {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = telemetry::user_exporter_stats().unwrap();
        if done(&stats) || std::time::Instant::now() > until {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
