//! Span identity and the shared handle to a live span.
//!
//! This module owns [`SpanState`], the state that every `cf_rustracing` span of both
//! pipelines carries (trace id, span id, flags, tracestate), and [`SharedSpan`], the handle
//! that scope stacks and [`TelemetryContext`](crate::telemetry::TelemetryContext)s hold.
//! It knows nothing about where spans go when they finish (that is the harness) nor which
//! span is current (that is the scope stack).

use super::w3c::{SpanId, TraceFlags, TraceId, TraceState, TraceparentContext};
use cf_rustracing::span::{FinishSpanCallback, RoutingMetadata, SpanContext, SpanHandle};
use parking_lot::Mutex;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

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
    routing: Option<Arc<dyn RoutingMetadata>>,
}

/// Equal identity: ids, flags, tracestate, remoteness, and the same routing value
/// (compared by its `group_key`).
impl PartialEq for SpanState {
    fn eq(&self, other: &Self) -> bool {
        self.trace_id == other.trace_id
            && self.span_id == other.span_id
            && self.flags == other.flags
            && self.trace_state == other.trace_state
            && self.remote == other.remote
            && match (&self.routing, &other.routing) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.group_key() == b.group_key(),
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
        self.routing.as_deref()
    }

    /// The `traceparent` a downstream service receives to continue the trace under this span.
    pub fn traceparent(&self) -> TraceparentContext {
        TraceparentContext::new(self.trace_id, self.span_id, self.flags.outbound())
    }

    /// A new trace: random ids and the W3C Level 2 random-trace-id flag.
    pub(crate) fn new_root(sampled: bool) -> Self {
        Self {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
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

    /// Attaches routing; spans started from this state and their descendants inherit it.
    pub(crate) fn with_routing(mut self, routing: Option<Arc<dyn RoutingMetadata>>) -> Self {
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
}

/// A span that is being recorded, shared by every scope and context that refers to it.
///
/// The span finishes (and is handed to its harness) when the last handle is dropped.
///
/// Opening a child needs the parent's consumer but not its mutable state, so
/// children are started from a `SpanHandle` cached on first use, without taking the
/// parent's lock. Only when a finish callback must be inherited (it lives inside the span)
/// does a child lock its parent.
pub(crate) struct RecordingSpan {
    /// A copy of the span's identity, so that reading ids never takes the lock.
    state: SpanState,
    span: Mutex<Span>,
    /// Created by the first child; later children start from it lock-free.
    handle: OnceLock<SpanHandle<SpanState>>,
    /// `true` once the span has (or inherited) a finish callback: children then take the
    /// locked path that inherits it.
    has_finish_callback: AtomicBool,
}

impl RecordingSpan {
    pub(crate) fn new(span: Span, has_finish_callback: bool) -> Option<Arc<Self>> {
        let state = span.context()?.state().clone();
        Some(Arc::new(Self {
            state,
            span: Mutex::new(span),
            handle: OnceLock::new(),
            has_finish_callback: AtomicBool::new(has_finish_callback),
        }))
    }

    /// Runs `f` on the span under its lock.
    ///
    /// Callers must not run application code inside `f`: build tags and log fields before
    /// calling this, so the lock is held only for the push itself.
    pub(crate) fn with_span<R>(&self, f: impl FnOnce(&mut Span) -> R) -> R {
        f(&mut self.span.lock())
    }

    /// Sets the finish callback, which children opened from now on inherit.
    pub(crate) fn set_finish_callback(&self, callback: FinishSpanCallback<SpanState>) {
        self.with_span(|span| span.set_finish_callback(callback));
        self.has_finish_callback.store(true, Ordering::Release);
    }

    fn start_child(&self, name: Cow<'static, str>) -> SharedSpan {
        let state = self.state.child();
        let has_finish_callback = self.has_finish_callback.load(Ordering::Acquire);
        let span = if has_finish_callback {
            // `Span::child` inherits the callback from inside the span.
            self.with_span(|parent| parent.child(name, |opts| opts.start_with_state(state.clone())))
        } else {
            let handle = self
                .handle
                .get_or_init(|| self.with_span(|span| span.handle()));
            handle.child(name, |opts| opts.start_with_state(state.clone()))
        };
        match RecordingSpan::new(span, has_finish_callback) {
            Some(recording) => SharedSpan::Recording(recording),
            None => SharedSpan::NonRecording(state.with_sampled(false)),
        }
    }
}

/// The handle to a live span that scope stacks and telemetry contexts hold.
#[derive(Clone)]
pub(crate) enum SharedSpan {
    /// A sampled span: tags and logs are recorded and it is exported when it finishes.
    Recording(Arc<RecordingSpan>),
    /// An unsampled span: it records nothing and allocates nothing, but still knows its
    /// trace so that the "not sampled" decision is propagated downstream.
    NonRecording(SpanState),
}

impl SharedSpan {
    /// Wraps a newly started root. `fallback` is its identity if it turned out unsampled.
    pub(crate) fn from_root(span: Span, fallback: SpanState) -> Self {
        match RecordingSpan::new(span, false) {
            Some(recording) => SharedSpan::Recording(recording),
            None => SharedSpan::NonRecording(fallback.with_sampled(false)),
        }
    }

    pub(crate) fn state(&self) -> &SpanState {
        match self {
            SharedSpan::Recording(span) => &span.state,
            SharedSpan::NonRecording(state) => state,
        }
    }

    pub(crate) fn as_recording(&self) -> Option<&Arc<RecordingSpan>> {
        match self {
            SharedSpan::Recording(span) => Some(span),
            SharedSpan::NonRecording(_) => None,
        }
    }

    /// Starts a `ChildOf` span. The child inherits the parent's harness, finish callback
    /// and (through its state) routing; an unsampled parent has unsampled children.
    pub(crate) fn child(&self, name: Cow<'static, str>) -> SharedSpan {
        match self {
            SharedSpan::Recording(parent) => parent.start_child(name),
            // Unsampled children share their parent's identity: nothing to record, and the
            // propagated parent id stays the last one a downstream service could know.
            SharedSpan::NonRecording(state) => SharedSpan::NonRecording(state.clone()),
        }
    }
}

impl std::fmt::Debug for SharedSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            SharedSpan::Recording(_) => "Recording",
            SharedSpan::NonRecording(_) => "NonRecording",
        };
        f.debug_tuple(kind).field(self.state()).finish()
    }
}
