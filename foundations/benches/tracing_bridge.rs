//! A bridged `tracing` span (new with two fields, enter, exit, close) under each bridge:
//! foundations' `TracingBridge`, `tracing-opentelemetry` (SDK tracer, batch processor into
//! a null exporter) and `fastrace-tracing` (null reporter), all on a
//! `tracing_subscriber::Registry`, measured in the same run, interleaved per sample.
//!
//! Run: `cargo bench -p foundations --features testing,tracing-bridge --bench tracing_bridge`.
//! Every span is recorded (100% sampling); each batch of 1000 spans hangs under one root
//! span, whose cost (and, for fastrace, its trace's hand-over) is included.
//!
//! Criterion measures one bridge after the other, so on a shared machine a change of load
//! between them skews their ratios. After criterion, the bench also times the bridges in
//! turn, round after round, and prints the median per-span time of each and the median of
//! the per-round ratios to foundations: load that changes between rounds cancels out.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundations::telemetry::bridge::TracingBridge;
use foundations::telemetry::testing::{HarnessOptions, install_tracing};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::Subscriber;
use tracing_subscriber::prelude::*;

/// Spans per root.
const BATCH: u64 = 1000;

/// Times `iters` spans under `subscriber`, a root per [`BATCH`].
fn bridged_spans(subscriber: &tracing::Dispatch, iters: u64) -> Duration {
    tracing::dispatcher::with_default(subscriber, || {
        let start = Instant::now();
        let mut left = iters;
        while left > 0 {
            let n = left.min(BATCH);
            left -= n;
            let root = tracing::info_span!("root");
            let _root = root.enter();
            for i in 0..n {
                let span = tracing::info_span!("child", http.status = 200i64, key = "value");
                let _entered = span.enter();
                std::hint::black_box(i);
            }
        }
        start.elapsed()
    })
}

/// Child spans timed under `tracing-opentelemetry`, and spans its exporter received: the
/// SDK's batch processor drops spans when its queue is full, which would flatter it.
static OTEL_TIMED: AtomicU64 = AtomicU64::new(0);
static OTEL_EXPORTED: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
struct NullExporter;

impl SpanExporter for NullExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        OTEL_EXPORTED.fetch_add(batch.len() as u64, Ordering::Relaxed);
        drop(std::hint::black_box(batch));
        Ok(())
    }
}

struct NullReporter;

impl fastrace::collector::Reporter for NullReporter {
    fn report(&mut self, spans: Vec<fastrace::prelude::SpanRecord>) {
        drop(std::hint::black_box(spans));
    }
}

fn dispatch(subscriber: impl Subscriber + Send + Sync + 'static) -> tracing::Dispatch {
    tracing::Dispatch::new(subscriber)
}

fn bridges(c: &mut Criterion) {
    let drain = install_tracing(HarnessOptions::default().sampling_ratio(1.0))
        .expect("harness installs once per bench process");
    common::spawn_batch_consumer(drain);

    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(NullExporter)
        .build();
    let otel_tracer = provider.tracer("bench");
    fastrace::set_reporter(NullReporter, fastrace::collector::Config::default());

    let foundations = dispatch(tracing_subscriber::registry().with(TracingBridge::new()));
    let otel = dispatch(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(otel_tracer)),
    );
    let fastrace_default =
        dispatch(tracing_subscriber::registry().with(fastrace_tracing::FastraceCompatLayer::new()));
    let fastrace_lean = dispatch(
        tracing_subscriber::registry().with(
            fastrace_tracing::FastraceCompatLayer::new()
                .with_location(false)
                .with_threads(false),
        ),
    );
    let bare = dispatch(tracing_subscriber::registry());

    let mut group = c.benchmark_group("tracing_bridge");
    group.throughput(Throughput::Elements(1));
    group.bench_function("registry_only", |b| {
        b.iter_custom(|iters| bridged_spans(&bare, iters))
    });
    group.bench_function("foundations", |b| {
        b.iter_custom(|iters| bridged_spans(&foundations, iters))
    });
    group.bench_function("tracing_opentelemetry", |b| {
        b.iter_custom(|iters| {
            // Children plus one root per batch.
            OTEL_TIMED.fetch_add(iters + iters.div_ceil(BATCH), Ordering::Relaxed);
            bridged_spans(&otel, iters)
        })
    });
    group.bench_function("fastrace_tracing", |b| {
        b.iter_custom(|iters| bridged_spans(&fastrace_default, iters))
    });
    group.bench_function("fastrace_tracing_no_location_threads", |b| {
        b.iter_custom(|iters| bridged_spans(&fastrace_lean, iters))
    });
    group.finish();
    if std::env::args().any(|arg| arg == "--bench") {
        interleaved(&[
            ("registry_only", &bare, None),
            ("foundations", &foundations, None),
            ("tracing_opentelemetry", &otel, Some(&OTEL_TIMED)),
            ("fastrace_tracing", &fastrace_default, None),
            ("fastrace_tracing_no_location_threads", &fastrace_lean, None),
        ]);
    }
    let _ = provider.force_flush();
    drop(provider);
    let (timed, exported) = (
        OTEL_TIMED.load(Ordering::Relaxed),
        OTEL_EXPORTED.load(Ordering::Relaxed),
    );
    if timed > 0 {
        eprintln!("tracing-opentelemetry: {exported} of {timed} spans reached its exporter");
    }
}

/// Rounds of the interleaved comparison, and spans per bridge per round.
const ROUNDS: usize = 21;
const ROUND_SPANS: u64 = 20_000;

/// Times the bridges in turn, [`ROUNDS`] times, and prints per bridge the median time per
/// span and the median ratio to foundations' time in the same round (the first bridge is
/// the registry alone; foundations is the second).
/// Each bridge comes with the counter of spans timed under it, if it keeps one.
fn interleaved(bridges: &[(&str, &tracing::Dispatch, Option<&AtomicU64>)]) {
    let mut times = vec![Vec::with_capacity(ROUNDS); bridges.len()];
    for _ in 0..ROUNDS {
        for (times, (_, dispatch, timed)) in times.iter_mut().zip(bridges) {
            if let Some(timed) = timed {
                timed.fetch_add(ROUND_SPANS + ROUND_SPANS.div_ceil(BATCH), Ordering::Relaxed);
            }
            let elapsed = bridged_spans(dispatch, ROUND_SPANS);
            times.push(elapsed.as_secs_f64() * 1e9 / ROUND_SPANS as f64);
        }
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    eprintln!("interleaved, {ROUNDS} rounds of {ROUND_SPANS} spans per bridge:");
    eprintln!(
        "  bridge                                  median ns/span   foundations / bridge (median of rounds)"
    );
    for (index, (name, _, _)) in bridges.iter().enumerate() {
        let ratios = times[1]
            .iter()
            .zip(&times[index])
            .map(|(f, b)| f / b)
            .collect();
        eprintln!(
            "  {name:<40}{:>10.0}   {:>10.3}",
            median(times[index].clone()),
            median(ratios)
        );
    }
}

criterion_group!(benches, bridges);
criterion_main!(benches);
