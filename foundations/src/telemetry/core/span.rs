//! The shapes a span takes while it is open, from the cheapest to the most shared:
//!
//! - [`LiveSpan`]: a recorded span's data; dropping it finishes it, to its harness.
//! - [`EntrySpan`]: what a scope stack entry holds. A recorded span that nothing else refers
//!   to is *owned* by its entry: the stack is thread-local and scopes are not `Send`, so
//!   tags, logs and children need no lock, no reference count and no allocation of their
//!   own. Only when the span must be shared does it move behind an `Arc`.
//! - [`SpanHandle`] (in `entry_span`): what a [`TelemetryContext`](crate::telemetry::TelemetryContext) holds;
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
//! A recorded span may also be *tracked*: entered in the live registry (see the `registry`
//! module) when it starts, removed when it finishes. Only the tracked root constructors,
//! bound to a [`Tracked`] pipeline, start that; children inherit it from their parent.
//!
//! This module owns recording. It knows nothing about which span is current (that is the
//! scope stack) nor where finished spans go beyond handing them to their harness.

use super::bounded_slot::BoundedSlot;
use super::clock::Timestamp;
use super::finished::{self, FinishedSpan, HandedOver};
use super::harness::HarnessRef;
use super::identity::{ParentSpan, Span, SpanState};
#[cfg(any(feature = "tower", feature = "tracing-bridge"))]
pub(crate) use super::limits::SpilledTags;
use super::limits::{self, InlineTags};
use super::links::SpanLink;
use super::pipeline::Tracked;
use super::registry::{self, Registration, TagSource, Token};
use super::routing::{self, log_rate_limited};
use super::tags::NewTag;
use cf_rustracing::log::LogField;
use cf_rustracing::span::FinishSpanCallback;
use cf_rustracing::tag::{Tag, TagValue};
use parking_lot::Mutex;
use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

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
    bounded: BoundedSlot,
    /// The span as a `cf_rustracing` span, once it needed to be one (see the module docs).
    /// From then on it holds the name, logs and finish callback, and finishing it is
    /// dropping it. Boxed so that the common span, which never has one, stays small.
    full: Option<Box<FullSpan>>,
    /// Its entry in the live registry: set for a tracked root and its recorded descendants
    /// (see the `registry` module), never for a user span.
    live: Option<Token>,
}

impl LiveSpan {
    /// The span's identity.
    pub(super) fn state(&self) -> &SpanState {
        &self.state
    }

    /// Starts an untracked span now: one the live registry never sees.
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
        Self::start_as(harness, name, state, parent, finish_cb, Track::No)
    }

    /// Starts a span now, registered as `track` says. One struct literal, so that the span
    /// is still written straight into its entry: registering first and then moving the
    /// span (hundreds of bytes) would cost a copy per span.
    #[inline(always)]
    fn start_as(
        harness: HarnessRef,
        name: Cow<'static, str>,
        state: SpanState,
        parent: Option<ParentSpan>,
        finish_cb: Option<FinishSpanCallback<SpanState>>,
        track: Track,
    ) -> Self {
        let start_time = Timestamp::now();
        let registration = || Registration {
            name: &name,
            trace_id: state.trace_id(),
            span_id: state.span_id(),
            parent_span_id: parent.map(|parent| parent.span_id),
            start: start_time,
        };
        let live = match track {
            Track::No => None,
            Track::Root => registry::enter_root(registration()),
            Track::Under(parent) => match Token::for_descendants(parent) {
                None => None,
                Some(parent) => registry::enter_descendant(parent, registration()),
            },
        };
        Self {
            state,
            harness,
            parent,
            start_time,
            name,
            tags: InlineTags::new(),
            finish_cb,
            bounded: BoundedSlot::default(),
            full: None,
            live,
        }
    }

    /// Starts a tracked root now: registered in the live registry (while it is on) until
    /// it finishes. Only a [`Tracked`] pipeline's roots may be.
    #[inline]
    // The bound is the point: only a tracked pipeline's roots compile.
    #[allow(clippy::extra_unused_type_parameters)]
    pub(crate) fn start_tracked_root<P: Tracked>(
        harness: HarnessRef,
        name: Cow<'static, str>,
        state: SpanState,
        parent: Option<ParentSpan>,
    ) -> Self {
        Self::start_as(harness, name, state, parent, None, Track::Root)
    }

    /// Starts a `ChildOf` span: same harness, trace, routing and finish callback; tracked
    /// when its parent is.
    #[inline]
    pub(super) fn child(&self, name: Cow<'static, str>) -> LiveSpan {
        LiveSpan::start_as(
            self.harness.clone(),
            name,
            self.state.child(),
            Some(ParentSpan::of(&self.state)),
            self.finish_cb.clone(),
            Track::Under(self.live),
        )
    }

    /// Sets tags; each replaces an earlier tag of the same name (in its place), or is
    /// dropped and counted past the attribute limit. O(1) amortised per tag.
    ///
    /// Inlined, so that the tags go from where the macro built them into the span without
    /// intermediate copies.
    #[inline]
    pub(crate) fn set_tags<T: NewTag>(&mut self, tags: impl IntoIterator<Item = T>) {
        if let Some(root) = self.live.filter(|live| live.copies_tags()) {
            return self.set_tracked_root_tags(root, tags.into_iter().map(NewTag::into_tag));
        }
        let limits = self.harness.limits();
        for tag in tags {
            limits::set_tag(&mut self.tags, &mut self.bounded, tag, limits);
        }
    }

    /// Sets one tag, as [`set_tags`](Self::set_tags) does: the tag goes from where the macro
    /// built it into the span with no iterator between, so that its value's kind stays
    /// known to the compiler.
    #[inline]
    pub(crate) fn set_tag(&mut self, tag: impl NewTag) {
        if let Some(root) = self.live.filter(|live| live.copies_tags()) {
            return self.set_tracked_root_tags(root, [tag.into_tag()]);
        }
        limits::set_tag(
            &mut self.tags,
            &mut self.bounded,
            tag,
            self.harness.limits(),
        );
    }

    /// Sets the first tags of a new span, as [`set_tags`](Self::set_tags) would; `tags`
    /// usually becomes the span's tag storage as it is (see [`limits::set_first_tags`]).
    #[cfg(any(feature = "tower", feature = "tracing-bridge"))]
    #[inline]
    pub(crate) fn set_first_tags(&mut self, tags: SpilledTags) {
        if let Some(root) = self.live.filter(|live| live.copies_tags()) {
            return self.set_tracked_root_tags(root, tags);
        }
        limits::set_first_tags(
            &mut self.tags,
            &mut self.bounded,
            tags,
            self.harness.limits(),
        );
    }

    /// [`set_first_tags`](Self::set_first_tags) on a new server root (at most `most` tags, all
    /// distinct): `write` pushes them straight into the span's storage if limits allow.
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn write_first_tags(&mut self, most: usize, write: impl FnOnce(&mut SpilledTags)) {
        let limits = self.harness.limits();
        let as_they_are = (3..=limits.max_attributes()).contains(&most)
            && limits.max_attribute_value_length().is_none()
            && self.tags.is_empty()
            && self.bounded.is_none()
            && !self.live.is_some_and(|live| live.copies_tags());
        if !as_they_are {
            let mut tags = SpilledTags::new();
            write(&mut tags);
            return self.set_first_tags(tags);
        }
        let bounded = self.bounded.insert(limits::new_box());
        write(&mut bounded.tags);
        debug_assert!(bounded.tags.len() <= most);
    }

    /// From now on, the registry reads this span's tags from it (it is becoming shared)
    /// instead of being given copies. Returns its token if it is a tracked root.
    pub(super) fn read_tags_live(&mut self) -> Option<Token> {
        let root = self.live.filter(|live| live.is_root())?;
        self.live = Some(root.reading_tags_live());
        Some(root)
    }

    /// [`set_tags`](Self::set_tags) on a tracked root: the registry gets copies. Out of line,
    /// so that other spans' tags do not pay for it.
    #[inline(never)]
    fn set_tracked_root_tags(&mut self, root: Token, tags: impl IntoIterator<Item = Tag>) {
        // Tags are built before the call (the macros run application code first): no
        // application code runs under the registry's lock.
        self.live = None;
        registry::set_root_tags(root, tags, |tag| self.set_tags([tag]));
        self.live = Some(root);
    }

    /// Renames the span (the `tracing` bridge's `otel.name`, which may be recorded late).
    #[cfg(feature = "tracing-bridge")]
    pub(crate) fn rename(&mut self, name: Cow<'static, str>) {
        if let Some(live) = self.live {
            registry::rename(live, &name);
        }
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
        let (started, now) = (self.start_time, Timestamp::now());
        let full = self.full_with_start();
        // On the span's own time line (its start plus the counters' difference), so that
        // the event falls within the span whatever the thread's anchor did meanwhile.
        let time = full.at(started, now);
        full.span.log(|log| {
            log.time(time);
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

    /// `true` when finishing runs no application code: no finish callback (nor a
    /// `cf_rustracing` span, which may have one). A routing is moved into the record, or,
    /// when the record is refused, its drop is deferred (see [`routing::drop_later`]).
    pub(super) fn finish_runs_no_app_code(&self) -> bool {
        self.finish_cb.is_none() && self.full.is_none()
    }

    /// The span as a `cf_rustracing` span, created on first use from what was recorded so
    /// far.
    fn full(&mut self) -> &mut Span {
        &mut self.full_with_start().span
    }

    /// As [`full`](Self::full), with the wall-clock start it was given.
    fn full_with_start(&mut self) -> &mut FullSpan {
        if self.full.is_none() {
            let name = std::mem::take(&mut self.name);
            let start = self.start_time.system_time();
            let mut options = self.harness.tracer().span(name).start_time(start);
            if let Some(parent) = self.parent {
                options = options.child_of(&parent.state(&self.state).into_parent_context());
            }
            let mut span = options.start_with_state(self.state.clone());
            if let Some(callback) = &self.finish_cb {
                span.set_finish_callback(callback.clone());
            }
            self.full = Some(Box::new(FullSpan { span, start }));
        }
        self.full.as_mut().expect("created above")
    }
}

impl Drop for LiveSpan {
    fn drop(&mut self) {
        // Copied, not taken: nothing reads it after this, and a token has no drop.
        if let Some(live) = self.live {
            registry::leave(live);
        }
        if self.finish_cb.is_some() || self.full.is_some() {
            // The callback receives the span as a `cf_rustracing` span: dropping that runs
            // the callback, then hands the span to the harness's tracer, whose consumer
            // converts and queues it; the tags, links and counts wait on this thread for
            // that record.
            self.full();
            let tags = std::mem::take(&mut self.tags);
            let bounded = self.bounded.take();
            if !tags.is_empty() || bounded.is_some() {
                finished::hand_over(self.state.span_id(), HandedOver { tags, bounded });
            }
            let mut full = self.full.take();
            if let Some(full) = &mut full {
                // On the span's own time line, as its events: never before the start or an
                // event.
                let end = full.at(self.start_time, Timestamp::now());
                full.span.set_finish_time(|| end);
            }
            // The callback is application code: a panic in it costs this span (counted), not
            // the thread that finished it.
            if catch_unwind(AssertUnwindSafe(move || drop(full))).is_err() {
                // The record was never built: what it was handed must not wait for it.
                drop(finished::take_handed_over(self.state.span_id()));
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
        // The parts are moved, not copied, into the record; what has no drop (the tags,
        // the ids) is copied, leaving nothing behind to write. The closure captures the
        // span as one reference: capturing each field it reads (as closures do) cost a
        // pointer each, written before the push and read back after it.
        let harness = self.harness.clone();
        let span = &mut *self;
        harness.finish_with(move || {
            // The clock first: its conversions then need none of the parts kept around.
            let times = span.start_time.start_and_duration(Timestamp::now());
            FinishedSpan::new(
                std::mem::take(&mut span.name),
                &mut span.state,
                span.parent,
                times,
                span.tags,
                span.bounded.take(),
            )
        });
        // Still here: the record was refused (and counted). This may be the routing's last
        // reference, and a scope stack may be borrowed.
        if let Some(routing) = self.state.take_routing() {
            routing::drop_later(routing);
        }
    }
}

/// A live span as a `cf_rustracing` span, with the wall-clock start it was given: its events
/// and its end are placed from there by the counters' difference, one time line per span.
struct FullSpan {
    span: Span,
    start: SystemTime,
}

impl FullSpan {
    /// The wall-clock time of `now` on this span's time line (`started` is its start's
    /// counter reading).
    fn at(&self, started: Timestamp, now: Timestamp) -> SystemTime {
        self.start + Duration::from_nanos(now.nanos_since(started))
    }
}

impl std::ops::Deref for FullSpan {
    type Target = Span;

    fn deref(&self) -> &Span {
        &self.span
    }
}

impl std::ops::DerefMut for FullSpan {
    fn deref_mut(&mut self) -> &mut Span {
        &mut self.span
    }
}

/// Whether a new span enters the live registry.
#[derive(Clone, Copy)]
enum Track {
    /// Untracked: every user span, and internal spans outside tracked traces.
    No,
    /// A tracked root.
    Root,
    /// A descendant of the span with this token: tracked if that span's descendants are
    /// (none: its parent is untracked).
    Under(Option<Token>),
}

/// Finish callbacks replaced by [`LiveSpan::set_finish_callback`] (the span's own copy and
/// its `cf_rustracing` span's). Drop them outside any borrow or lock of ours.
pub(crate) type ReplacedCallbacks = [Option<FinishSpanCallback<SpanState>>; 2];

/// A recorded span that is shared: by [`TelemetryContext`](crate::telemetry::TelemetryContext)s,
/// `UserSpan`s and scope stack entries. It finishes when the last handle is dropped.
pub(crate) struct SharedLiveSpan {
    /// A copy of the span's identity, so that reading ids and starting children never
    /// takes the lock.
    pub(super) state: SpanState,
    harness: HarnessRef,
    /// `true` once the span has (or inherited) a finish callback: only then does a child
    /// take the lock, to inherit it.
    has_finish_callback: AtomicBool,
    /// A copy of the span's registry token, for its children.
    live: Option<Token>,
    span: Mutex<LiveSpan>,
}

impl TagSource for SharedLiveSpan {
    fn current_tags(&self) -> Vec<(String, TagValue)> {
        let span = self.span.lock();
        let inline = span.tags.get().map(|tag| tag.to_tag());
        let bounded = span.bounded.iter().flat_map(|bounded| bounded.live_tags());
        inline
            .iter()
            .chain(bounded)
            .map(|tag| (tag.name().to_owned(), tag.value().clone()))
            .collect()
    }
}

impl SharedLiveSpan {
    pub(super) fn new(mut span: LiveSpan) -> Arc<Self> {
        // The registry reads a shared tracked root's tags at snapshot time (through the
        // `Weak` below): tagging it from now on copies nothing.
        let root = span.read_tags_live();
        let shared = Arc::new(Self {
            state: span.state.clone(),
            harness: span.harness.clone(),
            has_finish_callback: AtomicBool::new(span.finish_cb.is_some()),
            live: span.live,
            span: Mutex::new(span),
        });
        if let Some(root) = root {
            let source: Weak<dyn TagSource> = Arc::downgrade(&shared) as Weak<dyn TagSource>;
            registry::set_tag_source(root, source);
        }
        shared
    }

    /// Starts a tracked root straight behind its `Arc`, `fill` recorded into it first (no
    /// lock: nothing else refers to it yet). A server root is shared from its first moment
    /// (its request's context holds it): built in its shared place, the live span is
    /// written once, where [`new`](Self::new) would copy it there from an entry.
    #[cfg(feature = "tower")]
    #[inline]
    // The bound is the point: only a tracked pipeline's roots compile.
    #[allow(clippy::extra_unused_type_parameters)]
    pub(super) fn start_tracked_root<P: Tracked>(
        harness: HarnessRef,
        name: Cow<'static, str>,
        state: SpanState,
        parent: Option<ParentSpan>,
        fill: impl FnOnce(&mut LiveSpan),
    ) -> Arc<Self> {
        let mut shared = Arc::new(Self {
            state: state.clone(),
            harness: harness.clone(),
            // A new root has no finish callback to pass on.
            has_finish_callback: AtomicBool::new(false),
            live: None,
            span: Mutex::new(LiveSpan::start_as(
                harness,
                name,
                state,
                parent,
                None,
                Track::Root,
            )),
        });
        let this = Arc::get_mut(&mut shared).expect("a new span has one handle");
        let span = this.span.get_mut();
        // The registry reads a tracked root's tags from it once it is shared, as it is from
        // here on: its first tags go straight to the span, and are copied nowhere.
        let root = span.read_tags_live();
        fill(span);
        this.live = span.live;
        if let Some(root) = root {
            let source: Weak<dyn TagSource> = Arc::downgrade(&shared) as Weak<dyn TagSource>;
            registry::set_tag_source(root, source);
        }
        shared
    }

    /// Runs `f` on the span under its lock.
    ///
    /// Callers must not run application code inside `f`: build tags and log fields before
    /// calling this, so the lock is held only for the push itself.
    pub(crate) fn with_span<R>(&self, f: impl FnOnce(&mut LiveSpan) -> R) -> R {
        f(&mut self.span.lock())
    }

    #[must_use = "drop replaced callbacks outside borrows and locks"]
    pub(super) fn set_finish_callback(
        &self,
        callback: FinishSpanCallback<SpanState>,
    ) -> ReplacedCallbacks {
        let replaced = self.with_span(|span| span.set_finish_callback(callback));
        self.has_finish_callback.store(true, Ordering::Release);
        replaced
    }

    #[inline]
    pub(super) fn child(&self, name: Cow<'static, str>) -> LiveSpan {
        let finish_cb = if self.has_finish_callback.load(Ordering::Acquire) {
            self.with_span(|span| span.finish_cb.clone())
        } else {
            None
        };
        LiveSpan::start_as(
            self.harness.clone(),
            name,
            self.state.child(),
            Some(ParentSpan::of(&self.state)),
            finish_cb,
            Track::Under(self.live),
        )
    }
}

#[cfg(all(test, feature = "testing"))]
#[path = "span_tests.rs"]
mod tests;
