//! A callgrind harness for the bridges' hot paths: the same work as the `tracing_bridge` and
//! `tower_server` benches, `N` times, without criterion, so that instruction counts can be
//! compared between trees (wall-clock figures on a loaded VM swing too much).
//!
//! ```sh
//! cargo build --release -p foundations --features testing,tracing-bridge,tower --example callgrind_bridges
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='callgrind_bridges::bridged_spans' \
//!     target/release/examples/callgrind_bridges foundations 10000
//! ```
//!
//! Cases: `registry`, `foundations`, `otel`, `fastrace` (a bridged span: new with two fields,
//! enter, exit, close; a root per 1000; collect in `bridged_spans`), `bare`, `traced` (one
//! request through the server layer, its route a `&'static str`), `traced_string_route` (the
//! same, its route closure allocating a `String`; collect in `callgrind_bridges::tower_requests::requests*`). The count
//! divided by `N` is the cost per span or request on the calling thread; work the peers hand
//! to threads of their own (exporters, collectors) is not in it.

#[path = "../benches/common/tower_requests.rs"]
mod tower_requests;

use foundations::telemetry::bridge::{TraceServerLayer, TracingBridge};
use foundations::telemetry::testing::{HarnessOptions, install_tracing};
use http::Request;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use std::time::Duration;
use tower_layer::Layer;
use tower_requests::{Bare, requests, traced};
use tracing_subscriber::prelude::*;

#[derive(Debug)]
struct NullExporter;

impl SpanExporter for NullExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
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

/// Out of line: callgrind counts what runs inside it (`--toggle-collect`).
#[inline(never)]
fn bridged_spans(subscriber: &tracing::Dispatch, iters: u64) {
    tracing::dispatcher::with_default(subscriber, || {
        let mut left = iters;
        while left > 0 {
            let n = left.min(1000);
            left -= n;
            let root = tracing::info_span!("root");
            let _root = root.enter();
            for i in 0..n {
                let span = tracing::info_span!("child", http.status = 200i64, key = "value");
                let _entered = span.enter();
                std::hint::black_box(i);
            }
        }
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "foundations".to_owned());
    let iters: u64 = args.next().map_or(10_000, |n| n.parse().expect("a count"));

    let drain = install_tracing(HarnessOptions::default().sampling_ratio(1.0)).expect("installs");
    // Drained in batches on another thread, as an exporter does.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let mut batch = Vec::with_capacity(512);
            loop {
                drain
                    .recv_batch(&mut batch, 512, Duration::from_millis(100))
                    .await;
                batch.clear();
            }
        })
    });

    match case.as_str() {
        "registry" => bridged_spans(
            &tracing::Dispatch::new(tracing_subscriber::registry()),
            iters,
        ),
        "foundations" => bridged_spans(
            &tracing::Dispatch::new(tracing_subscriber::registry().with(TracingBridge::new())),
            iters,
        ),
        "otel" => {
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(NullExporter)
                .build();
            let tracer = provider.tracer("callgrind");
            bridged_spans(
                &tracing::Dispatch::new(
                    tracing_subscriber::registry()
                        .with(tracing_opentelemetry::layer().with_tracer(tracer)),
                ),
                iters,
            );
            let _ = provider.shutdown();
        }
        "fastrace" => {
            fastrace::set_reporter(NullReporter, fastrace::collector::Config::default());
            bridged_spans(
                &tracing::Dispatch::new(
                    tracing_subscriber::registry()
                        .with(fastrace_tracing::FastraceCompatLayer::new()),
                ),
                iters,
            );
            fastrace::flush();
        }
        "bare" => requests(&mut Bare, iters),
        "traced" => requests(&mut traced(), iters),
        "traced_string_route" => {
            // A route closure that allocates its route, as one reading axum's `MatchedPath`
            // into a `String` does.
            let mut traced = TraceServerLayer::new()
                .with_route(|_: &Request<()>| Some("/users/{id}".to_owned()))
                .layer(Bare);
            requests(&mut traced, iters);
        }
        other => panic!("unknown case {other}"),
    }
}
