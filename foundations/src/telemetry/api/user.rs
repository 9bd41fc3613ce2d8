//! The user pipeline: spans the service emits *for its customers* (feature `user-tracing`).
//!
//! A request handler activates it with [`start_user_trace`], naming the customer's
//! [`RoutingMetadata`] (where these spans are delivered) and, optionally, the customer's
//! inbound `traceparent` to continue. Inside that trace, [`user_span`],
//! [`SpanScope::with_user_span`](crate::telemetry::tracing::SpanScope::with_user_span),
//! [`dual_span`] and the `add_user_span_*` macros record into it. Without an active user
//! trace every one of them is a no-op that allocates nothing: a user span never starts a
//! trace by itself.
//!
//! ```
//! use foundations::add_user_span_tags;
//! use foundations::telemetry::TelemetryContext;
//! use foundations::telemetry::user_tracing::{self, RoutingMetadata};
//!
//! #[derive(Debug)]
//! struct Tenant(u64);
//!
//! impl RoutingMetadata for Tenant {
//!     fn group_key(&self) -> String { self.0.to_string() }
//!     fn encode(&self) -> String { format!("tenant={}", self.0) }
//! }
//!
//! let ctx = TelemetryContext::test();
//! ctx.scope_and(|| {
//!     let _root = user_tracing::start_user_trace("request", Tenant(7), None);
//!     let _child = user_tracing::user_span("lookup");
//!     add_user_span_tags!("cache.hit" => true);
//! });
//!
//! let traces = ctx.user_traces(Default::default());
//! assert_eq!(traces[0].children[0].name, "lookup");
//! assert_eq!(traces[0].children[0].routing.as_deref(), Some("tenant=7"));
//! assert!(ctx.traces(Default::default()).is_empty(), "nothing reaches the internal pipeline");
//! ```
//!
//! The user pipeline has its own harness, scope stack and queue: a user span is never seen
//! by the internal pipeline and the other way round. Its traces are not sampled here:
//! calling [`start_user_trace`] *is* the decision to record, so outbound headers always say
//! "sampled".
//!
//! A trace's [`RoutingMetadata::encode`] is called once per trace, the first time its value
//! is needed: in the exporter, when it sends the trace's first span (or in whatever reads
//! the header first, such as the test harness). The request path never pays for it.
//! Its value is the routing header of every request that carries the trace's spans, and
//! spans are grouped into requests by that value alone (`group_key` is not consulted). So
//! `encode` must depend on the metadata's value only, not on when or on which thread it
//! runs, and should not block: it runs on the exporter's task. A panic in `encode` is
//! caught: that trace's spans are dropped and counted, other traces are unaffected.
//!
//! This module owns the public API of the user pipeline (`telemetry::user_tracing`). It
//! never touches the internal pipeline: [`dual_span`] is the `dual` module's.

pub use super::dual::dual_span;
pub use cf_rustracing::span::RoutingMetadata;

use crate::telemetry::TelemetryContext;
use crate::telemetry::core::current;
use crate::telemetry::core::entry_span::EntrySpan;
use crate::telemetry::core::entry_span::SpanHandle;
use crate::telemetry::core::harness::RootOptions;
use crate::telemetry::core::pipeline::User;
use crate::telemetry::core::routing::Routing;
use crate::telemetry::core::scope::Scope;
use crate::telemetry::core::stack;
use crate::telemetry::propagation::traceparent::TraceparentContext;
use crate::telemetry::propagation::tracestate::TraceState;
use cf_rustracing::tag::{Tag, TagValue};
use std::borrow::Cow;

/// Starts a user trace for the customer that `routing` names and makes its root current.
///
/// Every span of the trace carries `routing`, including spans opened in spawned tasks
/// and threads through a [`TelemetryContext`]. With `inbound`, the trace continues the
/// customer's: same trace id, the inbound parent id as the root's parent, and the random
/// trace-id flag kept. Use [`start_user_trace_continuing`] to also carry a `tracestate`,
/// or [`start_user_trace_from_headers`] for raw header values.
///
/// Without an installed user harness (or test context) the returned scope is inert.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::user_tracing::{self, RoutingMetadata};
/// use foundations::telemetry::tracing::TraceparentContext;
///
/// # #[derive(Debug)] struct Zone;
/// # impl RoutingMetadata for Zone {
/// #     fn group_key(&self) -> String { "z".into() }
/// #     fn encode(&self) -> String { "zone=1".into() }
/// # }
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let inbound: TraceparentContext =
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".parse().unwrap();
/// let _root = user_tracing::start_user_trace("request", Zone, Some(inbound));
///
/// let outbound = user_tracing::w3c_traceparent().unwrap();
/// assert_eq!(outbound.trace_id, inbound.trace_id);
/// assert!(outbound.flags.is_sampled(), "starting a user trace is the decision to record");
/// ```
pub fn start_user_trace(
    name: impl Into<Cow<'static, str>>,
    routing: impl RoutingMetadata + 'static,
    inbound: Option<TraceparentContext>,
) -> UserSpanScope {
    start(name.into(), routing, inbound.map(|tp| (tp, None)))
}

/// Like [`start_user_trace`], continuing `traceparent` and carrying its `tracestate`.
pub fn start_user_trace_continuing(
    name: impl Into<Cow<'static, str>>,
    routing: impl RoutingMetadata + 'static,
    traceparent: TraceparentContext,
    tracestate: Option<TraceState>,
) -> UserSpanScope {
    start(name.into(), routing, Some((traceparent, tracestate)))
}

/// Like [`start_user_trace`], from raw `traceparent` / `tracestate` header values.
///
/// A missing or malformed `traceparent` starts a fresh trace (and its `tracestate` is
/// ignored); a malformed `tracestate` alone is dropped. Never panics.
pub fn start_user_trace_from_headers(
    name: impl Into<Cow<'static, str>>,
    routing: impl RoutingMetadata + 'static,
    traceparent: Option<&[u8]>,
    tracestate: Option<&[u8]>,
) -> UserSpanScope {
    let inbound = traceparent
        .and_then(|value| TraceparentContext::parse(value).ok())
        .map(|tp| {
            (
                tp,
                tracestate.and_then(|value| TraceState::parse(value).ok()),
            )
        });
    start(name.into(), routing, inbound)
}

/// Starts the trace; without a harness, before anything is allocated, an inert scope.
fn start(
    name: Cow<'static, str>,
    routing: impl RoutingMetadata + 'static,
    inbound: Option<(TraceparentContext, Option<TraceState>)>,
) -> UserSpanScope {
    let Some(harness) = current::root_harness::<User>() else {
        return UserSpanScope::inert();
    };
    let options = RootOptions {
        inbound,
        force_sampling: None,
        // `encode()` runs once per trace, when the header is first needed (the exporter):
        // its value is the header every span of the trace is sent under.
        routing: Some(Routing::new(routing)),
    };
    UserSpanScope::enter_with(|slot| {
        *slot = Some(EntrySpan::start_untracked_root::<User>(
            harness, name, options,
        ))
    })
}

/// Opens a user span as a child of the current user span and makes it current.
///
/// Without an active user trace it does nothing and allocates nothing: it never starts a
/// trace.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::user_tracing;
///
/// let _span = user_tracing::user_span("no_trace_here");
/// assert!(user_tracing::w3c_traceparent().is_none());
/// ```
#[inline]
pub fn user_span(name: impl Into<Cow<'static, str>>) -> UserSpanScope {
    // Decide before converting or moving the name: the inactive path must not touch it.
    if !is_active() {
        return UserSpanScope::inert();
    }
    UserSpanScope {
        scope: Scope::of(stack::push_child_of_current::<User>(name.into())),
    }
}

/// `true` while a user span is current (a user trace is active on this thread).
#[inline]
pub fn is_active() -> bool {
    current::user_trace_active()
}

/// The W3C `traceparent` that continues the current user trace under the current user span;
/// `None` without an active user trace.
///
/// Send it to the next hop of the customer's request so it can parent its spans under
/// yours.
pub fn w3c_traceparent() -> Option<TraceparentContext> {
    current::current_state::<User, _>(|state| state.traceparent())
}

/// The W3C `tracestate` of the current user trace, if it carries one.
pub fn w3c_tracestate() -> Option<TraceState> {
    current::current_state::<User, _>(|state| state.trace_state().cloned()).flatten()
}

/// Makes a user span current on this thread until it is dropped.
///
/// Returned by [`start_user_trace`], [`user_span`] and [`UserSpan::enter`]. Not `Send`:
/// carry the span across `.await` and tasks with [`into_context`](Self::into_context).
#[must_use = "the user span is current only while its scope lives"]
pub struct UserSpanScope {
    scope: Scope<User>,
}

impl UserSpanScope {
    /// Pushes a user entry whose span `start` writes straight into it (see `stack::push`),
    /// and makes it current.
    #[inline]
    fn enter_with(start: impl FnOnce(&mut Option<EntrySpan>)) -> Self {
        Self {
            scope: Scope::of(stack::push::<User>(None, start)),
        }
    }

    fn inert() -> Self {
        Self {
            scope: Scope::inert(),
        }
    }

    /// `true` when this scope holds a recorded user span.
    pub fn is_active(&self) -> bool {
        self.scope.id().is_some()
    }

    /// Ends this scope and returns a [`TelemetryContext`] that carries its user span, with
    /// the current internal span, to other tasks and threads.
    pub fn into_context(mut self) -> TelemetryContext {
        let own_span = self.scope.take().map(stack::remove);
        let mut ctx = TelemetryContext::current();
        if let Some(span) = own_span {
            ctx.set_span::<User>(span.map(EntrySpan::into_shared));
        }
        ctx
    }
}

impl std::fmt::Debug for UserSpanScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSpanScope")
            .field("active", &self.scope.id().is_some())
            .finish()
    }
}

/// An owned handle to a user span, for code that needs explicit parents: for example
/// sibling spans opened concurrently from one parent on several tasks.
///
/// `Send + Sync` and cheap to clone. An inert handle (no user trace) makes inert children.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::user_tracing::{self, RoutingMetadata, UserSpan};
///
/// # #[derive(Debug)] struct Zone;
/// # impl RoutingMetadata for Zone {
/// #     fn group_key(&self) -> String { "z".into() }
/// #     fn encode(&self) -> String { "zone=1".into() }
/// # }
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = user_tracing::start_user_trace("fan_out", Zone, None);
/// let parent = UserSpan::current();
/// let workers: Vec<_> = (0..3)
///     .map(|i| {
///         let span = parent.child(format!("worker-{i}"));
///         std::thread::spawn(move || span.set_tag("worker", i as i64))
///     })
///     .collect();
/// for worker in workers {
///     worker.join().unwrap();
/// }
/// # drop(parent); drop(_root);
/// # assert_eq!(ctx.user_traces(Default::default())[0].children.len(), 3);
/// ```
#[derive(Clone, Debug, Default)]
pub struct UserSpan {
    span: Option<SpanHandle>,
}

impl UserSpan {
    /// The current user span of this thread; inert without an active user trace.
    pub fn current() -> Self {
        Self {
            span: stack::current::<User>(),
        }
    }

    /// `true` when this handle refers to a recorded user span.
    pub fn is_active(&self) -> bool {
        self.span.is_some()
    }

    /// Opens a child of this span, without making it current.
    pub fn child(&self, name: impl Into<Cow<'static, str>>) -> UserSpan {
        Self {
            span: self
                .span
                .as_ref()
                .map(|span| span.child(name.into()).into_shared()),
        }
    }

    /// Makes this span current on this thread until the returned scope is dropped.
    pub fn enter(&self) -> UserSpanScope {
        match &self.span {
            Some(span) => {
                UserSpanScope::enter_with(|slot| *slot = Some(EntrySpan::Shared(span.clone())))
            }
            None => UserSpanScope::inert(),
        }
    }

    /// Sets a tag on this span (replacing an earlier one of the same name).
    pub fn set_tag(&self, name: impl Into<Cow<'static, str>>, value: impl Into<TagValue>) {
        if let Some(span) = self.span.as_ref().and_then(SpanHandle::as_recording) {
            let tag = Tag::new(name, value);
            span.with_span(|span| span.set_tags(std::iter::once(tag)));
        }
    }

    /// The `traceparent` that continues the trace under this span.
    pub fn w3c_traceparent(&self) -> Option<TraceparentContext> {
        self.span.as_ref().map(|span| span.state().traceparent())
    }
}

/// Links the current user span to the span `context` names, with `attributes`; a no-op
/// without one. See [`tracing::add_link`](crate::telemetry::tracing::add_link).
pub fn add_user_link(
    context: TraceparentContext,
    trace_state: Option<TraceState>,
    attributes: impl IntoIterator<Item = Tag>,
) {
    if super::macros::USER.is_recording() {
        super::macros::USER.add_link(crate::telemetry::tracing::SpanLink {
            context,
            trace_state,
            attributes: attributes.into_iter().collect(),
        });
    }
}

/// Sets the kind of the current user span; a no-op without one. See
/// [`tracing::set_span_kind`](crate::telemetry::tracing::set_span_kind).
pub fn set_user_span_kind(kind: crate::telemetry::tracing::SpanKind) {
    super::macros::USER.set_kind(kind);
}

/// Sets the status of the current user span; a no-op without one. See
/// [`tracing::set_span_status`](crate::telemetry::tracing::set_span_status).
pub fn set_user_span_status(status: crate::telemetry::tracing::SpanStatus) {
    super::macros::USER.set_status(status);
}

/// Records `error` on the current user span (an `exception` event and status Error); a
/// no-op without one. See [`tracing::record_error`](crate::telemetry::tracing::record_error).
pub fn record_user_error<E: std::error::Error + ?Sized>(error: &E) {
    super::macros::USER.record_error(error);
}

/// Records an error on the current user span, as [`record_user_error`] does; a no-op
/// (argument not evaluated) without one. Same syntax as
/// [`record_span_error!`](crate::record_span_error).
#[macro_export]
macro_rules! record_user_span_error {
    ($error:expr $(,)?) => {
        if $crate::telemetry::tracing::__private::USER.is_recording() {
            $crate::telemetry::tracing::__private::USER.record_error(&$error);
        }
    };
}

/// Adds tags to the current user span; a no-op (arguments not evaluated) without one.
///
/// Same syntax as [`add_span_tags!`](crate::add_span_tags).
///
/// # Examples
///
/// ```
/// use foundations::add_user_span_tags;
///
/// fn expensive() -> String {
///     unreachable!("not evaluated without a user trace")
/// }
/// add_user_span_tags!("never" => expensive());
/// ```
#[macro_export]
macro_rules! add_user_span_tags {
    // One tag of literals, the commonest case: building it runs no application code, so
    // the check and the hand-over take one borrow of the stack.
    ($name:literal => $value:literal $(,)?) => {
        $crate::telemetry::tracing::__private::USER.set_literal_tag(|| {
            $crate::telemetry::tracing::__private::MacroTag::new($name, $value)
        })
    };
    // One tag, the common case, is handed over as it is: no array to iterate.
    ($name:expr => $value:expr $(,)?) => {
        if $crate::telemetry::tracing::__private::USER.is_recording() {
            $crate::telemetry::tracing::__private::USER.set_macro_tag(
                $crate::telemetry::tracing::__private::MacroTag::new($name, $value),
            );
        }
    };
    ($($name:expr => $value:expr),+ $(,)?) => {
        if $crate::telemetry::tracing::__private::USER.is_recording() {
            $crate::telemetry::tracing::__private::USER.set_macro_tags([
                $($crate::telemetry::tracing::__private::MacroTag::new($name, $value)),+
            ]);
        }
    };
}

/// Adds a log entry to the current user span; a no-op (arguments not evaluated) without one.
///
/// Same syntax as [`add_span_log_fields!`](crate::add_span_log_fields).
#[macro_export]
macro_rules! add_user_span_log_fields {
    ($($name:expr => $value:expr),+ $(,)?) => {
        if $crate::telemetry::tracing::__private::USER.is_recording() {
            $crate::telemetry::tracing::__private::USER.log([
                $($crate::telemetry::tracing::LogField::new($name, $value)),+
            ]);
        }
    };
}

/// Sets the finish callback of the current user span; a no-op without one.
///
/// Same syntax as [`set_span_finish_callback!`](crate::set_span_finish_callback).
#[macro_export]
macro_rules! set_user_span_finish_callback {
    ($callback:expr) => {
        if $crate::telemetry::tracing::__private::USER.is_recording() {
            $crate::telemetry::tracing::__private::USER.set_finish_callback($callback);
        }
    };
}
