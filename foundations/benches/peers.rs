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

use common::Zone;

#[path = "common/polls.rs"]
mod polls;
#[path = "common/thread_cpu.rs"]
mod thread_cpu;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fastrace::collector::{Config, Reporter, SpanContext};
use fastrace::future::FutureExt as _;
use fastrace::local::LocalSpan;
use fastrace::prelude::SpanRecord;
use foundations::add_user_span_tags;
use foundations::telemetry::TelemetryContext;
use foundations::telemetry::testing::{HarnessOptions, install_tracing, install_user_tracing};
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::user_tracing;
use polls::{POLLS, Yields, poll_to_end};
use std::time::{Duration, Instant};

#[cfg(feature = "bench-jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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

/// Per-thread cost with a second thread recording the same workload at the same time: on
/// two cores, a design without shared writes per span costs each thread what one costs alone.
fn two_producer_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("peers_two_threads");
    group.throughput(Throughput::Elements(10));
    let work = || common::internal_root_plus_9_tagged_children(StartTraceOptions::default());
    group.bench_function("foundations_internal_one_thread", |b| b.iter(work));
    group.bench_function("foundations_internal_each_of_two_threads", |b| {
        b.iter_custom(|iters| {
            let other = std::thread::spawn(move || {
                for _ in 0..iters {
                    work();
                }
            });
            let started = Instant::now();
            for _ in 0..iters {
                work();
            }
            let elapsed = started.elapsed();
            other.join().unwrap();
            elapsed
        })
    });
    // On 2 cores the two producers and the consumer share the machine, and the wall time
    // counts each thread's wait for a core: its own CPU time is what a span costs it,
    // cache lines that bounce between cores included.
    group.bench_function("foundations_internal_one_thread_cpu", |b| {
        b.iter_custom(|iters| thread_cpu::thread_cpu(|| (0..iters).for_each(|_| work())))
    });
    group.bench_function("foundations_internal_each_of_two_threads_cpu", |b| {
        b.iter_custom(|iters| {
            let other = std::thread::spawn(move || (0..iters).for_each(|_| work()));
            let elapsed = thread_cpu::thread_cpu(|| (0..iters).for_each(|_| work()));
            other.join().unwrap();
            elapsed
        })
    });
    group.finish();
}

/// What carrying a context costs per poll: (wrapped − bare) / polls, a sampled internal
/// trace current. Criterion reports time per future of [`POLLS`] polls.
fn context_across_polls(c: &mut Criterion) {
    let mut group = c.benchmark_group("peers_context_per_100_polls");
    group.throughput(Throughput::Elements(u64::from(POLLS)));
    group.bench_function("bare", |b| b.iter(|| poll_to_end(Yields(POLLS))));
    let _root = tracing::start_trace("root", StartTraceOptions::default());
    let _user = user_tracing::start_user_trace("root", Zone(1), None);
    group.bench_function("foundations_apply_both_pipelines", |b| {
        let context = TelemetryContext::current();
        b.iter(|| poll_to_end(context.clone().apply(Yields(POLLS))))
    });
    group.bench_function("fastrace_in_span", |b| {
        let root = fastrace::Span::root("root", SpanContext::random());
        b.iter(|| poll_to_end(Yields(POLLS).in_span(fastrace::Span::enter_with_parent("f", &root))))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = root_plus_9_tagged_children, two_producer_threads, context_across_polls
}
criterion_main!(benches);
