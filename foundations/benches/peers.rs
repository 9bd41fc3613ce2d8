//! Ours against fastrace, in one run, on the same workload: a root and 9 children, each
//! child made current and given one string tag, every span handed to a consumer thread that
//! drains it the way an exporter does (ours: batches of 512 or every 100 ms; fastrace: its
//! collector, reporting to a reporter that drops the spans).
//!
//! Run with the system allocator, then with jemalloc:
//!
//! ```text
//! cargo bench -p foundations --features testing,user-tracing --bench peers
//! cargo bench -p foundations --features testing,user-tracing,bench-jemalloc --bench peers
//! ```
//!
//! Each iteration records 10 spans: the throughput line gives spans per second.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fastrace::collector::{Config, Reporter, SpanContext};
use fastrace::local::LocalSpan;
use fastrace::prelude::SpanRecord;
use foundations::add_user_span_tags;
use foundations::telemetry::testing::{HarnessOptions, install_tracing, install_user_tracing};
use foundations::telemetry::tracing::StartTraceOptions;
use foundations::telemetry::user_tracing::{self, RoutingMetadata};

#[cfg(feature = "bench-jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug)]
struct Zone(u64);

impl RoutingMetadata for Zone {
    fn group_key(&self) -> String {
        self.0.to_string()
    }
    fn encode(&self) -> String {
        format!("zone={}", self.0)
    }
}

struct DropReporter;

impl Reporter for DropReporter {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        drop(std::hint::black_box(spans));
    }
}

fn root_plus_9_tagged_children(c: &mut Criterion) {
    let allocator = if cfg!(feature = "bench-jemalloc") {
        "jemalloc"
    } else {
        "system"
    };
    common::spawn_batch_consumer(
        install_tracing(HarnessOptions::default().sampling_ratio(1.0)).expect("installed once"),
    );
    common::spawn_batch_consumer(
        install_user_tracing(HarnessOptions::default()).expect("installed once"),
    );
    fastrace::set_reporter(DropReporter, Config::default());

    let mut group = c.benchmark_group(format!("peers_root_plus_9_tagged_children/{allocator}"));
    group.throughput(Throughput::Elements(10));
    group.bench_function("foundations_internal", |b| {
        b.iter(|| common::internal_root_plus_9_tagged_children(StartTraceOptions::default()))
    });
    group.bench_function("foundations_user", |b| {
        b.iter(|| {
            let _root = user_tracing::start_user_trace("root", Zone(1), None);
            for _ in 0..9 {
                let _child = user_tracing::user_span("child");
                add_user_span_tags!("key" => "value");
            }
        })
    });
    group.bench_function("fastrace", |b| {
        b.iter(|| {
            let root = fastrace::Span::root("root", SpanContext::random());
            let _current = root.set_local_parent();
            for _ in 0..9 {
                let _child =
                    LocalSpan::enter_with_local_parent("child").with_property(|| ("key", "value"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, root_plus_9_tagged_children);
criterion_main!(benches);
