//! [`TelemetryContext`]: the current spans of both pipelines, as a value that can travel.
//!
//! Which span is current is thread-local state (the scope stacks). A `TelemetryContext`
//! captures it so it can be re-established elsewhere: after an `.await` on another worker
//! thread, inside a spawned task, or on another OS thread. This module owns that capture and
//! re-entry; it does not create spans (beyond [`TelemetryContext::with_forked_trace`], which
//! asks the tracing API) and knows nothing of export.

use crate::telemetry::core::current;
use crate::telemetry::core::entry_span::EntrySpan;
use crate::telemetry::core::entry_span::SpanHandle;
use crate::telemetry::core::frame::{self, Parked};
use crate::telemetry::core::harness::RootOptions;
use crate::telemetry::core::pipeline::{Internal, PerPipeline, Pipeline, ScopeId, User};
use crate::telemetry::core::polled::Polled;
use crate::telemetry::core::scope::Scope;
use crate::telemetry::core::stack;
use pin_project_lite::pin_project;
use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(feature = "testing")]
use crate::telemetry::core::harness::Harness;
#[cfg(feature = "testing")]
use std::sync::Arc;

/// The current spans of both pipelines, captured so they can be carried elsewhere.
///
/// Capture with [`current`](Self::current) or
/// [`SpanScope::into_context`](crate::telemetry::tracing::SpanScope::into_context);
/// re-establish with [`scope`](Self::scope) (synchronous code) or [`apply`](Self::apply) (a
/// future, re-entered on every poll). Cloning is cheap: it shares the spans, it does not copy
/// them.
///
/// # Carrying a trace into spawned work
///
/// ```
/// use foundations::telemetry::{self, TelemetryContext};
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # #[tokio::main]
/// # async fn main() {
/// # let test = TelemetryContext::test();
/// # let _test_scope = test.scope();
/// let _root = tracing::start_trace("request", StartTraceOptions::default());
/// let trace_id = tracing::trace_id();
///
/// // A tokio task: `telemetry::spawn` is `tokio::spawn(TelemetryContext::current().apply(f))`.
/// let task = telemetry::spawn(async move { tracing::trace_id() });
/// assert_eq!(task.await.unwrap(), trace_id);
///
/// // An OS thread: capture, move, enter.
/// let ctx = TelemetryContext::current();
/// let thread = std::thread::spawn(move || {
///     let _scope = ctx.scope();
///     tracing::trace_id()
/// });
/// assert_eq!(thread.join().unwrap(), trace_id);
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct TelemetryContext {
    spans: PerPipeline<Option<SpanHandle>>,
    /// Harnesses of a test context: roots started inside it go to its own sinks.
    #[cfg(feature = "testing")]
    test_harnesses: PerPipeline<Option<Arc<Harness>>>,
}

impl TelemetryContext {
    /// Captures this thread's current spans (of both pipelines).
    pub fn current() -> Self {
        Self {
            spans: PerPipeline::new(stack::current::<Internal>(), stack::current::<User>()),
            #[cfg(feature = "testing")]
            test_harnesses: PerPipeline::new(
                current::test_harness::<Internal>(),
                current::test_harness::<User>(),
            ),
        }
    }

    #[cfg(feature = "testing")]
    pub(crate) fn with_test_harnesses(harnesses: PerPipeline<Option<Arc<Harness>>>) -> Self {
        Self {
            spans: PerPipeline::default(),
            test_harnesses: harnesses,
        }
    }

    pub(crate) fn set_span<P: Pipeline>(&mut self, span: Option<SpanHandle>) {
        *self.spans.get_mut::<P>() = span;
    }

    pub(crate) fn span<P: Pipeline>(&self) -> Option<&SpanHandle> {
        self.spans.get::<P>().as_ref()
    }

    /// Pushes this context's span of pipeline `P` (or "none", hiding what is below) onto
    /// this thread's stack, cloning the handle straight into its entry.
    fn push<P: Pipeline>(&self) -> Option<ScopeId<P>> {
        stack::push::<P>(None, |slot| {
            *slot = self.span::<P>().map(|span| EntrySpan::Shared(span.clone()));
        })
    }

    /// Makes this context current on this thread until the returned guard is dropped.
    ///
    /// Inside, the context's spans are the current ones, and a pipeline for which the
    /// context holds no span has none current (spans current on the thread before are
    /// hidden, not inherited).
    ///
    /// # Examples
    ///
    /// ```
    /// use foundations::telemetry::TelemetryContext;
    /// use foundations::telemetry::tracing::{self, StartTraceOptions};
    ///
    /// # let test = TelemetryContext::test();
    /// # let _test_scope = test.scope();
    /// let ctx = tracing::start_trace("job", StartTraceOptions::default()).into_context();
    /// assert!(tracing::trace_id().is_none());
    /// {
    ///     let _scope = ctx.scope();
    ///     assert!(tracing::trace_id().is_some());
    /// }
    /// assert!(tracing::trace_id().is_none());
    /// ```
    pub fn scope(&self) -> TelemetryScope {
        self.scope_with(|ctx| (ctx.push::<Internal>(), ctx.push::<User>()))
    }

    /// As [`scope`](Self::scope), for a scope that ends while this context (and so a handle
    /// to each of its spans) still lives: its entries end in place (see [`stack::push_outlived`]).
    fn scope_outlived(&self) -> TelemetryScope {
        self.scope_with(|ctx| (ctx.push_outlived::<Internal>(), ctx.push_outlived::<User>()))
    }

    /// Pushes this context's span of pipeline `P` as [`push`](Self::push) does, marked as
    /// outlived by this context.
    fn push_outlived<P: Pipeline>(&self) -> Option<ScopeId<P>> {
        stack::push_outlived::<P>(|slot| {
            *slot = self.span::<P>().map(|span| EntrySpan::Shared(span.clone()));
        })
    }

    #[inline]
    fn scope_with(
        &self,
        push: impl FnOnce(&Self) -> (Option<ScopeId<Internal>>, Option<ScopeId<User>>),
    ) -> TelemetryScope {
        let (internal, user) = push(self);
        TelemetryScope {
            internal: Scope::of(internal),
            user: Scope::of(user),
            #[cfg(feature = "testing")]
            previous_test_harnesses: PerPipeline::new(
                current::swap_test_harness::<Internal>(self.test_harnesses.internal.clone()),
                current::swap_test_harness::<User>(self.test_harnesses.user.clone()),
            ),
            _not_send: PhantomData,
        }
    }

    /// Runs `f` with this context current, and returns its result.
    ///
    /// Shorthand for `{ let _scope = ctx.scope(); f() }`.
    pub fn scope_and<R>(&self, f: impl FnOnce() -> R) -> R {
        let _scope = self.scope_outlived();
        f()
    }

    /// Wraps `future` so that this context is current during every poll of it.
    ///
    /// The future is not boxed: the wrapper adds the context (a few words) to its size.
    ///
    /// Each poll leaves this thread's current spans exactly as it found them. A scope the
    /// future holds across an `.await` (possible for a `!Send` future on a `LocalSet`, or
    /// under `join!`) stays the future's own: while it is suspended, other futures polled on
    /// the thread do not see it.
    ///
    /// # Examples
    ///
    /// ```
    /// use foundations::telemetry::TelemetryContext;
    /// use foundations::telemetry::tracing::{self, StartTraceOptions};
    ///
    /// # #[tokio::main]
    /// # async fn main() {
    /// # let test = TelemetryContext::test();
    /// # let _test_scope = test.scope();
    /// let root = tracing::start_trace("request", StartTraceOptions::default());
    /// let trace_id = tracing::trace_id();
    /// let handle = tokio::spawn(root.into_context().apply(async move {
    ///     tokio::task::yield_now().await;
    ///     let _child = tracing::span("in_task");
    ///     assert_eq!(tracing::trace_id(), trace_id);
    /// }));
    /// handle.await.unwrap();
    /// # }
    /// ```
    pub fn apply<F: Future>(self, future: F) -> WithTelemetryContext<F> {
        WithTelemetryContext {
            ctx: self,
            parked: PerPipeline::default(),
            inner: future,
        }
    }

    /// A new context whose internal span is a new span named `name`, opened as a child of
    /// *this context's* span, whatever is current on the calling thread.
    ///
    /// Use it to hand a branch of the trace to work that outlives the current request
    /// (a background task, a deferred write): the fork keeps the trace id and links to the
    /// context's span, and it finishes on its own schedule. A context without an internal
    /// span forks into a new trace. The user span, if any, is carried unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use foundations::telemetry::TelemetryContext;
    /// use foundations::telemetry::tracing::{self, StartTraceOptions};
    ///
    /// # let test = TelemetryContext::test();
    /// # let _test_scope = test.scope();
    /// let ctx = tracing::start_trace("request", StartTraceOptions::default()).into_context();
    /// let request_trace = ctx.scope_and(tracing::trace_id);
    ///
    /// let fork = ctx.with_forked_trace("background_flush");
    /// assert_eq!(fork.scope_and(tracing::trace_id), request_trace);
    /// assert_ne!(fork.scope_and(tracing::span_id), ctx.scope_and(tracing::span_id));
    /// ```
    pub fn with_forked_trace(&self, name: impl Into<Cow<'static, str>>) -> TelemetryContext {
        let name = name.into();
        let _scope = self.scope();
        let fork = match self.span::<Internal>() {
            Some(parent) => Some(parent.child(name).into_shared()),
            None => current::root_harness::<Internal>().map(|harness| {
                EntrySpan::start_tracked_root::<Internal>(harness, name, RootOptions::default())
                    .into_shared()
            }),
        };
        // The rest (the user span, a test context's harnesses) as the context holds it.
        let mut forked = TelemetryContext::current();
        forked.set_span::<Internal>(fork);
        forked
    }
}

/// Keeps a [`TelemetryContext`] current on this thread; restores the previous state on drop.
///
/// Returned by [`TelemetryContext::scope`]. Not `Send`: it belongs to the thread whose
/// state it changed.
#[must_use = "the context is current only while its scope lives"]
pub struct TelemetryScope {
    internal: Scope<Internal>,
    user: Scope<User>,
    #[cfg(feature = "testing")]
    previous_test_harnesses: PerPipeline<Option<Arc<Harness>>>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for TelemetryScope {
    fn drop(&mut self) {
        // The entries end before the test harnesses are restored: ending a span may run a
        // finish callback, whose new spans still belong to this context.
        drop(std::mem::replace(&mut self.internal, Scope::inert()));
        drop(std::mem::replace(&mut self.user, Scope::inert()));
        #[cfg(feature = "testing")]
        {
            let previous = &mut self.previous_test_harnesses;
            drop(current::swap_test_harness::<Internal>(
                previous.internal.take(),
            ));
            drop(current::swap_test_harness::<User>(previous.user.take()));
        }
    }
}

impl std::fmt::Debug for TelemetryScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryScope").finish_non_exhaustive()
    }
}

pin_project! {
    /// A future that runs with a [`TelemetryContext`] current during every poll.
    ///
    /// Returned by [`TelemetryContext::apply`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct WithTelemetryContext<F> {
        ctx: TelemetryContext,
        // What the future's code left on this thread's stacks when it last returned
        // `Pending` (see `frame`). Declared before `inner`, so it drops first: the spans
        // finish, and the scopes `inner` still holds then find nothing left to end.
        parked: PerPipeline<Parked>,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for WithTelemetryContext<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let polled = Polled::new(
            &this.ctx.spans,
            #[cfg(feature = "testing")]
            &this.ctx.test_harnesses,
        );
        let _scope = PollScope::enter(&polled, this.parked);
        this.inner.poll(cx)
    }
}

/// A context made current for one poll of the future it drives (see [`frame`]); on drop
/// (also by a panic in the poll) it parks what the poll left and ends the poll. It borrows
/// the poll's record, which borrows the context, for as long as the stacks point to them.
struct PollScope<'a, 'ctx> {
    polled: &'a Polled<'ctx>,
    parked: &'a mut PerPipeline<Parked>,
    entered: bool,
}

impl<'a, 'ctx> PollScope<'a, 'ctx> {
    #[inline]
    fn enter(polled: &'a Polled<'ctx>, parked: &'a mut PerPipeline<Parked>) -> Self {
        Self {
            entered: frame::enter(polled, parked),
            polled,
            parked,
        }
    }
}

impl Drop for PollScope<'_, '_> {
    #[inline]
    fn drop(&mut self) {
        if self.entered {
            frame::leave(self.polled, self.parked);
        }
    }
}

/// Spawns `future` on the current tokio runtime with the current [`TelemetryContext`].
///
/// Exactly `tokio::spawn(TelemetryContext::current().apply(future))`. Must be called from
/// within a tokio runtime, like `tokio::spawn`.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::{self, TelemetryContext};
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # #[tokio::main]
/// # async fn main() {
/// # let test = TelemetryContext::test();
/// # let _test_scope = test.scope();
/// let _root = tracing::start_trace("request", StartTraceOptions::default());
/// let parent = tracing::span_id();
/// telemetry::spawn(async move {
///     let _child = tracing::span("background");
/// })
/// .await
/// .unwrap();
/// # drop(_root);
/// # let traces = test.traces(Default::default());
/// # assert_eq!(traces[0].children[0].parent_id, parent);
/// # }
/// ```
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(TelemetryContext::current().apply(future))
}

/// Spawns a `!Send` `future` on the current [`LocalSet`](tokio::task::LocalSet) with the
/// current [`TelemetryContext`].
///
/// Exactly `tokio::task::spawn_local(TelemetryContext::current().apply(future))`. Scopes
/// the future holds across `.await` stay its own: other tasks of the `LocalSet` never see
/// them (see [`TelemetryContext::apply`]).
///
/// # Examples
///
/// ```
/// use foundations::telemetry::{self, TelemetryContext};
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let test = TelemetryContext::test();
/// # let _test_scope = test.scope();
/// let local = tokio::task::LocalSet::new();
/// local
///     .run_until(async {
///         let _root = tracing::start_trace("request", StartTraceOptions::default());
///         telemetry::spawn_local(async {
///             // A scope held across `.await`: fine in a `!Send` task, and its own.
///             let _step = tracing::span("step");
///             tokio::task::yield_now().await;
///         })
///         .await
///         .unwrap();
///     })
///     .await;
/// # }
/// ```
pub fn spawn_local<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    tokio::task::spawn_local(TelemetryContext::current().apply(future))
}
