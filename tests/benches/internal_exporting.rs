//! The internal pipeline's hot path while its exporter runs: `telemetry::init` with
//! `output: otlp_http` to an in-process OTLP receiver on a Unix socket, so batching,
//! encoding and HTTP happen on the exporter thread while the benchmark opens spans.
//!
//! Run: `cargo bench -p foundations-tests --bench internal_exporting`. Each iteration opens
//! 10 spans (a root and 9 tagged children): divide by 10 for the time per span.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundations::add_span_tags;
use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations_tests::OtlpSink;
use std::time::Duration;

fn internal_exporting(c: &mut Criterion) {
    let sink = OtlpSink::counting();
    let yaml = format!(
        "tracing:\n  max_batch_size: 512\n  flush_interval_ms: 20\n  output:\n    otlp_http:\n      \
         endpoint: unix://{}\n",
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    let mut group = c.benchmark_group("internal_exporting");
    group.throughput(Throughput::Elements(10));
    group.bench_function("root_plus_9_tagged_children", |b| {
        b.iter(|| {
            let _root = tracing::start_trace("root", StartTraceOptions::default());
            for _ in 0..9 {
                let _child = tracing::span("child");
                add_span_tags!("key" => "value");
            }
        })
    });
    group.finish();

    let stats = driver.shutdown(Duration::from_secs(30)).internal.unwrap();
    println!(
        "internal_exporting: {} spans exported, {} dropped (queue full: {}), {} received",
        stats.spans_exported,
        stats.dropped(),
        stats.dropped_queue_full,
        sink.span_count()
    );
}

criterion_group!(benches, internal_exporting);
criterion_main!(benches);
