//! Trace propagation to subprocesses, through the `TRACEPARENT` and `TRACESTATE`
//! environment variables (the convention OpenTelemetry uses for processes).
//!
//! The parent passes [`subprocess_env`] to the child's environment; the child starts its
//! root with [`start_trace_from_env`] and continues the trace. This module only translates
//! between the current span and environment pairs.

use crate::telemetry::api::internal::{self as tracing, SpanScope, StartTraceOptions};
use std::borrow::Cow;

/// The variable that carries the W3C `traceparent`.
pub const TRACEPARENT_ENV: &str = "TRACEPARENT";
/// The variable that carries the W3C `tracestate`.
pub const TRACESTATE_ENV: &str = "TRACESTATE";

/// Environment pairs that let a child process continue the current internal trace under
/// the current span: `TRACEPARENT`, and `TRACESTATE` when the trace carries one. Empty
/// without a current span.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::propagation::subprocess_env;
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("build", StartTraceOptions::default());
/// let status = std::process::Command::new("true").envs(subprocess_env()).status();
/// # drop(status);
/// ```
pub fn subprocess_env() -> Vec<(&'static str, String)> {
    let mut pairs = Vec::with_capacity(2);
    if let Some(traceparent) = tracing::w3c_traceparent() {
        pairs.push((TRACEPARENT_ENV, traceparent.to_header_value()));
        if let Some(tracestate) = tracing::w3c_tracestate() {
            pairs.push((TRACESTATE_ENV, tracestate.to_header_value()));
        }
    }
    pairs
}

/// Options that continue the trace named by `TRACEPARENT` / `TRACESTATE` as `env` returns
/// them (`|name| std::env::var(name).ok()` for this process's environment). Missing or
/// malformed values start a fresh trace, as for HTTP headers.
pub fn start_options_from(env: impl Fn(&str) -> Option<String>) -> StartTraceOptions {
    let traceparent = env(TRACEPARENT_ENV);
    let tracestate = env(TRACESTATE_ENV);
    StartTraceOptions::default().continue_from_headers(
        traceparent.as_deref().map(str::as_bytes),
        tracestate.as_deref().map(str::as_bytes),
    )
}

/// Starts this process's root span, continuing the trace of the parent process that set
/// `TRACEPARENT` (and `TRACESTATE`) in its environment.
pub fn start_trace_from_env(name: impl Into<Cow<'static, str>>) -> SpanScope {
    tracing::start_trace(name, start_options_from(|name| std::env::var(name).ok()))
}
