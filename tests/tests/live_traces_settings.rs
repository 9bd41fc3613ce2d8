//! `tracing.live_traces` in the settings sets the live registry's switches, once `init`
//! succeeded. Alone in its process: the switches are process-wide.

use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::{self, InitError};

#[test]
fn init_sets_the_live_registry_switches_and_a_failed_init_does_not() {
    assert!(tracing::live_traces_enabled() && !tracing::live_descendants_enabled());
    let bad = "tracing:\n  live_traces:\n    enabled: false\n  output:\n    otlp_http:\n      \
               endpoint: https://127.0.0.1:9\n      ca_bundle: /nonexistent/ca.pem\n";
    assert!(matches!(
        telemetry::init(&TelemetrySettings::from_yaml(bad).unwrap()),
        Err(InitError::Settings(_))
    ));
    assert!(
        tracing::live_traces_enabled(),
        "a failed init changed nothing"
    );

    let good = "tracing:\n  live_traces:\n    descendants: true\n";
    let _driver = telemetry::init(&TelemetrySettings::from_yaml(good).unwrap()).unwrap();
    assert!(tracing::live_traces_enabled() && tracing::live_descendants_enabled());
    let root = tracing::start_trace("request", StartTraceOptions::default());
    let trace_id = tracing::trace_id().expect("sampled by default");
    let child = tracing::span("child");
    let listed = tracing::live_traces()
        .into_iter()
        .find(|trace| trace.root.trace_id == trace_id)
        .expect("the root is listed");
    assert_eq!(listed.descendants.len(), 1, "descendants are tracked");
    drop((child, root));
}
