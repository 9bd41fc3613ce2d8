//! Bridges from the Rust ecosystem's instrumentation into the pipelines (features
//! `tracing-bridge` and `tower`).
//!
//! # The `tracing` bridge (feature `tracing-bridge`)
//!
//! [`TracingBridge`] is a `tracing_subscriber::Layer`: with it installed, spans and events
//! of the `tracing` crate (from hyper, tower, sqlx, reqwest, tonic, or the service's own
//! `#[tracing::instrument]` functions) become spans and log entries of the **internal
//! pipeline**, sampled and exported like any other internal span.
//!
//! - **Parents.** A `tracing` span with an explicit parent that was bridged is its child.
//!   Otherwise it is a child of the internal span current on the thread (a bridged span
//!   entered there, or a span of [`telemetry::tracing`](crate::telemetry::tracing) opened
//!   inside one), else a new root, sampled by the internal sampler. A span opened with
//!   `parent: None` is always a new root. Entering a bridged span makes its internal span
//!   current, so foundations spans opened inside it are its children, also across
//!   `.await` (`tracing::Instrument`, `#[instrument]` on `async fn`) and in tasks spawned
//!   with [`telemetry::spawn`](crate::telemetry::spawn).
//! - **Fields.** Span fields become typed tags (integers, floats, booleans; other values as
//!   text), also when recorded later with `Span::record`. `otel.name` renames the span,
//!   `otel.kind` sets its kind (`server`, `client`, `producer`, `consumer`, `internal`),
//!   `otel.status_code` (`ok`/`error`) and `otel.status_message` its status, as with
//!   `tracing-opentelemetry`; an `error` field sets status Error with its value as the
//!   message. A string value that keeps coming back on a thread (`kind = "db"`) is
//!   interned, in a table bounded for the life of the process (4096 values of at most 128
//!   bytes), so that the span keeps it inline and allocates nothing for it; other values
//!   are copied per span.
//! - **Events** become log entries of the span they belong to, with fields `event` (the
//!   message, which names the OTLP event), `level`, `target`, `message` and the event's own
//!   fields as text. An event at ERROR level, or with an `error` field, sets status Error.
//! - **Unsampled and off.** An unsampled span records nothing; with no pipeline started,
//!   the layer keeps nothing per span.
//!
//! ## Customer data stays explicit
//!
//! The **user pipeline is never fed by `tracing`**, whatever a library emits. A `tracing`
//! span becomes a user span too only when it opts in with the field
//! `foundations.user = true` *and* a user trace is active where it opens (see
//! [`telemetry::user_tracing`](crate::telemetry::user_tracing)): it then also opens a user
//! span, child of the current user span, with the same name and fields, and its events are
//! logged to both. Opting in outside a user trace records only the internal span.
//!
//! ## Keeping libraries' internals out
//!
//! Per-layer filters of `tracing_subscriber` choose what is bridged, by level and target:
//! `TracingBridge::new().with_filter(targets)` with a `tracing_subscriber::filter::Targets`
//! (see [`TracingBridge`]). A span filtered out is not bridged, and spans opened inside it
//! hang from what is current. (A filter that disables a callsite for every layer makes its
//! spans `Span::none()`: `tracing` then treats `parent: &that_span` as `parent: None`, and
//! the bridge starts a root, as other `tracing` layers do.)
//!
//! # tower middleware (feature `tower`)
//!
//! [`TraceServerLayer`] gives each inbound HTTP request its server span (continuing the
//! inbound W3C trace context) and, when a closure says so, a user trace; the handler, its
//! response future and its response body ([`TracedBody`]) run with the request's context
//! current, and the spans end when the body is complete. [`TraceClientLayer`] gives each
//! outbound request a client span and sends its `traceparent`/`tracestate`. Kind and
//! status are recorded through the typed `SpanKind` and `SpanStatus`, as the public API
//! records them; so are the `tracing` bridge's `otel.kind`, `otel.status_code` and `error`.
//!
//! This module owns the translation of other libraries' calls into spans. It records
//! through the core like the public API does, and never touches export or settings.

#[cfg(feature = "tracing-bridge")]
mod fields;
#[cfg(feature = "tower")]
mod http_attrs;
#[cfg(any(feature = "tower", feature = "tracing-bridge"))]
mod interned;
#[cfg(feature = "tower")]
mod request_context;
#[cfg(feature = "tower")]
mod tower_client;
#[cfg(feature = "tower")]
mod tower_server;
#[cfg(feature = "tower")]
mod traced_body;
#[cfg(feature = "tracing-bridge")]
mod tracing_layer;

#[cfg(feature = "tower")]
pub use tower_client::{TraceClient, TraceClientLayer};
#[cfg(all(feature = "tower", feature = "user-tracing"))]
pub use tower_server::UserTraceFn;
#[cfg(feature = "tower")]
pub use tower_server::{
    NoRoute, NoUserTrace, RouteOf, TraceServer, TraceServerLayer, UserTraceGuard, UserTraceOf,
};
#[cfg(feature = "tower")]
pub use traced_body::{TracedBody, TracedResponse};
#[cfg(feature = "tracing-bridge")]
pub use tracing_layer::TracingBridge;
