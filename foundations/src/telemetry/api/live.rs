//! In-flight inspection of the internal pipeline: [`live_traces`] lists the traces this
//! process is in the middle of, for an operator to see what a stuck service is doing (the
//! `http-service` example serves it at `GET /debug/traces`).
//!
//! This module is the public face of the core's live registry; it reads the registry and
//! switches it on or off, and never touches a span.

pub use crate::telemetry::core::registry::{LiveTrace, OpenSpan};

use crate::telemetry::core::registry;

/// Every open *tracked* root of the internal pipeline, oldest first: name, ids, start time,
/// time open so far and tags; with its open recorded descendants (names, ids, start times)
/// when [descendant tracking](set_live_descendants_enabled) was on as the root started.
///
/// A root is tracked when it is recorded (sampled): [`start_trace`](crate::telemetry::tracing::start_trace),
/// a [`span`](crate::telemetry::tracing::span) that starts a trace, a forked trace, the `tracing` bridge's and
/// the tower server layer's roots. Unsampled roots are not listed (they record nothing and
/// cost nothing here); user spans never are, even a `dual_span` or a user span opened
/// inside an internal one: the user pipeline has no tracked constructor. A root leaves the
/// list when it finishes; descendants whose root finished first are not listed.
///
/// What it costs: a recorded root takes a slot of its thread's own table and writes its
/// identity there with plain stores, no lock and no atomic read-modify-write (about 100
/// instructions with leaving it; an owned name is copied once); tags set on it are copied
/// into the slot under the slot's own lock until it is shared (made a context, the tower
/// server layer's and the bridge's roots), after which a snapshot reads them from the span.
/// Unsampled spans cost nothing, and so do descendants while descendant tracking is off
/// (the default); with it on, each recorded descendant registers and leaves like a root
/// (about 150 instructions, +10% on a recorded span), without its tags (that would cost
/// every tagged span a lock). A snapshot never makes a span wait: it copies each slot
/// and keeps the copy only if the slot did not change meanwhile. It reads a shared root's
/// tags through a handle of its own, so a shared root whose last other handle drops during
/// that read finishes when the read ends, on the snapshot's thread (microseconds later). An
/// operator chasing a stuck service turns it on, and new traces show where they are.
/// [`set_live_traces_enabled`] turns registration off altogether.
///
/// # Examples
///
/// ```
/// use foundations::add_span_tags;
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// tracing::set_live_descendants_enabled(true);
/// let _root = tracing::start_trace("GET /users", StartTraceOptions::default());
/// add_span_tags!("http.route" => "/users");
/// let _child = tracing::span("load_users");
///
/// let trace_id = tracing::trace_id().unwrap();
/// let live = tracing::live_traces();
/// let mine = live.iter().find(|trace| trace.root.trace_id == trace_id).unwrap();
/// assert_eq!(mine.root.name, "GET /users");
/// assert_eq!(mine.root.tags[0].0, "http.route");
/// assert_eq!(mine.descendants[0].name, "load_users");
/// ```
pub fn live_traces() -> Vec<LiveTrace> {
    registry::snapshot()
}

/// Turns the live registry on (the default) or off for roots started from now on; roots
/// already registered stay listed until they finish.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing;
///
/// tracing::set_live_traces_enabled(true); // the default
/// assert!(tracing::live_traces_enabled());
/// ```
pub fn set_live_traces_enabled(enabled: bool) {
    registry::set_enabled(enabled);
}

/// Whether roots started now are registered for [`live_traces`].
pub fn live_traces_enabled() -> bool {
    registry::is_enabled()
}

/// Turns tracking of recorded descendants on or off (off by default) for roots started from
/// now on: with it on, [`live_traces`] lists each tracked root's open recorded descendants,
/// at the cost of about 150 instructions per recorded descendant (see [`live_traces`]).
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing;
///
/// tracing::set_live_descendants_enabled(true);
/// assert!(tracing::live_descendants_enabled());
/// ```
pub fn set_live_descendants_enabled(enabled: bool) {
    registry::set_descendants_enabled(enabled);
}

/// Whether roots started now track their recorded descendants for [`live_traces`].
pub fn live_descendants_enabled() -> bool {
    registry::descendants_enabled()
}
