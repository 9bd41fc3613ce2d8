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

#[doc(hidden)]
pub mod macro_support;

/// Wraps a function in a span of the internal pipeline and, with `user = true`, in a
/// parallel user span. The full reference follows the example.
///
/// # Example: `user = true`
///
/// With the `user-tracing` feature, `user = true` opens a user span of the same name under
/// the current user span, next to the internal one:
///
/// ```
/// # #[cfg(all(feature = "testing", feature = "user-tracing"))]
/// # {
/// use foundations::span_fn;
/// use foundations::telemetry::TelemetryContext;
/// use foundations::telemetry::user_tracing::{self, RoutingMetadata};
///
/// #[derive(Debug)]
/// struct Customer(u32);
///
/// impl RoutingMetadata for Customer {
///     fn group_key(&self) -> String { self.0.to_string() }
///     fn encode(&self) -> String { format!("customer={}", self.0) }
/// }
///
/// #[span_fn("resolve", user = true)]
/// fn resolve(host: &str) -> usize {
///     host.len()
/// }
///
/// let ctx = TelemetryContext::test();
/// ctx.scope_and(|| {
///     let _user = user_tracing::start_user_trace("request", Customer(7), None);
///     resolve("example.com");
/// });
/// assert_eq!(ctx.traces(Default::default())[0].name, "resolve");
/// let user = &ctx.user_traces(Default::default())[0];
/// assert_eq!(user.children[0].name, "resolve");
/// assert_eq!(user.children[0].routing.as_deref(), Some("customer=7"));
///
/// // Without a user trace only the internal span is recorded.
/// ctx.scope_and(|| resolve("example.org"));
/// assert_eq!(ctx.traces(Default::default()).len(), 2);
/// assert_eq!(ctx.user_traces(Default::default()).len(), 1);
/// # }
/// ```
///
/// # Reference
///
#[doc(inline)]
pub use foundations_macros::span_fn;

#[doc(inline)]
pub use foundations_macros::with_test_telemetry;

/// The code blocks of README.md, compiled and run as doctests so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
