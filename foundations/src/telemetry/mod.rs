//! Telemetry: two span pipelines, and the context that carries them.
//!
//! - [`tracing`]: the internal pipeline, the service's own spans, sampled and exported to
//!   the operator's collector.
//! - [`TelemetryContext`]: the current spans captured as a value, to carry across `.await`,
//!   tasks and threads.
//! - `user_tracing` (feature `user-tracing`): the user pipeline, spans the service emits for
//!   its customers, routed per customer.
//! - `testing` (feature `testing`): in-memory sinks that show recorded spans as trees.
//!
//! The pipelines never mix: each has its own harness, scope stack and queue.

mod context;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tracing;
#[cfg(feature = "user-tracing")]
pub mod user_tracing;

pub use context::{TelemetryContext, TelemetryScope, WithTelemetryContext, spawn};
#[cfg(feature = "testing")]
pub use testing::{TestLog, TestSpan, TestTelemetryContext, TestTraceOptions};
