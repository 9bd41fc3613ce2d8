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
//! | tag `otel.status_code` = `OK`/`ERROR`/`UNSET` (as `SpanStatus` sets it) | status Ok/Error/Unset; the last status tag set wins |
//! | other tags | attributes, typed: string, bool, int, double; `dropped_attributes_count` past the span's attribute limit |
//! | log entries | events: name from field `event` (else `log`), other fields as string attributes; `dropped_events_count` past the events limit, each event's `dropped_attributes_count` past the per-event limit |
//! | links (`add_link`) | `links` (trace/span id, tracestate, typed attributes, W3C flags), `dropped_links_count` past the links limit |
//! | tracestate | `trace_state` |
//!
//! String attribute values longer than 64 KiB (`MAX_ATTRIBUTE_VALUE_BYTES`) are truncated (at a
//! character boundary) and counted as such, rather than refused: one oversized tag must not
//! cost the whole span.
//!
//! - `view`: what a span becomes (kind, status, typed attributes, events, flags), decided
//!   once for both encodings.
//! - `wire`: the direct protobuf writer, byte for byte what prost would write.
//! - this module: [`OtlpEncoder`], which frames encoded spans into request bodies under a
//!   size limit, with the resource and scope encoded once.
//!
//! This module owns the wire format only. It reads finished records and knows nothing of
//! queues, routing or transport. (With the `testing` feature, encoding a span named
//! `testing::PANIC_IN_EXPORT` panics: a fault tests provoke in an exporter worker.)

mod view;
mod wire;

pub(crate) use view::ConversionCounts;

use crate::telemetry::core::finished::FinishedSpan;
use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use wire::{ld_len, put_ld_header, write_span};

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

/// One request body and the number of spans in it.
#[derive(Debug)]
pub(crate) struct EncodedRequest {
    pub(crate) body: Bytes,
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
    ///
    /// Spans are written straight into the body, after room left for the framing: once
    /// their length is known, the framing is written just before them and the body starts
    /// there (no copy of the spans).
    pub(crate) fn encode<'a>(
        &self,
        spans: impl IntoIterator<Item = &'a FinishedSpan>,
        max_bytes: usize,
        counts: &mut ConversionCounts,
    ) -> (Vec<EncodedRequest>, usize) {
        let room = self.framing_overhead();
        let spans = spans.into_iter();
        let mut requests = Vec::new();
        let mut oversized = 0;
        let mut body = self.body_buffer(spans.size_hint().0);
        let mut body_spans = 0;
        for span in spans {
            // A fault tests provoke on purpose; never compiled into builds without `testing`.
            #[cfg(feature = "testing")]
            if span.name() == crate::telemetry::testing::PANIC_IN_EXPORT {
                panic!("a span named {:?} was exported", span.name());
            }
            let start = body.len();
            write_span(span, &self.static_tags, &mut body, counts);
            let span_bytes = body.len() - start;
            if room + span_bytes > max_bytes {
                body.truncate(start);
                oversized += 1;
                continue;
            }
            if body.len() > max_bytes {
                // This span starts the next request.
                let mut next = self.body_buffer(body_spans);
                next.extend_from_slice(&body[start..]);
                body.truncate(start);
                requests.push(self.frame(body, body_spans));
                body = next;
                body_spans = 0;
            }
            body_spans += 1;
        }
        if body_spans > 0 {
            requests.push(self.frame(body, body_spans));
        }
        (requests, oversized)
    }

    /// An empty body with room for the framing and about `spans` spans.
    fn body_buffer(&self, spans: usize) -> Vec<u8> {
        let room = self.framing_overhead();
        let mut body = Vec::with_capacity(room + spans.saturating_mul(SPAN_BYTES_HINT));
        body.resize(room, 0);
        body
    }

    /// The most bytes framing can add around the spans of one request (length prefixes at
    /// their widest).
    fn framing_overhead(&self) -> usize {
        let widest_prefix = 1 + 10;
        self.resource_field.len() + self.scope_field.len() + 2 * widest_prefix
    }

    /// Wraps the spans written after the framing's room in `body` into
    /// `ExportTraceServiceRequest { ResourceSpans { resource, ScopeSpans { scope, spans } } }`.
    fn frame(&self, mut body: Vec<u8>, count: usize) -> EncodedRequest {
        let room = self.framing_overhead();
        let spans_len = body.len() - room;
        let scope_spans_len = self.scope_field.len() + spans_len;
        let resource_spans_len = self.resource_field.len() + ld_len(2, scope_spans_len);
        let mut framing = Vec::with_capacity(room);
        put_ld_header(1, resource_spans_len, &mut framing);
        framing.extend_from_slice(&self.resource_field);
        put_ld_header(2, scope_spans_len, &mut framing);
        framing.extend_from_slice(&self.scope_field);
        let start = room - framing.len();
        body[start..room].copy_from_slice(&framing);
        EncodedRequest {
            body: Bytes::from(body).slice(start..),
            spans: count,
        }
    }
}

/// Bytes reserved per span in a new body: most spans take fewer, so a body rarely grows.
const SPAN_BYTES_HINT: usize = 128;

fn string_attribute(key: String, value: String) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// `body` gzipped (fast level): the HTTP body of `content-encoding: gzip`, the gRPC
/// message of `grpc-encoding: gzip`.
pub(crate) fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
#[test]
fn gzip_round_trips() {
    let body = b"hello hello hello hello".repeat(100);
    let compressed = gzip(&body);
    let mut decoder = flate2::read::GzDecoder::new(compressed.as_slice());
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut decoder, &mut out).unwrap();
    assert_eq!(out, body);
}

#[cfg(all(test, feature = "testing"))]
mod tests;

#[cfg(all(test, feature = "testing"))]
mod wire_proptests;
