//! A finish callback that panics costs its own span, counted as
//! `dropped_callback_panicked`; the thread that finished the span goes on, and so does the
//! pipeline.

use foundations::set_user_span_finish_callback;
use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::Span;
use foundations::telemetry::user_tracing;
use foundations_tests::{OtlpSink, Tenant};
use std::time::Duration;

#[test]
fn a_panicking_finish_callback_is_caught_and_counted() {
    let sink = OtlpSink::start();
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  flush_interval_ms: 20\n",
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    for trace in 0..4 {
        let _root = user_tracing::start_user_trace("request", Tenant::new(trace), None);
        let _child = user_tracing::user_span("step");
        if trace == 2 {
            // The child's callback panics; its root (which does not inherit it) is kept.
            set_user_span_finish_callback!(|_: &mut Span| panic!("callback bug"));
        }
    }
    let report = driver.shutdown(Duration::from_secs(5));
    let stats = report.user.unwrap();
    assert_eq!(stats.dropped_callback_panicked, 1, "{stats:?}");
    assert_eq!(stats.spans_exported, 7);
    assert_eq!(stats.produced(), 8);
    assert_eq!(stats.produced(), stats.spans_exported + stats.dropped());
    assert_eq!(sink.span_count(), 7);
}
