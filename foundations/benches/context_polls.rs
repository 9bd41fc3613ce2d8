//! What carrying a context across polls costs in a production build (no `testing` feature:
//! `telemetry::init` with both pipelines, as a service runs), against the peers named by the
//! hot-path issue, in one run: (wrapped − bare) per re-poll of a future that yields 100
//! times, with a sampled internal trace (and a user trace) current.
//!
//! - `foundations_apply_both_pipelines`: `TelemetryContext::current().apply(..)`, both
//!   pipelines' spans carried.
//! - `foundations_apply_internal`: the same with no user trace active.
//! - `opentelemetry_with_context`: `FutureExt::with_context` with a sampled SDK span current.
//! - `fastrace_in_span`: `FutureExt::in_span`, a child of a sampled root.
//!
//! Criterion reports time per future of 100 polls; subtract `bare` and divide by 100.
//!
//! Run: `cargo bench -p foundations --features user-tracing --bench context_polls`.

#[path = "common/polls.rs"]
mod polls;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fastrace::collector::{Config, Reporter, SpanContext};
use fastrace::future::FutureExt as _;
use fastrace::prelude::SpanRecord;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::{self, TelemetryContext, tracing, user_tracing};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use polls::{POLLS, Yields, poll_to_end};
use std::time::Duration;

/// A user trace's routing: one zone.
#[derive(Debug)]
struct Zone(u64);

impl user_tracing::RoutingMetadata for Zone {
    fn group_key(&self) -> String {
        self.0.to_string()
    }

    fn encode(&self) -> String {
        format!("zone={}", self.0)
    }
}

#[derive(Debug)]
struct NullExporter;

impl SpanExporter for NullExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(std::hint::black_box(batch));
        Ok(())
    }
}

struct DropReporter;

impl Reporter for DropReporter {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        drop(std::hint::black_box(spans));
    }
}

fn context_across_polls(c: &mut Criterion) {
    // Nothing listens at either endpoint: the only spans finished are the two roots, at
    // the end. Every trace is sampled.
    let settings = TelemetrySettings::from_yaml(
        "tracing:\n  service_name: bench\n  sampling:\n    ratio: 1.0\n  output:\n    \
         otlp_http:\n      endpoint: http://127.0.0.1:9\nuser_tracing:\n  socket_path: \
         /nonexistent/bench.sock\n  service_name: bench\n",
    )
    .expect("valid settings");
    let _driver = telemetry::init(&settings).expect("telemetry starts");
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(NullExporter)
        .build();
    let otel_tracer = provider.tracer("bench");
    fastrace::set_reporter(DropReporter, Config::default());

    let mut group = c.benchmark_group("context_per_100_polls");
    group.throughput(Throughput::Elements(u64::from(POLLS)));
    group.bench_function("bare", |b| b.iter(|| poll_to_end(Yields(POLLS))));

    let root = tracing::start_trace("root", Default::default());
    assert!(
        tracing::trace_id().is_some(),
        "the internal trace is sampled"
    );
    group.bench_function("foundations_apply_internal", |b| {
        let context = TelemetryContext::current();
        b.iter(|| poll_to_end(context.clone().apply(Yields(POLLS))))
    });
    let user = user_tracing::start_user_trace("root", Zone(1), None);
    assert!(user_tracing::is_active(), "the user trace is active");
    group.bench_function("foundations_apply_both_pipelines", |b| {
        let context = TelemetryContext::current();
        b.iter(|| poll_to_end(context.clone().apply(Yields(POLLS))))
    });
    drop((user, root));

    group.bench_function("opentelemetry_with_context", |b| {
        let span = otel_tracer.start("root");
        assert!(span.span_context().is_sampled());
        let context = opentelemetry::Context::current_with_span(span);
        b.iter(|| poll_to_end(Yields(POLLS).with_context(context.clone())))
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
    targets = context_across_polls
}
criterion_main!(benches);
