//! [`RequestContext`]: one request's spans (both pipelines), current while the tower layers
//! call the inner service, poll its response future and poll the response body.
//!
//! Each of those is entered as a *frame* on the scope stacks (`core::frame`), as
//! [`TelemetryContext::apply`](crate::telemetry::TelemetryContext::apply) enters a poll: a
//! few stores, no entry pushed and no handle cloned unless the code run inside opens a child
//! or tags the span. A scope pushing an entry per pipeline for each of the three would cost
//! a request more than all its frames. What the inner code leaves on the stacks (a scope a
//! `!Send` future holds across `.await`) is parked here and put back on the next entry, so
//! every call leaves the thread's current spans as it found them.
//!
//! This module owns only that entering; which spans a request has is the layers' choice.

use crate::telemetry::TelemetryContext;
use crate::telemetry::core::entry_span::SpanHandle;
use crate::telemetry::core::frame::{self, Parked};
use crate::telemetry::core::pipeline::{Internal, PerPipeline, Pipeline, User};
use crate::telemetry::core::polled::Polled;
#[cfg(feature = "user-tracing")]
use crate::telemetry::core::stack;

#[cfg(feature = "testing")]
use crate::telemetry::core::current;
#[cfg(feature = "testing")]
use crate::telemetry::core::harness::Harness;
#[cfg(feature = "testing")]
use std::sync::Arc;

/// A request's spans, and what its code left on the stacks between two polls.
pub(crate) struct RequestContext {
    spans: PerPipeline<Option<SpanHandle>>,
    /// The test harnesses current where the request arrived: spans the handler roots go to
    /// the same test sinks, as with a `TelemetryContext`.
    #[cfg(feature = "testing")]
    test_harnesses: PerPipeline<Option<Arc<Harness>>>,
    parked: PerPipeline<Parked>,
}

impl RequestContext {
    /// `internal` as the internal span, with this thread's current user span: the context
    /// of a request whose internal root was built off the stack.
    pub(crate) fn with_internal(internal: Option<SpanHandle>) -> Self {
        // Without the user pipeline compiled in, no user span exists to look up.
        #[cfg(feature = "user-tracing")]
        let user = stack::current::<User>();
        #[cfg(not(feature = "user-tracing"))]
        let user = None;
        Self::of(PerPipeline::new(internal, user))
    }

    /// The spans `ctx` holds.
    pub(crate) fn from_context(ctx: &TelemetryContext) -> Self {
        Self::of(PerPipeline::new(
            ctx.span::<Internal>().cloned(),
            ctx.span::<User>().cloned(),
        ))
    }

    fn of(spans: PerPipeline<Option<SpanHandle>>) -> Self {
        Self {
            spans,
            #[cfg(feature = "testing")]
            test_harnesses: PerPipeline::new(
                current::test_harness::<Internal>(),
                current::test_harness::<User>(),
            ),
            parked: PerPipeline::default(),
        }
    }

    /// The request's span of pipeline `P`, if it has one.
    pub(crate) fn span<P: Pipeline>(&self) -> Option<&SpanHandle> {
        self.spans.get::<P>().as_ref()
    }

    /// Runs `f` with the request's spans current (as frames), then parks what `f` left.
    #[inline]
    pub(crate) fn enter_and<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let (polled, parked) = self.parts();
        let _leave = enter(&polled, parked);
        f()
    }

    /// The request's spans as a poll's record, and where what the code run inside leaves
    /// is parked: [`enter`] them. For a caller that runs its code in its own frame, where
    /// [`enter_and`](Self::enter_and) would move what the code takes into a closure.
    #[inline]
    pub(crate) fn parts(&mut self) -> (Polled<'_>, &mut PerPipeline<Parked>) {
        let polled = Polled::new(
            &self.spans,
            #[cfg(feature = "testing")]
            &self.test_harnesses,
        );
        (polled, &mut self.parked)
    }
}

/// Makes a request's spans current (as frames) until the returned guard drops, also when
/// the code run meanwhile panics; then parks what that code left. `polled` and `parked` come
/// from [`RequestContext::parts`].
#[inline]
pub(crate) fn enter<'a, 'spans>(
    polled: &'a Polled<'spans>,
    parked: &'a mut PerPipeline<Parked>,
) -> Leave<'a, 'spans> {
    Leave {
        entered: frame::enter(polled, parked),
        polled,
        parked,
    }
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("internal", &self.spans.internal)
            .field("user", &self.spans.user)
            .finish_non_exhaustive()
    }
}

/// Leaves the frames [`enter`] entered, also on a panic. It borrows the poll's record,
/// which borrows the spans, for as long as the stacks point to them.
pub(crate) struct Leave<'a, 'spans> {
    polled: &'a Polled<'spans>,
    parked: &'a mut PerPipeline<Parked>,
    entered: bool,
}

impl Drop for Leave<'_, '_> {
    #[inline]
    fn drop(&mut self) {
        if self.entered {
            frame::leave(self.polled, self.parked);
        }
    }
}
