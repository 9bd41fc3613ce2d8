//! An exporter worker that panics (here: in encoding, provoked with the `testing` feature's
//! magic span name) is restarted; the batch it held is dropped and counted as
//! `dropped_worker_panicked`, the restart as `worker_restarts`, and later spans are exported.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::testing::PANIC_IN_EXPORT;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations_tests::OtlpSink;
use std::time::Duration;

fn traces(count: usize, name: &'static str) {
    for _ in 0..count {
        drop(tracing::start_trace(name, StartTraceOptions::default()));
    }
}

#[test]
fn a_panicking_worker_is_restarted_and_its_batch_counted() {
    let sink = OtlpSink::start();
    // Batches leave only on flush (the interval is long, batches large), so the batch the
    // worker holds when it panics is exactly what was queued before that flush.
    let yaml = format!(
        "tracing:\n  num_tasks: 2\n  max_batch_size: 512\n  flush_interval_ms: 300000\n  \
         output:\n    otlp_http:\n      endpoint: unix://{}\n",
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    traces(20, "before");
    let first = driver.flush(Duration::from_secs(10));
    assert!(first.flushed, "{first:?}");
    assert_eq!(sink.span_count(), 20);

    traces(1, PANIC_IN_EXPORT);
    traces(9, "doomed");
    let second = driver.flush(Duration::from_secs(10));
    assert!(second.flushed, "the lost batch is settled: {second:?}");
    let stats = driver.internal_stats().unwrap();
    assert_eq!(stats.worker_restarts, 1, "{stats:?}");
    assert_eq!(stats.dropped_worker_panicked, 10, "{stats:?}");
    assert_eq!(stats.dropped(), 10, "{stats:?}");
    assert_eq!(stats.spans_exported, 20, "{stats:?}");

    // The restarted worker (and its peer) export what comes next.
    traces(15, "after");
    let third = driver.flush(Duration::from_secs(10));
    assert!(third.flushed, "{third:?}");
    assert_eq!(sink.span_count(), 35);

    let report = driver.shutdown(Duration::from_secs(5));
    let stats = report.internal.unwrap();
    assert_eq!(stats.produced(), 45);
    assert_eq!(stats.spans_exported, 35);
    assert_eq!(stats.dropped_worker_panicked, 10);
    assert_eq!(stats.worker_restarts, 1);
    assert_eq!(stats.pending(), 0);
    assert_eq!(stats.produced(), stats.spans_exported + stats.dropped());
    let names: Vec<String> = sink
        .received()
        .iter()
        .flat_map(|request| request.spans().into_iter().map(|span| span.name.clone()))
        .collect();
    assert!(names.iter().all(|name| name == "before" || name == "after"));
}
