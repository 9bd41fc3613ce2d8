//! What a finished span becomes in OTLP, decided once for both encodings (the direct
//! writer in `wire` and the `opentelemetry-proto` reference in the tests): kind and status
//! from their tags, the remaining tags as typed attributes, log entries as events, parent
//! and flags, and string values cut to [`MAX_ATTRIBUTE_VALUE_BYTES`].
//!
//! This module reads finished records only; it writes no bytes.

use crate::telemetry::core::finished::FinishedSpan;
use crate::telemetry::core::status::{self, SPAN_KIND_TAG, StatusCode, StatusTag};
use cf_rustracing::tag::{Tag, TagValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use smallvec::SmallVec;

/// Longest string attribute value sent, in bytes: 64 KiB. Longer values are truncated.
pub(crate) const MAX_ATTRIBUTE_VALUE_BYTES: usize = 64 * 1024;

/// OTLP span flag: the `is_remote` bit of the parent is known.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// OTLP span flag: the parent is remote.
const FLAG_IS_REMOTE: u32 = 0x200;

/// What converting a batch counted, besides the spans themselves.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConversionCounts {
    /// String values cut to [`MAX_ATTRIBUTE_VALUE_BYTES`].
    pub(crate) truncated_values: u64,
}

pub(super) use crate::telemetry::core::clock::system_time_nanos as unix_nanos;

fn span_kind(value: &TagValue) -> Option<SpanKind> {
    use crate::telemetry::core::status::SpanKind as Kind;
    Some(match Kind::from_tag_value(value)? {
        Kind::Server => SpanKind::Server,
        Kind::Client => SpanKind::Client,
        Kind::Producer => SpanKind::Producer,
        Kind::Consumer => SpanKind::Consumer,
        Kind::Internal => SpanKind::Internal,
    })
}

/// A value ready for the wire: strings already cut to the size limit.
#[derive(Clone, Copy, Debug)]
pub(super) enum WireValue<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
}

fn wire_value<'a>(value: &'a TagValue, counts: &mut ConversionCounts) -> WireValue<'a> {
    match value {
        TagValue::String(s) => WireValue::Str(bounded_str(s, counts)),
        TagValue::Boolean(b) => WireValue::Bool(*b),
        TagValue::Integer(i) => WireValue::Int(*i),
        TagValue::Float(f) => WireValue::Double(*f),
    }
}

pub(super) fn bounded_str<'a>(value: &'a str, counts: &mut ConversionCounts) -> &'a str {
    if value.len() <= MAX_ATTRIBUTE_VALUE_BYTES {
        return value;
    }
    counts.truncated_values += 1;
    let mut end = MAX_ATTRIBUTE_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// What a span becomes on the wire, decided once for both encoders: kind and status from
/// their tags, the remaining tags as attributes, log entries as events.
pub(super) struct SpanView<'a> {
    pub(super) kind: SpanKind,
    /// The status: `None` when unset; else its code and message (empty unless an error).
    pub(super) status: Option<(StatusCode, &'a str)>,
    pub(super) attributes: SmallVec<[(&'a str, WireValue<'a>); 8]>,
    pub(super) events: Vec<EventView<'a>>,
    pub(super) links: Vec<LinkView<'a>>,
    pub(super) dropped_attributes: u32,
    pub(super) dropped_events: u32,
    pub(super) dropped_links: u32,
}

pub(super) struct LinkView<'a> {
    pub(super) trace_id: [u8; 16],
    pub(super) span_id: [u8; 8],
    pub(super) trace_state: &'a str,
    pub(super) attributes: SmallVec<[(&'a str, WireValue<'a>); 4]>,
    /// The linked span's W3C flags (sampled, random). Whether it is remote is not known,
    /// so bits 0x100/0x200 stay unset.
    pub(super) flags: u32,
}

pub(super) struct EventView<'a> {
    pub(super) time: u64,
    pub(super) name: &'a str,
    pub(super) attributes: SmallVec<[(&'a str, &'a str); 4]>,
    pub(super) dropped_attributes: u32,
}

/// `tags` are the span's ([`FinishedSpan::tags`]), which the caller keeps for the view's
/// life.
pub(super) fn view<'a>(
    span: &'a FinishedSpan,
    tags: &'a [Tag],
    static_tags: &'a [(String, String)],
    counts: &mut ConversionCounts,
) -> SpanView<'a> {
    let mut kind = SpanKind::Internal;
    let mut status_code = StatusCode::Unset;
    let mut error_message = "";
    let mut attributes = SmallVec::new();
    for tag in tags {
        match tag.name() {
            SPAN_KIND_TAG => match span_kind(tag.value()) {
                Some(parsed) => kind = parsed,
                // Not a kind we know: keep it visible as an attribute.
                None => attributes.push((tag.name(), wire_value(tag.value(), counts))),
            },
            name => match status::status_tag(name, tag.value()) {
                Some(StatusTag::Code(code)) => status_code = code,
                Some(StatusTag::Message(message)) => error_message = bounded_str(message, counts),
                // Not a status tag, or a value the mapping does not know.
                None => attributes.push((name, wire_value(tag.value(), counts))),
            },
        }
    }
    for (key, value) in static_tags {
        if !tags.iter().any(|tag| tag.name() == key) {
            attributes.push((key.as_str(), WireValue::Str(bounded_str(value, counts))));
        }
    }
    let events = span
        .logs()
        .iter()
        .enumerate()
        .map(|(position, log)| {
            let mut name = "log";
            let mut attributes = SmallVec::new();
            for field in log.fields() {
                if field.name() == "event" {
                    name = bounded_str(field.value(), counts);
                } else {
                    attributes.push((field.name(), bounded_str(field.value(), counts)));
                }
            }
            EventView {
                time: unix_nanos(log.time()),
                name,
                attributes,
                dropped_attributes: span.event_dropped_attributes_count(position),
            }
        })
        .collect();
    let links = span
        .links()
        .iter()
        .map(|link| LinkView {
            trace_id: link.context.trace_id.to_bytes(),
            span_id: link.context.parent_id.to_bytes(),
            trace_state: link
                .trace_state
                .as_ref()
                .map_or("", |state| state.header_str()),
            attributes: link
                .attributes
                .iter()
                .map(|tag| (tag.name(), wire_value(tag.value(), counts)))
                .collect(),
            flags: u32::from(link.context.flags.outbound().bits()),
        })
        .collect();
    SpanView {
        links,
        dropped_attributes: span.dropped_attributes_count(),
        dropped_events: span.dropped_events_count(),
        dropped_links: span.dropped_links_count(),
        kind,
        status: match status_code {
            StatusCode::Unset => None,
            StatusCode::Ok => Some((StatusCode::Ok, "")),
            StatusCode::Error => Some((StatusCode::Error, error_message)),
        },
        attributes,
        events,
    }
}

pub(super) fn parent_and_flags(span: &FinishedSpan) -> (Option<[u8; 8]>, u32) {
    let (parent, remote_flag) = match span.parent() {
        Some(parent) => (
            Some(parent.span_id.to_bytes()),
            if parent.is_remote { FLAG_IS_REMOTE } else { 0 },
        ),
        None => (None, 0),
    };
    let flags = u32::from(span.flags().outbound().bits()) | FLAG_HAS_IS_REMOTE | remote_flag;
    (parent, flags)
}
