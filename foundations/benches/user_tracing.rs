//! User pipeline hot path with its harness installed and its queue drained by a consumer.
//!
//! Run: `cargo bench -p foundations --features user-tracing --bench user_tracing`. Each
//! iteration opens 10 spans: divide the time by 10 for the time per span.

mod common;

use common::Zone;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundations::add_user_span_tags;
use foundations::telemetry::testing::{HarnessOptions, install_user_tracing};
use foundations::telemetry::user_tracing;

fn installed_hot_path(c: &mut Criterion) {
    let drain = install_user_tracing(HarnessOptions::default()).expect("installed once");
    common::spawn_batch_consumer(drain);

    let mut group = c.benchmark_group("user_installed");
    group.throughput(Throughput::Elements(10));
    group.bench_function("root_plus_9_tagged_children", |b| {
        b.iter(|| {
            let _root = user_tracing::start_user_trace("root", Zone(1), None);
            for _ in 0..9 {
                let _child = user_tracing::user_span("child");
                add_user_span_tags!("key" => "value");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, installed_hot_path);
criterion_main!(benches);
