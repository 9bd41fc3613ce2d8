//! HTTP semantic-convention attributes, and the W3C headers, for the tower layers.
//!
//! The server reads what it needs of a request's headers in one pass ([`ServerHeaders`]),
//! and the root options from the W3C headers; the strings its last request used
//! ([`Recent`]) spare a repeat the interning tables' lookups. Kind and status are recorded through the typed [`SpanKind`] and [`SpanStatus`]. The
//! server's request attributes are written straight into its new root span, a response's
//! status straight into the request context's spans; the client's request attributes go to
//! the *current* spans: callers make the request's context current first.

use super::interned;
use super::request_context::RequestContext;
use crate::telemetry::core::entry_span::SpanHandle;
use crate::telemetry::core::harness::RootOptions;
use crate::telemetry::core::pipeline::{Internal, Pipeline};
use crate::telemetry::core::span::{LiveSpan, SpilledTags};
use crate::telemetry::core::stack;
use crate::telemetry::core::status::{SpanKind, SpanStatus};
use crate::telemetry::propagation::traceparent::TraceparentContext;
use crate::telemetry::propagation::tracestate::TraceState;
use cf_rustracing::tag::{Tag, TagValue};
use http::header::{HOST, HeaderName, HeaderValue, USER_AGENT};
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

/// The W3C headers, as ready-made names: looking a header up by a `&str` parses the name
/// every time.
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// What the server layer reads of a request's headers, found in one pass over them: a
/// request carries a dozen headers or so, and one look at each costs less than hashing the
/// four names to look them up.
#[derive(Default)]
pub(crate) struct ServerHeaders<'a> {
    /// The only `traceparent` value (none when there are several: the W3C rules make
    /// several invalid).
    pub(crate) traceparent: Option<&'a [u8]>,
    /// The `tracestate` list: several headers are one list, joined with `,` in order.
    pub(crate) tracestate: Option<Cow<'a, [u8]>>,
    user_agent: Option<&'a HeaderValue>,
    host: Option<&'a HeaderValue>,
}

impl<'a> ServerHeaders<'a> {
    /// Reads `headers` once.
    pub(crate) fn of(headers: &'a HeaderMap) -> Self {
        let mut found = ServerHeaders::default();
        let (mut traceparents, mut tracestates) = (0u32, 0u32);
        // Standard names compare as one byte, and a custom name differs from them by its
        // kind alone: only custom names are compared as text.
        for (name, value) in headers {
            if name == USER_AGENT {
                found.user_agent.get_or_insert(value);
            } else if name == HOST {
                found.host.get_or_insert(value);
            } else if name == TRACEPARENT {
                traceparents += 1;
                found.traceparent = Some(value.as_bytes());
            } else if name == TRACESTATE {
                tracestates += 1;
                found.tracestate = Some(Cow::Borrowed(value.as_bytes()));
            }
        }
        if traceparents > 1 {
            found.traceparent = None;
        }
        if tracestates > 1 {
            found.tracestate = Some(Cow::Owned(joined_tracestate(headers)));
        }
        found
    }
}

/// The interned strings a server's last request used, with the header bytes they came from.
/// A service's requests mostly repeat them (its routes, its host name, its callers'
/// agents), and a repeat then costs a comparison of bytes instead of a validation, a hash
/// and a look in the thread's cache. Kept by each service (called through `&mut`): no lock,
/// no thread-local. An empty value is never taken as a repeat.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Recent {
    /// A span name `"{METHOD} {route}"`.
    name: &'static str,
    /// The host of a request's URI (absolute form, HTTP/2's `:authority`).
    uri_host: &'static str,
    /// A `Host` header's bytes, and the `server.address` read from it.
    host_header: &'static str,
    host: &'static str,
    /// A `User-Agent` header's value.
    agent: &'static str,
}

impl Recent {
    /// The span name `"{method} {route}"`, interned when there is room (else owned).
    #[inline]
    pub(crate) fn span_name(&mut self, method: &'static str, route: &str) -> Cow<'static, str> {
        if interned::is_name_of(self.name, method, route) {
            return Cow::Borrowed(self.name);
        }
        let name = interned::span_name(method, route);
        if let Cow::Borrowed(name) = name {
            self.name = name;
        }
        name
    }

    /// `server.address` from the host of a request's URI.
    fn uri_host(&mut self, host: &str) -> Cow<'static, str> {
        if !host.is_empty() && host == self.uri_host {
            return Cow::Borrowed(self.uri_host);
        }
        let host = interned::host(host);
        if let Cow::Borrowed(host) = host {
            self.uri_host = host;
        }
        host
    }

    /// `server.address` from a `Host` header.
    fn header_host(&mut self, header: &HeaderValue) -> Option<Cow<'static, str>> {
        let bytes = header.as_bytes();
        if !bytes.is_empty() && bytes == self.host_header.as_bytes() {
            return Some(Cow::Borrowed(self.host));
        }
        let host = header_host(header)?;
        if let Cow::Borrowed(address) = host {
            // The header as a `'static` string: the address itself without a port, else
            // the header interned too (a service answers to few).
            let whole = match header.to_str().map(interned::host) {
                _ if bytes == address.as_bytes() => Some(address),
                Ok(Cow::Borrowed(whole)) => Some(whole),
                _ => None,
            };
            if let Some(whole) = whole {
                (self.host_header, self.host) = (whole, address);
            }
        }
        Some(host)
    }

    /// `user_agent.original` from a `User-Agent` header, if it is text.
    fn agent(&mut self, header: &HeaderValue) -> Option<Cow<'static, str>> {
        let bytes = header.as_bytes();
        // Equal bytes are the text the value read as before.
        if !bytes.is_empty() && bytes == self.agent.as_bytes() {
            return Some(Cow::Borrowed(self.agent));
        }
        let agent = interned::user_agent(header.to_str().ok()?);
        if let Cow::Borrowed(agent) = agent {
            self.agent = agent;
        }
        Some(agent)
    }
}

/// What a server root continues: the inbound `traceparent` and `tracestate` read as
/// [`StartTraceOptions::continue_from_headers`](crate::telemetry::tracing::StartTraceOptions::continue_from_headers)
/// reads them (an absent or malformed `traceparent` starts a new trace and its `tracestate`
/// is ignored; a malformed `tracestate` alone is dropped), straight into the core's options.
pub(crate) fn root_options(traceparent: Option<&[u8]>, tracestate: Option<&[u8]>) -> RootOptions {
    let inbound = traceparent
        .and_then(|value| TraceparentContext::parse(value).ok())
        .map(|parent| {
            let state = tracestate.and_then(|value| TraceState::parse(value).ok());
            (parent, state)
        });
    RootOptions {
        inbound,
        ..RootOptions::default()
    }
}

/// Most request attributes a server span gets, its kind included.
const SERVER_REQUEST_TAGS: usize = 6;

/// The request attributes of a server span, its kind included, as tags (`headers` are the
/// request's; `recent` the strings the service used last).
pub(crate) fn server_request_tags<B>(
    request: &Request<B>,
    headers: &ServerHeaders<'_>,
    recent: &mut Recent,
) -> Tags {
    let mut tags = Tags::with_capacity(SERVER_TAGS);
    write_server_request_tags(&mut tags, request, headers, recent);
    tags
}

/// Pushes the request attributes of a server span, its kind included, onto `tags` (at
/// most [`SERVER_REQUEST_TAGS`], of distinct names).
#[inline]
fn write_server_request_tags<B>(
    tags: &mut Tags,
    request: &Request<B>,
    headers: &ServerHeaders<'_>,
    recent: &mut Recent,
) {
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
    let host = match request.uri().host() {
        Some(host) => Some(recent.uri_host(host)),
        None => headers.host.and_then(|host| recent.header_host(host)),
    };
    if let Some(host) = host {
        tags.push(Tag::new("server.address", host));
    }
    if let Some(agent) = headers.user_agent.and_then(|agent| recent.agent(agent)) {
        tags.push(Tag::new("user_agent.original", agent));
    }
}

/// Records a server span's request attributes into it (a new root nothing else refers to
/// yet), written straight where the span keeps its tags, with room for what the response
/// adds.
pub(crate) fn record_server_request<B>(
    live: &mut LiveSpan,
    request: &Request<B>,
    headers: &ServerHeaders<'_>,
    recent: &mut Recent,
) {
    live.write_first_tags(SERVER_REQUEST_TAGS, |tags| {
        tags.reserve_exact(SERVER_TAGS);
        write_server_request_tags(tags, request, headers, recent)
    });
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
        .or_else(|| header_host(request.headers().get(HOST)?))
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

/// The `server.address` of a `Host` header (interned: a service answers to few).
fn header_host(host: &HeaderValue) -> Option<Cow<'static, str>> {
    let host = host.to_str().ok()?;
    // `host:port`, or `[v6]:port`: the address is what precedes the port, the digits after
    // the last `:`. Read from the end, a host without a port ends at its first look.
    let digits = host.bytes().rev().take_while(u8::is_ascii_digit).count();
    let address = match host[..host.len() - digits].strip_suffix(':') {
        Some(address) => address,
        None => host,
    };
    Some(interned::host(address))
}

/// Several `tracestate` header values as one list, joined with `,` in order.
#[cold]
fn joined_tracestate(headers: &HeaderMap) -> Vec<u8> {
    let mut joined = Vec::new();
    for (i, value) in headers.get_all(&TRACESTATE).into_iter().enumerate() {
        if i > 0 {
            joined.push(b',');
        }
        joined.extend_from_slice(value.as_bytes());
    }
    joined
}

/// Sets tags on the request's internal span (`ctx`'s), and its user span when `user` is
/// set: straight on the spans, no scope or stack lookup needed.
fn set_tags<const N: usize>(ctx: &RequestContext, tags: [Tag; N], user: bool) {
    #[cfg(feature = "user-tracing")]
    if user {
        set_on::<User, N>(ctx, tags.clone());
    }
    #[cfg(not(feature = "user-tracing"))]
    let _ = user;
    set_on::<Internal, N>(ctx, tags);
}

/// Sets one tag on the request's internal span (`ctx`'s), and its user span when `user` is
/// set, as [`set_tags`] does, with no loop over it.
fn set_tag(ctx: &RequestContext, tag: Tag, user: bool) {
    #[cfg(feature = "user-tracing")]
    if user && let Some(span) = ctx.span::<User>().and_then(SpanHandle::as_recording) {
        let tag = tag.clone();
        span.with_span(|live| live.set_tag(tag));
    }
    #[cfg(not(feature = "user-tracing"))]
    let _ = user;
    if let Some(span) = ctx.span::<Internal>().and_then(SpanHandle::as_recording) {
        span.with_span(|live| live.set_tag(tag));
    }
}

/// Sets tags on `ctx`'s span of pipeline `P`, if it is recorded.
fn set_on<P: Pipeline, const N: usize>(ctx: &RequestContext, tags: [Tag; N]) {
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
    ctx: &RequestContext,
    status: http::StatusCode,
    error_from: u16,
    user: bool,
) {
    let code = Tag::new("http.response.status_code", i64::from(status.as_u16()));
    if status.as_u16() < error_from {
        return set_tag(ctx, code, user);
    }
    let [error, message, status_code] = SpanStatus::error(status.to_string()).into_tags();
    set_tags(ctx, [code, error, message, status_code], user);
}

/// Marks the request's internal span (and its user span, when `user` is set) failed.
pub(crate) fn set_error(ctx: &RequestContext, message: String, user: bool) {
    set_tags(ctx, SpanStatus::error(message).into_tags(), user);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request to `uri` with these `Host` and `User-Agent` headers.
    fn request(uri: &str, host: Option<&[u8]>, agent: Option<&[u8]>) -> Request<()> {
        let mut request = Request::get(uri).body(()).unwrap();
        let headers = request.headers_mut();
        if let Some(host) = host {
            headers.insert(HOST, HeaderValue::from_bytes(host).unwrap());
        }
        if let Some(agent) = agent {
            headers.insert(USER_AGENT, HeaderValue::from_bytes(agent).unwrap());
        }
        request
    }

    fn as_pairs(tags: Tags) -> Vec<(String, TagValue)> {
        tags.into_iter()
            .map(|tag| (tag.name().to_owned(), tag.value().clone()))
            .collect()
    }

    #[test]
    fn repeated_requests_get_the_attributes_a_first_request_gets() {
        let agents: [&[u8]; 4] = [b"client/1.0", b"client/2.0", b"caf\xc3\xa9", b""];
        let hosts: [&[u8]; 5] = [
            b"api.example.test",
            b"api.example.test:8443",
            b"[::1]:80",
            b"",
            b"other.example.test",
        ];
        let mut cases = Vec::new();
        for round in 0..12 {
            for (i, host) in hosts.iter().enumerate() {
                let agent = agents[(i + round) % agents.len()];
                cases.push(request("/users/42", Some(host), Some(agent)));
                cases.push(request("/users/42", Some(host), None));
            }
            cases.push(request(
                "https://h2.example.test/a",
                None,
                Some(b"client/1.0"),
            ));
            cases.push(request("http://h2.example.test:8080/a", Some(b"x"), None));
        }
        // Every case twice in a row, and all of them in turn: repeats and changes.
        let mut recent = Recent::default();
        for case in cases.iter().flat_map(|case| [case, case]).chain(&cases) {
            let headers = ServerHeaders::of(case.headers());
            let expected = server_request_tags(case, &headers, &mut Recent::default());
            let got = server_request_tags(case, &headers, &mut recent);
            assert_eq!(as_pairs(got), as_pairs(expected), "{case:?}");
        }
    }

    #[test]
    fn a_repeated_name_is_the_name_of_its_own_method_and_route() {
        let mut recent = Recent::default();
        assert_eq!(recent.span_name("GET", "/a"), "GET /a");
        assert_eq!(recent.span_name("GET", "/a"), "GET /a");
        assert_eq!(recent.span_name("POST", "/a"), "POST /a");
        assert_eq!(recent.span_name("POST", "/b"), "POST /b");
        assert_eq!(recent.span_name("GET", ""), "GET ");
    }

    #[test]
    fn root_options_continue_only_a_valid_traceparent() {
        let traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let options = root_options(Some(traceparent), Some(b"vendor=value"));
        let (parent, state) = options.inbound.expect("continued");
        assert_eq!(parent, TraceparentContext::parse(traceparent).unwrap());
        assert_eq!(state.unwrap().to_string(), "vendor=value");
        // A malformed tracestate alone is dropped; a malformed traceparent drops both.
        let (_, state) = root_options(Some(traceparent), Some(b"=bad"))
            .inbound
            .unwrap();
        assert!(state.is_none());
        assert!(
            root_options(Some(b"00-bad"), Some(b"vendor=value"))
                .inbound
                .is_none()
        );
        assert!(root_options(None, Some(b"vendor=value")).inbound.is_none());
        assert!(options.force_sampling.is_none() && options.routing.is_none());
    }
}
