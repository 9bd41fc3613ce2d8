//! [`FinishedSpan`]: the record of a finished span that harness queues carry to exporters
//! and test sinks.
//!
//! A span is converted into this record on the thread that finishes it, and what the span
//! allocated is freed right there. That keeps the hot path's allocations on the thread that
//! made them: freeing them on the consumer's thread instead costs allocators such as glibc's
//! a contended lock per free, which measured at more than the whole rest of a span's cost.
//! Names up to 24 bytes and up to two tags are stored inline, so the common span crosses
//! threads as one plain value.
//!
//! Most spans never become `cf_rustracing` spans at all: a live span keeps its tags in the
//! inline shape this record uses, and [`FinishedSpan::new`] moves them (and the name) in
//! without copying anything to the heap. Spans that needed the full `cf_rustracing`
//! representation (log entries, finish callbacks) are copied out with
//! [`FinishedSpan::from_raw`].
//!
//! This module owns the record and the conversions; it does not decide where records go.

use super::clock::{self, Timestamp};
use super::identity::{ParentSpan, RawFinishedSpan, SpanState};
use super::links::{self, SpanLink, SpanLinks};
use super::routing::RoutingFault;
use crate::telemetry::propagation::ids::{SpanId, TraceId};
use cf_rustracing::log::Log;
use cf_rustracing::span::RoutingMetadata;
use cf_rustracing::tag::{Tag, TagValue};
use compact_str::CompactString;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tags kept inline in a [`FinishedSpan`] (and in a live span) before deferred to the heap.
const INLINE_TAGS: usize = 2;

/// The tags of a live span and of its record: the same type, so finishing moves them.
pub(crate) type InlineTags = SmallVec<[Tag; INLINE_TAGS]>;

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
/// assert_eq!(span.tag("http.response.status_code"), Some(&TagValue::Integer(200)));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct FinishedSpan {
    name: CompactString,
    state: SpanState,
    parent: Option<ParentSpan>,
    /// UNIX nanoseconds, converted once from the time-stamp counter as the span finished;
    /// `finish_nanos >= start_nanos`.
    start_nanos: u64,
    finish_nanos: u64,
    tags: InlineTags,
    /// Log entries and links, boxed together: most spans have neither, and the record's
    /// size shows on the hot path (it is copied into the queue and its blocks zeroed).
    extras: Option<Box<SpanExtras>>,
}

/// What few spans have: log entries and links.
#[derive(Clone, Debug)]
struct SpanExtras {
    logs: Vec<Log>,
    links: Option<Box<SpanLinks>>,
}

impl SpanExtras {
    /// `None` when there is nothing to keep.
    fn new(logs: Vec<Log>, links: Option<Box<SpanLinks>>) -> Option<Box<Self>> {
        (!logs.is_empty() || links.is_some()).then(|| Box::new(Self { logs, links }))
    }
}

// Public through `telemetry::testing`: some accessors are for its users only.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl FinishedSpan {
    /// The record of a span that was never a `cf_rustracing` span: its parts are moved in.
    /// Such a span has no log entries (logging makes a span a `cf_rustracing` one).
    pub(crate) fn new(
        name: Cow<'static, str>,
        state: SpanState,
        parent: Option<ParentSpan>,
        start_time: Timestamp,
        finish_time: Timestamp,
        tags: InlineTags,
        links: Option<Box<SpanLinks>>,
    ) -> Self {
        let (start_nanos, finish_nanos) = clock::span_unix_nanos(start_time, finish_time);
        Self {
            // Short names are stored inline; a long owned name keeps its buffer.
            name: CompactString::from(name),
            state,
            parent,
            start_nanos,
            finish_nanos,
            tags,
            extras: SpanExtras::new(Vec::new(), links),
        }
    }

    /// Copies what a record needs out of a `cf_rustracing` span; the caller drops the span on
    /// its own thread.
    pub(crate) fn from_raw(span: &RawFinishedSpan) -> Self {
        let parent = span.references().first().map(|reference| {
            let parent = reference.span();
            ParentSpan {
                span_id: parent.span_id(),
                is_remote: parent.is_remote(),
            }
        });
        let state = span.context().state();
        Self {
            name: CompactString::new(span.operation_name()),
            extras: SpanExtras::new(
                span.logs().to_vec(),
                links::take_handed_over(state.span_id()),
            ),
            state: state.clone(),
            parent,
            start_nanos: clock::system_time_nanos(span.start_time()),
            finish_nanos: clock::system_time_nanos(span.finish_time())
                .max(clock::system_time_nanos(span.start_time())),
            tags: span.tags().iter().cloned().collect(),
        }
    }

    /// The operation name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The span's identity: trace id, span id, flags, tracestate and routing.
    pub fn state(&self) -> &SpanState {
        &self.state
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.state.trace_id()
    }

    /// The span id.
    pub fn span_id(&self) -> SpanId {
        self.state.span_id()
    }

    /// The parent span; `None` for the root of a new trace. A root that continues an
    /// inbound `traceparent` names the remote parent.
    pub fn parent(&self) -> Option<ParentSpan> {
        self.parent
    }

    /// When the span started.
    pub fn start_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.start_nanos)
    }

    /// When the span finished; never before [`start_time`](Self::start_time).
    pub fn finish_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.finish_nanos)
    }

    /// When the span started, in UNIX nanoseconds (as OTLP carries it).
    pub(crate) fn start_unix_nanos(&self) -> u64 {
        self.start_nanos
    }

    /// When the span finished, in UNIX nanoseconds (as OTLP carries it).
    pub(crate) fn finish_unix_nanos(&self) -> u64 {
        self.finish_nanos
    }

    /// The span's tags, sorted by name, one per name.
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }

    /// The value of tag `name`, if set.
    pub fn tag(&self, name: &str) -> Option<&TagValue> {
        self.tags
            .iter()
            .find(|tag| tag.name() == name)
            .map(Tag::value)
    }

    /// The span's log entries, in the order recorded.
    pub fn logs(&self) -> &[Log] {
        self.extras.as_deref().map_or(&[], |extras| &extras.logs)
    }

    /// The span's links, in the order added (at most [`MAX_LINKS`](links::MAX_LINKS)).
    pub fn links(&self) -> &[SpanLink] {
        self.extras
            .as_deref()
            .and_then(|extras| extras.links.as_deref())
            .map_or(&[], |links| &links.links)
    }

    /// How many links were added beyond [`MAX_LINKS`](links::MAX_LINKS) and dropped.
    pub fn dropped_links_count(&self) -> u32 {
        self.extras
            .as_deref()
            .and_then(|extras| extras.links.as_deref())
            .map_or(0, |links| links.dropped)
    }

    /// The routing of the span's trace (user pipeline), if any.
    pub fn routing(&self) -> Option<&dyn RoutingMetadata> {
        self.state.routing()
    }

    /// The routing header value the span is sent under (user pipeline), or why it cannot be
    /// sent; `None` without routing.
    pub(crate) fn routing_header(&self) -> Option<Result<&str, RoutingFault>> {
        self.state
            .resolved_routing()
            .map(|routing| routing.header())
    }
}
