//! The main demo: a service handles three requests with the internal pipeline installed, then
//! prints every recorded trace as a tree.
//!
//! Run it with `cargo run -p foundations-examples --example demo`.
//!
//! - request 1 starts a new trace and fans work out to spawned tasks;
//! - request 2 continues a sampled inbound `traceparent` (the trace id is kept);
//! - request 3 arrives with an unsampled `traceparent`: nothing is recorded, and the outbound
//!   header still says "not sampled".

use foundations::add_span_tags;
use foundations::telemetry::tracing::{
    self, FinishedSpan, HarnessOptions, SpanId, StartTraceOptions,
};
use foundations::telemetry::{self};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

#[tokio::main]
async fn main() {
    let drain = tracing::install(HarnessOptions::default()).expect("installed once");

    handle_request("GET /users/42", None).await;
    handle_request(
        "GET /orders",
        Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    )
    .await;
    handle_request(
        "GET /health",
        Some(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
    )
    .await;

    let mut spans = Vec::new();
    drain.drain_into(&mut spans, usize::MAX);
    print_traces(&spans);
    println!(
        "{} spans recorded, {} dropped",
        drain.stats().queued,
        drain.stats().dropped_queue_full
    );
}

async fn handle_request(route: &'static str, traceparent: Option<&[u8]>) {
    let options = StartTraceOptions::default().continue_from_headers(traceparent, None);
    let root = tracing::start_trace(route, options);
    add_span_tags!("http.route" => route, "span.kind" => "server");
    let outbound = tracing::w3c_traceparent().map(|tp| tp.to_string());
    println!(
        "{route:<14} outbound traceparent: {}",
        outbound.unwrap_or_default()
    );

    root.into_context()
        .apply(async {
            let lookups: Vec<_> = (0..3)
                .map(|shard| {
                    telemetry::spawn(async move {
                        let lookup = tracing::span("cache_lookup");
                        add_span_tags!("shard" => shard as i64);
                        lookup
                            .into_context()
                            .apply(tokio::time::sleep(Duration::from_millis(2 + shard)))
                            .await;
                    })
                })
                .collect();
            for lookup in lookups {
                lookup.await.expect("lookup task");
            }
            let _render = tracing::span("render");
            std::thread::sleep(Duration::from_millis(1));
        })
        .await;
}

fn print_traces(spans: &[FinishedSpan]) {
    let local: HashSet<SpanId> = spans.iter().map(FinishedSpan::span_id).collect();
    let mut children: HashMap<SpanId, Vec<&FinishedSpan>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        match span.parent() {
            Some(parent) if !parent.is_remote && local.contains(&parent.span_id) => {
                children.entry(parent.span_id).or_default().push(span)
            }
            _ => roots.push(span),
        }
    }
    roots.sort_by_key(|s| s.start_time());
    for root in roots {
        println!("\ntrace {}", root.trace_id());
        print_tree(root, &children, 0);
    }
    println!();
}

fn print_tree(span: &FinishedSpan, children: &HashMap<SpanId, Vec<&FinishedSpan>>, depth: usize) {
    let duration = span
        .finish_time()
        .duration_since(span.start_time())
        .unwrap_or_default();
    let remote_parent = match span.parent() {
        Some(parent) if parent.is_remote => format!(" (remote parent {})", parent.span_id),
        _ => String::new(),
    };
    println!(
        "{:indent$}{} [{}] {:.1} ms{remote_parent}",
        "",
        span.name(),
        span.span_id(),
        duration.as_secs_f64() * 1000.0,
        indent = depth * 2
    );
    let mut kids = children.get(&span.span_id()).cloned().unwrap_or_default();
    kids.sort_by_key(|s| s.start_time());
    for child in kids {
        print_tree(child, children, depth + 1);
    }
}
