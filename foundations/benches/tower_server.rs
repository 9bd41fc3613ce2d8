//! `TraceServerLayer` overhead per request over the same bare tower service: the request
//! goes through `call`, its response future is polled once (ready), and its body is polled
//! to the end, which ends the server span. `traced` names its route with a `&'static str`,
//! `traced_string_route` with a `String` made per request.
//!
//! The internal pipeline records every request (100% sampling). Two builds:
//!
//! - `cargo bench -p foundations --features testing,tower --bench tower_server`: the test
//!   harness, its queue drained by a consumer thread (groups `tower_server`, wall time, and
//!   `tower_server_thread_cpu`, the calling thread's CPU time);
//! - `cargo bench -p foundations --features tower --bench tower_server`: a production build
//!   (no `testing` code compiled in), `telemetry::init` exporting over OTLP/HTTP to a
//!   receiver on a local socket that reads each request and answers 200 (groups
//!   `tower_server_production` and `tower_server_production_thread_cpu`). The exporter
//!   thread shares the machine, as it does in a service.

#[cfg(feature = "testing")]
mod common;
#[path = "common/thread_cpu.rs"]
mod thread_cpu;
#[path = "common/tower_requests.rs"]
mod tower_requests;

use criterion::{Criterion, criterion_group, criterion_main};
use foundations::telemetry::bridge::TraceServerLayer;
use http::Request;
use std::task::{Context, Waker};
use thread_cpu::thread_cpu;
use tower_layer::Layer;
use tower_requests::{Bare, one_request, traced};

/// Installs the internal pipeline; what it returns must live as long as the bench.
#[cfg(feature = "testing")]
fn install() -> (&'static str, ()) {
    use foundations::telemetry::testing::{HarnessOptions, install_tracing};
    let drain = install_tracing(HarnessOptions::default().sampling_ratio(1.0))
        .expect("harness installs once per bench process");
    common::spawn_batch_consumer(drain);
    ("tower_server", ())
}

/// Installs the internal pipeline; what it returns must live as long as the bench.
#[cfg(not(feature = "testing"))]
fn install() -> (&'static str, foundations::telemetry::TelemetryDriver) {
    let driver = receiver::init_exporting_to_receiver("bench");
    ("tower_server_production", driver)
}

/// An OTLP/HTTP receiver reduced to what the exporter needs (shared with the
/// `callgrind_tower_production` example).
#[cfg(not(feature = "testing"))]
#[path = "common/otlp_receiver.rs"]
mod receiver;

fn server_layer(c: &mut Criterion) {
    let (group_name, installed) = install();
    let mut cx = Context::from_waker(Waker::noop());

    let mut bare = Bare;
    let mut traced = traced();

    // A route closure that allocates its route, as one reading axum's `MatchedPath` into a
    // `String` does.
    let mut traced_string_route = TraceServerLayer::new()
        .with_route(|_: &Request<()>| Some("/users/{id}".to_owned()))
        .layer(Bare);

    let mut group = c.benchmark_group(group_name);
    group.bench_function("bare", |b| b.iter(|| one_request(&mut bare, &mut cx)));
    group.bench_function("traced", |b| b.iter(|| one_request(&mut traced, &mut cx)));
    group.bench_function("traced_string_route", |b| {
        b.iter(|| one_request(&mut traced_string_route, &mut cx))
    });
    group.finish();

    // On 2 cores the consumer (or the exporter and the receiver) take CPU from the bench
    // thread, and its wall time counts the time it waits for a core: the calling thread's
    // own CPU time is what the layer costs a request.
    let mut group = c.benchmark_group(format!("{group_name}_thread_cpu"));
    group.bench_function("bare", |b| {
        b.iter_custom(|n| thread_cpu(|| (0..n).for_each(|_| one_request(&mut bare, &mut cx))))
    });
    group.bench_function("traced", |b| {
        b.iter_custom(|n| thread_cpu(|| (0..n).for_each(|_| one_request(&mut traced, &mut cx))))
    });
    group.bench_function("traced_string_route", |b| {
        b.iter_custom(|n| {
            thread_cpu(|| (0..n).for_each(|_| one_request(&mut traced_string_route, &mut cx)))
        })
    });
    group.finish();
    report(installed);
}

#[cfg(feature = "testing")]
fn report((): ()) {}

/// Whether the exporter kept up: every span exported, or dropped and counted.
#[cfg(not(feature = "testing"))]
fn report(driver: foundations::telemetry::TelemetryDriver) {
    let stats = driver
        .shutdown(std::time::Duration::from_secs(10))
        .internal
        .expect("the internal exporter ran");
    println!(
        "tower_server_production: {} spans produced, {} exported, {} dropped ({} with the \
         queue full), {} requests",
        stats.produced(),
        stats.spans_exported,
        stats.dropped(),
        stats.dropped_queue_full,
        stats.requests,
    );
}

criterion_group!(benches, server_layer);
criterion_main!(benches);
