//! The public span API, one module per pipeline, and the one place they meet:
//!
//! - [`internal`]: `telemetry::tracing`, the service's own spans; `internal_macros`: its
//!   tag, log, error and finish-callback macros.
//! - [`user`]: `telemetry::user_tracing`, spans for customers (feature `user-tracing`).
//! - [`dual`]: a user span beside an internal one, and a scope's hand-over to a context:
//!   the only API code that touches both pipelines' stacks.
//! - [`macros`]: what the tag, log and finish-callback macros expand to.
//! - [`live`]: `tracing::live_traces`, the in-flight traces, read from the core's registry.
//!
//! Everything here is a thin layer over the core: it decides *which* span a call opens or
//! reads, the core records it. Nothing here knows how spans are exported.

pub(crate) mod dual;
pub mod internal;
mod internal_macros;
pub(crate) mod live;
#[doc(hidden)]
pub mod macros;
#[cfg(feature = "user-tracing")]
pub mod user;
