//! The direct protobuf writer: each span's `ScopeSpans.spans` element written straight
//! from its `view::SpanView`, without building the `opentelemetry-proto` structs first (each
//! would cost a dozen small allocations). Field order (by tag number) and default-skipping
//! follow prost's encoding of those structs exactly; the test
//! `direct_encoding_matches_prost_byte_for_byte` holds the two paths to the same bytes.
//!
//! A span without extras (most spans: a static name and at most one inline tag that is
//! neither kind nor status) is written from its record directly, without its view; the
//! test `plain_spans_take_the_fast_path_byte_for_byte` holds it to prost's bytes too.
//!
//! This module owns byte layout only: what the fields hold is decided in `view`.

use super::view::{
    ConversionCounts, EventView, LinkView, WireValue, bounded_str, parent_and_flags, view,
};
use crate::telemetry::core::finished::FinishedSpan;
use crate::telemetry::core::status;
use crate::telemetry::core::tags::InlineTag;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::bytes::BufMut;
use prost::encoding::{WireType, encoded_len_varint, key_len};

/// `ScopeSpans.spans` field number.
const SCOPE_SPANS_SPANS: u32 = 2;

/// A varint; most are one byte (every key below field 16, most lengths of attributes), and
/// those are written without the general loop.
#[inline(always)]
fn encode_varint(value: u64, buf: &mut Vec<u8>) {
    if value < 0x80 {
        buf.push(value as u8);
    } else {
        prost::encoding::encode_varint(value, buf);
    }
}

/// A field key, as prost writes it.
#[inline(always)]
fn encode_key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    encode_varint(u64::from(tag << 3 | wire_type as u32), buf);
}

pub(super) fn ld_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

#[inline(always)]
pub(super) fn put_ld_header(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

// Inlined so that fixed-size fields (ids) are copied with a few moves, not a `memcpy` call.
#[inline(always)]
fn put_ld(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    put_ld_header(tag, bytes.len(), buf);
    buf.extend_from_slice(bytes);
}

#[inline(always)]
fn put_fixed64(tag: u32, value: u64, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::SixtyFourBit, buf);
    buf.put_u64_le(value);
}

fn put_varint_field(tag: u32, value: u64, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::Varint, buf);
    encode_varint(value, buf);
}

fn any_value_len(value: WireValue<'_>) -> usize {
    match value {
        WireValue::Str(s) => ld_len(1, s.len()),
        WireValue::Bool(_) => key_len(2) + 1,
        WireValue::Int(i) => key_len(3) + encoded_len_varint(i as u64),
        WireValue::Double(_) => key_len(4) + 8,
    }
}

fn key_value_len(key: &str, value: WireValue<'_>) -> usize {
    let key_part = if key.is_empty() {
        0
    } else {
        ld_len(1, key.len())
    };
    key_part + ld_len(2, any_value_len(value))
}

fn put_key_value(tag: u32, key: &str, value: WireValue<'_>, buf: &mut Vec<u8>) {
    put_ld_header(tag, key_value_len(key, value), buf);
    if !key.is_empty() {
        put_ld(1, key.as_bytes(), buf);
    }
    put_ld_header(2, any_value_len(value), buf);
    match value {
        WireValue::Str(s) => put_ld(1, s.as_bytes(), buf),
        WireValue::Bool(b) => put_varint_field(2, u64::from(b), buf),
        WireValue::Int(i) => put_varint_field(3, i as u64, buf),
        WireValue::Double(f) => put_fixed64(4, f.to_bits(), buf),
    }
}

fn event_len(event: &EventView<'_>) -> usize {
    let time = if event.time == 0 { 0 } else { key_len(1) + 8 };
    let name = if event.name.is_empty() {
        0
    } else {
        ld_len(2, event.name.len())
    };
    let attributes: usize = event
        .attributes
        .iter()
        .map(|(k, v)| ld_len(3, key_value_len(k, WireValue::Str(v))))
        .sum();
    let dropped = if event.dropped_attributes == 0 {
        0
    } else {
        key_len(4) + encoded_len_varint(u64::from(event.dropped_attributes))
    };
    time + name + attributes + dropped
}

fn link_len(link: &LinkView<'_>) -> usize {
    let trace_state = if link.trace_state.is_empty() {
        0
    } else {
        ld_len(3, link.trace_state.len())
    };
    let attributes: usize = link
        .attributes
        .iter()
        .map(|(key, value)| ld_len(4, key_value_len(key, *value)))
        .sum();
    let flags = if link.flags == 0 { 0 } else { key_len(6) + 4 };
    ld_len(1, 16) + ld_len(2, 8) + trace_state + attributes + flags
}

fn put_link(link: &LinkView<'_>, buf: &mut Vec<u8>) {
    put_ld_header(13, link_len(link), buf);
    put_ld(1, &link.trace_id, buf);
    put_ld(2, &link.span_id, buf);
    if !link.trace_state.is_empty() {
        put_ld(3, link.trace_state.as_bytes(), buf);
    }
    for (key, value) in &link.attributes {
        put_key_value(4, key, *value, buf);
    }
    if link.flags != 0 {
        encode_key(6, WireType::ThirtyTwoBit, buf);
        buf.put_u32_le(link.flags);
    }
}

/// The OTLP status code of a status that is set.
fn status_code(code: status::StatusCode) -> u64 {
    match code {
        status::StatusCode::Unset => StatusCode::Unset as u64,
        status::StatusCode::Ok => StatusCode::Ok as u64,
        status::StatusCode::Error => StatusCode::Error as u64,
    }
}

fn status_len(code: status::StatusCode, message: &str) -> usize {
    let message = if message.is_empty() {
        0
    } else {
        ld_len(2, message.len())
    };
    message + key_len(3) + encoded_len_varint(status_code(code))
}

/// Writes `span` as one element of `ScopeSpans.spans` (key, length, message) to `buf`.
pub(super) fn write_span(
    span: &FinishedSpan,
    static_tags: &[(String, String)],
    buf: &mut Vec<u8>,
    counts: &mut ConversionCounts,
) {
    if static_tags.is_empty()
        && let Some(tag) = span.plain_tag()
    {
        match tag {
            None => return write_plain_span(span, None, buf),
            Some(tag) => {
                if let Some(attribute) = plain_attribute(tag, counts) {
                    return write_plain_span(span, Some(attribute), buf);
                }
            }
        }
    }
    write_viewed_span(span, static_tags, buf, counts);
}

/// The attribute an inline tag becomes; `None` for the tags that set the kind or the
/// status instead (those take the general path).
#[inline]
fn plain_attribute(
    tag: InlineTag,
    counts: &mut ConversionCounts,
) -> Option<(&'static str, WireValue<'static>)> {
    let name = tag.name();
    if matches!(
        name,
        status::SPAN_KIND_TAG
            | status::ERROR_TAG
            | status::ERROR_MESSAGE_TAG
            | status::STATUS_CODE_TAG
    ) {
        return None;
    }
    let value = match tag {
        InlineTag::Str(_, value) => WireValue::Str(bounded_str(value, counts)),
        InlineTag::Bool(_, value) => WireValue::Bool(value),
        InlineTag::Int(_, value) => WireValue::Int(value),
        InlineTag::Float(_, value) => WireValue::Double(value),
    };
    Some((name, value))
}

/// A span without extras (see `FinishedSpan::plain_tag`): ids, parent, tracestate, name,
/// kind internal, times, at most one attribute, flags. The same bytes `write_viewed_span`
/// writes for it, without building its view.
fn write_plain_span(
    span: &FinishedSpan,
    attribute: Option<(&str, WireValue<'_>)>,
    buf: &mut Vec<u8>,
) {
    let head = SpanHead::of(span, SpanKind::Internal);
    let mut len = head.len();
    if let Some((key, value)) = attribute {
        len += ld_len(9, key_value_len(key, value));
    }
    buf.reserve(ld_len(SCOPE_SPANS_SPANS, len));
    put_ld_header(SCOPE_SPANS_SPANS, len, buf);
    head.put(span, buf);
    if let Some((key, value)) = attribute {
        put_key_value(9, key, value, buf);
    }
    head.put_flags(buf);
}

/// What every span writes whatever else it has: ids, tracestate, parent, name, kind,
/// times (fields 1 to 8) and flags (16, written last, as prost orders fields).
struct SpanHead<'a> {
    parent: Option<[u8; 8]>,
    flags: u32,
    trace_state: &'a str,
    name: &'a str,
    kind: u64,
    start: u64,
    end: u64,
}

impl<'a> SpanHead<'a> {
    fn of(span: &'a FinishedSpan, kind: SpanKind) -> Self {
        let (parent, flags) = parent_and_flags(span);
        Self {
            parent,
            flags,
            trace_state: span.trace_state().map(|ts| ts.header_str()).unwrap_or(""),
            name: span.name(),
            kind: kind as i32 as u64,
            start: span.start_unix_nanos(),
            end: span.finish_unix_nanos(),
        }
    }

    /// Its encoded length, flags included (never 0: bit 0x100 is always set).
    fn len(&self) -> usize {
        let mut len = ld_len(1, 16) + ld_len(2, 8) + key_len(16) + 4;
        if !self.trace_state.is_empty() {
            len += ld_len(3, self.trace_state.len());
        }
        if self.parent.is_some() {
            len += ld_len(4, 8);
        }
        if !self.name.is_empty() {
            len += ld_len(5, self.name.len());
        }
        len += key_len(6) + encoded_len_varint(self.kind);
        if self.start != 0 {
            len += key_len(7) + 8;
        }
        if self.end != 0 {
            len += key_len(8) + 8;
        }
        len
    }

    /// Fields 1 to 8.
    fn put(&self, span: &FinishedSpan, buf: &mut Vec<u8>) {
        put_ld(1, span.trace_id_bytes(), buf);
        put_ld(2, &span.span_id().to_bytes(), buf);
        if !self.trace_state.is_empty() {
            put_ld(3, self.trace_state.as_bytes(), buf);
        }
        if let Some(parent) = self.parent {
            put_ld(4, &parent, buf);
        }
        if !self.name.is_empty() {
            put_ld(5, self.name.as_bytes(), buf);
        }
        put_varint_field(6, self.kind, buf);
        if self.start != 0 {
            put_fixed64(7, self.start, buf);
        }
        if self.end != 0 {
            put_fixed64(8, self.end, buf);
        }
    }

    /// Field 16.
    fn put_flags(&self, buf: &mut Vec<u8>) {
        encode_key(16, WireType::ThirtyTwoBit, buf);
        buf.put_u32_le(self.flags);
    }
}

/// Any span, through its view (`view::view`).
fn write_viewed_span(
    span: &FinishedSpan,
    static_tags: &[(String, String)],
    buf: &mut Vec<u8>,
    counts: &mut ConversionCounts,
) {
    let tags = span.tags();
    let view = view(span, &tags, static_tags, counts);
    let head = SpanHead::of(span, view.kind);
    let mut len = head.len();
    for (key, value) in &view.attributes {
        len += ld_len(9, key_value_len(key, *value));
    }
    if view.dropped_attributes != 0 {
        len += key_len(10) + encoded_len_varint(u64::from(view.dropped_attributes));
    }
    for event in &view.events {
        len += ld_len(11, event_len(event));
    }
    if view.dropped_events != 0 {
        len += key_len(12) + encoded_len_varint(u64::from(view.dropped_events));
    }
    for link in &view.links {
        len += ld_len(13, link_len(link));
    }
    if view.dropped_links != 0 {
        len += key_len(14) + encoded_len_varint(u64::from(view.dropped_links));
    }
    if let Some((code, message)) = view.status {
        len += ld_len(15, status_len(code, message));
    }

    buf.reserve(ld_len(SCOPE_SPANS_SPANS, len));
    put_ld_header(SCOPE_SPANS_SPANS, len, buf);
    head.put(span, buf);
    for (key, value) in &view.attributes {
        put_key_value(9, key, *value, buf);
    }
    if view.dropped_attributes != 0 {
        put_varint_field(10, u64::from(view.dropped_attributes), buf);
    }
    for event in &view.events {
        put_ld_header(11, event_len(event), buf);
        if event.time != 0 {
            put_fixed64(1, event.time, buf);
        }
        if !event.name.is_empty() {
            put_ld(2, event.name.as_bytes(), buf);
        }
        for (key, value) in &event.attributes {
            put_key_value(3, key, WireValue::Str(value), buf);
        }
        if event.dropped_attributes != 0 {
            put_varint_field(4, u64::from(event.dropped_attributes), buf);
        }
    }
    if view.dropped_events != 0 {
        put_varint_field(12, u64::from(view.dropped_events), buf);
    }
    for link in &view.links {
        put_link(link, buf);
    }
    if view.dropped_links != 0 {
        put_varint_field(14, u64::from(view.dropped_links), buf);
    }
    if let Some((code, message)) = view.status {
        put_ld_header(15, status_len(code, message), buf);
        if !message.is_empty() {
            put_ld(2, message.as_bytes(), buf);
        }
        put_varint_field(3, status_code(code), buf);
    }
    head.put_flags(buf);
}
