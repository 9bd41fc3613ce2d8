//! Trace context across boundaries: the W3C `traceparent` and `tracestate` headers, the ids
//! they carry, and the environment variables that hand a trace to a subprocess.
//!
//! - `ids`, `traceparent`, `tracestate`: the W3C value types and their grammar. They import
//!   nothing else of this crate; the core and the API build spans from them. Their public
//!   path is [`telemetry::tracing`](crate::telemetry::tracing).
//! - This module's own public items: the subprocess convention (`TRACEPARENT` and
//!   `TRACESTATE` variables), [`subprocess_env`] and [`start_trace_from_env`].

mod env;
pub(crate) mod ids;
pub(crate) mod traceparent;
pub(crate) mod tracestate;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod traceparent_tests;
#[cfg(test)]
mod tracestate_tests;

pub use env::{
    TRACEPARENT_ENV, TRACESTATE_ENV, start_options_from, start_trace_from_env, subprocess_env,
};
