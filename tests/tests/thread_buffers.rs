//! Finished spans wait in their thread's own ring until an exporter drains it. A thread
//! that parks for good, or exits, with spans in its ring must not hide them: `flush` and
//! `shutdown` deliver them, and the balance holds at every step.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::user_tracing;
use foundations_tests::{OtlpSink, Tenant};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn spans_of_parked_and_exited_threads_are_flushed_and_shut_down() {
    let sink = OtlpSink::start();
    let internal = OtlpSink::start();
    // A flush interval far longer than the test: only `flush` and `shutdown` send.
    let yaml = format!(
        "tracing:\n  output:\n    otlp_http:\n      endpoint: unix://{}\n  \
         flush_interval_ms: 300000\n\
         user_tracing:\n  socket_path: {}\n  flush_interval_ms: 300000\n",
        internal.path().display(),
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    // A thread that records 3 spans per pipeline, the roots staying open, then parks.
    let (parked_tx, parked_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let parked = std::thread::spawn(move || {
        let _root = tracing::start_trace("parked-root", StartTraceOptions::default());
        let _user_root = user_tracing::start_user_trace("parked-root", Tenant::new(1), None);
        for _ in 0..3 {
            drop(tracing::span("parked-child"));
            drop(user_tracing::user_span("parked-child"));
        }
        parked_tx.send(()).unwrap();
        // Parked: its ring holds its children, and it will not finish anything for a while.
        let _ = release_rx.recv();
    });
    parked_rx.recv().unwrap();

    // Threads that record whole traces and exit.
    for _ in 0..4 {
        std::thread::spawn(|| {
            let _root = tracing::start_trace("exited-root", StartTraceOptions::default());
            let _user_root = user_tracing::start_user_trace("exited-root", Tenant::new(2), None);
            drop(tracing::span("exited-child"));
            drop(user_tracing::user_span("exited-child"));
        })
        .join()
        .unwrap();
    }

    let internal_stats = telemetry::internal_exporter_stats().unwrap();
    let user_stats = telemetry::user_exporter_stats().unwrap();
    assert_eq!(
        internal_stats.spans_queued,
        3 + 4 * 2,
        "queued counts the rings"
    );
    assert_eq!(user_stats.spans_queued, 3 + 4 * 2);
    assert_eq!(internal_stats.spans_exported, 0);

    let report = driver.flush(Duration::from_secs(10));
    assert!(report.flushed, "{report:?}");
    assert_eq!(report.internal.unwrap().exported, 11);
    assert_eq!(report.user.unwrap().exported, 11);
    assert_eq!(internal.span_count(), 11);
    assert_eq!(sink.span_count(), 11);

    // The parked thread's roots finish only now; shutdown delivers them.
    release_tx.send(()).unwrap();
    parked.join().unwrap();
    let report = driver.shutdown(Duration::from_secs(10));
    for stats in [report.internal.unwrap(), report.user.unwrap()] {
        assert_eq!(stats.spans_queued, 12, "{stats:?}");
        assert_eq!(stats.spans_exported, 12, "{stats:?}");
        assert_eq!(stats.dropped(), 0, "{stats:?}");
    }
    assert_eq!(internal.span_count(), 12);
    assert_eq!(sink.span_count(), 12);
}
