//! Internal pipeline hot path when traces are not sampled: the harness is installed with
//! `sampling_ratio(0.0)`, the setting a service runs with when tracing is configured but
//! turned down.
//!
//! Run: `cargo bench -p foundations --bench tracing_unsampled`. Each iteration opens a root
//! and 9 children (each tagged, as instrumented code does), so divide by 10 for the time per
//! span (the throughput line gives spans per second directly). The `inbound_unsampled` case
//! continues a `traceparent` whose sampled flag is unset: parent-based sampling then records
//! nothing either, and only the inbound identity is propagated.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundations::telemetry::testing::{HarnessOptions, install_tracing};
use foundations::telemetry::tracing::{StartTraceOptions, TraceparentContext};

fn unsampled_hot_path(c: &mut Criterion) {
    let drain = install_tracing(HarnessOptions::default().sampling_ratio(0.0))
        .expect("harness installs once per bench process");
    common::spawn_batch_consumer(drain);

    let mut group = c.benchmark_group("internal_ratio_zero");
    group.throughput(Throughput::Elements(10));
    group.bench_function("root_plus_9_tagged_children", |b| {
        b.iter(|| common::internal_root_plus_9_tagged_children(StartTraceOptions::default()))
    });
    let inbound =
        TraceparentContext::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
            .expect("valid traceparent");
    group.bench_function("inbound_unsampled_root_plus_9_tagged_children", |b| {
        b.iter(|| {
            let options = StartTraceOptions::default().continue_trace(inbound, None);
            common::internal_root_plus_9_tagged_children(options)
        })
    });
    group.finish();
}

criterion_group!(benches, unsampled_hot_path);
criterion_main!(benches);
