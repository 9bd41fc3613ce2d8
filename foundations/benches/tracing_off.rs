//! The cost of tracing calls when no harness is installed: what every service pays when
//! tracing is disabled.
//!
//! Run: `cargo bench -p foundations --bench tracing_off`.

use criterion::{Criterion, criterion_group, criterion_main};
use foundations::add_span_tags;
use foundations::telemetry::tracing::{self, StartTraceOptions, TraceparentContext};
use std::hint::black_box;

fn nothing_installed(c: &mut Criterion) {
    let mut group = c.benchmark_group("internal_off");
    group.bench_function("span", |b| {
        b.iter(|| black_box(tracing::span(black_box("span"))))
    });
    group.bench_function("start_trace", |b| {
        b.iter(|| black_box(tracing::start_trace("root", StartTraceOptions::default())))
    });
    group.bench_function("add_span_tags", |b| {
        b.iter(|| add_span_tags!("key" => "value"))
    });
    group.finish();

    let header = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    c.bench_function("w3c/traceparent_parse", |b| {
        b.iter(|| black_box(TraceparentContext::parse(black_box(header))))
    });
}

/// The user pipeline with no user trace active (its harness need not even be installed):
/// what every internal span pays for the user pipeline existing.
#[cfg(feature = "user-tracing")]
fn user_inactive(c: &mut Criterion) {
    use foundations::telemetry::user_tracing;
    let mut group = c.benchmark_group("user_inactive");
    group.bench_function("user_span", |b| {
        b.iter(|| drop(user_tracing::user_span(black_box("span"))))
    });
    group.bench_function("span", |b| {
        b.iter(|| drop(tracing::span(black_box("span"))))
    });
    group.bench_function("span_with_user_span", |b| {
        b.iter(|| drop(tracing::span(black_box("span")).with_user_span()))
    });
    group.finish();
}

#[cfg(not(feature = "user-tracing"))]
fn user_inactive(_: &mut Criterion) {}

criterion_group!(benches, nothing_installed, user_inactive);
criterion_main!(benches);
