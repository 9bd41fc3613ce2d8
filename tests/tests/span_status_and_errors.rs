//! Span kind, status and recorded errors through the public API of both pipelines, as the
//! test harness shows them.

use foundations::telemetry::tracing::{self, SpanKind, SpanStatus, StartTraceOptions};
use foundations::telemetry::user_tracing;
use foundations::telemetry::{TelemetryContext, TestSpan};
use foundations::{add_span_tags, record_span_error, record_user_span_error};
use foundations_tests::Tenant;

/// An error with a source chain.
#[derive(Debug)]
struct Layered {
    message: String,
    source: Option<Box<Layered>>,
}

impl Layered {
    fn chain(messages: &[&str]) -> Self {
        let mut error = None;
        for message in messages.iter().rev() {
            error = Some(Layered {
                message: (*message).to_owned(),
                source: error.map(Box::new),
            });
        }
        error.expect("at least one message")
    }
}

impl std::fmt::Display for Layered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Layered {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

fn field<'a>(span: &'a TestSpan, name: &str) -> Option<&'a str> {
    span.logs
        .iter()
        .flat_map(|log| &log.fields)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[test]
fn record_error_adds_an_exception_event_and_sets_status_error() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("request", StartTraceOptions::default());
        tracing::set_span_kind(SpanKind::Server);
        let error = Layered::chain(&["request failed", "upstream timed out", "connect"]);
        // Through a trait object, as errors often travel.
        let dyn_error: &dyn std::error::Error = &error;
        tracing::record_error(dyn_error);
    });
    let root = &ctx.traces(Default::default())[0];
    assert_eq!(root.kind, SpanKind::Server);
    let message = "request failed: upstream timed out: connect";
    assert_eq!(root.status, SpanStatus::error(message));
    assert_eq!(field(root, "event"), Some("exception"));
    assert_eq!(field(root, "exception.message"), Some(message));
    assert!(field(root, "exception.type").is_some());
}

#[test]
fn a_long_source_chain_is_bounded() {
    let ctx = TelemetryContext::test();
    let long = "é".repeat(1_000); // 2,000 bytes each
    let messages = [long.as_str(); 10];
    ctx.scope_and(|| {
        let _root = tracing::start_trace("request", StartTraceOptions::default());
        record_span_error!(Layered::chain(&messages));
    });
    let root = &ctx.traces(Default::default())[0];
    let message = field(root, "exception.message").unwrap();
    assert!(message.len() <= tracing::MAX_EXCEPTION_MESSAGE_BYTES);
    assert!(message.len() > tracing::MAX_EXCEPTION_MESSAGE_BYTES - 4);
    assert!(message.starts_with(&long));
}

#[test]
fn the_error_macros_evaluate_nothing_without_a_recorded_span() {
    fn expensive() -> Layered {
        unreachable!("not evaluated without a recorded span")
    }
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        record_span_error!(expensive());
        record_user_span_error!(expensive());
        let _unsampled =
            tracing::start_trace("off", StartTraceOptions::default().force_sampling(false));
        record_span_error!(expensive());
        tracing::set_span_status(SpanStatus::error("ignored"));
    });
    assert!(ctx.traces(Default::default()).is_empty());
}

#[test]
fn tags_and_typed_status_are_one_mechanism_the_last_set_wins() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        add_span_tags!("span.kind" => "client", "error" => true, "error.message" => "tagged");
        {
            let _ok = tracing::span("ok");
            add_span_tags!("error" => true);
            tracing::set_span_status(SpanStatus::Ok);
        }
        {
            let _unset = tracing::span("unset");
            tracing::set_span_status(SpanStatus::error("typed"));
            tracing::set_span_status(SpanStatus::Unset);
        }
    });
    let root = &ctx.traces(Default::default())[0];
    assert_eq!(root.kind, SpanKind::Client);
    assert_eq!(root.status, SpanStatus::error("tagged"));
    assert_eq!(root.find("ok").unwrap().status, SpanStatus::Ok);
    assert_eq!(root.find("ok").unwrap().kind, SpanKind::Internal);
    assert_eq!(root.find("unset").unwrap().status, SpanStatus::Unset);
}

#[test]
fn user_spans_take_kind_status_and_errors_too() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = user_tracing::start_user_trace("request", Tenant::new("t"), None);
        user_tracing::set_user_span_kind(SpanKind::Server);
        {
            let _child = user_tracing::user_span("db");
            user_tracing::set_user_span_kind(SpanKind::Client);
            record_user_span_error!(Layered::chain(&["query failed"]));
        }
        user_tracing::set_user_span_status(SpanStatus::Ok);
        // The internal pipeline is untouched by user calls.
        assert!(tracing::span_id().is_none());
    });
    let root = &ctx.user_traces(Default::default())[0];
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(root.status, SpanStatus::Ok);
    let db = root.find("db").unwrap();
    assert_eq!(db.kind, SpanKind::Client);
    assert_eq!(db.status, SpanStatus::error("query failed"));
    assert_eq!(field(db, "event"), Some("exception"));
    assert!(ctx.traces(Default::default()).is_empty());
}
