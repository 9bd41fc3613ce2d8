//! Span identity: [`SpanState`], what every span of both pipelines carries (ids, flags,
//! tracestate, routing), and [`ParentSpan`], what a span knows of its parent.
//!
//! This module owns identity and how it passes from parent to child (a new span id, the
//! rest inherited, routing included). It must not know whether a span is recorded, which
//! span is current, or where finished spans go.

use super::routing::Routing;
use crate::telemetry::propagation::ids::{SpanId, TraceFlags, TraceId};
use crate::telemetry::propagation::traceparent::TraceparentContext;
use crate::telemetry::propagation::tracestate::TraceState;
use cf_rustracing::span::{RoutingMetadata, SpanContext};
use std::sync::Arc;

/// A span of either pipeline, as `cf_rustracing` models it.
pub type Span = cf_rustracing::span::Span<SpanState>;

/// A finished span as `cf_rustracing` hands it over, before it becomes a
/// [`FinishedSpan`](super::FinishedSpan) record.
pub(crate) type RawFinishedSpan = cf_rustracing::span::FinishedSpan<SpanState>;

/// The identity a span carries: what is needed to refer to it across process boundaries.
///
/// Every span of both pipelines carries one. Spans that another process created (an inbound
/// `traceparent`) appear as a parent reference whose state [`is_remote`](Self::is_remote).
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("request", StartTraceOptions::default());
/// let traceparent = tracing::w3c_traceparent().expect("a trace is active");
/// assert_eq!(Some(traceparent.trace_id), tracing::trace_id());
/// ```
#[derive(Clone, Debug)]
pub struct SpanState {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
    trace_state: Option<TraceState>,
    remote: bool,
    /// Where the spans of this trace are exported (user pipeline). Set on the root, copied
    /// into every child's state: descendants inherit it wherever they run.
    routing: Option<Arc<Routing>>,
}

/// Equal identity: ids, flags, tracestate, remoteness, and the same routing (the same
/// resolved routing, or routings that encoded to the same header value).
impl PartialEq for SpanState {
    fn eq(&self, other: &Self) -> bool {
        self.trace_id == other.trace_id
            && self.span_id == other.span_id
            && self.flags == other.flags
            && self.trace_state == other.trace_state
            && self.remote == other.remote
            && match (&self.routing, &other.routing) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.header() == b.header(),
                _ => false,
            }
    }
}

impl Eq for SpanState {}

impl SpanState {
    /// The id of the trace this span belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This span's own id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The W3C trace flags of this span's trace (sampled, random trace id).
    pub fn flags(&self) -> TraceFlags {
        self.flags
    }

    /// The W3C `tracestate` carried by this trace, if any.
    pub fn trace_state(&self) -> Option<&TraceState> {
        self.trace_state.as_ref()
    }

    /// `true` when this state describes a span of another process, received in a
    /// `traceparent` header.
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// The routing of this span's trace (user pipeline), if any.
    pub fn routing(&self) -> Option<&dyn RoutingMetadata> {
        self.routing.as_deref().map(Routing::metadata)
    }

    /// The `traceparent` a downstream service receives to continue the trace under this span.
    pub fn traceparent(&self) -> TraceparentContext {
        TraceparentContext::new(self.trace_id, self.span_id, self.flags.outbound())
    }

    /// A new trace: random ids and the W3C Level 2 random-trace-id flag.
    #[inline]
    pub(crate) fn new_root(sampled: bool) -> Self {
        let (trace_id, span_id) = TraceId::random_with_root_span_id();
        Self {
            trace_id,
            span_id,
            flags: TraceFlags::RANDOM.with_sampled(sampled),
            trace_state: None,
            remote: false,
            routing: None,
        }
    }

    /// The state of a span in another process, from its `traceparent` and `tracestate`.
    pub(crate) fn remote(inbound: &TraceparentContext, trace_state: Option<TraceState>) -> Self {
        Self {
            trace_id: inbound.trace_id,
            span_id: inbound.parent_id,
            // Bits other than sampled and random have no meaning to us and must not be
            // forwarded.
            flags: inbound.flags.outbound(),
            trace_state: trace_state.filter(|state| !state.is_empty()),
            remote: true,
            routing: None,
        }
    }

    /// The state of a new local child: same trace, flags and tracestate, a fresh span id.
    #[inline]
    pub(crate) fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: SpanId::random(),
            flags: self.flags,
            trace_state: self.trace_state.clone(),
            remote: false,
            routing: self.routing.clone(),
        }
    }

    /// The same identity under another span id: a joined unsampled child's (see the stack
    /// module), whose only own part is its span id.
    pub(crate) fn with_span_id(&self, span_id: SpanId) -> Self {
        Self {
            span_id,
            remote: false,
            ..self.clone()
        }
    }

    /// Attaches routing; spans started from this state and their descendants inherit it.
    pub(crate) fn with_routing(mut self, routing: Option<Arc<Routing>>) -> Self {
        self.routing = routing;
        self
    }

    pub(crate) fn with_sampled(mut self, sampled: bool) -> Self {
        self.flags = self.flags.with_sampled(sampled);
        self
    }

    /// A `cf_rustracing` context that lets a span reference this state as its parent.
    pub(crate) fn into_parent_context(self) -> SpanContext<SpanState> {
        SpanContext::new(self, Vec::new())
    }

    /// The state's parts, for a record that keeps them apart (tracestate and routing moved
    /// out, not cloned).
    pub(crate) fn into_parts(self) -> StateParts {
        StateParts {
            trace_id: self.trace_id,
            span_id: self.span_id,
            flags: self.flags,
            trace_state: self.trace_state,
            routing: self.routing,
        }
    }

    /// The state of a local span from its parts.
    pub(crate) fn from_parts(parts: StateParts) -> Self {
        Self {
            trace_id: parts.trace_id,
            span_id: parts.span_id,
            flags: parts.flags,
            trace_state: parts.trace_state,
            remote: false,
            routing: parts.routing,
        }
    }

    /// Takes the routing out, if any.
    pub(crate) fn take_routing(&mut self) -> Option<Arc<Routing>> {
        self.routing.take()
    }

    /// The state's parts, moved out: the ids stay behind, tracestate and routing are taken
    /// (`None` is left). How a finishing span's record gets them, without cloning them and
    /// with no whole state built between.
    #[inline]
    pub(crate) fn take_parts(&mut self) -> StateParts {
        StateParts {
            trace_id: self.trace_id,
            span_id: self.span_id,
            flags: self.flags,
            trace_state: self.trace_state.take(),
            routing: self.routing.take(),
        }
    }
}

/// A local span's state taken apart ([`SpanState::into_parts`], [`SpanState::take_parts`]).
pub(crate) struct StateParts {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) flags: TraceFlags,
    pub(crate) trace_state: Option<TraceState>,
    pub(crate) routing: Option<Arc<Routing>>,
}

/// The parent a span names: its id, and whether it is a span of another process (an inbound
/// `traceparent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParentSpan {
    /// The parent's span id.
    pub span_id: SpanId,
    /// `true` when the parent is a span of another process (an inbound `traceparent`).
    pub is_remote: bool,
}

impl ParentSpan {
    #[inline]
    pub(crate) fn of(parent: &SpanState) -> Self {
        Self {
            span_id: parent.span_id,
            is_remote: parent.remote,
        }
    }

    /// The parent's state, given its child's: all a `cf_rustracing` parent reference needs
    /// (the child shares everything else with its parent).
    pub(crate) fn state(self, child: &SpanState) -> SpanState {
        SpanState {
            span_id: self.span_id,
            remote: self.is_remote,
            ..child.clone()
        }
    }
}
