//! The exporter gives the boxes of sent spans' tags back for new spans to fill. Here two
//! customers' threads record, round after round, spans with three to seven owned tags
//! (enough to need a box) while the exporter sends and gives boxes back: every span
//! arrives with exactly its own tags, under its own routing's header, and the balance
//! holds. A box that carried one customer's values into another's span would show here.

use foundations::add_user_span_tags;
use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations_tests::opentelemetry_proto::tonic::common::v1::any_value::Value;
use foundations_tests::{OtlpSink, Tenant};
use std::collections::HashSet;
use std::time::Duration;

const ROUNDS: usize = 40;
const SPANS_PER_ROUND: usize = 50;
const TENANTS: [&str; 2] = ["blue", "green"];

/// The value of tag `key` of span `n` of `tenant`: unique in the whole run.
fn value(tenant: &str, n: usize, key: usize) -> String {
    format!("{tenant}/{n}/{key}")
}

/// The tags span `n` carries: three to seven, so that every span keeps them in a box.
fn tag_count(n: usize) -> usize {
    3 + n % 5
}

#[test]
fn recycled_tag_boxes_carry_nothing_from_one_span_into_another() {
    let sink = OtlpSink::start();
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  num_tasks: 1\n  max_batch_size: 32\n  \
         flush_interval_ms: 10\n",
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    let threads: Vec<_> = TENANTS
        .into_iter()
        .map(|tenant| {
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    for i in 0..SPANS_PER_ROUND {
                        let n = round * SPANS_PER_ROUND + i;
                        let _root =
                            user_tracing::start_user_trace("request", Tenant::new(tenant), None);
                        add_user_span_tags!("n" => n as i64);
                        let keys = ["k0", "k1", "k2", "k3", "k4", "k5", "k6"];
                        for (key, name) in keys.into_iter().enumerate().take(tag_count(n) - 1) {
                            add_user_span_tags!(name => value(tenant, n, key));
                        }
                    }
                    // Let the exporter send this round and give its boxes back.
                    std::thread::sleep(Duration::from_millis(15));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }

    let report = driver.shutdown(Duration::from_secs(10));
    assert!(report.flushed);
    let stats = report.user.unwrap();
    let total = (TENANTS.len() * ROUNDS * SPANS_PER_ROUND) as u64;
    assert_eq!(stats.produced(), total, "{stats:?}");
    assert_eq!(stats.spans_exported, total, "{stats:?}");

    let mut seen = HashSet::new();
    for received in sink.received() {
        let header = received
            .header("cf-trace-config")
            .expect("a routing header");
        let tenant = header.strip_prefix("tenant=").expect("a tenant's header");
        for span in received.spans() {
            let mut n = None;
            let mut strings = Vec::new();
            for kv in &span.attributes {
                match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::IntValue(i)) if kv.key == "n" => n = Some(*i as usize),
                    Some(Value::StringValue(s)) => strings.push((kv.key.clone(), s.clone())),
                    other => panic!("unexpected attribute {} = {other:?}", kv.key),
                }
            }
            let n = n.expect("every span has its number");
            let expected: Vec<_> = (0..tag_count(n) - 1)
                .map(|key| (format!("k{key}"), value(tenant, n, key)))
                .collect();
            assert_eq!(
                strings, expected,
                "span {n} of {tenant}: exactly its own tags"
            );
            assert!(
                seen.insert((tenant.to_owned(), n)),
                "span {n} of {tenant} twice"
            );
        }
    }
    assert_eq!(seen.len() as u64, total);
}
