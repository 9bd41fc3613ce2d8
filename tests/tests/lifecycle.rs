//! `flush` without stopping, from sync code, `spawn_blocking` and a `current_thread`
//! runtime; after `shutdown`, spans are counted, never queued. The balance holds at every
//! step: produced = exported + dropped + pending.

use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations::telemetry::{self, ExporterStats};
use foundations_tests::{OtlpSink, Tenant};
use std::time::{Duration, Instant};

fn traces(count: usize) {
    for trace in 0..count {
        let _root = user_tracing::start_user_trace("request", Tenant::new(trace % 3), None);
        let _child = user_tracing::user_span("step");
    }
}

fn balanced(stats: &ExporterStats) {
    assert_eq!(
        stats.produced(),
        stats.spans_exported + stats.dropped() + stats.pending(),
        "{stats:?}"
    );
}

#[test]
fn flush_delivers_what_was_queued_and_shutdown_counts_what_comes_after() {
    let sink = OtlpSink::start();
    // A long flush interval: only `flush` can make the exporter send before it.
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  flush_interval_ms: 60000\n  max_batch_size: 4096\n  \
         max_queue_size: 200000\n",
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    // From sync code, the driver's method.
    traces(50);
    let report = driver.flush(Duration::from_secs(10));
    assert!(report.flushed);
    assert_eq!(report.user.unwrap().exported, 100);
    assert_eq!(sink.span_count(), 100);

    // From a `current_thread` runtime's task, and from `spawn_blocking`: no deadlock.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        traces(10);
        let report = telemetry::flush(Duration::from_secs(10));
        assert!(report.flushed);
        assert_eq!(report.user.unwrap().exported, 20);
        traces(10);
        let report = tokio::task::spawn_blocking(|| telemetry::flush(Duration::from_secs(10)))
            .await
            .unwrap();
        assert!(report.flushed);
        assert_eq!(report.user.unwrap().exported, 20);
    });
    assert_eq!(sink.span_count(), 140);

    // 100k queued spans: the latency of a flush, reported for the record.
    traces(50_000);
    let started = Instant::now();
    let report = driver.flush(Duration::from_secs(60));
    eprintln!("flush of 100k queued spans took {:?}", started.elapsed());
    assert!(report.flushed);
    // Full batches may have left before the flush began; the flush sent the rest.
    let stats = telemetry::user_exporter_stats().unwrap();
    assert_eq!(stats.spans_exported, 100_140);
    balanced(&stats);
    assert_eq!(stats.pending(), 0);

    let report = driver.shutdown(Duration::from_secs(10));
    assert!(report.flushed);
    // After shutdown every span API is a counted no-op.
    traces(5);
    let stats = telemetry::user_exporter_stats().unwrap();
    balanced(&stats);
    assert_eq!(stats.dropped_after_shutdown, 10, "{stats:?}");
    assert_eq!(stats.spans_exported, 100_140);
    assert_eq!(stats.pending(), 0);
    assert_eq!(sink.span_count(), 100_140, "nothing sent after shutdown");
}
