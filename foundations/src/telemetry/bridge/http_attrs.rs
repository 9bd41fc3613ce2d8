//! HTTP semantic-convention attributes, and the W3C headers, for the tower layers.
//!
//! Kind and status are recorded through the typed [`SpanKind`] and [`SpanStatus`]. The
//! server's request attributes are written straight into its new root span, a response's
//! status straight into the request context's spans; the client's request attributes go to
//! the *current* spans: callers make the request's context current first.

use super::interned;
use crate::telemetry::TelemetryContext;
use crate::telemetry::core::pipeline::{Internal, Pipeline};
use crate::telemetry::core::span::{LiveSpan, SpanHandle, SpilledTags};
use crate::telemetry::core::stack;
use crate::telemetry::core::status::{SpanKind, SpanStatus};
use cf_rustracing::tag::{Tag, TagValue};
use http::header::HeaderName;
use http::{HeaderMap, Request};
use smallvec::SmallVec;
use std::borrow::Cow;

#[cfg(feature = "user-tracing")]
use crate::telemetry::core::pipeline::User;

/// A request's attributes, recorded together: collected where the span keeps them.
pub(crate) type Tags = SpilledTags;

/// Room for a server span's request attributes and what its response adds (a status code,
/// an error status).
const SERVER_TAGS: usize = 10;

/// A response's status code, and its error status if it is one.
type StatusTags = SmallVec<[Tag; 4]>;

/// The W3C headers, as ready-made names: looking a header up by a `&str` parses the name
/// every time.
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The request attributes of a server span, its kind included, as tags.
pub(crate) fn server_request_tags<B>(request: &Request<B>) -> Tags {
    let mut tags = Tags::with_capacity(SERVER_TAGS);
    tags.push(SpanKind::Server.tag());
    tags.push(Tag::new(
        "http.request.method",
        method_value(request.method()),
    ));
    tags.push(Tag::new("url.path", request.uri().path().to_owned()));
    // The schemes there are, without copying them.
    let scheme = match request.uri().scheme_str() {
        None | Some("http") => Cow::Borrowed("http"),
        Some("https") => Cow::Borrowed("https"),
        Some(other) => Cow::Owned(other.to_owned()),
    };
    tags.push(Tag::new("url.scheme", scheme));
    let host = request
        .uri()
        .host()
        .map(interned::host)
        .or_else(|| header_host(request.headers()));
    if let Some(host) = host {
        tags.push(Tag::new("server.address", host));
    }
    if let Some(agent) = header_text(request.headers(), http::header::USER_AGENT) {
        tags.push(Tag::new("user_agent.original", agent));
    }
    tags
}

/// Records a server span's request attributes into it (a new root nothing else refers to
/// yet), in one batch.
pub(crate) fn record_server_request<B>(live: &mut LiveSpan, request: &Request<B>) {
    live.set_first_tags(server_request_tags(request));
}

/// The request attributes of a client span, its kind included, as tags.
pub(crate) fn client_request_tags<B>(request: &Request<B>) -> Tags {
    let mut tags = Tags::new();
    tags.push(SpanKind::Client.tag());
    tags.push(Tag::new(
        "http.request.method",
        method_value(request.method()),
    ));
    tags.push(Tag::new("url.full", request.uri().to_string()));
    if let Some(host) = request
        .uri()
        .host()
        .map(interned::host)
        .or_else(|| header_host(request.headers()))
    {
        tags.push(Tag::new("server.address", host));
    }
    if let Some(port) = request.uri().port_u16() {
        tags.push(Tag::new("server.port", i64::from(port)));
    }
    tags
}

/// A method as a tag value: the standard ones without allocating.
fn method_value(method: &http::Method) -> TagValue {
    match static_method(method) {
        // Semantic conventions: unknown methods are reported as `_OTHER`.
        OTHER_METHOD => TagValue::String(Cow::Borrowed("_OTHER")),
        standard => TagValue::String(Cow::Borrowed(standard)),
    }
}

/// What [`static_method`] says of a method that is not a standard one.
const OTHER_METHOD: &str = "HTTP";

/// The `&'static str` of a standard method.
pub(crate) fn static_method(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PATCH => "PATCH",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => OTHER_METHOD,
    }
}

fn header_text(headers: &HeaderMap, name: http::header::HeaderName) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

/// The `server.address` of a `Host` header (interned: a service answers to few).
fn header_host(headers: &HeaderMap) -> Option<Cow<'static, str>> {
    let host = headers.get(http::header::HOST)?.to_str().ok()?;
    // `host:port`, or `[v6]:port`: the address is what precedes the port.
    let address = match host.rsplit_once(':') {
        Some((address, port)) if port.bytes().all(|b| b.is_ascii_digit()) => address,
        _ => host,
    };
    Some(interned::host(address))
}

/// The inbound `traceparent` and `tracestate` header values, as the W3C rules read them:
/// several `traceparent` headers are invalid (none is used); several `tracestate` headers
/// are one list, joined with `,` in order.
pub(crate) fn w3c_headers(headers: &HeaderMap) -> (Option<&[u8]>, Option<Cow<'_, [u8]>>) {
    let mut traceparents = headers.get_all(&TRACEPARENT).iter();
    let traceparent = match (traceparents.next(), traceparents.next()) {
        (Some(only), None) => Some(only.as_bytes()),
        _ => None,
    };
    let mut tracestates = headers.get_all(&TRACESTATE).iter();
    let tracestate = match (tracestates.next(), tracestates.next()) {
        (None, _) => None,
        (Some(only), None) => Some(Cow::Borrowed(only.as_bytes())),
        (Some(first), Some(second)) => {
            let mut joined = first.as_bytes().to_vec();
            for value in [second].into_iter().chain(tracestates) {
                joined.push(b',');
                joined.extend_from_slice(value.as_bytes());
            }
            Some(Cow::Owned(joined))
        }
    };
    (traceparent, tracestate)
}

/// Sets tags on the request's internal span (`ctx`'s), and its user span when `user` is
/// set: straight on the spans, no scope or stack lookup needed.
fn set_tags(ctx: &TelemetryContext, tags: StatusTags, user: bool) {
    #[cfg(feature = "user-tracing")]
    if user {
        set_on::<User, _>(ctx, tags.clone());
    }
    #[cfg(not(feature = "user-tracing"))]
    let _ = user;
    set_on::<Internal, _>(ctx, tags);
}

/// Sets tags on `ctx`'s span of pipeline `P`, if it is recorded.
fn set_on<P: Pipeline, const N: usize>(ctx: &TelemetryContext, tags: SmallVec<[Tag; N]>) {
    if let Some(span) = ctx.span::<P>().and_then(SpanHandle::as_recording) {
        span.with_span(|live| live.set_tags(tags));
    }
}

/// Sets a request's attributes on the current internal span, and the current user span
/// when `user` is set.
pub(crate) fn set_request_tags(tags: Tags, user: bool) {
    #[cfg(feature = "user-tracing")]
    if user {
        set_current::<User, _>(tags.clone());
    }
    #[cfg(not(feature = "user-tracing"))]
    let _ = user;
    set_current::<Internal, _>(tags);
}

/// Sets tags on the current user span (a request's user root), if it is recorded.
pub(crate) fn set_user_tags(tags: Tags) {
    #[cfg(feature = "user-tracing")]
    set_current::<User, _>(tags);
    #[cfg(not(feature = "user-tracing"))]
    let _ = tags;
}

/// Sets tags on the current span of pipeline `P`, if it is recorded.
fn set_current<P: Pipeline, const N: usize>(tags: SmallVec<[Tag; N]>) {
    stack::with_current::<P>(|span| span.set_tags(tags));
}

/// Records the response status on the request's spans (`ctx`'s); `error_from` is the first
/// status that marks the span failed (500 for servers, 400 for clients).
pub(crate) fn set_status(
    ctx: &TelemetryContext,
    status: http::StatusCode,
    error_from: u16,
    user: bool,
) {
    let mut tags = StatusTags::new();
    tags.push(Tag::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if status.as_u16() >= error_from {
        tags.extend(SpanStatus::error(status.to_string()).into_tags());
    }
    set_tags(ctx, tags, user);
}

/// Marks the request's internal span (and its user span, when `user` is set) failed.
pub(crate) fn set_error(ctx: &TelemetryContext, message: String, user: bool) {
    set_tags(
        ctx,
        SpanStatus::error(message).into_tags().into_iter().collect(),
        user,
    );
}
