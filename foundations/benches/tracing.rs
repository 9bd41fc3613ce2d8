//! Internal pipeline hot path with the harness installed (100% sampling) and its queue
//! drained by a consumer thread.
//!
//! Run: `cargo bench -p foundations --bench tracing`. Criterion reports time per iteration;
//! each iteration opens 10 spans, so divide by 10 for the time per span (the throughput line
//! gives spans per second directly).

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundations::telemetry::testing::{HarnessOptions, install_tracing};
use foundations::telemetry::tracing::{self, StartTraceOptions};
use std::hint::black_box;

fn installed_hot_path(c: &mut Criterion) {
    let drain = install_tracing(HarnessOptions::default().sampling_ratio(1.0))
        .expect("harness installs once per bench process");
    common::spawn_batch_consumer(drain);

    let mut group = c.benchmark_group("internal_installed");
    group.throughput(Throughput::Elements(10));
    group.bench_function("root_plus_9_tagged_children", |b| {
        b.iter(|| common::internal_root_plus_9_tagged_children(StartTraceOptions::default()))
    });
    group.finish();

    c.bench_function("internal_installed/w3c_traceparent_format", |b| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        b.iter(|| black_box(tracing::w3c_traceparent().map(|tp| tp.to_header_value())))
    });
}

criterion_group!(benches, installed_hot_path);
criterion_main!(benches);
