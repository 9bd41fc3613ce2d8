//! OTLP conversion: [`FinishedSpan`] records into `opentelemetry-proto` messages, and request
//! bodies that respect a size limit.
//!
//! The mapping:
//!
//! | span | OTLP |
//! |---|---|
//! | trace id, span id | 16 and 8 bytes, big-endian |
//! | parent | `parent_span_id` (empty for a new root; the inbound parent for a continued root) |
//! | flags | W3C flags in bits 0–7, `0x100` (remote-ness known), `0x200` (parent is remote) |
//! | tag `span.kind` = `server`/`client`/`producer`/`consumer`/`internal` | `kind` (default internal) |
//! | tag `error` = `true` | status Error, message from tag `error.message` (other values: Unset) |
//! | other tags | attributes, typed: string, bool, int, double |
//! | log entries | events: name from field `event` (else `log`), other fields as string attributes |
//! | tracestate | `trace_state` |
//!
//! String attribute values longer than [`MAX_ATTRIBUTE_VALUE_BYTES`] are truncated (at a
//! character boundary) and counted as such, rather than refused: one oversized tag must not
//! cost the whole span.
//!
//! This module owns the wire format only. It knows nothing of queues, routing or transport.

use crate::telemetry::core::finished::FinishedSpan;
use cf_rustracing::tag::TagValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
#[cfg(all(test, feature = "testing"))]
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
#[cfg(all(test, feature = "testing"))]
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use smallvec::SmallVec;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest string attribute value sent, in bytes: 64 KiB. Longer values are truncated.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 64 * 1024;

/// OTLP span flag: the `is_remote` bit of the parent is known.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// OTLP span flag: the parent is remote.
const FLAG_IS_REMOTE: u32 = 0x200;

/// Builds export requests for one process: one resource and one instrumentation scope.
#[derive(Clone, Debug)]
pub(crate) struct OtlpEncoder {
    /// Attributes added to every span that does not set them itself.
    static_tags: Vec<(String, String)>,
    /// `ResourceSpans.resource` (field 1), encoded once.
    resource_field: Vec<u8>,
    /// `ScopeSpans.scope` (field 1), encoded once.
    scope_field: Vec<u8>,
}

/// What converting a batch counted, besides the spans themselves.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConversionCounts {
    /// String values cut to [`MAX_ATTRIBUTE_VALUE_BYTES`].
    pub(crate) truncated_values: u64,
}

/// One request body and the number of spans in it.
#[derive(Debug)]
pub(crate) struct EncodedRequest {
    pub(crate) body: Vec<u8>,
    pub(crate) spans: usize,
}

impl OtlpEncoder {
    /// `resource_attributes` always gains `service.name` if it lacks one.
    pub(crate) fn new(service_name: &str, resource_attributes: Vec<(String, String)>) -> Self {
        let mut attributes: Vec<KeyValue> = resource_attributes
            .into_iter()
            .map(|(key, value)| string_attribute(key, value))
            .collect();
        if !attributes.iter().any(|kv| kv.key == "service.name") {
            attributes.insert(
                0,
                string_attribute("service.name".into(), service_name.into()),
            );
        }
        let resource = Resource {
            attributes,
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "foundations".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ..Default::default()
        };
        let mut resource_field = Vec::new();
        prost::encoding::message::encode(1, &resource, &mut resource_field);
        let mut scope_field = Vec::new();
        prost::encoding::message::encode(1, &scope, &mut scope_field);
        Self {
            static_tags: Vec::new(),
            resource_field,
            scope_field,
        }
    }

    /// Adds `tags` to every span that does not set them itself.
    pub(crate) fn with_static_tags(mut self, tags: Vec<(String, String)>) -> Self {
        self.static_tags = tags;
        self
    }

    /// Converts `spans` and packs them into request bodies of at most `max_bytes` each.
    ///
    /// A single span that alone exceeds `max_bytes` cannot be sent: it is counted in the
    /// returned `oversized` number instead.
    pub(crate) fn encode<'a>(
        &self,
        spans: impl IntoIterator<Item = &'a FinishedSpan>,
        max_bytes: usize,
        counts: &mut ConversionCounts,
    ) -> (Vec<EncodedRequest>, usize) {
        let overhead = self.framing_overhead();
        let mut requests = Vec::new();
        let mut oversized = 0;
        let mut chunk: Vec<u8> = Vec::new();
        let mut chunk_spans = 0;
        for span in spans {
            let start = chunk.len();
            write_span(span, &self.static_tags, &mut chunk, counts);
            let span_bytes = chunk.len() - start;
            if overhead + span_bytes > max_bytes {
                chunk.truncate(start);
                oversized += 1;
                continue;
            }
            if overhead + chunk.len() > max_bytes {
                // This span starts the next request.
                let next = chunk.split_off(start);
                requests.push(self.frame(&chunk, chunk_spans));
                chunk = next;
                chunk_spans = 0;
            }
            chunk_spans += 1;
        }
        if chunk_spans > 0 {
            requests.push(self.frame(&chunk, chunk_spans));
        }
        (requests, oversized)
    }

    /// The most bytes framing can add around the spans of one request (length prefixes at
    /// their widest).
    fn framing_overhead(&self) -> usize {
        let widest_prefix = 1 + 10;
        self.resource_field.len() + self.scope_field.len() + 2 * widest_prefix
    }

    /// Wraps encoded spans into `ExportTraceServiceRequest { ResourceSpans { resource,
    /// ScopeSpans { scope, spans } } }`.
    fn frame(&self, spans: &[u8], count: usize) -> EncodedRequest {
        let scope_spans_len = self.scope_field.len() + spans.len();
        let resource_spans_len = self.resource_field.len() + ld_len(2, scope_spans_len);
        let mut body = Vec::with_capacity(ld_len(1, resource_spans_len));
        put_ld_header(1, resource_spans_len, &mut body);
        body.extend_from_slice(&self.resource_field);
        put_ld_header(2, scope_spans_len, &mut body);
        body.extend_from_slice(&self.scope_field);
        body.extend_from_slice(spans);
        EncodedRequest { body, spans: count }
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn string_attribute(key: String, value: String) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

fn span_kind(value: &TagValue) -> Option<SpanKind> {
    let TagValue::String(kind) = value else {
        return None;
    };
    Some(match kind.to_ascii_lowercase().as_str() {
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        _ => return None,
    })
}

/// A value ready for the wire: strings already cut to the size limit.
#[derive(Clone, Copy, Debug)]
enum WireValue<'a> {
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

fn bounded_str<'a>(value: &'a str, counts: &mut ConversionCounts) -> &'a str {
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
struct SpanView<'a> {
    kind: SpanKind,
    /// `Some(message)` when the span is an error.
    error: Option<&'a str>,
    attributes: SmallVec<[(&'a str, WireValue<'a>); 8]>,
    events: Vec<EventView<'a>>,
}

struct EventView<'a> {
    time: u64,
    name: &'a str,
    attributes: SmallVec<[(&'a str, &'a str); 4]>,
}

fn view<'a>(
    span: &'a FinishedSpan,
    static_tags: &'a [(String, String)],
    counts: &mut ConversionCounts,
) -> SpanView<'a> {
    let mut kind = SpanKind::Internal;
    let mut is_error = false;
    let mut error_message = "";
    let mut attributes = SmallVec::new();
    for tag in span.tags() {
        match tag.name() {
            "span.kind" => match span_kind(tag.value()) {
                Some(parsed) => kind = parsed,
                // Not a kind we know: keep it visible as an attribute.
                None => attributes.push((tag.name(), wire_value(tag.value(), counts))),
            },
            "error" => is_error = matches!(tag.value(), TagValue::Boolean(true)),
            "error.message" => match tag.value() {
                TagValue::String(message) => error_message = bounded_str(message, counts),
                other => attributes.push((tag.name(), wire_value(other, counts))),
            },
            name => attributes.push((name, wire_value(tag.value(), counts))),
        }
    }
    for (key, value) in static_tags {
        if !span.tags().iter().any(|tag| tag.name() == key) {
            attributes.push((key.as_str(), WireValue::Str(bounded_str(value, counts))));
        }
    }
    let events = span
        .logs()
        .iter()
        .map(|log| {
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
            }
        })
        .collect();
    SpanView {
        kind,
        error: is_error.then_some(error_message),
        attributes,
        events,
    }
}

fn parent_and_flags(span: &FinishedSpan) -> (Option<[u8; 8]>, u32) {
    let (parent, remote_flag) = match span.parent() {
        Some(parent) => (
            Some(parent.span_id.to_bytes()),
            if parent.is_remote { FLAG_IS_REMOTE } else { 0 },
        ),
        None => (None, 0),
    };
    let flags =
        u32::from(span.state().flags().outbound().bits()) | FLAG_HAS_IS_REMOTE | remote_flag;
    (parent, flags)
}

/// Converts one finished span into the `opentelemetry-proto` message: the reference that
/// tests hold the direct encoding ([`write_span`]) to.
#[cfg(all(test, feature = "testing"))]
pub(crate) fn to_proto(span: &FinishedSpan, counts: &mut ConversionCounts) -> Span {
    let state = span.state();
    let view = view(span, &[], counts);
    let (parent, flags) = parent_and_flags(span);
    let any = |value: WireValue<'_>| AnyValue {
        value: Some(match value {
            WireValue::Str(s) => any_value::Value::StringValue(s.to_owned()),
            WireValue::Bool(b) => any_value::Value::BoolValue(b),
            WireValue::Int(i) => any_value::Value::IntValue(i),
            WireValue::Double(f) => any_value::Value::DoubleValue(f),
        }),
    };
    Span {
        trace_id: state.trace_id().to_bytes().to_vec(),
        span_id: state.span_id().to_bytes().to_vec(),
        trace_state: state
            .trace_state()
            .map(|ts| ts.to_header_value())
            .unwrap_or_default(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        flags,
        name: span.name().to_owned(),
        kind: view.kind as i32,
        start_time_unix_nano: unix_nanos(span.start_time()),
        end_time_unix_nano: unix_nanos(span.finish_time()),
        attributes: view
            .attributes
            .iter()
            .map(|(key, value)| KeyValue {
                key: (*key).to_owned(),
                value: Some(any(*value)),
                ..Default::default()
            })
            .collect(),
        events: view
            .events
            .iter()
            .map(|event| Event {
                time_unix_nano: event.time,
                name: event.name.to_owned(),
                attributes: event
                    .attributes
                    .iter()
                    .map(|(key, value)| string_attribute((*key).to_owned(), (*value).to_owned()))
                    .collect(),
                dropped_attributes_count: 0,
            })
            .collect(),
        status: view.error.map(|message| Status {
            code: StatusCode::Error as i32,
            message: message.to_owned(),
        }),
        ..Default::default()
    }
}

// ---- Direct encoding -------------------------------------------------------------------
//
// The exporter writes each span's protobuf bytes straight from the record, without building
// the `opentelemetry-proto` structs first (each would cost a dozen small allocations). Field
// order (by tag number) and default-skipping follow prost's encoding of those structs exactly; the test
// `direct_encoding_matches_prost_byte_for_byte` holds the two paths to the same bytes.

use prost::bytes::BufMut;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// `ScopeSpans.spans` field number.
const SCOPE_SPANS_SPANS: u32 = 2;

fn ld_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_ld_header(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn put_ld(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    put_ld_header(tag, bytes.len(), buf);
    buf.extend_from_slice(bytes);
}

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
    time + name + attributes
}

fn status_len(message: &str) -> usize {
    let message = if message.is_empty() {
        0
    } else {
        ld_len(2, message.len())
    };
    message + key_len(3) + encoded_len_varint(StatusCode::Error as u64)
}

/// Writes `span` as one element of `ScopeSpans.spans` (key, length, message) to `buf`.
pub(crate) fn write_span(
    span: &FinishedSpan,
    static_tags: &[(String, String)],
    buf: &mut Vec<u8>,
    counts: &mut ConversionCounts,
) {
    let state = span.state();
    let view = view(span, static_tags, counts);
    let (parent, flags) = parent_and_flags(span);
    let trace_state = state.trace_state().map(|ts| ts.header_str()).unwrap_or("");
    let name = span.name();
    let kind = view.kind as i32 as u64;
    let start = unix_nanos(span.start_time());
    let end = unix_nanos(span.finish_time());

    let mut len = ld_len(1, 16) + ld_len(2, 8);
    if !trace_state.is_empty() {
        len += ld_len(3, trace_state.len());
    }
    if parent.is_some() {
        len += ld_len(4, 8);
    }
    // Flags are never 0 (bit 0x100 is always set).
    len += key_len(16) + 4;
    if !name.is_empty() {
        len += ld_len(5, name.len());
    }
    len += key_len(6) + encoded_len_varint(kind);
    if start != 0 {
        len += key_len(7) + 8;
    }
    if end != 0 {
        len += key_len(8) + 8;
    }
    for (key, value) in &view.attributes {
        len += ld_len(9, key_value_len(key, *value));
    }
    for event in &view.events {
        len += ld_len(11, event_len(event));
    }
    if let Some(message) = view.error {
        len += ld_len(15, status_len(message));
    }

    buf.reserve(ld_len(SCOPE_SPANS_SPANS, len));
    put_ld_header(SCOPE_SPANS_SPANS, len, buf);
    put_ld(1, &state.trace_id().to_bytes(), buf);
    put_ld(2, &state.span_id().to_bytes(), buf);
    if !trace_state.is_empty() {
        put_ld(3, trace_state.as_bytes(), buf);
    }
    if let Some(parent) = parent {
        put_ld(4, &parent, buf);
    }
    if !name.is_empty() {
        put_ld(5, name.as_bytes(), buf);
    }
    put_varint_field(6, kind, buf);
    if start != 0 {
        put_fixed64(7, start, buf);
    }
    if end != 0 {
        put_fixed64(8, end, buf);
    }
    for (key, value) in &view.attributes {
        put_key_value(9, key, *value, buf);
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
    }
    if let Some(message) = view.error {
        put_ld_header(15, status_len(message), buf);
        if !message.is_empty() {
            put_ld(2, message.as_bytes(), buf);
        }
        put_varint_field(3, StatusCode::Error as u64, buf);
    }
    // prost writes fields in tag order: `flags` (16) comes last.
    encode_key(16, WireType::ThirtyTwoBit, buf);
    buf.put_u32_le(flags);
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::telemetry::TelemetryContext;
    use crate::telemetry::tracing::{self, StartTraceOptions};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    fn finished(f: impl FnOnce()) -> Vec<FinishedSpan> {
        let ctx = TelemetryContext::test();
        ctx.scope_and(f);
        ctx.finished_internal_spans()
    }

    #[test]
    fn maps_ids_kind_status_attributes_events_and_flags() {
        let inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let spans = finished(|| {
            let options = StartTraceOptions::default()
                .continue_from_headers(Some(inbound.as_bytes()), Some(b"k=v".as_slice()));
            let _root = tracing::start_trace("server", options);
            crate::add_span_tags!(
                "span.kind" => "server",
                "error" => true,
                "error.message" => "boom",
                "n" => 7,
                "b" => false,
                "f" => 1.5,
                "s" => "x"
            );
            crate::add_span_log_fields!("event" => "retry", "attempt" => "2");
        });
        let mut counts = ConversionCounts::default();
        let proto = to_proto(&spans[0], &mut counts);
        assert_eq!(hex(&proto.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&proto.parent_span_id), "00f067aa0ba902b7");
        assert_eq!(proto.span_id.len(), 8);
        assert_eq!(proto.flags, 0x01 | 0x100 | 0x200);
        assert_eq!(proto.kind, SpanKind::Server as i32);
        assert_eq!(
            proto.status.as_ref().unwrap().code,
            StatusCode::Error as i32
        );
        assert_eq!(proto.status.as_ref().unwrap().message, "boom");
        assert_eq!(proto.trace_state, "k=v");
        let attr = |k: &str| {
            proto
                .attributes
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(attr("n"), Some(any_value::Value::IntValue(7)));
        assert_eq!(attr("b"), Some(any_value::Value::BoolValue(false)));
        assert_eq!(attr("f"), Some(any_value::Value::DoubleValue(1.5)));
        assert_eq!(attr("s"), Some(any_value::Value::StringValue("x".into())));
        assert!(attr("span.kind").is_none() && attr("error").is_none());
        assert_eq!(proto.events[0].name, "retry");
        assert_eq!(proto.events[0].attributes[0].key, "attempt");
        assert!(proto.end_time_unix_nano >= proto.start_time_unix_nano);
    }

    #[test]
    fn new_root_has_no_parent_and_local_children_are_not_remote() {
        let spans = finished(|| {
            let _root = tracing::start_trace("root", StartTraceOptions::default());
            let _child = tracing::span("child");
            crate::add_span_tags!("error" => "yes");
        });
        let mut counts = ConversionCounts::default();
        let child = to_proto(&spans[0], &mut counts);
        let root = to_proto(&spans[1], &mut counts);
        assert!(root.parent_span_id.is_empty());
        assert_eq!(child.parent_span_id, root.span_id);
        assert_eq!(child.flags & 0x300, 0x100);
        assert!(child.status.is_none(), "only error = true marks an error");
        assert_eq!(root.flags & 0xff, 0x03, "sampled and random");
    }

    #[test]
    fn huge_values_are_truncated_and_counted() {
        let huge = "é".repeat(MAX_ATTRIBUTE_VALUE_BYTES);
        let spans = finished(|| {
            let _root = tracing::start_trace("root", StartTraceOptions::default());
            crate::add_span_tags!("huge" => huge.clone());
        });
        let mut counts = ConversionCounts::default();
        let proto = to_proto(&spans[0], &mut counts);
        let Some(any_value::Value::StringValue(value)) =
            proto.attributes[0].value.clone().and_then(|v| v.value)
        else {
            panic!("string attribute");
        };
        assert!(value.len() <= MAX_ATTRIBUTE_VALUE_BYTES);
        assert_eq!(counts.truncated_values, 1);
    }

    #[test]
    fn requests_are_split_under_the_limit_and_decode() {
        let spans = finished(|| {
            for i in 0..100 {
                let _root = tracing::start_trace(format!("span-{i}"), StartTraceOptions::default());
                crate::add_span_tags!("payload" => "x".repeat(100));
            }
        });
        let encoder = OtlpEncoder::new(
            "svc",
            vec![("deployment.environment.name".into(), "test".into())],
        );
        let mut counts = ConversionCounts::default();
        let (requests, oversized) = encoder.encode(&spans, 2_000, &mut counts);
        assert_eq!(oversized, 0);
        assert!(requests.len() > 5);
        let mut total = 0;
        for request in &requests {
            assert!(request.body.len() <= 2_000, "{}", request.body.len());
            let decoded = ExportTraceServiceRequest::decode(request.body.as_slice()).unwrap();
            assert_eq!(decoded.resource_spans.len(), 1);
            let resource = decoded.resource_spans[0].resource.as_ref().unwrap();
            assert_eq!(resource.attributes[0].key, "service.name");
            assert_eq!(decoded.resource_spans[0].scope_spans.len(), 1);
            assert_eq!(
                decoded.resource_spans[0].scope_spans[0]
                    .scope
                    .as_ref()
                    .unwrap()
                    .name,
                "foundations"
            );
            total += decoded.resource_spans[0].scope_spans[0].spans.len();
            assert_eq!(
                decoded.resource_spans[0].scope_spans[0].spans.len(),
                request.spans
            );
        }
        assert_eq!(total, 100);
        // A limit below one span's size: every span is oversized, nothing is sent.
        let (requests, oversized) = encoder.encode(&spans, 150, &mut counts);
        assert!(requests.is_empty());
        assert_eq!(oversized, 100);
    }

    #[test]
    fn direct_encoding_matches_prost_byte_for_byte() {
        let inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
        let spans = finished(|| {
            let options = StartTraceOptions::default()
                .continue_from_headers(Some(inbound.as_bytes()), Some(b"a=1,b=2".as_slice()));
            let _root = tracing::start_trace("root", options);
            crate::add_span_tags!("span.kind" => "client", "neg" => -5, "zero" => 0, "f" => -0.25,
                "t" => true, "no" => false, "empty" => "", "error" => true, "kind2" => "x");
            crate::add_span_log_fields!("event" => "e1", "k" => "v", "" => "empty key");
            crate::add_span_log_fields!("only" => "fields");
            let _child = tracing::span("");
            crate::add_span_tags!("span.kind" => "bogus", "error.message" => 5, "big" => "y".repeat(70_000));
            let _plain = tracing::span("plain");
        });
        assert_eq!(spans.len(), 3);
        for span in &spans {
            let mut reference_counts = ConversionCounts::default();
            let mut expected = Vec::new();
            prost::encoding::message::encode(
                2,
                &to_proto(span, &mut reference_counts),
                &mut expected,
            );
            let mut counts = ConversionCounts::default();
            let mut actual = Vec::new();
            write_span(span, &[], &mut actual, &mut counts);
            assert_eq!(actual, expected, "span {:?}", span.name());
            assert_eq!(counts, reference_counts);
        }
        // The framing is canonical: decoding and re-encoding gives the same bytes.
        let encoder = OtlpEncoder::new("svc", vec![]);
        let (requests, _) = encoder.encode(&spans, usize::MAX, &mut ConversionCounts::default());
        let decoded = ExportTraceServiceRequest::decode(requests[0].body.as_slice()).unwrap();
        assert_eq!(decoded.encode_to_vec(), requests[0].body);
        assert_eq!(decoded.resource_spans[0].scope_spans[0].spans.len(), 3);
    }

    #[test]
    fn static_tags_are_added_unless_the_span_sets_them() {
        let spans = finished(|| {
            let _root = tracing::start_trace("root", StartTraceOptions::default());
            crate::add_span_tags!("region" => "span-wins");
        });
        let encoder = OtlpEncoder::new("svc", vec![]).with_static_tags(vec![
            ("region".into(), "static".into()),
            ("team".into(), "edge".into()),
        ]);
        let (requests, _) = encoder.encode(&spans, usize::MAX, &mut ConversionCounts::default());
        let decoded = ExportTraceServiceRequest::decode(requests[0].body.as_slice()).unwrap();
        let span = &decoded.resource_spans[0].scope_spans[0].spans[0];
        let value = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.clone()?.value)
        };
        assert_eq!(
            value("region"),
            Some(any_value::Value::StringValue("span-wins".into()))
        );
        assert_eq!(
            value("team"),
            Some(any_value::Value::StringValue("edge".into()))
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
