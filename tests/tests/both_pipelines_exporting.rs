//! Both pipelines exporting at the same time to different Unix sockets: no span ever
//! crosses over.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::user_tracing;
use foundations_tests::{OtlpSink, Tenant};
use std::time::Duration;

#[test]
fn internal_and_user_spans_never_exchange_sockets() {
    let internal_sink = OtlpSink::start();
    let user_sink = OtlpSink::start();
    let yaml = format!(
        "tracing:\n  flush_interval_ms: 20\n  output:\n    otlp_http:\n      endpoint: unix://{}\n\
         user_tracing:\n  socket_path: {}\n  flush_interval_ms: 20\n",
        internal_sink.path().display(),
        user_sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            std::thread::spawn(move || {
                for _ in 0..100 {
                    let _user = user_tracing::start_user_trace("user_root", Tenant::new(t), None);
                    let _internal =
                        tracing::start_trace("internal_root", StartTraceOptions::default());
                    let _both = user_tracing::dual_span("both");
                    let _u = user_tracing::user_span("user_only");
                    let _i = tracing::span("internal_only");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let report = driver.shutdown(Duration::from_secs(20));
    assert!(report.flushed);
    let (internal, user) = (report.internal.unwrap(), report.user.unwrap());
    assert_eq!(internal.spans_exported, 1200);
    assert_eq!(user.spans_exported, 1200);

    for request in internal_sink.received() {
        assert!(request.header("cf-trace-config").is_none());
        for span in request.spans() {
            assert!(
                ["internal_root", "both", "internal_only"].contains(&span.name.as_str()),
                "{} reached the internal collector",
                span.name
            );
        }
    }
    for request in user_sink.received() {
        assert!(request.header("cf-trace-config").is_some());
        for span in request.spans() {
            assert!(
                ["user_root", "both", "user_only"].contains(&span.name.as_str()),
                "{} reached the user receiver",
                span.name
            );
        }
    }
}
