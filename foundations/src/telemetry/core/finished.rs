//! [`FinishedSpan`]: the record of a finished span that harness queues carry to exporters
//! and test sinks.
//!
//! A span is converted into this record on the thread that finishes it, and what the span
//! allocated is freed right there. That keeps the hot path's allocations on the thread that
//! made them: freeing them on the consumer's thread instead costs allocators such as glibc's
//! a contended lock per free, which measured at more than the whole rest of a span's cost.
//!
//! The record is 120 bytes, because a queue holds up to a million of them: what every span
//! has is kept inline (ids, start time and duration, a static name as its index in the list
//! of span names, tracestate and routing as shared references, up to two tags in the inline
//! form of the `tags` module), and what few spans have is boxed apart in one allocation: an
//! owned name, tags that are not inline, log entries, links, a duration of more than
//! `u32::MAX` nanoseconds (about 4.3 seconds), and the counts of what the span limits
//! dropped.
//!
//! Most spans never become `cf_rustracing` spans at all: a live span keeps its tags in the
//! shape this record uses, and [`FinishedSpan::new`] moves them (and the name) in without
//! copying anything to the heap: the box a live span kept its tags in becomes the record's
//! extras as it is. Spans that needed the full `cf_rustracing`
//! representation (log entries, finish callbacks) are copied out with
//! [`FinishedSpan::from_raw`]; such a span hands its tags and counts over on the finishing
//! thread, keyed by span id ([`hand_over`], [`take_handed_over`]), as `cf_rustracing`
//! carries neither. Dropping a record gives its box of extras back for new spans to reuse
//! (`limits::give_back`).
//!
//! This module owns the record, the conversions and that hand-over; it does not decide
//! where records go.

use super::clock;
use super::identity::{ParentSpan, RawFinishedSpan, SpanState, StateParts};
use super::limits::{self, Bounded, InlineTags, SpanLimits};
use super::links::SpanLink;
use super::names;
use super::routing::{Routing, RoutingFault};
use super::tags::InlineTag;
use crate::telemetry::propagation::ids::{SpanId, TraceFlags, TraceId};
use crate::telemetry::propagation::tracestate::TraceState;
use cf_rustracing::log::Log;
use cf_rustracing::span::RoutingMetadata;
use cf_rustracing::tag::{Tag, TagValue};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::cell::RefCell;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A finished span of either pipeline, as harness queues deliver it.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "testing")]
/// # {
/// use foundations::add_span_tags;
/// use foundations::telemetry::testing::{self, HarnessOptions};
/// use foundations::telemetry::tracing::{self, StartTraceOptions, TagValue};
///
/// let drain = testing::install_tracing(HarnessOptions::default()).unwrap();
/// {
///     let _root = tracing::start_trace("request", StartTraceOptions::default());
///     add_span_tags!("http.response.status_code" => 200);
/// }
/// let span = drain.try_recv().unwrap();
/// assert_eq!(span.name(), "request");
/// assert!(span.parent().is_none());
/// assert_eq!(span.tag("http.response.status_code"), Some(TagValue::Integer(200)));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct FinishedSpan {
    /// Big-endian, as OTLP carries it (and 8-byte aligned, unlike a `u128`).
    trace_id: [u8; 16],
    span_id: SpanId,
    /// Meaningful when [`HAS_PARENT`] is set.
    parent_id: SpanId,
    /// UNIX nanoseconds, converted once from the time-stamp counter as the span finished
    /// (converting where the record is read instead would let a renewal of the clock's anchor
    /// move a record's start between two reads).
    start_nanos: u64,
    /// Nanoseconds from start to finish; [`LONG`] when the finish is in the extras.
    duration: u32,
    flags: TraceFlags,
    /// [`HAS_PARENT`], [`PARENT_IS_REMOTE`].
    bits: u8,
    /// The name's index in the list of span names (`names`); [`OWNED_NAME`] when it is in
    /// the extras (an owned name, or a static one the full list could not index). Four bytes
    /// where a `&str` takes sixteen: they fit beside the duration and flags.
    name: u32,
    /// Empty for none (a span's state never holds an empty one).
    trace_state: TraceState,
    routing: Option<Arc<Routing>>,
    tags: InlineTags,
    /// What few spans have, boxed together (see the module docs).
    extras: Option<Box<SpanExtras>>,
}

/// [`FinishedSpan::name`] is in the extras.
const OWNED_NAME: u32 = u32::MAX;
const HAS_PARENT: u8 = 1;
const PARENT_IS_REMOTE: u8 = 2;
/// A duration that does not fit: the finish time is in the extras.
const LONG: u32 = u32::MAX;

/// What few spans have: an owned name, tags beyond the inline one, log entries, links, a
/// long duration's finish, and counts of what the span limits dropped. The box a live span
/// kept its tags and counts in (`limits::Bounded`) becomes this, as it is.
type SpanExtras = Bounded;

/// What a record keeps of `logs` and `bounded`; `None` when there is nothing.
#[inline(never)]
fn extras_of(logs: Vec<Log>, mut bounded: Box<Bounded>) -> Option<Box<SpanExtras>> {
    limits::finish_tags(&mut bounded);
    bounded.logs = logs;
    if bounded.is_empty() {
        return None;
    }
    Some(bounded)
}

/// The tags of a [`FinishedSpan`], one per name, in the order each was last set (at most
/// the attribute limit). Dereferences to a slice of [`Tag`].
#[derive(Debug)]
pub struct SpanTags<'a>(TagsInner<'a>);

#[derive(Debug)]
enum TagsInner<'a> {
    Inline(SmallVec<[Tag; 2]>),
    Many(&'a [Tag]),
}

impl Deref for SpanTags<'_> {
    type Target = [Tag];

    fn deref(&self) -> &[Tag] {
        match &self.0 {
            TagsInner::Inline(tags) => tags,
            TagsInner::Many(tags) => tags,
        }
    }
}

// Queues hold up to millions of records: their size is the queue's memory.
const _: () = assert!(std::mem::size_of::<FinishedSpan>() <= 120);

// Public through `telemetry::testing`: some accessors are for its users only.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl FinishedSpan {
    /// The record of a span that was never a `cf_rustracing` span: its parts are moved in,
    /// with its start in UNIX nanoseconds and its duration in nanoseconds
    /// ([`clock::Timestamp::start_and_duration`]). Such a span has no log entries (logging makes a
    /// span a `cf_rustracing` one).
    #[inline]
    pub(crate) fn new(
        name: Cow<'static, str>,
        state: &mut SpanState,
        parent: Option<ParentSpan>,
        (start_nanos, duration): (u64, u64),
        tags: InlineTags,
        bounded: Option<Box<Bounded>>,
    ) -> Self {
        // Most spans have nothing bounded: one test, and nothing else on their way.
        let extras = match bounded {
            None => None,
            Some(bounded) => extras_of(Vec::new(), bounded),
        };
        Self::assemble(
            name,
            || state.take_parts(),
            parent,
            start_nanos,
            duration,
            tags,
            extras,
        )
    }

    /// Copies what a record needs out of a `cf_rustracing` span, with the tags and counts the
    /// span handed over; the caller drops the span on its own thread. Tags and log entries
    /// the span's finish callback added are bounded by `limits` here.
    pub(crate) fn from_raw(span: &RawFinishedSpan, limits: &SpanLimits) -> Self {
        let parent = span.references().first().map(|reference| {
            let parent = reference.span();
            ParentSpan {
                span_id: parent.span_id(),
                is_remote: parent.is_remote(),
            }
        });
        let state = span.context().state();
        let HandedOver {
            mut tags,
            mut bounded,
        } = take_handed_over(state.span_id()).unwrap_or(HandedOver {
            tags: InlineTags::new(),
            bounded: None,
        });
        // Set by the finish callback: later than anything the span recorded itself.
        for tag in span.tags() {
            limits::set_tag(&mut tags, &mut bounded, tag.clone(), limits);
        }
        let mut logs = span.logs();
        if logs.len() > limits.max_events() {
            let over = logs.len() - limits.max_events();
            bounded.get_or_insert_default().count_dropped_events(over);
            logs = &logs[..limits.max_events()];
        }
        let start = span.start_time();
        let duration = span.finish_time().duration_since(start).unwrap_or_default();
        let duration = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let extras = match bounded {
            Some(bounded) => extras_of(logs.to_vec(), bounded),
            None if !logs.is_empty() => {
                let mut extras = Box::<SpanExtras>::default();
                extras.logs = logs.to_vec();
                Some(extras)
            }
            None => None,
        };
        Self::assemble(
            Cow::Owned(span.operation_name().to_owned()),
            || state.clone().into_parts(),
            parent,
            clock::system_time_nanos(start),
            duration,
            tags,
            extras,
        )
    }

    /// The record of these parts: what does not fit inline goes to the extras. `state` is
    /// taken last, right into the record: taken first, its parts would wait on the stack
    /// while the name and duration are worked out, and be copied once more.
    ///
    /// Always inlined: the record is built in its queue slot, and a call here would build it
    /// on the stack and copy it in (and the compiler's own choice changes with unrelated
    /// code).
    #[inline(always)]
    fn assemble(
        name: Cow<'static, str>,
        state: impl FnOnce() -> StateParts,
        parent: Option<ParentSpan>,
        start_nanos: u64,
        duration_nanos: u64,
        tags: InlineTags,
        mut extras: Option<Box<SpanExtras>>,
    ) -> Self {
        let duration = match u32::try_from(duration_nanos) {
            Ok(duration) if duration != LONG => duration,
            _ => {
                extras.get_or_insert_default().long_duration_nanos = duration_nanos;
                LONG
            }
        };
        let name = match name {
            Cow::Borrowed(name) => match names::index_of(name) {
                Some(index) => index,
                None => {
                    extras.get_or_insert_default().name = Some(name.into());
                    OWNED_NAME
                }
            },
            Cow::Owned(name) => {
                extras.get_or_insert_default().name = Some(name.into_boxed_str());
                OWNED_NAME
            }
        };
        let bits = match parent {
            None => 0,
            Some(parent) if parent.is_remote => HAS_PARENT | PARENT_IS_REMOTE,
            Some(_) => HAS_PARENT,
        };
        let state = state();
        Self {
            trace_id: state.trace_id.to_bytes(),
            span_id: state.span_id,
            parent_id: parent.map_or(SpanId::INVALID, |parent| parent.span_id),
            start_nanos,
            duration,
            flags: state.flags,
            bits,
            name,
            trace_state: state.trace_state.unwrap_or_default(),
            routing: state.routing,
            tags,
            extras,
        }
    }

    /// The operation name.
    pub fn name(&self) -> &str {
        if self.name != OWNED_NAME {
            return names::name_at(self.name);
        }
        self.extras
            .as_deref()
            .and_then(|extras| extras.name.as_deref())
            .unwrap_or("")
    }

    /// The span's identity: trace id, span id, flags, tracestate and routing.
    pub fn state(&self) -> SpanState {
        SpanState::from_parts(StateParts {
            trace_id: self.trace_id(),
            span_id: self.span_id,
            flags: self.flags,
            trace_state: self.trace_state().cloned(),
            routing: self.routing.clone(),
        })
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        TraceId::from_bytes(self.trace_id)
    }

    /// The trace id, big-endian (as OTLP carries it).
    pub(crate) fn trace_id_bytes(&self) -> &[u8; 16] {
        &self.trace_id
    }

    /// The span id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The W3C trace flags of the span's trace.
    pub fn flags(&self) -> TraceFlags {
        self.flags
    }

    /// The trace's `tracestate`, if any.
    pub fn trace_state(&self) -> Option<&TraceState> {
        (!self.trace_state.is_empty()).then_some(&self.trace_state)
    }

    /// The parent span; `None` for the root of a new trace. A root that continues an
    /// inbound `traceparent` names the remote parent.
    pub fn parent(&self) -> Option<ParentSpan> {
        (self.bits & HAS_PARENT != 0).then_some(ParentSpan {
            span_id: self.parent_id,
            is_remote: self.bits & PARENT_IS_REMOTE != 0,
        })
    }

    /// When the span started.
    pub fn start_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.start_unix_nanos())
    }

    /// When the span finished; never before [`start_time`](Self::start_time).
    pub fn finish_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.finish_unix_nanos())
    }

    /// When the span started, in UNIX nanoseconds (as OTLP carries it).
    pub(crate) fn start_unix_nanos(&self) -> u64 {
        self.start_nanos
    }

    /// When the span finished, in UNIX nanoseconds (as OTLP carries it).
    pub(crate) fn finish_unix_nanos(&self) -> u64 {
        self.start_unix_nanos()
            .saturating_add(self.duration_nanos())
    }

    /// Nanoseconds from start to finish.
    pub(crate) fn duration_nanos(&self) -> u64 {
        match (self.duration, self.extras.as_deref()) {
            (LONG, Some(extras)) => extras.long_duration_nanos,
            (duration, _) => u64::from(duration),
        }
    }

    /// The inline tag (if any) of a span that holds nothing else beyond what every span
    /// has: at most one tag, and no extras (an owned name, more tags, log entries, links, a
    /// long duration, dropped counts). `None` when the span has more. Most spans are plain, and the
    /// exporter encodes them without building the general view.
    #[inline]
    pub(crate) fn plain_tag(&self) -> Option<Option<InlineTag>> {
        match self.extras {
            None => self.tags.single(),
            Some(_) => None,
        }
    }

    /// The span's tags, one per name, in the order each name was last set (at most the
    /// attribute limit).
    pub fn tags(&self) -> SpanTags<'_> {
        SpanTags(if !self.tags.is_empty() {
            TagsInner::Inline(self.tags.get().map(InlineTag::to_tag))
        } else {
            TagsInner::Many(
                self.extras
                    .as_deref()
                    .map_or(&[], |extras| &extras.tags[..]),
            )
        })
    }

    /// The value of tag `name`, if set.
    pub fn tag(&self, name: &str) -> Option<TagValue> {
        self.tags()
            .iter()
            .find(|tag| tag.name() == name)
            .map(|tag| tag.value().clone())
    }

    /// The span's log entries, in the order recorded.
    pub fn logs(&self) -> &[Log] {
        self.extras.as_deref().map_or(&[], |extras| &extras.logs)
    }

    /// The span's links, in the order added (at most the links limit).
    pub fn links(&self) -> &[SpanLink] {
        self.extras
            .as_deref()
            .map_or(&[], |extras| &extras.links.links)
    }

    /// How many links were added beyond the links limit and dropped.
    pub fn dropped_links_count(&self) -> u32 {
        self.extras
            .as_deref()
            .map_or(0, |extras| extras.links.dropped)
    }

    /// How many tags were set beyond the attribute limit and dropped (a tag replacing one
    /// of the same name is not counted).
    pub fn dropped_attributes_count(&self) -> u32 {
        self.extras
            .as_deref()
            .map_or(0, |extras| extras.dropped_attributes)
    }

    /// How many log entries were added beyond the events limit and dropped.
    pub fn dropped_events_count(&self) -> u32 {
        self.extras
            .as_deref()
            .map_or(0, |extras| extras.dropped_events)
    }

    /// How many fields log entry `event` (its position in [`logs`](Self::logs)) dropped
    /// beyond the per-event attribute limit.
    pub fn event_dropped_attributes_count(&self, event: usize) -> u32 {
        self.extras.as_deref().map_or(0, |extras| {
            extras
                .event_dropped_attributes
                .iter()
                .find(|(position, _)| *position as usize == event)
                .map_or(0, |(_, dropped)| *dropped)
        })
    }

    /// The routing of the span's trace (user pipeline), if any.
    pub fn routing(&self) -> Option<&dyn RoutingMetadata> {
        self.routing.as_deref().map(Routing::metadata)
    }

    /// The routing of the span's trace (user pipeline): its metadata and its header.
    pub(crate) fn resolved_routing(&self) -> Option<&Arc<Routing>> {
        self.routing.as_ref()
    }

    /// The routing header value the span is sent under (user pipeline), or why it cannot be
    /// sent; `None` without routing.
    pub(crate) fn routing_header(&self) -> Option<Result<&str, RoutingFault>> {
        self.routing.as_deref().map(Routing::header)
    }
}

/// A record's box of extras goes back to the spare boxes when the record is dropped
/// (`limits::give_back`): its consumer drops it on its own thread (the exporter's, once
/// the span is sent or counted), and the memory of the box is then filled again by a
/// producing thread instead of being freed on the consumer's.
impl Drop for FinishedSpan {
    #[inline]
    fn drop(&mut self) {
        if let Some(extras) = self.extras.take() {
            limits::give_back(extras);
        }
    }
}

/// What a span finishing as a `cf_rustracing` span hands to its record.
pub(crate) struct HandedOver {
    pub(crate) tags: InlineTags,
    pub(crate) bounded: Option<Box<Bounded>>,
}

thread_local! {
    /// Tags and counts of spans finishing as `cf_rustracing` spans on this thread, until
    /// their record takes them.
    static HANDED_OVER: RefCell<Vec<(SpanId, HandedOver)>> = const { RefCell::new(Vec::new()) };
}

/// Keeps what span `span_id` recorded for its record, about to be built on this thread.
pub(crate) fn hand_over(span_id: SpanId, recorded: HandedOver) {
    let _ = HANDED_OVER.try_with(|pending| {
        if let Ok(mut pending) = pending.try_borrow_mut() {
            pending.push((span_id, recorded));
        }
    });
}

/// What span `span_id` handed over, if anything.
pub(crate) fn take_handed_over(span_id: SpanId) -> Option<HandedOver> {
    HANDED_OVER
        .try_with(|pending| {
            let mut pending = pending.try_borrow_mut().ok()?;
            if pending.is_empty() {
                return None;
            }
            let index = pending.iter().rposition(|(id, _)| *id == span_id)?;
            Some(pending.swap_remove(index).1)
        })
        .ok()
        .flatten()
}
