//! Span links (OpenTelemetry's): references from a span to spans of other traces, or other
//! spans of its own, each with attributes. A batch job that serves several requests, for
//! example, links its span to each of theirs.
//!
//! [`SpanLinks`] is what a span keeps: at most its pipeline's links limit
//! (`span_limits.max_links`, default 128), and how many more were dropped
//! (exported as `dropped_links_count`). A span without links keeps nothing, so links cost
//! the common span nothing.
//!
//! This module owns the link values and their bound; it records nothing itself (a span keeps
//! its links with its other bounded records, see the `limits` module).

use crate::telemetry::propagation::traceparent::TraceparentContext;
use crate::telemetry::propagation::tracestate::TraceState;
use cf_rustracing::tag::Tag;

/// A link from a span to another span: its identity and attributes.
#[derive(Clone, Debug)]
pub struct SpanLink {
    /// The linked span: its trace id, span id (the `parent_id` field) and flags.
    pub context: TraceparentContext,
    /// The linked span's `tracestate`, if any.
    pub trace_state: Option<TraceState>,
    /// Attributes describing the link.
    pub attributes: Vec<Tag>,
}

/// Equal when the linked span, tracestate and attributes (names and values, in order) are.
impl PartialEq for SpanLink {
    fn eq(&self, other: &Self) -> bool {
        self.context == other.context
            && self.trace_state == other.trace_state
            && self.attributes.len() == other.attributes.len()
            && self
                .attributes
                .iter()
                .zip(&other.attributes)
                .all(|(a, b)| a.name() == b.name() && a.value() == b.value())
    }
}

/// The links of one span, bounded by its links limit.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpanLinks {
    pub(crate) links: Vec<SpanLink>,
    /// Links added beyond the limit.
    pub(crate) dropped: u32,
}

impl SpanLinks {
    /// Adds `link`, or counts it as dropped when `max` links are kept already.
    pub(crate) fn push(&mut self, link: SpanLink, max: usize) {
        if self.links.len() < max {
            self.links.push(link);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }
}
