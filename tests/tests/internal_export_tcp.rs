//! The internal pipeline exported to an OTLP/HTTP receiver over TCP on 127.0.0.1: resource
//! attributes, static tags, sampling honoured end to end (unsampled spans never sent), log
//! lines carrying the current ids, and subprocess propagation.

use foundations::telemetry::log_correlation::TraceLogger;
use foundations::telemetry::propagation::{self, subprocess_env};
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::{self};
use foundations_tests::opentelemetry_proto::tonic::common::v1::any_value::Value;
use foundations_tests::{OtlpSink, hex};
use parking_lot::Mutex;
use std::time::Duration;

/// A captured log line: its message and its key-values.
type Line = (String, Vec<(String, String)>);

/// Keeps every record with its key-values.
struct Capture(Mutex<Vec<Line>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        struct Collect(Vec<(String, String)>);
        impl<'kvs> log::kv::VisitSource<'kvs> for Collect {
            fn visit_pair(
                &mut self,
                key: log::kv::Key<'kvs>,
                value: log::kv::Value<'kvs>,
            ) -> Result<(), log::kv::Error> {
                self.0.push((key.to_string(), value.to_string()));
                Ok(())
            }
        }
        let mut kvs = Collect(Vec::new());
        let _ = record.key_values().visit(&mut kvs);
        self.0.lock().push((record.args().to_string(), kvs.0));
    }
    fn flush(&self) {}
}

static LOGS: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn internal_spans_reach_a_tcp_collector_with_resource_and_static_tags() {
    struct Forward;
    impl log::Log for Forward {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            LOGS.enabled(m)
        }
        fn log(&self, r: &log::Record<'_>) {
            LOGS.log(r)
        }
        fn flush(&self) {}
    }
    log::set_boxed_logger(Box::new(TraceLogger::new(Forward))).unwrap();
    log::set_max_level(log::LevelFilter::Info);

    let sink = OtlpSink::start_tcp();
    let yaml = format!(
        "tracing:\n  service_name: checkout\n  service_version: 2.0.1\n  resource_attributes:\n    \
         deployment.environment.name: test\n  static_tags:\n    region: eu-west\n  \
         flush_interval_ms: 20\n  output:\n    otlp_http:\n      endpoint: http://{}\n",
        sink.addr().unwrap()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    let (trace_id, span_id) = {
        let _root = tracing::start_trace("GET /cart", StartTraceOptions::default());
        foundations::add_span_tags!("span.kind" => "server", "http.response.status_code" => 200);
        let _child = tracing::span("load_cart");
        log::info!("loading cart");
        // A link, a recorded error and a typed kind travel to the collector too.
        let linked: tracing::TraceparentContext =
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap();
        tracing::add_link(linked, None, [tracing::Tag::new("reason", "batched")]);
        tracing::set_span_kind(tracing::SpanKind::Client);
        tracing::record_error(&std::io::Error::other("cache miss"));
        (tracing::trace_id().unwrap(), tracing::span_id().unwrap())
    };
    log::info!("outside any span");

    // An unsampled inbound trace: not recorded, not sent, propagated as unsampled.
    {
        let unsampled = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let options = StartTraceOptions::default().continue_from_headers(Some(unsampled), None);
        let _root = tracing::start_trace("unsampled", options);
        let _child = tracing::span("unsampled_child");
        assert!(
            tracing::w3c_traceparent()
                .unwrap()
                .to_string()
                .ends_with("-00")
        );
    }

    // Subprocess propagation: a real child process sees the variables; a trace continued
    // from them keeps the trace id.
    let child_traceparent = {
        let _root = tracing::start_trace("spawn_worker", StartTraceOptions::default());
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg("printf %s \"$TRACEPARENT\"")
            .envs(subprocess_env())
            .output()
            .expect("run sh");
        let seen = String::from_utf8(output.stdout).unwrap();
        assert_eq!(seen, tracing::w3c_traceparent().unwrap().to_string());
        let pairs = subprocess_env();
        let options = propagation::start_options_from(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        });
        let expected_trace = tracing::trace_id();
        drop(_root);
        let _continued = tracing::start_trace("continued_in_child", options);
        assert_eq!(tracing::trace_id(), expected_trace);
        seen
    };

    let report = driver.shutdown(Duration::from_secs(10));
    assert!(report.flushed);
    let stats = report.internal.unwrap();
    assert_eq!(stats.spans_exported, 4, "{stats:?}");
    assert_eq!(stats.dropped(), 0);
    assert_eq!(telemetry::internal_exporter_stats(), Some(stats));

    let accepted = sink.accepted_spans();
    let names: Vec<_> = accepted.iter().map(|(_, s)| s.name.clone()).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("unsampled")),
        "{names:?}"
    );
    for (request, span) in &accepted {
        assert_eq!(request.path, "/v1/traces");
        assert!(
            request.header("cf-trace-config").is_none(),
            "no routing header internally"
        );
        let resource = request.body.resource_spans[0].resource.as_ref().unwrap();
        let attr = |key: &str| {
            resource
                .attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.clone()?.value)
        };
        assert_eq!(
            attr("service.name"),
            Some(Value::StringValue("checkout".into()))
        );
        assert_eq!(
            attr("service.version"),
            Some(Value::StringValue("2.0.1".into()))
        );
        assert_eq!(
            attr("deployment.environment.name"),
            Some(Value::StringValue("test".into()))
        );
        let region = span
            .attributes
            .iter()
            .find(|kv| kv.key == "region")
            .and_then(|kv| kv.value.clone()?.value);
        assert_eq!(
            region,
            Some(Value::StringValue("eu-west".into())),
            "{}",
            span.name
        );
    }
    let child = accepted
        .iter()
        .find(|(_, s)| s.name == "load_cart")
        .unwrap();
    assert_eq!(hex(&child.1.trace_id), trace_id.to_string());
    assert_eq!(hex(&child.1.span_id), span_id.to_string());
    assert_eq!(child.1.kind, 3, "client");
    let link = &child.1.links[0];
    assert_eq!(hex(&link.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&link.span_id), "b7ad6b7169203331");
    assert_eq!(link.attributes[0].key, "reason");
    assert_eq!(child.1.dropped_links_count, 0);
    let status = child.1.status.as_ref().unwrap();
    assert_eq!((status.code, status.message.as_str()), (2, "cache miss"));
    assert_eq!(child.1.events[0].name, "exception");

    let logs = LOGS.0.lock();
    let line = logs
        .iter()
        .find(|(message, _)| message == "loading cart")
        .unwrap();
    assert!(
        line.1.contains(&("trace_id".into(), trace_id.to_string())),
        "{line:?}"
    );
    assert!(
        line.1.contains(&("span_id".into(), span_id.to_string())),
        "{line:?}"
    );
    let outside = logs
        .iter()
        .find(|(message, _)| message == "outside any span")
        .unwrap();
    assert!(outside.1.is_empty());
    assert!(child_traceparent.starts_with("00-"));
}
