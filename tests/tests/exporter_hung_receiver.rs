//! A receiver that accepts the first request and never answers: the request times out, is
//! retried, and later spans are still delivered.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations_tests::{OtlpSink, Reply, Tenant};
use std::time::{Duration, Instant};

#[test]
fn a_hung_receiver_cannot_stall_export() {
    let sink = OtlpSink::with_policy(|n| if n == 0 { Reply::Hang } else { Reply::Ok });
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  flush_interval_ms: 20\n  request_timeout_ms: 300\n  \
         retry:\n    initial_backoff_ms: 10\n",
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    let started = Instant::now();
    {
        let _root = user_tracing::start_user_trace("first", Tenant::new("zone"), None);
    }
    std::thread::sleep(Duration::from_millis(100));
    {
        let _root = user_tracing::start_user_trace("later", Tenant::new("zone"), None);
    }
    sink.wait_until(Duration::from_secs(10), |received| {
        let names: Vec<_> = received
            .iter()
            .filter(|r| r.reply == "ok")
            .flat_map(|r| {
                r.spans()
                    .into_iter()
                    .map(|s| s.name.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        names.contains(&"first".to_owned()) && names.contains(&"later".to_owned())
    });
    assert!(started.elapsed() < Duration::from_secs(5));
    let report = driver.shutdown(Duration::from_secs(5));
    let stats = report.user.unwrap();
    assert_eq!(stats.spans_exported, 2);
    assert!(stats.retries >= 1, "the timed-out request was retried");
    assert_eq!(stats.dropped(), 0);
}
