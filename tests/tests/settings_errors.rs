//! Invalid settings are refused by `telemetry::init` with an error naming the field, and
//! nothing is installed: a corrected `init` afterwards succeeds.

use foundations::telemetry::settings::{TelemetrySettings, UserTracingSettings};
use foundations::telemetry::{self, InitError};
use std::time::Duration;

#[test]
fn init_rejects_invalid_settings_by_field_then_accepts_valid_ones() {
    for (yaml, field) in [
        (
            "user_tracing:\n  socket_path: \"\"\n",
            "user_tracing.socket_path",
        ),
        (
            "user_tracing:\n  socket_path: /s\n  num_tasks: 0\n",
            "user_tracing.num_tasks",
        ),
        (
            "user_tracing:\n  socket_path: /s\n  max_batch_size: 0\n",
            "user_tracing.max_batch_size",
        ),
        (
            "user_tracing:\n  socket_path: /s\n  request_timeout_ms: 0\n",
            "user_tracing.request_timeout_ms",
        ),
        (
            "user_tracing:\n  socket_path: /s\n  routing_header: \"a b\"\n",
            "user_tracing.routing_header",
        ),
        // Bounds: each is an error naming its field, never an abort or a silent clamp.
        (
            "user_tracing:\n  socket_path: /s\n  routing_header: Content-Length\n",
            "user_tracing.routing_header",
        ),
        (
            "user_tracing:\n  socket_path: relative/otlp.sock\n",
            "user_tracing.socket_path",
        ),
        (
            &format!("user_tracing:\n  socket_path: /{}\n", "d".repeat(120)),
            "user_tracing.socket_path",
        ),
        (
            "user_tracing:\n  socket_path: /s\n  max_batch_size: 100000000000\n",
            "user_tracing.max_batch_size",
        ),
        (
            "user_tracing:\n  socket_path: /s\n  max_queue_size: 10\n  max_batch_size: 11\n",
            "user_tracing.max_batch_size",
        ),
        (
            "tracing:\n  max_request_bytes: 67108865\n",
            "tracing.max_request_bytes",
        ),
        (
            "tracing:\n  retry:\n    max_backoff_ms: 18446744073709551615\n",
            "tracing.retry.max_backoff_ms",
        ),
        (
            "tracing:\n  flush_interval_ms: 3600000\n",
            "tracing.flush_interval_ms",
        ),
        ("tracing:\n  num_tasks: 1000\n", "tracing.num_tasks"),
    ] {
        let error = TelemetrySettings::from_yaml(yaml).unwrap_err();
        assert!(error.to_string().contains(field), "{error}");
        assert_eq!(error.field(), field);
    }
    // Built in code, not parsed: `init` validates on its own.
    let mut settings = TelemetrySettings::default();
    let mut user = UserTracingSettings::default();
    user.socket_path = "/tmp/never-used.sock".into();
    user.export.num_tasks = 0;
    settings.user_tracing = Some(user.clone());
    match telemetry::init(&settings) {
        Err(InitError::Settings(error)) => {
            assert_eq!(error.field(), "user_tracing.num_tasks");
            assert!(error.to_string().contains("user_tracing.num_tasks"));
        }
        other => panic!("expected a settings error, got {other:?}"),
    }
    // Nothing was installed: a valid init still works.
    user.export.num_tasks = 1;
    settings.user_tracing = Some(user);
    let driver = telemetry::init(&settings).expect("valid settings");
    let report = driver.shutdown(Duration::from_secs(5));
    assert!(report.flushed);
}
