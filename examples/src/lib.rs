//! Runnable examples live in `examples/examples/`; this library holds what they share.
//!
//! - [`demo`]: the main demo's script, shared by the `demo` example and its test.
//! - [`service`]: the demo's HTTP service and backend, instrumented with both pipelines.
//! - [`debug`]: the service's `GET /debug/traces`, the traces in flight as JSON.
//! - [`trace_sink`]: an OTLP/HTTP receiver on a Unix socket that collects the spans the user
//!   pipeline exports and prints each trace as a waterfall (and, optionally, JSON lines). The
//!   `trace-sink` example is its command-line front end.

pub mod debug;
pub mod demo;
pub mod service;
pub mod trace_sink;
