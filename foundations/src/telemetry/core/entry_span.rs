//! [`EntrySpan`]: what a scope stack entry holds, a span it owns or a [`SpanHandle`] to a
//! shared one (what contexts hold), and the constructors that start spans into them (roots,
//! tracked or not, and children).
//!
//! This module owns the choice between the two shapes; recording itself is `span`'s, and
//! where the entry sits is the stack's.

use super::harness::{HarnessRef, RootOptions, RootPlan};
use super::identity::SpanState;
use super::links::SpanLink;
use super::pipeline::{Pipeline, Tracked};
use super::span::{LiveSpan, ReplacedCallbacks, SharedLiveSpan};
use super::tags::NewTag;
use cf_rustracing::log::LogField;
use cf_rustracing::span::FinishSpanCallback;
use std::borrow::Cow;
use std::sync::Arc;

/// What a scope stack entry holds: a span it owns, or a handle to a shared one.
// The owned span is inline on purpose: boxing it would cost an allocation per span, and
// entries are built and finished in place, so the size is not copied around.
#[allow(clippy::large_enum_variant)]
pub(crate) enum EntrySpan {
    /// A recorded span that only this entry refers to.
    Owned(LiveSpan),
    Shared(SpanHandle),
}

impl From<SpanHandle> for EntrySpan {
    fn from(span: SpanHandle) -> Self {
        EntrySpan::Shared(span)
    }
}

impl EntrySpan {
    /// Starts a tracked root span of pipeline `P` from `harness` (a new trace, or the local
    /// root of an inbound one): if recorded, it is in the live registry until it finishes.
    #[inline]
    pub(crate) fn start_tracked_root<P: Tracked>(
        harness: HarnessRef,
        name: Cow<'static, str>,
        options: RootOptions,
    ) -> EntrySpan {
        match harness.plan_root::<P>(options) {
            RootPlan::Unsampled(state) => EntrySpan::Shared(SpanHandle::NonRecording(state)),
            RootPlan::Recorded { state, parent } => EntrySpan::Owned(
                LiveSpan::start_tracked_root::<P>(harness, name, state, parent),
            ),
        }
    }

    /// Starts an untracked root span of pipeline `P`: the live registry never sees it nor
    /// its descendants. The user pipeline's only root constructor.
    #[cfg_attr(not(any(feature = "user-tracing", test)), allow(dead_code))]
    #[inline]
    pub(crate) fn start_untracked_root<P: Pipeline>(
        harness: HarnessRef,
        name: Cow<'static, str>,
        options: RootOptions,
    ) -> EntrySpan {
        match harness.plan_root::<P>(options) {
            RootPlan::Unsampled(state) => EntrySpan::Shared(SpanHandle::NonRecording(state)),
            RootPlan::Recorded { state, parent } => {
                EntrySpan::Owned(LiveSpan::start(harness, name, state, parent, None))
            }
        }
    }

    pub(crate) fn state(&self) -> &SpanState {
        match self {
            EntrySpan::Owned(span) => span.state(),
            EntrySpan::Shared(span) => span.state(),
        }
    }

    pub(crate) fn is_recording(&self) -> bool {
        match self {
            EntrySpan::Owned(_) => true,
            EntrySpan::Shared(span) => span.as_recording().is_some(),
        }
    }

    /// Starts a `ChildOf` span, as [`SpanHandle::child`] does.
    #[inline]
    pub(crate) fn child(&self, name: Cow<'static, str>) -> EntrySpan {
        match self {
            EntrySpan::Owned(parent) => EntrySpan::Owned(parent.child(name)),
            EntrySpan::Shared(parent) => parent.child(name),
        }
    }

    /// A handle that can be shared, with `fill` recorded first if the span is owned (a
    /// shared span is left as it is: the caller records through its lock).
    #[cfg(feature = "tracing-bridge")]
    #[inline]
    pub(crate) fn into_shared_with(self, fill: impl FnOnce(&mut LiveSpan)) -> SpanHandle {
        match self {
            EntrySpan::Owned(span) => SpanHandle::shared_with(span, fill),
            EntrySpan::Shared(span) => span,
        }
    }

    /// `true` when dropping this handle runs no application code, so it may be dropped
    /// while a scope stack is borrowed: an owned span that
    /// [finishes without application code](LiveSpan::finish_runs_no_app_code), or an unsampled one without routing.
    /// A shared recorded span may be the last handle of a span with a finish callback.
    pub(crate) fn finish_runs_no_app_code(&self) -> bool {
        match self {
            EntrySpan::Owned(span) => span.finish_runs_no_app_code(),
            EntrySpan::Shared(SpanHandle::NonRecording(state)) => state.routing().is_none(),
            EntrySpan::Shared(SpanHandle::Recording(_)) => false,
        }
    }

    /// A handle that can be shared; an owned span moves behind an `Arc` for it.
    pub(crate) fn into_shared(self) -> SpanHandle {
        match self {
            EntrySpan::Owned(span) => SpanHandle::Recording(SharedLiveSpan::new(span)),
            EntrySpan::Shared(span) => span,
        }
    }

    /// Sets tags if the span is recorded.
    #[inline]
    pub(crate) fn set_tags<T: NewTag>(&mut self, tags: impl IntoIterator<Item = T>) {
        match self {
            EntrySpan::Owned(span) => span.set_tags(tags),
            EntrySpan::Shared(SpanHandle::Recording(span)) => {
                span.with_span(|span| span.set_tags(tags))
            }
            EntrySpan::Shared(SpanHandle::NonRecording(_)) => {}
        }
    }

    /// Sets one tag if the span is recorded.
    #[inline]
    pub(crate) fn set_tag(&mut self, tag: impl NewTag) {
        match self {
            EntrySpan::Owned(span) => span.set_tag(tag),
            EntrySpan::Shared(SpanHandle::Recording(span)) => {
                span.with_span(|span| span.set_tag(tag))
            }
            EntrySpan::Shared(SpanHandle::NonRecording(_)) => {}
        }
    }

    /// Adds a link if the span is recorded.
    pub(crate) fn add_link(&mut self, link: SpanLink) {
        match self {
            EntrySpan::Owned(span) => span.add_link(link),
            EntrySpan::Shared(SpanHandle::Recording(span)) => {
                span.with_span(|span| span.add_link(link))
            }
            EntrySpan::Shared(SpanHandle::NonRecording(_)) => {}
        }
    }

    /// Adds a log entry if the span is recorded.
    pub(crate) fn log(&mut self, fields: impl IntoIterator<Item = LogField>) {
        match self {
            EntrySpan::Owned(span) => span.log(fields),
            EntrySpan::Shared(SpanHandle::Recording(span)) => {
                span.with_span(|span| span.log(fields))
            }
            EntrySpan::Shared(SpanHandle::NonRecording(_)) => {}
        }
    }

    /// Sets the finish callback if the span is recorded. Returns what the caller must drop
    /// outside its borrows: the replaced callbacks, or `callback` itself if unused.
    pub(crate) fn set_finish_callback(
        &mut self,
        callback: FinishSpanCallback<SpanState>,
    ) -> Result<ReplacedCallbacks, FinishSpanCallback<SpanState>> {
        match self {
            EntrySpan::Owned(span) => Ok(span.set_finish_callback(callback)),
            EntrySpan::Shared(SpanHandle::Recording(span)) => {
                Ok(span.set_finish_callback(callback))
            }
            EntrySpan::Shared(SpanHandle::NonRecording(_)) => Err(callback),
        }
    }
}

// Here rather than beside `SpanHandle`'s other methods: a child is an entry's span, and
// recording must not know about entries.
impl SpanHandle {
    /// Starts a tracked root of pipeline `P` as [`EntrySpan::start_tracked_root`] does, but
    /// straight as a shared handle, `fill` recorded into it first (only if it is recorded):
    /// for a root that is shared from the start, never an entry's (a server request's).
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn start_tracked_root<P: Tracked>(
        harness: HarnessRef,
        name: Cow<'static, str>,
        options: RootOptions,
        fill: impl FnOnce(&mut LiveSpan),
    ) -> SpanHandle {
        match harness.plan_root::<P>(options) {
            RootPlan::Unsampled(state) => SpanHandle::NonRecording(state),
            RootPlan::Recorded { state, parent } => SpanHandle::Recording(
                SharedLiveSpan::start_tracked_root::<P>(harness, name, state, parent, fill),
            ),
        }
    }

    /// Starts a `ChildOf` span. The child inherits the parent's harness, finish callback
    /// and (through its state) routing; an unsampled parent has unsampled children.
    #[inline]
    pub(crate) fn child(&self, name: Cow<'static, str>) -> EntrySpan {
        match self {
            SpanHandle::Recording(parent) => EntrySpan::Owned(parent.child(name)),
            // An unsampled child records nothing but has its own span id, as W3C Level 2
            // asks: a downstream `traceparent` names the span that took part.
            SpanHandle::NonRecording(state) => {
                EntrySpan::Shared(SpanHandle::NonRecording(state.child()))
            }
        }
    }
}

/// The handle to an open span that telemetry contexts hold, and that scope stack entries
/// hold once the span is shared.
#[derive(Clone)]
pub(crate) enum SpanHandle {
    /// A sampled span: tags and logs are recorded and it is exported when it finishes.
    Recording(Arc<SharedLiveSpan>),
    /// An unsampled span: it records nothing and allocates nothing, but has its own
    /// identity (trace, span id, flags) so that the "not sampled" decision and the span
    /// that took part are propagated downstream.
    NonRecording(SpanState),
}

impl SpanHandle {
    pub(crate) fn state(&self) -> &SpanState {
        match self {
            SpanHandle::Recording(span) => &span.state,
            SpanHandle::NonRecording(state) => state,
        }
    }

    pub(crate) fn as_recording(&self) -> Option<&Arc<SharedLiveSpan>> {
        match self {
            SpanHandle::Recording(span) => Some(span),
            SpanHandle::NonRecording(_) => None,
        }
    }

    /// Starts a `ChildOf` span as a shared handle, `fill` recorded into it first (no lock:
    /// nothing else refers to it yet), built straight into its `Arc` rather than copied
    /// through an [`EntrySpan`]. `fill` runs only for a recorded child.
    #[cfg(feature = "tracing-bridge")]
    #[inline]
    pub(crate) fn child_shared(
        &self,
        name: Cow<'static, str>,
        fill: impl FnOnce(&mut LiveSpan),
    ) -> SpanHandle {
        match self {
            SpanHandle::Recording(parent) => SpanHandle::shared_with(parent.child(name), fill),
            SpanHandle::NonRecording(state) => SpanHandle::NonRecording(state.child()),
        }
    }

    #[cfg(feature = "tracing-bridge")]
    #[inline]
    pub(super) fn shared_with(mut span: LiveSpan, fill: impl FnOnce(&mut LiveSpan)) -> SpanHandle {
        // A tracked root's first tags go straight to the span: the registry reads them
        // from it once it is shared.
        span.read_tags_live();
        fill(&mut span);
        SpanHandle::Recording(SharedLiveSpan::new(span))
    }
}

impl std::fmt::Debug for SpanHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            SpanHandle::Recording(_) => "Recording",
            SpanHandle::NonRecording(_) => "NonRecording",
        };
        f.debug_tuple(kind).field(self.state()).finish()
    }
}
