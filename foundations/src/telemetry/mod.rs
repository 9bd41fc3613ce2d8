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
//! - [`log_correlation`]: trace and span ids on log lines; [`propagation`]: traces across
//!   subprocesses.
//! - [`settings`] and [`init`]: the YAML settings block, and the start of both pipelines
//!   with their exporters ([`TelemetryDriver`]).
//! - `export` (private): batches, encodes (OTLP) and sends finished spans; it reads finished
//!   records and settings only ([`ExporterStats`] counts what it did).
//!
//! - `bridge` (features `tracing-bridge`, `tower`): `tracing` spans and events recorded as
//!   internal spans; tower layers tracing inbound and outbound HTTP requests.
//!
//! The pipelines never mix: each has its own harness, scope stack, queue and exporter.

mod api;
#[cfg(any(feature = "tracing-bridge", feature = "tower"))]
pub mod bridge;
mod context;
mod core;
mod export;
mod init;
pub mod log_correlation;
pub mod propagation;
pub mod settings;
#[cfg(feature = "testing")]
pub mod testing;

#[doc(inline)]
pub use api::internal as tracing;
#[cfg(feature = "user-tracing")]
#[doc(inline)]
pub use api::user as user_tracing;

pub use context::{TelemetryContext, TelemetryScope, WithTelemetryContext, spawn, spawn_local};
pub use core::limits::SpanLimits;
pub use export::ExporterStats;
#[cfg(feature = "user-tracing")]
pub use init::user_exporter_stats;
pub use init::{
    FlushCounts, FlushReport, InitError, ShutdownReport, TelemetryDriver, flush, init,
    internal_exporter_stats,
};
#[cfg(feature = "testing")]
pub use testing::{TestLog, TestSpan, TestTelemetryContext, TestTraceOptions};
