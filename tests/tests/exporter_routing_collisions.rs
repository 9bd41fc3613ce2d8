//! Isolation by construction: routings whose `group_key()` collide but whose `encode()`
//! differ, from eight threads, each span under its own routing's header; and a routing whose
//! `encode()` panics on its third call costs exactly that trace's spans, counted.

use foundations::add_user_span_tags;
use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing::{self, RoutingMetadata};
use foundations_tests::OtlpSink;
use foundations_tests::opentelemetry_proto::tonic::common::v1::any_value::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Five customers that an application bug gives one and the same `group_key`.
#[derive(Debug)]
struct Colliding(i64);

impl RoutingMetadata for Colliding {
    fn group_key(&self) -> String {
        "everyone".into()
    }
    fn encode(&self) -> String {
        format!("tenant={}", self.0)
    }
}

/// A routing whose `encode()` panics on its third call in the process.
#[derive(Debug)]
struct Flaky;

static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);

impl RoutingMetadata for Flaky {
    fn group_key(&self) -> String {
        "everyone".into()
    }
    fn encode(&self) -> String {
        if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) == 2 {
            panic!("encode failed on its third call");
        }
        "tenant=flaky".into()
    }
}

const THREADS: i64 = 8;
const TRACES_PER_THREAD: i64 = 25;
const SPANS_PER_TRACE: u64 = 4;
const FLAKY_TRACES: u64 = 5;

#[test]
fn colliding_group_keys_never_share_a_header_and_a_panicking_encode_is_counted() {
    let sink = OtlpSink::start();
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  num_tasks: 2\n  max_batch_size: 64\n  \
         flush_interval_ms: 20\n",
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            std::thread::spawn(move || {
                for trace in 0..TRACES_PER_THREAD {
                    let tenant = (thread + trace) % 5;
                    let _root = user_tracing::start_user_trace("request", Colliding(tenant), None);
                    add_user_span_tags!("tenant" => tenant);
                    for _ in 1..SPANS_PER_TRACE {
                        let _child = user_tracing::user_span("step");
                        add_user_span_tags!("tenant" => tenant);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for _ in 0..FLAKY_TRACES {
        let _root = user_tracing::start_user_trace("flaky", Flaky, None);
        let _child = user_tracing::user_span("step");
    }

    let report = driver.shutdown(Duration::from_secs(10));
    assert!(report.flushed);
    let stats = report.user.unwrap();
    let colliding = (THREADS * TRACES_PER_THREAD) as u64 * SPANS_PER_TRACE;
    let flaky = FLAKY_TRACES * 2;
    assert_eq!(stats.spans_queued, colliding + flaky);
    assert_eq!(
        stats.dropped_routing_panicked, 2,
        "one trace of two spans: {stats:?}"
    );
    assert_eq!(stats.spans_exported, colliding + flaky - 2, "{stats:?}");
    assert_eq!(stats.spans_exported + stats.dropped(), stats.spans_queued);

    let mut per_tenant = [0u64; 5];
    let mut flaky_received = 0;
    for received in sink.received() {
        let header = received
            .header("cf-trace-config")
            .expect("a routing header");
        for span in received.spans() {
            let tag = span
                .attributes
                .iter()
                .find(|kv| kv.key == "tenant")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref());
            match tag {
                Some(Value::IntValue(tenant)) => {
                    assert_eq!(
                        header,
                        format!("tenant={tenant}"),
                        "a span under another header"
                    );
                    per_tenant[*tenant as usize] += 1;
                }
                None => {
                    assert_eq!(header, "tenant=flaky");
                    flaky_received += 1;
                }
                other => panic!("unexpected tag {other:?}"),
            }
        }
    }
    assert!(per_tenant.iter().all(|&count| count > 0), "{per_tenant:?}");
    assert_eq!(per_tenant.iter().sum::<u64>(), colliding);
    assert_eq!(flaky_received, flaky - 2);
}
