//! User exporter end to end, against a real OTLP/HTTP receiver on a Unix socket: routing
//! header and isolation, inbound continuation, descendants across spawn, invalid routing,
//! wire format, connection reuse, and a shutdown that delivers everything.
//!
//! `telemetry::init` runs once per process, so this binary holds one test.

use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::TraceparentContext;
use foundations::telemetry::user_tracing::{self, RoutingMetadata};
use foundations::telemetry::{self, InitError, TelemetryContext};
use foundations_tests::opentelemetry_proto::tonic::common::v1::any_value::Value;
use foundations_tests::{OtlpSink, hex};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
struct Tenant(u32);

impl RoutingMetadata for Tenant {
    fn group_key(&self) -> String {
        self.0.to_string()
    }
    fn encode(&self) -> String {
        format!("tenant={};plan=pro", self.0)
    }
}

/// Encodes to something no HTTP header may carry.
#[derive(Debug)]
struct Broken;

impl RoutingMetadata for Broken {
    fn group_key(&self) -> String {
        "broken".into()
    }
    fn encode(&self) -> String {
        "line\nbreak".into()
    }
}

const THREADS: u32 = 8;
const TRACES_PER_THREAD: u32 = 40;
const SPANS_PER_TRACE: usize = 5;

#[test]
fn user_spans_reach_the_receiver_grouped_by_routing() {
    let sink = OtlpSink::start();
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  service_name: edge-proxy\n  num_tasks: 2\n  \
         max_batch_size: 64\n  flush_interval_ms: 50\n",
        sink.path().display()
    );
    let settings = TelemetrySettings::from_yaml(&yaml).unwrap();
    let driver = telemetry::init(&settings).expect("first init");
    assert!(matches!(
        telemetry::init(&settings),
        Err(InitError::AlreadyInitialized)
    ));

    // Which routing every trace was started with, as the test saw it.
    let expected: Arc<Mutex<HashMap<String, String>>> = Arc::default();

    // Inbound continuation, with descendants in spawned tasks.
    let inbound: TraceparentContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let root = user_tracing::start_user_trace("continued", Tenant(100), Some(inbound));
        root.into_context()
            .apply(async {
                let tasks: Vec<_> = (0..3)
                    .map(|i| {
                        telemetry::spawn(async move {
                            tokio::task::yield_now().await;
                            let _child = user_tracing::user_span(format!("spawned-{i}"));
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            })
            .await;
    });
    expected
        .lock()
        .insert(hex(&inbound.trace_id.to_bytes()), Tenant(100).encode());

    // Three routings interleaved from eight threads.
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let expected = Arc::clone(&expected);
            std::thread::spawn(move || {
                for i in 0..TRACES_PER_THREAD {
                    let tenant = (t + i) % 3;
                    let _root = user_tracing::start_user_trace("request", Tenant(tenant), None);
                    let trace_id = user_tracing::w3c_traceparent().unwrap().trace_id;
                    expected
                        .lock()
                        .insert(hex(&trace_id.to_bytes()), Tenant(tenant).encode());
                    for c in 0..SPANS_PER_TRACE - 1 {
                        let _child = user_tracing::user_span(format!("child-{c}"));
                        foundations::add_user_span_tags!("tenant" => i64::from(tenant));
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }

    // A routing that cannot be a header value: dropped and counted, never sent.
    TelemetryContext::default().scope_and(|| {
        let _root = user_tracing::start_user_trace("broken", Broken, None);
        let _child = user_tracing::user_span("broken-child");
    });

    let produced = 4 + (THREADS * TRACES_PER_THREAD) as usize * SPANS_PER_TRACE + 2;
    let report = driver.shutdown(Duration::from_secs(30));
    assert!(report.flushed, "{report:?}");
    let stats = report.user.unwrap();
    assert_eq!(stats.spans_queued as usize, produced);
    assert_eq!(stats.dropped_invalid_routing, 2);
    assert_eq!(stats.spans_exported as usize, produced - 2);
    assert_eq!(stats.dropped(), 2);
    assert_eq!(stats.pending(), 0);
    assert_eq!(telemetry::user_exporter_stats(), Some(stats));

    // Every request: the right endpoint and headers, one resource, one routing.
    let expected = expected.lock();
    let mut per_routing: HashMap<String, usize> = HashMap::new();
    for request in sink.received() {
        assert_eq!(request.path, "/v1/traces");
        assert_eq!(
            request.header("content-type").as_deref(),
            Some("application/x-protobuf")
        );
        assert!(
            request
                .header("user-agent")
                .unwrap()
                .starts_with("foundations/")
        );
        let routing = request.header("cf-trace-config").expect("routing header");
        assert_eq!(request.body.resource_spans.len(), 1);
        let resource = request.body.resource_spans[0].resource.as_ref().unwrap();
        let service = resource
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.clone()?.value);
        assert_eq!(service, Some(Value::StringValue("edge-proxy".into())));
        assert_eq!(request.body.resource_spans[0].scope_spans.len(), 1);
        for span in request.spans() {
            let trace = hex(&span.trace_id);
            assert_eq!(
                expected.get(&trace),
                Some(&routing),
                "span {} of trace {trace} arrived under {routing}",
                span.name
            );
            *per_routing.entry(routing.clone()).or_default() += 1;
        }
    }
    let per_tenant_spans = |tenant: u32| {
        expected
            .values()
            .filter(|r| **r == Tenant(tenant).encode())
            .count()
    };
    for tenant in 0..3 {
        let traces = per_tenant_spans(tenant);
        assert_eq!(
            per_routing[&Tenant(tenant).encode()],
            traces * SPANS_PER_TRACE
        );
    }
    assert!(!per_routing.keys().any(|r| r.contains("line")));

    // The continued trace: same trace id, inbound parent, remote flags; children under it.
    let accepted = sink.accepted_spans();
    let continued: Vec<_> = accepted
        .iter()
        .filter(|(_, s)| hex(&s.trace_id) == "4bf92f3577b34da6a3ce929d0e0e4736")
        .map(|(_, s)| s)
        .collect();
    assert_eq!(continued.len(), 4);
    let root = continued.iter().find(|s| s.name == "continued").unwrap();
    assert_eq!(hex(&root.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(root.flags & 0x300, 0x300, "remote parent flags");
    for child in continued.iter().filter(|s| s.name.starts_with("spawned-")) {
        assert_eq!(child.parent_span_id, root.span_id);
        assert_eq!(child.flags & 0x300, 0x100);
    }

    // Keep-alive: never more connections than workers.
    assert!(
        sink.connections() <= 2,
        "{} connections",
        sink.connections()
    );
}
