//! The shapes a span takes while it is open, from the cheapest to the most shared:
//!
//! - [`LiveSpan`]: a recorded span's data. It finishes (and is handed to its harness) when
//!   it is dropped.
//! - [`EntrySpan`]: what a scope stack entry holds. A recorded span that nothing else refers
//!   to is *owned* by its entry: the stack is thread-local and scopes are not `Send`, so
//!   tags, logs and children need no lock, no reference count and no allocation of their
//!   own. Only when the span must be shared does it move behind an `Arc`.
//! - [`SpanHandle`]: what a [`TelemetryContext`](crate::telemetry::TelemetryContext) holds;
//!   a recorded one is an `Arc<SharedLiveSpan>` (the live span under a lock), an unsampled
//!   one just its identity.
//!
//! A live span is not a `cf_rustracing` span: starting and finishing one costs two clock
//! reads, a random id and a queue push, with no allocation. It becomes one (kept inside it,
//! see [`LiveSpan::full`]) only when it needs what only `cf_rustracing` can give: log
//! entries (whose type only a `cf_rustracing` span can build), and, as it finishes, a
//! finish callback's argument (a `&mut Span`). Tags, links and what the span limits dropped
//! stay in the live span whatever its representation, bounded as they arrive (the `limits`
//! module).
//!
//! This module owns recording. It knows nothing about which span is current (that is the
//! scope stack) nor where finished spans go beyond handing them to their harness.

use super::clock::Timestamp;
use super::finished::FinishedSpan;
use super::harness::HarnessRef;
use super::harness::{RootOptions, RootPlan};
use super::identity::{ParentSpan, Span, SpanState};
use super::limits::{self, Bounded, HandedOver, InlineTags};
use super::links::SpanLink;
use super::routing::log_rate_limited;
use cf_rustracing::log::LogField;
use cf_rustracing::span::FinishSpanCallback;
use cf_rustracing::tag::Tag;
use parking_lot::Mutex;
use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A recorded span while it is open. Dropping it finishes it: its record goes to the
/// harness it was started from.
///
/// Callers must drop live spans outside any borrow of a scope stack and outside any lock of
/// ours, unless the span [finishes without application code](Self::finish_runs_no_app_code): finishing runs the
/// span's finish callback, which is application code.
pub(crate) struct LiveSpan {
    state: SpanState,
    harness: HarnessRef,
    parent: Option<ParentSpan>,
    start_time: Timestamp,
    /// Moved into [`full`](Self::full) when that is created.
    name: Cow<'static, str>,
    /// Kept here whatever the representation, bounded by the span limits.
    tags: InlineTags,
    /// Kept (also) here so that children inherit it without touching `full`.
    finish_cb: Option<FinishSpanCallback<SpanState>>,
    /// Links, a tag index and the span limits' counts, kept here whatever the
    /// representation (`cf_rustracing` has none of them); `None` until there are any.
    bounded: Option<Box<Bounded>>,
    /// The span as a `cf_rustracing` span, once it needed to be one (see the module docs).
    /// From then on it holds the name, logs and finish callback, and finishing it is
    /// dropping it. Boxed so that the common span, which never has one, stays small.
    full: Option<Box<Span>>,
}

impl LiveSpan {
    /// Starts a span now.
    ///
    /// Inlined, like the other constructors on the way to a scope stack entry, so that the
    /// span is written straight into its entry rather than copied there.
    #[inline]
    pub(crate) fn start(
        harness: HarnessRef,
        name: Cow<'static, str>,
        state: SpanState,
        parent: Option<ParentSpan>,
        finish_cb: Option<FinishSpanCallback<SpanState>>,
    ) -> Self {
        Self {
            state,
            harness,
            parent,
            start_time: Timestamp::now(),
            name,
            tags: InlineTags::new(),
            finish_cb,
            bounded: None,
            full: None,
        }
    }

    /// Starts a `ChildOf` span: same harness, trace, routing and finish callback.
    #[inline]
    fn child(&self, name: Cow<'static, str>) -> LiveSpan {
        LiveSpan::start(
            self.harness.clone(),
            name,
            self.state.child(),
            Some(ParentSpan::of(&self.state)),
            self.finish_cb.clone(),
        )
    }

    /// Sets tags; each replaces an earlier tag of the same name (in its place), or is
    /// dropped and counted past the attribute limit. O(1) amortised per tag.
    ///
    /// Inlined, so that the tags go from where the macro built them into the span without
    /// intermediate copies.
    #[inline]
    pub(crate) fn set_tags(&mut self, tags: impl IntoIterator<Item = Tag>) {
        let limits = self.harness.limits();
        for tag in tags {
            limits::set_tag(&mut self.tags, &mut self.bounded, tag, limits);
        }
    }

    /// Renames the span (the `tracing` bridge's `otel.name`, which may be recorded late).
    #[cfg(feature = "tracing-bridge")]
    pub(crate) fn rename(&mut self, name: Cow<'static, str>) {
        match &mut self.full {
            Some(full) => full.set_operation_name(|| name),
            None => self.name = name,
        }
    }

    /// Adds a link (its string attribute values cut to the value length limit), or counts it
    /// as dropped past the links limit.
    pub(crate) fn add_link(&mut self, link: SpanLink) {
        let limits = self.harness.limits();
        let link = limits::bounded_link(link, limits);
        let bounded = self.bounded.get_or_insert_default();
        bounded.links.push(link, limits.max_links());
    }

    /// Adds a log entry, timestamped now, or counts it as dropped past the events limit;
    /// its fields beyond the per-event limit are dropped and counted.
    pub(crate) fn log(&mut self, fields: impl IntoIterator<Item = LogField>) {
        let limits = *self.harness.limits();
        if !self.bounded.get_or_insert_default().admit_event(&limits) {
            return;
        }
        let mut dropped = 0;
        let mut kept_any = false;
        self.full().log(|log| {
            for field in limits::bounded_fields(fields, &limits, &mut dropped) {
                kept_any = true;
                log.field(field);
            }
        });
        // An entry without fields is not recorded (`cf_rustracing` skips it); one that had
        // fields, all over the limit, is counted as a dropped event.
        let bounded = self.bounded.get_or_insert_default();
        if kept_any {
            bounded.kept_event(dropped);
        } else if dropped > 0 {
            bounded.count_dropped_events(1);
        }
    }

    /// Sets the finish callback, which children started from now on inherit. Returns the
    /// callbacks it replaces, for the caller to drop outside its borrows (dropping a
    /// callback may run application code).
    #[must_use = "drop replaced callbacks outside borrows and locks"]
    pub(crate) fn set_finish_callback(
        &mut self,
        callback: FinishSpanCallback<SpanState>,
    ) -> ReplacedCallbacks {
        // Without `full` yet, the callback is installed when `full` is created.
        let previous_full = self.full.as_mut().and_then(|full| {
            let previous = full.take_finish_callback();
            full.set_finish_callback(callback.clone());
            previous
        });
        [self.finish_cb.replace(callback), previous_full]
    }

    /// `true` when finishing runs no application code: no finish callback, and no routing
    /// whose last reference the record might drop (if the queue is full).
    fn finish_runs_no_app_code(&self) -> bool {
        self.finish_cb.is_none() && self.full.is_none() && self.state.routing().is_none()
    }

    /// The span as a `cf_rustracing` span, created on first use from what was recorded so
    /// far.
    fn full(&mut self) -> &mut Span {
        if self.full.is_none() {
            let name = std::mem::take(&mut self.name);
            let mut options = self
                .harness
                .tracer()
                .span(name)
                .start_time(self.start_time.system_time());
            if let Some(parent) = self.parent {
                options = options.child_of(&parent.state(&self.state).into_parent_context());
            }
            let mut span = options.start_with_state(self.state.clone());
            if let Some(callback) = &self.finish_cb {
                span.set_finish_callback(callback.clone());
            }
            self.full = Some(Box::new(span));
        }
        self.full.as_mut().expect("created above")
    }
}

impl Drop for LiveSpan {
    fn drop(&mut self) {
        if self.finish_cb.is_some() || self.full.is_some() {
            // The callback receives the span as a `cf_rustracing` span: dropping that runs
            // the callback, then hands the span to the harness's tracer, whose consumer
            // converts and queues it; the tags, links and counts wait on this thread for
            // that record.
            self.full();
            let tags = std::mem::take(&mut self.tags);
            let bounded = self.bounded.take();
            if !tags.is_empty() || bounded.is_some() {
                limits::hand_over(self.state.span_id(), HandedOver { tags, bounded });
            }
            let mut full = self.full.take();
            if let Some(full) = &mut full {
                // The same clock as the start, so that the end is never before it.
                full.set_finish_time(|| Timestamp::now().system_time());
            }
            // The callback is application code: a panic in it costs this span (counted), not
            // the thread that finished it.
            if catch_unwind(AssertUnwindSafe(move || drop(full))).is_err() {
                // The record was never built: what it was handed must not wait for it.
                drop(limits::take_handed_over(self.state.span_id()));
                self.harness.count_callback_panic();
                static LAST_LOG_SECS: AtomicU64 = AtomicU64::new(0);
                log_rate_limited(&LAST_LOG_SECS, || {
                    log::error!(
                        "foundations tracing: a span finish callback panicked; its span is \
                         dropped and counted (dropped_callback_panicked)"
                    )
                });
            }
            return;
        }
        // The parts are moved, not copied, into the record.
        self.harness.finish_with(|| {
            FinishedSpan::new(
                std::mem::take(&mut self.name),
                self.state.take(),
                self.parent,
                self.start_time,
                Timestamp::now(),
                std::mem::take(&mut self.tags),
                self.bounded.take(),
            )
        });
    }
}

/// Finish callbacks replaced by [`LiveSpan::set_finish_callback`] (the span's own copy and
/// its `cf_rustracing` span's). Drop them outside any borrow or lock of ours.
pub(crate) type ReplacedCallbacks = [Option<FinishSpanCallback<SpanState>>; 2];

/// A recorded span that is shared: by [`TelemetryContext`](crate::telemetry::TelemetryContext)s,
/// `UserSpan`s and scope stack entries.
///
/// The span finishes when the last handle is dropped.
pub(crate) struct SharedLiveSpan {
    /// A copy of the span's identity, so that reading ids and starting children never
    /// takes the lock.
    state: SpanState,
    harness: HarnessRef,
    /// `true` once the span has (or inherited) a finish callback: only then does a child
    /// take the lock, to inherit it.
    has_finish_callback: AtomicBool,
    span: Mutex<LiveSpan>,
}

impl SharedLiveSpan {
    fn new(span: LiveSpan) -> Arc<Self> {
        Arc::new(Self {
            state: span.state.clone(),
            harness: span.harness.clone(),
            has_finish_callback: AtomicBool::new(span.finish_cb.is_some()),
            span: Mutex::new(span),
        })
    }

    /// Runs `f` on the span under its lock.
    ///
    /// Callers must not run application code inside `f`: build tags and log fields before
    /// calling this, so the lock is held only for the push itself.
    pub(crate) fn with_span<R>(&self, f: impl FnOnce(&mut LiveSpan) -> R) -> R {
        f(&mut self.span.lock())
    }

    #[must_use = "drop replaced callbacks outside borrows and locks"]
    fn set_finish_callback(&self, callback: FinishSpanCallback<SpanState>) -> ReplacedCallbacks {
        let replaced = self.with_span(|span| span.set_finish_callback(callback));
        self.has_finish_callback.store(true, Ordering::Release);
        replaced
    }

    #[inline]
    fn child(&self, name: Cow<'static, str>) -> LiveSpan {
        let finish_cb = if self.has_finish_callback.load(Ordering::Acquire) {
            self.with_span(|span| span.finish_cb.clone())
        } else {
            None
        };
        LiveSpan::start(
            self.harness.clone(),
            name,
            self.state.child(),
            Some(ParentSpan::of(&self.state)),
            finish_cb,
        )
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

impl std::fmt::Debug for SpanHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            SpanHandle::Recording(_) => "Recording",
            SpanHandle::NonRecording(_) => "NonRecording",
        };
        f.debug_tuple(kind).field(self.state()).finish()
    }
}

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
    /// Starts a root span from `harness`: a new trace, or the local root of an inbound one.
    #[cfg_attr(not(any(feature = "user-tracing", test)), allow(dead_code))]
    #[inline]
    pub(crate) fn start_root(
        harness: HarnessRef,
        name: Cow<'static, str>,
        options: RootOptions,
    ) -> EntrySpan {
        match harness.plan_root(options) {
            RootPlan::Unsampled(state) => EntrySpan::Shared(SpanHandle::NonRecording(state)),
            RootPlan::Recorded { state, parent } => {
                EntrySpan::Owned(LiveSpan::start(harness, name, state, parent, None))
            }
        }
    }

    pub(crate) fn state(&self) -> &SpanState {
        match self {
            EntrySpan::Owned(span) => &span.state,
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
    pub(crate) fn set_tags(&mut self, tags: impl IntoIterator<Item = Tag>) {
        match self {
            EntrySpan::Owned(span) => span.set_tags(tags),
            EntrySpan::Shared(SpanHandle::Recording(span)) => {
                span.with_span(|span| span.set_tags(tags))
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

#[cfg(all(test, feature = "testing"))]
mod tests {
    use crate::telemetry::TelemetryContext;
    use crate::telemetry::tracing::{self, Span, StartTraceOptions, Tag, TagValue};
    use crate::{add_span_log_fields, add_span_tags, set_span_finish_callback};

    #[test]
    fn spans_opened_by_a_finish_callback_are_recorded() {
        let ctx = TelemetryContext::test();
        ctx.scope_and(|| {
            let _root = tracing::start_trace("root", StartTraceOptions::default());
            let _child = tracing::span("child");
            set_span_finish_callback!(|_: &mut Span| drop(tracing::span("from_callback")));
        });
        let traces = ctx.traces(Default::default());
        assert!(
            traces
                .iter()
                .any(|root| root.find("from_callback").is_some()),
            "the callback ran outside the stack's borrow"
        );
    }

    #[test]
    fn a_span_captured_mid_way_keeps_recording_and_parenting() {
        let ctx = TelemetryContext::test();
        let captured = ctx.scope_and(|| {
            let _root = tracing::start_trace("root", StartTraceOptions::default());
            let _child = tracing::span("child");
            add_span_tags!("before" => 1);
            let captured = TelemetryContext::current();
            add_span_tags!("after" => 2);
            drop(tracing::span("grandchild"));
            captured
        });
        // The child is still referenced by `captured`: not finished yet.
        let root = &ctx.traces(Default::default())[0];
        assert!(root.find("child").is_none());
        drop(captured);
        let root = &ctx.traces(Default::default())[0];
        let child = root.find("child").expect("finished with its last handle");
        assert_eq!(child.tag("before"), Some(&TagValue::Integer(1)));
        assert_eq!(child.tag("after"), Some(&TagValue::Integer(2)));
        assert_eq!(child.children[0].name, "grandchild");
    }

    #[test]
    fn out_of_order_ends_keep_the_stack_consistent() {
        let ctx = TelemetryContext::test();
        ctx.scope_and(|| {
            let root = tracing::start_trace("root", StartTraceOptions::default());
            let a = tracing::span("a");
            let b = tracing::span("b");
            let c = tracing::span("c");
            drop(b);
            drop(tracing::span("under_c"));
            drop(a);
            drop(tracing::span("still_under_c"));
            drop(c);
            drop(tracing::span("under_root"));
            drop(root);
            // Every entry is vacant again: a new trace starts from an empty stack.
            assert!(tracing::trace_id().is_none());
            drop(tracing::start_trace("next", StartTraceOptions::default()));
        });
        let traces = ctx.traces(Default::default());
        let root = &traces[0];
        let c = root.find("c").unwrap();
        let names: Vec<_> = c.children.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["under_c", "still_under_c"]);
        assert!(root.children.iter().any(|s| s.name == "under_root"));
        assert_eq!(traces[1].name, "next");
        assert_eq!(traces.iter().map(|t| t.iter().count()).sum::<usize>(), 8);
    }

    #[test]
    fn tags_set_before_and_after_a_log_are_all_kept_in_order() {
        let ctx = TelemetryContext::test();
        ctx.scope_and(|| {
            let _root = tracing::start_trace("root", StartTraceOptions::default());
            add_span_tags!("a" => 1, "b" => 2);
            add_span_log_fields!("event" => "x");
            add_span_tags!("a" => 3, "c" => 4);
        });
        let root = &ctx.traces(Default::default())[0];
        assert_eq!(root.logs.len(), 1);
        assert_eq!(root.tag("a"), Some(&TagValue::Integer(3)));
        assert_eq!(root.tag("b"), Some(&TagValue::Integer(2)));
        assert_eq!(root.tag("c"), Some(&TagValue::Integer(4)));
    }

    #[test]
    fn children_of_a_shared_span_inherit_its_finish_callback() {
        let ctx = TelemetryContext::test();
        ctx.scope_and(|| {
            let root = tracing::start_trace("root", StartTraceOptions::default());
            set_span_finish_callback!(|span: &mut Span| span.set_tag(|| Tag::new("cb", true)));
            let shared = root.into_context();
            shared.scope_and(|| drop(tracing::span("child")));
        });
        let root = &ctx.traces(Default::default())[0];
        assert_eq!(root.tag("cb"), Some(&TagValue::Boolean(true)));
        assert_eq!(root.children[0].tag("cb"), Some(&TagValue::Boolean(true)));
    }
}
