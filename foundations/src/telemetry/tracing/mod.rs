//! The internal pipeline: the service's own spans.
//!
//! A trace starts with [`start_trace`] (a new trace, or the continuation of an inbound W3C
//! `traceparent`), and every [`span`] opened while it is current becomes its child. A
//! [`SpanScope`] makes its span current on this thread until it is dropped; to carry a span
//! across `.await` points, tasks or threads, turn the scope into a
//! [`TelemetryContext`](crate::telemetry::TelemetryContext) with
//! [`SpanScope::into_context`].
//!
//! Spans are recorded only once a harness is [`install`]ed (normally by telemetry init) and
//! only when sampled; otherwise every call here is a cheap no-op that allocates nothing.
//!
//! ```
//! use foundations::telemetry::tracing::{self, StartTraceOptions};
//! use foundations::telemetry::TelemetryContext;
//! use foundations::add_span_tags;
//!
//! let ctx = TelemetryContext::test();
//! {
//!     let _scope = ctx.scope();
//!     let _root = tracing::start_trace("handle_request", StartTraceOptions::default());
//!     {
//!         let _child = tracing::span("load_user");
//!         add_span_tags!("user.id" => 42);
//!     }
//! }
//!
//! let traces = ctx.traces(Default::default());
//! assert_eq!(traces.len(), 1);
//! assert_eq!(traces[0].name, "handle_request");
//! assert_eq!(traces[0].children[0].name, "load_user");
//! ```
//!
//! This module owns the public API of the internal pipeline. It must not reach the user
//! pipeline's stack or harness: that is `user_tracing`'s.

mod finished;
pub(crate) mod harness;
pub(crate) mod scope_stack;
pub(crate) mod state;
pub mod w3c;

#[doc(hidden)]
pub mod __private;

pub use cf_rustracing::log::LogField;
pub use cf_rustracing::span::FinishSpanCallback;
pub use cf_rustracing::span::RoutingMetadata;
pub use cf_rustracing::tag::{Tag, TagValue};
pub use finished::{FinishedSpan, ParentSpan};
pub use harness::{HarnessOptions, InstallError, QueueStats, SpanDrain, install};
pub use state::{Span, SpanState};
pub use w3c::{
    SpanId, TraceFlags, TraceId, TraceState, TraceStateError, TraceparentContext, TraceparentError,
};

#[cfg(feature = "testing")]
pub(crate) use harness::Harness;
use harness::RootPlan;
pub(crate) use harness::{HarnessRef, Pipeline, RootOptions};

use crate::telemetry::TelemetryContext;
use scope_stack::ScopeId;
use state::{LiveSpan, LocalSpan, ParentRef, SharedSpan};
use std::borrow::Cow;
use std::marker::PhantomData;

/// How [`start_trace`] starts its trace: fresh, or continuing an inbound one.
///
/// # Examples
///
/// Continue the trace of an incoming request, whatever its headers hold. A malformed
/// `traceparent` starts a fresh trace; a malformed `tracestate` is dropped:
///
/// ```
/// use foundations::telemetry::tracing::{self, StartTraceOptions, TraceparentContext};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let options = StartTraceOptions::default()
///     .continue_from_headers(Some(traceparent.as_slice()), Some(b"vendor=value".as_slice()));
/// let _root = tracing::start_trace("request", options);
///
/// let outbound = tracing::w3c_traceparent().unwrap();
/// assert_eq!(outbound.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_ne!(outbound.parent_id.to_string(), "00f067aa0ba902b7");
/// assert_eq!(tracing::w3c_tracestate().unwrap().to_string(), "vendor=value");
/// ```
#[derive(Clone, Debug, Default)]
pub struct StartTraceOptions {
    inbound: Option<(TraceparentContext, Option<TraceState>)>,
    force_sampling: Option<bool>,
}

impl StartTraceOptions {
    /// Continues the trace of `traceparent`: same trace id, the inbound parent id as the
    /// root's parent, `tracestate` carried along, and its sampled flag respected (unless
    /// [`force_sampling`](Self::force_sampling) says otherwise).
    pub fn continue_trace(
        mut self,
        traceparent: TraceparentContext,
        tracestate: Option<TraceState>,
    ) -> Self {
        self.inbound = Some((traceparent, tracestate));
        self
    }

    /// Continues the trace described by raw header values, if they are valid.
    ///
    /// Follows the W3C rules for bad input: an absent or malformed `traceparent` starts a
    /// fresh trace and its `tracestate` is ignored; a malformed `tracestate` alone is dropped
    /// and the trace is still continued. Use [`TraceparentContext::parse`] directly to see the
    /// error.
    pub fn continue_from_headers(
        self,
        traceparent: Option<&[u8]>,
        tracestate: Option<&[u8]>,
    ) -> Self {
        let Some(Ok(traceparent)) = traceparent.map(TraceparentContext::parse) else {
            return self;
        };
        let tracestate = tracestate.and_then(|value| TraceState::parse(value).ok());
        self.continue_trace(traceparent, tracestate)
    }

    /// Records the trace (`true`) or not (`false`) regardless of the sampling ratio and of an
    /// inbound sampled flag. Outbound headers then carry this decision.
    pub fn force_sampling(mut self, sampled: bool) -> Self {
        self.force_sampling = Some(sampled);
        self
    }
}

/// Starts a trace and makes its root span current.
///
/// The root is recorded when the harness samples it: by ratio for a new trace, by the
/// inbound sampled flag for a continued one, or as [`StartTraceOptions::force_sampling`]
/// says. An unsampled root records nothing but still propagates its trace (with the sampled
/// flag unset) so downstream services make the same decision. Without an installed harness
/// the returned scope is inert.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let root = tracing::start_trace("batch_job", StartTraceOptions::default());
/// assert!(tracing::span_is_sampled());
/// drop(root);
/// assert!(tracing::trace_id().is_none());
/// ```
pub fn start_trace(name: impl Into<Cow<'static, str>>, options: StartTraceOptions) -> SpanScope {
    let name = name.into();
    let name_for_user = name_for_user_span(&name);
    let Some(harness) = root_harness(Pipeline::Internal) else {
        return SpanScope::without_span(name_for_user);
    };
    let options = RootOptions {
        inbound: options.inbound,
        force_sampling: options.force_sampling,
        routing: None,
    };
    SpanScope::enter_root(harness, name, options, name_for_user)
}

/// Opens a span and makes it current: a child of the current span, or a new root when no
/// span is current.
///
/// Costs next to nothing and allocates nothing when no harness is installed or the current
/// trace is not sampled.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("request", StartTraceOptions::default());
/// let root_id = tracing::span_id();
/// {
///     let _child = tracing::span("parse_body");
///     assert_ne!(tracing::span_id(), root_id);
/// }
/// assert_eq!(tracing::span_id(), root_id);
/// ```
#[inline]
pub fn span(name: impl Into<Cow<'static, str>>) -> SpanScope {
    let mut name = Some(name.into());
    // The common case, a child of the current span, is built and pushed in one go.
    match scope_stack::push_internal_child(&mut name) {
        scope_stack::InternalChild::Opened(id) => SpanScope::entered(id),
        scope_stack::InternalChild::NoCurrentSpan { user_trace_active } => {
            match root_harness(Pipeline::Internal) {
                // Tracing off: nothing to open, nothing to keep.
                None if !user_trace_active => SpanScope::inert(),
                harness => {
                    SpanScope::root_or_pending(harness, name.unwrap_or_default(), user_trace_active)
                }
            }
        }
    }
}

/// The name a later [`SpanScope::with_user_span`] needs: a copy while a user trace is
/// active, else nothing (copying an owned name would allocate for a no-op).
#[inline]
#[allow(clippy::ptr_arg)] // Cloning the `Cow` keeps a borrowed name borrowed: no allocation.
fn name_for_user_span(#[allow(unused)] name: &Cow<'static, str>) -> Option<Cow<'static, str>> {
    #[cfg(feature = "user-tracing")]
    if crate::telemetry::user_tracing::is_active() {
        return Some(name.clone());
    }
    None
}

/// The harness that serves roots on this thread: the thread's test harness if a test
/// context is entered, else the installed one. `None` when neither exists: the check is a
/// thread-local read and an atomic load.
#[inline]
pub(crate) fn root_harness(pipeline: Pipeline) -> Option<HarnessRef> {
    #[cfg(feature = "testing")]
    if let Some(harness) = scope_stack::test_harness(pipeline) {
        return Some(HarnessRef::Owned(harness));
    }
    harness::global(pipeline).map(HarnessRef::Global)
}

/// Makes a span current on this thread until it is dropped.
///
/// Returned by [`start_trace`] and [`span`]. While it lives, new spans on this thread are its
/// children and the accessors ([`trace_id`], [`w3c_traceparent`], …) describe it. The span
/// itself finishes when its last handle is gone: this scope, and any
/// [`TelemetryContext`] made from it.
///
/// A scope belongs to the thread that opened it (`SpanScope` is not `Send`): to keep a span
/// across an `.await` that may resume elsewhere, use [`into_context`](Self::into_context)
/// and [`TelemetryContext::apply`].
///
/// Scopes may be dropped in any order: dropping one removes exactly its own span from the
/// thread's stack.
#[must_use = "the span is current only while its scope lives"]
pub struct SpanScope {
    /// This scope's entry on the internal stack. A parallel user span opened with
    /// `with_user_span` is linked from that entry, so the scope stays one machine word.
    id: Option<ScopeId>,
    _not_send: PhantomData<*const ()>,
}

impl SpanScope {
    #[inline(always)]
    fn inert() -> Self {
        Self {
            id: None,
            _not_send: PhantomData,
        }
    }

    /// The scope of an entry already pushed.
    #[inline(always)]
    fn entered(id: ScopeId) -> Self {
        Self {
            id: Some(id),
            _not_send: PhantomData,
        }
    }

    /// Starts a root and makes it current. `pending_user_name` is `Some` only while a user
    /// trace is active (see [`without_span`](Self::without_span)).
    ///
    /// Out of line, so that callers without a harness (tracing off) stay small. An
    /// unsampled root is just its identity; a recorded one takes a path of its own, so that
    /// the unsampled one does not pay for the stack space a live span needs.
    #[inline(never)]
    fn enter_root(
        harness: HarnessRef,
        name: Cow<'static, str>,
        options: RootOptions,
        pending_user_name: Option<Cow<'static, str>>,
    ) -> Self {
        let id = match harness.plan_root(options) {
            RootPlan::Unsampled(state) => {
                scope_stack::push_started(Pipeline::Internal, pending_user_name, |slot| {
                    *slot = Some(LocalSpan::Shared(SharedSpan::NonRecording(state)));
                })
            }
            RootPlan::Recorded { state, parent } => {
                Self::push_recorded_root(harness, name, state, parent, pending_user_name)
            }
        };
        Self {
            id,
            _not_send: PhantomData,
        }
    }

    /// Starts a recorded root straight into its stack entry.
    #[inline(never)]
    fn push_recorded_root(
        harness: HarnessRef,
        name: Cow<'static, str>,
        state: SpanState,
        parent: Option<ParentRef>,
        pending_user_name: Option<Cow<'static, str>>,
    ) -> Option<ScopeId> {
        scope_stack::push_started(Pipeline::Internal, pending_user_name, |slot| {
            *slot = Some(LocalSpan::Owned(LiveSpan::start(
                harness, name, state, parent, None,
            )));
        })
    }

    /// [`span`] without a current span: a new root if a harness is installed, else an
    /// entry that only keeps the name for `with_user_span`. Out of line, so that `span`
    /// stays small.
    #[inline(never)]
    fn root_or_pending(
        harness: Option<HarnessRef>,
        name: Cow<'static, str>,
        user_trace_active: bool,
    ) -> Self {
        // Cloning keeps a borrowed name borrowed: no allocation.
        let name_for_user = user_trace_active.then(|| name.clone());
        match harness {
            Some(harness) => Self::enter_root(harness, name, RootOptions::default(), name_for_user),
            None => Self::without_span(name_for_user),
        }
    }

    /// A scope without a span: inert, unless a user trace is active
    /// (`pending_user_name` is `Some`); the entry is then pushed anyway so that
    /// `with_user_span` finds the name.
    #[inline]
    fn without_span(pending_user_name: Option<Cow<'static, str>>) -> Self {
        match pending_user_name {
            // Nothing installed, no user trace: the common "tracing off" case stays a few
            // instructions, with nothing to drop.
            None => Self::inert(),
            Some(name) => Self {
                id: scope_stack::push_started(Pipeline::Internal, Some(name), |_| {}),
                _not_send: PhantomData,
            },
        }
    }

    /// Also opens a user span with this span's name, as a child of the current user span;
    /// both stay current until this scope is dropped (feature `user-tracing`).
    ///
    /// Without an active user trace this adds nothing: the user pipeline never starts a
    /// trace by itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use foundations::telemetry::tracing::{self, StartTraceOptions};
    /// use foundations::telemetry::user_tracing::{self, RoutingMetadata};
    ///
    /// # #[derive(Debug)] struct Zone;
    /// # impl RoutingMetadata for Zone {
    /// #     fn group_key(&self) -> String { "z".into() }
    /// #     fn encode(&self) -> String { "zone=1".into() }
    /// # }
    /// # let ctx = foundations::telemetry::TelemetryContext::test();
    /// # ctx.scope_and(|| {
    /// let _user_root = user_tracing::start_user_trace("request", Zone, None);
    /// let _root = tracing::start_trace("request", StartTraceOptions::default());
    /// {
    ///     let _both = tracing::span("parse").with_user_span();
    /// }
    /// # });
    /// assert_eq!(ctx.traces(Default::default())[0].children[0].name, "parse");
    /// assert_eq!(ctx.user_traces(Default::default())[0].children[0].name, "parse");
    /// ```
    #[cfg(feature = "user-tracing")]
    #[inline]
    pub fn with_user_span(self) -> Self {
        let Some(id) = self.id else { return self };
        // Only an entry opened while a user trace was active holds a name; taking it also
        // makes a second `with_user_span` a no-op.
        let name = scope_stack::take_pending_user_name(Pipeline::Internal, id);
        let user_scope =
            name.and_then(|name| scope_stack::push_child_of_current(Pipeline::User, name));
        if let Some(user_scope) = user_scope {
            scope_stack::link_user_scope(Pipeline::Internal, id, user_scope);
        }
        self
    }

    /// `true` when this scope's span is recorded (sampled, with a harness installed).
    pub fn is_sampled(&self) -> bool {
        self.id.is_some() && span_is_sampled()
    }

    /// Ends this scope and returns a [`TelemetryContext`] that carries its span, together
    /// with the rest of the current context (such as the current user span), to other
    /// tasks and threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use foundations::telemetry::tracing::{self, StartTraceOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let test = foundations::telemetry::TelemetryContext::test();
    /// # let _scope = test.scope();
    /// let root = tracing::start_trace("request", StartTraceOptions::default());
    /// let trace_id = tracing::trace_id();
    ///
    /// root.into_context()
    ///     .apply(async move {
    ///         tokio::task::yield_now().await;
    ///         assert_eq!(tracing::trace_id(), trace_id);
    ///     })
    ///     .await;
    /// # }
    /// ```
    pub fn into_context(mut self) -> TelemetryContext {
        let own = self.id.take().and_then(remove_with_user_span);
        let mut ctx = TelemetryContext::current();
        if let Some(own) = own {
            if let Some(span) = own.span {
                ctx.set_span(Pipeline::Internal, Some(span.into_shared()));
            }
            #[cfg(feature = "user-tracing")]
            if let Some(user_span) = own.user_span {
                ctx.set_span(Pipeline::User, user_span.map(LocalSpan::into_shared));
            }
        }
        ctx
    }
}

/// The spans a scope's entries held, taken off both stacks.
///
/// Fields drop in order: the user span (opened last) finishes before the internal one.
struct OwnSpans {
    #[cfg(feature = "user-tracing")]
    user_span: Option<Option<LocalSpan>>,
    span: Option<LocalSpan>,
}

/// Removes internal entry `id` and the user entry it links to (if any).
#[inline]
fn remove_with_user_span(id: ScopeId) -> Option<OwnSpans> {
    let entry = scope_stack::remove_entry(Pipeline::Internal, id)?;
    Some(OwnSpans {
        #[cfg(feature = "user-tracing")]
        user_span: entry
            .user_scope
            .map(|user_scope| scope_stack::remove(Pipeline::User, user_scope)),
        span: entry.span,
    })
}

impl Drop for SpanScope {
    #[inline]
    fn drop(&mut self) {
        if let Some(id) = self.id {
            if !scope_stack::end_quietly(Pipeline::Internal, id) {
                Self::end_spilling(id);
            }
        }
    }
}

impl SpanScope {
    /// Ends entry `id` when that may run application code (a finish callback, a linked
    /// user span): out of line, so that the quiet common case stays small.
    #[cold]
    #[inline(never)]
    fn end_spilling(id: ScopeId) {
        let mut spill = None;
        let user_scope = scope_stack::end(Pipeline::Internal, id, &mut spill);
        #[cfg(feature = "user-tracing")]
        if let Some(user_scope) = user_scope {
            // The user span (opened last) finishes first.
            scope_stack::end_scope(Pipeline::User, user_scope);
        }
        #[cfg(not(feature = "user-tracing"))]
        let _ = user_scope;
        // The internal span finishes as `spill` goes out of scope, after the stack borrows
        // are released: it may run application code.
    }
}

impl std::fmt::Debug for SpanScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanScope")
            .field("active", &self.id.is_some())
            .finish()
    }
}

pub(crate) fn current_state<R>(pipeline: Pipeline, f: impl FnOnce(&SpanState) -> R) -> Option<R> {
    scope_stack::inspect_current(pipeline, |span| span.map(|span| f(span.state())))
}

/// `true` when the current span is recorded (sampled, with a harness installed).
///
/// Use it to skip work that only feeds tracing.
pub fn span_is_sampled() -> bool {
    __private::is_recording(Pipeline::Internal)
}

/// The trace id of the current span, sampled or not.
pub fn trace_id() -> Option<TraceId> {
    current_state(Pipeline::Internal, SpanState::trace_id)
}

/// The id of the current span, sampled or not.
///
/// For an unsampled span this is the id a downstream service sees as its parent.
pub fn span_id() -> Option<SpanId> {
    current_state(Pipeline::Internal, SpanState::span_id)
}

/// The W3C `traceparent` that continues the current trace under the current span.
///
/// Its sampled flag tells downstream services whether this trace is recorded. `None`
/// when no span is current.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// assert!(tracing::w3c_traceparent().is_none());
/// let _root = tracing::start_trace("request", StartTraceOptions::default());
/// let header = tracing::w3c_traceparent().unwrap().to_string();
/// assert!(header.starts_with("00-") && header.ends_with("-03")); // sampled, random id
/// ```
pub fn w3c_traceparent() -> Option<TraceparentContext> {
    current_state(Pipeline::Internal, SpanState::traceparent)
}

/// The W3C `tracestate` of the current trace, if it carries one.
pub fn w3c_tracestate() -> Option<TraceState> {
    current_state(Pipeline::Internal, |state| state.trace_state().cloned()).flatten()
}

/// Adds tags to the current span of the internal pipeline.
///
/// Each tag is `name => value`, where the name converts into `Cow<'static, str>` and the
/// value into a [`TagValue`] (string, `bool`, `i64` or `f64`). A tag replaces an earlier one
/// of the same name. The expressions are evaluated only when the current span is recorded.
///
/// # Examples
///
/// ```
/// use foundations::add_span_tags;
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("request", StartTraceOptions::default());
/// add_span_tags!("http.request.method" => "GET", "retry" => false, "attempt" => 1);
/// ```
#[macro_export]
macro_rules! add_span_tags {
    ($($name:expr => $value:expr),+ $(,)?) => {
        if $crate::telemetry::tracing::__private::INTERNAL.is_recording() {
            $crate::telemetry::tracing::__private::INTERNAL.set_tags([
                $($crate::telemetry::tracing::Tag::new($name, $value)),+
            ]);
        }
    };
}

/// Adds a log entry (timestamped key–value fields) to the current span of the internal
/// pipeline.
///
/// Names and values convert into `Cow<'static, str>`. The expressions are evaluated only when
/// the current span is recorded.
///
/// # Examples
///
/// ```
/// use foundations::add_span_log_fields;
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("request", StartTraceOptions::default());
/// add_span_log_fields!("event" => "cache_miss", "key" => format!("user/{}", 42));
/// ```
#[macro_export]
macro_rules! add_span_log_fields {
    ($($name:expr => $value:expr),+ $(,)?) => {
        if $crate::telemetry::tracing::__private::INTERNAL.is_recording() {
            $crate::telemetry::tracing::__private::INTERNAL.log([
                $($crate::telemetry::tracing::LogField::new($name, $value)),+
            ]);
        }
    };
}

/// Sets a callback that runs when the current span of the internal pipeline finishes.
///
/// The callback receives the span (`&mut Span`) just before it is queued, so it can add
/// last-minute tags; children opened later inherit it. It runs on whichever thread drops the
/// span's last handle, never under a lock of ours.
///
/// # Examples
///
/// ```
/// use foundations::set_span_finish_callback;
/// use foundations::telemetry::tracing::{self, Span, StartTraceOptions, Tag};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("request", StartTraceOptions::default());
/// set_span_finish_callback!(|span: &mut Span| span.set_tag(|| Tag::new("finished", true)));
/// ```
#[macro_export]
macro_rules! set_span_finish_callback {
    ($callback:expr) => {
        if $crate::telemetry::tracing::__private::INTERNAL.is_recording() {
            $crate::telemetry::tracing::__private::INTERNAL.set_finish_callback($callback);
        }
    };
}
