//! A failing `init` installs nothing: after an unreadable CA bundle, the user pipeline is
//! still off, and a corrected `init` succeeds and exports.

use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations::telemetry::{self, InitError};
use foundations_tests::{OtlpSink, Tenant};
use std::time::Duration;

#[test]
fn a_failed_init_leaves_nothing_installed_and_a_good_one_follows() {
    let sink = OtlpSink::start();
    let user = format!("user_tracing:\n  socket_path: {}\n", sink.path().display());
    // The user pipeline comes first in `init`; the internal transport's CA bundle fails
    // after it has been prepared.
    let bad = format!(
        "{user}tracing:\n  output:\n    otlp_http:\n      endpoint: https://127.0.0.1:9\n      \
         ca_bundle: /nonexistent/ca.pem\n"
    );
    match telemetry::init(&TelemetrySettings::from_yaml(&bad).unwrap()) {
        Err(InitError::Settings(error)) => {
            assert_eq!(error.field(), "tracing.output.otlp_http", "{error}");
        }
        other => panic!("expected the CA bundle to fail init, got {other:?}"),
    }
    // Nothing was installed: a user trace is inert, so nothing can queue unseen.
    {
        let _root = user_tracing::start_user_trace("lost", Tenant::new("a"), None);
        assert!(
            user_tracing::w3c_traceparent().is_none(),
            "the user harness is not installed"
        );
    }
    assert!(telemetry::user_exporter_stats().is_none());

    let driver = telemetry::init(&TelemetrySettings::from_yaml(&user).unwrap())
        .expect("a corrected init succeeds");
    {
        let _root = user_tracing::start_user_trace("kept", Tenant::new("a"), None);
        assert!(user_tracing::w3c_traceparent().is_some());
    }
    let report = driver.shutdown(Duration::from_secs(5));
    let stats = report.user.unwrap();
    assert_eq!(
        (stats.produced(), stats.spans_exported, stats.dropped()),
        (1, 1, 0)
    );
    assert_eq!(sink.span_count(), 1);
}
