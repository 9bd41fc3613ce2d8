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

criterion_group!(benches, nothing_installed);
criterion_main!(benches);
