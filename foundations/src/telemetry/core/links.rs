//! Span links (OpenTelemetry's): references from a span to spans of other traces, or other
//! spans of its own, each with attributes. A batch job that serves several requests, for
//! example, links its span to each of theirs.
//!
//! [`SpanLinks`] is what a span keeps: at most [`MAX_LINKS`] links, and how many more were
//! dropped (exported as `dropped_links_count`). A span without links keeps nothing (`None`),
//! so links cost the common span nothing.
//!
//! A span that finishes as a `cf_rustracing` span (see the `span` module) cannot carry its
//! links through `cf_rustracing`: they are handed over on the finishing thread, keyed by span
//! id, to the record that span becomes ([`hand_over`], [`take_handed_over`]).
//!
//! This module owns the link values and their bound; it records nothing itself.

use crate::telemetry::propagation::ids::SpanId;
use crate::telemetry::propagation::traceparent::TraceparentContext;
use crate::telemetry::propagation::tracestate::TraceState;
use cf_rustracing::tag::Tag;
use std::cell::RefCell;

/// Most links a span keeps; later ones are dropped and counted in `dropped_links_count`.
/// A constant for now: the configurable span limits will replace it.
pub const MAX_LINKS: usize = 128;

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

/// The links of one span, bounded by [`MAX_LINKS`].
#[derive(Clone, Debug, Default)]
pub(crate) struct SpanLinks {
    pub(crate) links: Vec<SpanLink>,
    /// Links added beyond [`MAX_LINKS`].
    pub(crate) dropped: u32,
}

/// Adds `link` to `links` (created on first use), or counts it as dropped when full.
pub(crate) fn push(links: &mut Option<Box<SpanLinks>>, link: SpanLink) {
    let links = links.get_or_insert_with(Box::default);
    if links.links.len() < MAX_LINKS {
        links.links.push(link);
    } else {
        links.dropped = links.dropped.saturating_add(1);
    }
}

thread_local! {
    /// Links of spans finishing as `cf_rustracing` spans on this thread, until their record
    /// takes them.
    static HANDED_OVER: RefCell<Vec<(SpanId, Box<SpanLinks>)>> = const { RefCell::new(Vec::new()) };
}

/// Keeps `links` for the record of span `span_id`, about to finish on this thread.
pub(crate) fn hand_over(span_id: SpanId, links: Box<SpanLinks>) {
    let _ = HANDED_OVER.try_with(|pending| {
        if let Ok(mut pending) = pending.try_borrow_mut() {
            pending.push((span_id, links));
        }
    });
}

/// The links handed over for span `span_id`, if any.
pub(crate) fn take_handed_over(span_id: SpanId) -> Option<Box<SpanLinks>> {
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
