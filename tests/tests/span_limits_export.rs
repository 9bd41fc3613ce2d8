//! Span limits on the wire, for both pipelines: a span given 10,000 tags exports 128 and
//! `dropped_attributes_count` 9,872; events and their fields past their limits are dropped
//! and counted in OTLP; each pipeline obeys its own `span_limits`.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::user_tracing;
use foundations::{add_span_log_fields, add_span_tags, add_user_span_tags};
use foundations_tests::{OtlpSink, Tenant};
use std::time::Duration;

#[test]
fn limits_are_applied_when_recording_and_counted_on_the_wire() {
    let internal_sink = OtlpSink::start();
    let user_sink = OtlpSink::start();
    let yaml = format!(
        "tracing:\n  flush_interval_ms: 20\n  output:\n    otlp_http:\n      endpoint: unix://{}\n\
         user_tracing:\n  socket_path: {}\n  flush_interval_ms: 20\n  span_limits:\n    \
         max_attributes: 4\n    max_attribute_value_length: 3\n",
        internal_sink.path().display(),
        user_sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    {
        let _root = tracing::start_trace("many_tags", StartTraceOptions::default());
        for i in 0..10_000 {
            add_span_tags!(format!("tag.{i}") => i);
        }
    }
    {
        let _root = tracing::start_trace("many_logs", StartTraceOptions::default());
        for i in 0..200 {
            add_span_log_fields!("event" => "step", "i" => i.to_string());
        }
        // One entry with 300 fields, on a child (whose events are below their limit).
        let _child = tracing::span("wide_log");
        let fields: [tracing::LogField; 300] =
            std::array::from_fn(|i| tracing::LogField::new(format!("f{i}"), "v"));
        tracing::__private::INTERNAL.log(fields);
    }
    {
        let _user = user_tracing::start_user_trace("user", Tenant::new("t"), None);
        add_user_span_tags!("a" => "long value", "b" => 2, "c" => 3, "d" => 4, "e" => 5, "f" => 6);
    }

    let report = driver.shutdown(Duration::from_secs(10));
    let (internal, user) = (report.internal.unwrap(), report.user.unwrap());
    assert_eq!(internal.spans_exported, 3, "{internal:?}");
    assert_eq!(
        internal.produced(),
        internal.spans_exported + internal.dropped()
    );
    assert_eq!(user.spans_exported, 1, "{user:?}");
    assert_eq!(user.produced(), user.spans_exported + user.dropped());

    let internal_spans: Vec<_> = internal_sink.accepted_spans();
    let find = |name: &str| {
        internal_spans
            .iter()
            .map(|(_, span)| span)
            .find(|span| span.name == name)
            .unwrap_or_else(|| panic!("{name} exported"))
            .clone()
    };
    let many_tags = find("many_tags");
    assert_eq!(many_tags.attributes.len(), 128);
    assert_eq!(many_tags.dropped_attributes_count, 9_872);
    assert_eq!(many_tags.attributes[0].key, "tag.0");
    assert_eq!(many_tags.attributes[127].key, "tag.127");

    let many_logs = find("many_logs");
    assert_eq!(many_logs.events.len(), 128);
    assert_eq!(many_logs.dropped_events_count, 72);
    let wide = find("wide_log");
    assert_eq!(wide.events.len(), 1);
    assert_eq!(wide.events[0].attributes.len(), 128);
    assert_eq!(wide.events[0].dropped_attributes_count, 172);
    assert_eq!(wide.dropped_events_count, 0);

    // The user pipeline's own limits: 4 attributes, values cut to 3 bytes.
    let (_, user_span) = &user_sink.accepted_spans()[0];
    assert_eq!(user_span.attributes.len(), 4);
    assert_eq!(user_span.dropped_attributes_count, 2);
    let a = user_span
        .attributes
        .iter()
        .find(|kv| kv.key == "a")
        .unwrap();
    assert_eq!(
        format!("{:?}", a.value.as_ref().unwrap().value.as_ref().unwrap()),
        "StringValue(\"lon\")"
    );
}
