//! `foundations`: a tracing framework that runs two span pipelines side by side.
//!
//! - The **internal pipeline** ([`telemetry::tracing`]) records the service's own spans,
//!   sampled, for the operator's collector.
//! - [`telemetry::TelemetryContext`] carries the current spans across `.await`, tasks and
//!   threads.
//!
//! ```
//! use foundations::telemetry::TelemetryContext;
//! use foundations::telemetry::tracing::{self, StartTraceOptions};
//!
//! let ctx = TelemetryContext::test();
//! ctx.scope_and(|| {
//!     let _root = tracing::start_trace("request", StartTraceOptions::default());
//!     let _child = tracing::span("db_query");
//! });
//! assert_eq!(ctx.traces(Default::default())[0].children[0].name, "db_query");
//! ```
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod telemetry;

/// The code blocks of README.md, compiled and run as doctests so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
