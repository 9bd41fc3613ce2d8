//! The internal pipeline's hot path while its exporter runs: `telemetry::init` with
//! `output: otlp_http` to an in-process OTLP receiver on a Unix socket, so batching,
//! encoding and HTTP happen on the exporter thread while the benchmark opens spans.
//!
//! Run: `cargo bench -p foundations-tests --bench internal_exporting`. Each iteration opens
//! 10 spans (a root and 9 tagged children): divide by 10 for the time per span.
//!
//! Two cases:
//! - `paced`: spans are opened in bursts of 100 traces; between bursts the benchmark waits
//!   until at most two batches are left in flight. The exporter works during the bursts
//!   too, but never falls behind, so nothing is dropped: the case of a service whose
//!   exporter keeps up. A burst is measured in the producing thread's CPU time: on a
//!   2-core machine the exporter and the in-process receiver take turns with the producer,
//!   and wall time would count the time the producer spends descheduled. CPU time still
//!   counts what running beside the exporter costs the producer (shared caches, the
//!   queue's contended cache lines, the allocator).
//! - `flat_out`: spans are opened as fast as possible. On a 2-core machine the producer
//!   outruns the exporter (encoding and HTTP cost more per span than opening one), the
//!   queue fills, and the excess takes the counted queue-full path, which is cheaper than
//!   queueing: the figure then mixes both paths. The printed counters say how many.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundations::add_span_tags;
use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations_tests::OtlpSink;
use std::time::Duration;

/// Traces opened per timed burst in the paced case.
const TRACES_PER_BURST: u64 = 100;
/// Spans allowed in flight (queued or being exported) before the next paced burst.
const MAX_IN_FLIGHT: u64 = 1024;

fn one_trace() {
    let _root = tracing::start_trace("root", StartTraceOptions::default());
    for _ in 0..9 {
        let _child = tracing::span("child");
        add_span_tags!("key" => "value");
    }
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant of the platform.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is available on Linux");
    let secs = u64::try_from(now.tv_sec).expect("non-negative");
    let nanos = u32::try_from(now.tv_nsec).expect("below one second");
    Duration::new(secs, nanos)
}

/// Spans queued and not yet exported or dropped.
fn in_flight() -> u64 {
    let stats = telemetry::internal_exporter_stats().expect("exporter running");
    let settled = stats.spans_exported + (stats.dropped() - stats.dropped_queue_full);
    stats.spans_queued.saturating_sub(settled)
}

fn wait_for_exporter() {
    while in_flight() > MAX_IN_FLIGHT {
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn report(case: &str, before: telemetry::ExporterStats) {
    let after = telemetry::internal_exporter_stats().expect("exporter running");
    println!(
        "internal_exporting/{case}: {} spans queued, {} dropped (queue full)",
        after.spans_queued - before.spans_queued,
        after.dropped_queue_full - before.dropped_queue_full,
    );
}

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

    let before = telemetry::internal_exporter_stats().expect("exporter running");
    group.bench_function("paced_cpu_time/root_plus_9_tagged_children", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let burst = left.min(TRACES_PER_BURST);
                wait_for_exporter();
                let start = thread_cpu_time();
                for _ in 0..burst {
                    one_trace();
                }
                timed += thread_cpu_time() - start;
                left -= burst;
            }
            timed
        })
    });
    report("paced", before);

    let before = telemetry::internal_exporter_stats().expect("exporter running");
    group.bench_function("flat_out/root_plus_9_tagged_children", |b| {
        b.iter(one_trace)
    });
    report("flat_out", before);
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
