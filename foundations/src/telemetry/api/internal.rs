//! The internal pipeline: the service's own spans.
//!
//! A trace starts with [`start_trace`] (a new trace, or the continuation of an inbound W3C
//! `traceparent`), and every [`span`] opened while it is current becomes its child. A
//! [`SpanScope`] makes its span current on this thread until it is dropped; to carry a span
//! across `.await` points, tasks or threads, turn the scope into a
//! [`TelemetryContext`](crate::telemetry::TelemetryContext) with
//! [`SpanScope::into_context`].
//!
//! Spans are recorded only once the pipeline is started (by [`init`](crate::telemetry::init),
//! or a test context) and only when sampled; otherwise every call here is a cheap no-op that
//! allocates nothing.
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
//! This module owns the public API of the internal pipeline (`telemetry::tracing`). Of the
//! user pipeline it only asks whether a user trace is active (a span opened then keeps its
//! name for `with_user_span`); opening a parallel user span, and handing a scope with its
//! user span to a context, are the `dual` module's.

#[doc(hidden)]
pub use super::macros as __private;

pub use super::live::{
    LiveTrace, OpenSpan, live_descendants_enabled, live_traces, live_traces_enabled,
    set_live_descendants_enabled, set_live_traces_enabled,
};
pub use crate::telemetry::core::identity::{Span, SpanState};
pub use crate::telemetry::core::limits::MAX_LINKS;
pub use crate::telemetry::core::links::SpanLink;
pub use crate::telemetry::core::status::{MAX_EXCEPTION_MESSAGE_BYTES, SpanKind, SpanStatus};
pub use crate::telemetry::propagation::ids::{SpanId, TraceFlags, TraceId};
pub use crate::telemetry::propagation::traceparent::{
    TRACEPARENT_HEADER, TraceparentContext, TraceparentError, TraceparentField,
};
pub use crate::telemetry::propagation::tracestate::{
    TRACESTATE_HEADER, TraceState, TraceStateError,
};
pub use cf_rustracing::log::LogField;
pub use cf_rustracing::span::FinishSpanCallback;
pub use cf_rustracing::tag::{Tag, TagValue};

use crate::telemetry::core::current;
use crate::telemetry::core::entry_span::EntrySpan;
use crate::telemetry::core::harness::{HarnessRef, RootOptions, RootPlan};
use crate::telemetry::core::identity::ParentSpan;
use crate::telemetry::core::pipeline::{Internal, ScopeId};
use crate::telemetry::core::scope::Scope;
use crate::telemetry::core::span::LiveSpan;
use crate::telemetry::core::stack;
use crate::telemetry::core::unsampled;
use crate::telemetry::core::user_link::{self, InternalChild};
use std::borrow::Cow;

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
    /// What the core needs to start the root these options describe (no routing: an
    /// internal trace).
    pub(crate) fn into_root_options(self) -> RootOptions {
        RootOptions {
            inbound: self.inbound,
            force_sampling: self.force_sampling,
            routing: None,
        }
    }

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
    let Some(harness) = current::root_harness::<Internal>() else {
        return SpanScope::without_span(name_for_user);
    };
    SpanScope::enter_root(harness, name, options.into_root_options(), name_for_user)
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
    // Tracing off: no span can be current, so there is nothing to open or to parent.
    if current::nothing_installed() {
        return SpanScope::inert();
    }
    // The common child, opened without the general path (which the fast lane hands back
    // frames to install, an active user trace, and roots).
    if let Some(id) = unsampled::try_join_quietly() {
        return SpanScope::of(Some(id));
    }
    span_not_quiet(name)
}

/// [`span`] outside a quiet stretch: the fast lane's full check (which joins an unsampled
/// child or builds a recorded span's child), else the general path. Out of line and
/// generic, so that `span` keeps the name in registers and pays no register saves.
#[inline(never)]
fn span_not_quiet(name: impl Into<Cow<'static, str>>) -> SpanScope {
    match unsampled::open_child(name) {
        Ok(id) => SpanScope::of(id),
        Err(name) => span_general(name),
    }
}

/// What [`span`] does when the fast lane hands back: out of line, so that the fast lane
/// pays none of its register saves, and generic, so that a `&'static str` name reaches it
/// in registers (by a tail call) rather than as a `Cow` in memory.
#[inline(never)]
fn span_general(name: impl Into<Cow<'static, str>>) -> SpanScope {
    let mut name = Some(name.into());
    // The common case, a child of the current span, is built and pushed in one go.
    match user_link::push_internal_child(&mut name) {
        InternalChild::Opened(id) => SpanScope::of(Some(id)),
        InternalChild::NoCurrentSpan { user_trace_active } => {
            match current::root_harness::<Internal>() {
                // Tracing off: nothing to open, nothing to keep.
                None if !user_trace_active => SpanScope::inert(),
                harness => SpanScope::root_or_name_only(
                    harness,
                    name.unwrap_or_default(),
                    user_trace_active,
                ),
            }
        }
    }
}

/// The name a later [`SpanScope::with_user_span`] needs: a copy while a user trace is
/// active, else nothing (copying an owned name would allocate for a no-op).
#[inline]
#[allow(clippy::ptr_arg)] // Cloning the `Cow` keeps a borrowed name borrowed: no allocation.
fn name_for_user_span(name: &Cow<'static, str>) -> Option<Cow<'static, str>> {
    current::user_trace_active().then(|| name.clone())
}

/// Makes a span current on this thread until it is dropped.
///
/// Returned by [`start_trace`] and [`span`]. While it lives, new spans on this thread are its
/// children and the accessors ([`trace_id`], [`w3c_traceparent`], …) describe it. The span
/// itself finishes when its last handle is gone: this scope, and any
/// [`TelemetryContext`](crate::telemetry::TelemetryContext) made from it.
///
/// A scope belongs to the thread that opened it (`SpanScope` is not `Send`): to keep a span
/// across an `.await` that may resume elsewhere, use [`into_context`](Self::into_context)
/// and [`TelemetryContext::apply`](crate::telemetry::TelemetryContext::apply).
///
/// Scopes may be dropped in any order: dropping one removes exactly its own span from the
/// thread's stack.
#[must_use = "the span is current only while its scope lives"]
pub struct SpanScope {
    /// This scope's entry on the internal stack. A parallel user span opened with
    /// `with_user_span` is linked from that entry (and ends with it), so the scope stays
    /// one machine word.
    pub(super) scope: Scope<Internal>,
}

impl SpanScope {
    #[inline(always)]
    fn inert() -> Self {
        Self {
            scope: Scope::inert(),
        }
    }

    /// The scope of an entry already pushed (none if the push did not happen).
    #[inline(always)]
    fn of(id: Option<ScopeId<Internal>>) -> Self {
        Self {
            scope: Scope::of(id),
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
        if options.inbound.is_none() {
            // A new trace: its identity is built straight into its entry, recorded or not.
            // Internal roots carry no routing (see `StartTraceOptions::into_root_options`).
            debug_assert!(options.routing.is_none());
            let sampled = harness.samples_new_root::<Internal>(options.force_sampling);
            return Self::of(if sampled {
                let state = SpanState::new_root(true);
                Self::push_recorded_root(harness, name, state, None, pending_user_name)
            } else {
                unsampled::push_root(|| SpanState::new_root(false), pending_user_name)
            });
        }
        let id = match harness.plan_root::<Internal>(options) {
            RootPlan::Unsampled(state) => unsampled::push_root(|| state, pending_user_name),
            RootPlan::Recorded { state, parent } => {
                Self::push_recorded_root(harness, name, state, parent, pending_user_name)
            }
        };
        Self::of(id)
    }

    /// Starts a recorded root straight into its stack entry.
    #[inline(never)]
    fn push_recorded_root(
        harness: HarnessRef,
        name: Cow<'static, str>,
        state: SpanState,
        parent: Option<ParentSpan>,
        pending_user_name: Option<Cow<'static, str>>,
    ) -> Option<ScopeId<Internal>> {
        stack::push::<Internal>(pending_user_name, |slot| {
            *slot = Some(EntrySpan::Owned(LiveSpan::start_tracked_root::<Internal>(
                harness, name, state, parent,
            )));
        })
    }

    /// [`span`] without a current span: a new root if a harness is installed, else an
    /// entry that only keeps the name for `with_user_span`. Out of line, so that `span`
    /// stays small.
    #[inline(never)]
    fn root_or_name_only(
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
            Some(name) => Self::of(stack::push::<Internal>(Some(name), |_| {})),
        }
    }

    /// `true` when this scope's span is recorded (sampled, with a harness installed).
    pub fn is_sampled(&self) -> bool {
        self.scope.id().is_some() && span_is_sampled()
    }
}

impl std::fmt::Debug for SpanScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanScope")
            .field("active", &self.scope.id().is_some())
            .finish()
    }
}

/// `true` when the current span is recorded (sampled, with a harness installed).
///
/// Use it to skip work that only feeds tracing.
pub fn span_is_sampled() -> bool {
    super::macros::INTERNAL.is_recording()
}

/// The trace id of the current span, sampled or not.
pub fn trace_id() -> Option<TraceId> {
    current::current_state::<Internal, _>(SpanState::trace_id)
}

/// The id of the current span, sampled or not.
///
/// For an unsampled span this is the id a downstream service sees as its parent.
pub fn span_id() -> Option<SpanId> {
    current::current_state::<Internal, _>(SpanState::span_id)
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
    current::current_state::<Internal, _>(SpanState::traceparent)
}

/// The W3C `tracestate` of the current trace, if it carries one.
pub fn w3c_tracestate() -> Option<TraceState> {
    current::current_state::<Internal, _>(|state| state.trace_state().cloned()).flatten()
}

/// Links the current span to the span `context` names (of another trace, typically), with
/// `attributes`; a no-op unless the span is recorded. Exported as an OTLP link. A span keeps
/// at most `tracing.span_limits.max_links` links (default [`MAX_LINKS`]); more are dropped
/// and counted in `dropped_links_count`.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing::{self, StartTraceOptions, Tag, TraceparentContext};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let served: TraceparentContext =
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap();
/// let _batch = tracing::start_trace("batch", StartTraceOptions::default());
/// tracing::add_link(served, None, [Tag::new("batch.index", 0)]);
/// # drop(_batch);
/// # assert_eq!(ctx.traces(Default::default())[0].links[0].context, served);
/// ```
pub fn add_link(
    context: TraceparentContext,
    trace_state: Option<TraceState>,
    attributes: impl IntoIterator<Item = Tag>,
) {
    if super::macros::INTERNAL.is_recording() {
        super::macros::INTERNAL.add_link(SpanLink {
            context,
            trace_state,
            attributes: attributes.into_iter().collect(),
        });
    }
}

/// Sets the kind of the current span (exported as OTLP `kind`); a no-op unless it is
/// recorded. The same as the tag `span.kind` (`"server"`, `"client"`, ...): the last one
/// set wins.
pub fn set_span_kind(kind: SpanKind) {
    super::macros::INTERNAL.set_kind(kind);
}

/// Sets the status of the current span (exported as OTLP `status`); a no-op unless it is
/// recorded. The same as the tags `otel.status_code`, `error` and `error.message`: the last
/// one set wins.
pub fn set_span_status(status: SpanStatus) {
    super::macros::INTERNAL.set_status(status);
}

/// Records `error` on the current span; a no-op unless it is recorded.
///
/// Adds an `exception` event with `exception.type` (the error's type name, as
/// [`std::any::type_name`] gives it) and `exception.message` (its message, then each of its
/// sources', joined with `": "`, cut to [`MAX_EXCEPTION_MESSAGE_BYTES`]), and sets status
/// Error with that message. [`record_span_error!`](crate::record_span_error) does the same
/// without evaluating its argument when the span is not recorded.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing::{self, SpanStatus, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("read config", StartTraceOptions::default());
/// let error = std::fs::read("/nonexistent/config.yaml").unwrap_err();
/// tracing::record_error(&error);
/// # drop(_root);
/// # let root = &ctx.traces(Default::default())[0];
/// # assert!(matches!(root.status, SpanStatus::Error { .. }));
/// # assert_eq!(root.logs[0].fields[0], ("event".to_owned(), "exception".to_owned()));
/// ```
pub fn record_error<E: std::error::Error + ?Sized>(error: &E) {
    super::macros::INTERNAL.record_error(error);
}
