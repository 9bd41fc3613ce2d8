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
use super::limits::{self, Bounded, HandedOver, InlineTags, SpanLimits};
use super::links::{SpanLink, SpanLinks};
use super::routing::RoutingFault;
use crate::telemetry::propagation::ids::{SpanId, TraceId};
use cf_rustracing::log::Log;
use cf_rustracing::span::RoutingMetadata;
use cf_rustracing::tag::{Tag, TagValue};
use compact_str::CompactString;
use std::borrow::Cow;
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

/// What few spans have: log entries, links, and counts of what the span limits dropped.
#[derive(Clone, Debug, Default)]
struct SpanExtras {
    logs: Vec<Log>,
    links: SpanLinks,
    dropped_attributes: u32,
    dropped_events: u32,
    /// `(event position, fields dropped)`, for the events that dropped fields.
    event_dropped_attributes: Vec<(u32, u32)>,
}

impl SpanExtras {
    /// `None` when there is nothing to keep.
    #[inline(never)]
    fn new(logs: Vec<Log>, bounded: Option<Box<Bounded>>) -> Option<Box<Self>> {
        match bounded {
            Some(bounded) if !bounded.is_empty() => Some(Box::new(Self {
                logs,
                links: bounded.links,
                dropped_attributes: bounded.dropped_attributes,
                dropped_events: bounded.dropped_events,
                event_dropped_attributes: bounded.event_dropped_attributes,
            })),
            _ if !logs.is_empty() => Some(Box::new(Self {
                logs,
                ..Self::default()
            })),
            _ => None,
        }
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
        mut tags: InlineTags,
        bounded: Option<Box<Bounded>>,
    ) -> Self {
        let (start_nanos, finish_nanos) = clock::span_unix_nanos(start_time, finish_time);
        // Most spans have nothing bounded: one test, and nothing else on their way.
        let extras = match bounded {
            None => None,
            Some(mut bounded) => {
                limits::finish_tags(&mut tags, &mut bounded);
                SpanExtras::new(Vec::new(), Some(bounded))
            }
        };
        Self {
            // Short names are stored inline; a long owned name keeps its buffer.
            name: CompactString::from(name),
            state,
            parent,
            start_nanos,
            finish_nanos,
            tags,
            extras,
        }
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
        } = limits::take_handed_over(state.span_id()).unwrap_or(HandedOver {
            tags: InlineTags::new(),
            bounded: None,
        });
        // Set by the finish callback: later than anything the span recorded itself.
        for tag in span.tags() {
            limits::set_tag(&mut tags, &mut bounded, tag.clone(), limits);
        }
        if let Some(bounded) = &mut bounded {
            limits::finish_tags(&mut tags, bounded);
        }
        let mut logs = span.logs();
        if logs.len() > limits.max_events() {
            let over = logs.len() - limits.max_events();
            bounded.get_or_insert_default().count_dropped_events(over);
            logs = &logs[..limits.max_events()];
        }
        let start_nanos = clock::system_time_nanos(span.start_time());
        let finish_nanos = clock::system_time_nanos(span.finish_time()).max(start_nanos);
        Self {
            name: CompactString::new(span.operation_name()),
            extras: SpanExtras::new(logs.to_vec(), bounded),
            state: state.clone(),
            parent,
            start_nanos,
            finish_nanos,
            tags,
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

    /// The span's tags, one per name, in the order each name was first set (at most the
    /// attribute limit).
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
