//! The service's operator endpoint `GET /debug/traces`: the traces the process is in the
//! middle of (`telemetry::tracing::live_traces`), as JSON.
//!
//! It is served outside the tracing layer, so looking does not add a trace of its own. This
//! module owns the JSON shape only; what is listed is `foundations`'.

use bytes::Bytes;
use foundations::telemetry::tracing::{self, LiveTrace, OpenSpan, TagValue};
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{Map, Value, json};
use std::time::UNIX_EPOCH;

/// `GET /debug/traces`: [`live_traces_json`] of what is in flight now.
pub async fn debug_traces() -> Response<Full<Bytes>> {
    let body = live_traces_json(&tracing::live_traces()).to_string();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// The traces as a JSON document: `{"traces": [{ root, descendants: [..] }]}`, each span
/// with `name`, hex `trace_id` / `span_id` / `parent_span_id` (null for none),
/// `start_time_unix_nano`, `elapsed_ms` and `tags` (an object).
///
/// ```
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
/// use foundations_examples::debug::live_traces_json;
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("GET /users/{id}", StartTraceOptions::default());
/// let trace_id = tracing::trace_id().unwrap().to_string();
/// let json = live_traces_json(&tracing::live_traces());
/// let mine = json["traces"]
///     .as_array()
///     .unwrap()
///     .iter()
///     .find(|t| t["root"]["trace_id"] == trace_id.as_str())
///     .unwrap();
/// assert_eq!(mine["root"]["name"], "GET /users/{id}");
/// ```
pub fn live_traces_json(traces: &[LiveTrace]) -> Value {
    let traces: Vec<Value> = traces
        .iter()
        .map(|trace| {
            json!({
                "root": span_json(&trace.root),
                "descendants": trace.descendants.iter().map(span_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "traces": traces })
}

fn span_json(span: &OpenSpan) -> Value {
    let tags: Map<String, Value> = span
        .tags
        .iter()
        .map(|(name, value)| {
            let value = match value {
                TagValue::String(s) => Value::from(s.as_ref()),
                TagValue::Boolean(b) => Value::from(*b),
                TagValue::Integer(i) => Value::from(*i),
                TagValue::Float(f) => Value::from(*f),
            };
            (name.clone(), value)
        })
        .collect();
    let start = span
        .start_time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    json!({
        "name": span.name,
        "trace_id": span.trace_id.to_string(),
        "span_id": span.span_id.to_string(),
        "parent_span_id": span.parent_span_id.map(|id| id.to_string()),
        "start_time_unix_nano": start,
        "elapsed_ms": span.elapsed.as_secs_f64() * 1000.0,
        "tags": tags,
    })
}
