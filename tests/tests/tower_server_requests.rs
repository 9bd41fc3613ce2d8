//! The server layer in process (requests handed to the service, no sockets): how it reads
//! inbound headers (the W3C rules for repeated `traceparent` and `tracestate` headers, the
//! `Host` header's port) and how it keeps a request's spans to that request when a handler
//! holds a scope across `.await` beside other requests on the same thread.

use foundations::telemetry::bridge::TraceServerLayer;
use foundations::telemetry::tracing::{self as ftracing, TagValue};
use foundations::telemetry::{SpanLimits, TelemetryContext, TestSpan, TestTelemetryContext};
use http::{Request, Response};
use std::convert::Infallible;
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt};

const TRACE_A: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACE_B: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "00f067aa0ba902b7";

/// One request through a traced service answering 200, inside `ctx`; the span ends with
/// the body, dropped here.
async fn serve_one(ctx: &TestTelemetryContext, request: Request<String>) {
    let service = ServiceBuilder::new()
        .layer(TraceServerLayer::new())
        .service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        });
    let response = ctx.apply(service.oneshot(request)).await.unwrap();
    drop(response);
}

fn server_span(ctx: &TestTelemetryContext) -> TestSpan {
    let mut traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 1, "{traces:#?}");
    traces.remove(0)
}

#[tokio::test]
async fn several_traceparent_headers_start_a_new_trace() {
    let ctx = TelemetryContext::test();
    let request = Request::get("/")
        .header("traceparent", format!("00-{TRACE_A}-{PARENT}-01"))
        .header("traceparent", format!("00-{TRACE_B}-{PARENT}-01"))
        .header("tracestate", "vendor=abc")
        .body(String::new())
        .unwrap();
    serve_one(&ctx, request).await;
    let server = server_span(&ctx);
    let trace = server.trace_id.to_string();
    assert!(trace != TRACE_A && trace != TRACE_B, "{trace}");
    assert_eq!(server.parent_id, None);
    assert!(!server.remote_parent);
    // Without a valid `traceparent`, `tracestate` is ignored too.
    assert!(server.trace_state.is_none(), "{:?}", server.trace_state);
}

#[tokio::test]
async fn several_tracestate_headers_are_one_list_in_order() {
    let ctx = TelemetryContext::test();
    let request = Request::get("/")
        .header("tracestate", "first=1")
        .header("traceparent", format!("00-{TRACE_A}-{PARENT}-01"))
        .header("tracestate", "second=2,third=3")
        .body(String::new())
        .unwrap();
    serve_one(&ctx, request).await;
    let server = server_span(&ctx);
    assert_eq!(server.trace_id.to_string(), TRACE_A);
    assert_eq!(
        server.parent_id.map(|id| id.to_string()).as_deref(),
        Some(PARENT)
    );
    assert_eq!(
        server.trace_state.map(|ts| ts.to_string()).as_deref(),
        Some("first=1,second=2,third=3")
    );
}

#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_trace_and_drops_tracestate() {
    let ctx = TelemetryContext::test();
    // Uppercase hex: the canonical length and layout, not a valid value.
    let request = Request::get("/")
        .header(
            "traceparent",
            format!("00-{}-{PARENT}-01", TRACE_A.to_uppercase()),
        )
        .header("tracestate", "vendor=abc")
        .body(String::new())
        .unwrap();
    serve_one(&ctx, request).await;
    let server = server_span(&ctx);
    assert_ne!(server.trace_id.to_string(), TRACE_A);
    assert!(!server.remote_parent);
    assert!(server.trace_state.is_none());
}

#[tokio::test]
async fn the_host_header_gives_the_address_without_its_port() {
    for (host, address) in [
        ("api.example.test", "api.example.test"),
        ("api.example.test:8443", "api.example.test"),
        ("[2001:db8::1]:8080", "[2001:db8::1]"),
        ("[2001:db8::1]", "[2001:db8::1]"),
        ("10.0.0.1:80", "10.0.0.1"),
    ] {
        let ctx = TelemetryContext::test();
        let request = Request::get("/")
            .header("host", host)
            .header("user-agent", "probe/2")
            .body(String::new())
            .unwrap();
        serve_one(&ctx, request).await;
        let server = server_span(&ctx);
        assert_eq!(
            server.tag("server.address"),
            Some(&TagValue::String(address.to_owned().into())),
            "{host}"
        );
        assert_eq!(
            server.tag("user_agent.original"),
            Some(&TagValue::String("probe/2".into()))
        );
    }
}

/// A request with `Host`, `User-Agent` and a path, answered 200: six request attributes and
/// the status code.
fn request_with_attributes() -> Request<String> {
    Request::get("/users/42")
        .header("host", "api.example.test")
        .header("user-agent", "probe/2")
        .body(String::new())
        .unwrap()
}

#[tokio::test]
async fn the_request_attributes_obey_the_span_limits() {
    let all = [
        "span.kind",
        "http.request.method",
        "url.path",
        "url.scheme",
        "server.address",
        "user_agent.original",
        "http.response.status_code",
    ];
    // The names of a span's tags, sorted (as test spans list them).
    let names = |server: &TestSpan| {
        let mut names: Vec<String> = server.tags.iter().map(|(name, _)| name.clone()).collect();
        names.sort();
        names
    };
    let sorted = |names: &[&str]| {
        let mut names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        names.sort();
        names
    };
    // Room for all of them.
    let ctx = TelemetryContext::test();
    serve_one(&ctx, request_with_attributes()).await;
    let server = server_span(&ctx);
    assert_eq!(names(&server), sorted(&all));
    assert_eq!(server.dropped_attributes_count, 0);

    // Room for three: the first three written kept, the others dropped and counted.
    let ctx = TelemetryContext::test_with_span_limits(SpanLimits::default().with_max_attributes(3));
    serve_one(&ctx, request_with_attributes()).await;
    let server = server_span(&ctx);
    assert_eq!(names(&server), sorted(&all[..3]));
    assert_eq!(server.dropped_attributes_count, 4);

    // Values cut to four bytes.
    let limits = SpanLimits::default().with_max_attribute_value_length(Some(4));
    let ctx = TelemetryContext::test_with_span_limits(limits);
    serve_one(&ctx, request_with_attributes()).await;
    let server = server_span(&ctx);
    assert_eq!(
        server.tag("url.path"),
        Some(&TagValue::String("/use".into()))
    );
    assert_eq!(
        server.tag("server.address"),
        Some(&TagValue::String("api.".into()))
    );
    assert_eq!(
        server.tag("http.response.status_code"),
        Some(&TagValue::Integer(200))
    );
    assert_eq!(server.tags.len(), all.len());
}

/// Two requests on one thread, interleaved: the first handler holds a scope across
/// `.await` (a `!Send` future, as on a `LocalSet`). While it waits, the second request's
/// spans must not hang from it, and after both, nothing is left current on the thread.
#[tokio::test(flavor = "current_thread")]
async fn a_scope_held_across_await_stays_with_its_request() {
    let ctx = TelemetryContext::test();
    let _test_scope = ctx.scope();
    let service = ServiceBuilder::new()
        .layer(
            TraceServerLayer::new()
                .with_route(|req: &Request<String>| Some(req.uri().path().to_owned())),
        )
        .service_fn(|req: Request<String>| async move {
            if req.uri().path() == "/holds" {
                let _held = ftracing::span("held");
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _inner = ftracing::span("under_held");
            } else {
                tokio::task::yield_now().await;
                let _own = ftracing::span("own");
            }
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        });
    let holds = service
        .clone()
        .oneshot(Request::get("/holds").body(String::new()).unwrap());
    let other = service.oneshot(Request::get("/other").body(String::new()).unwrap());
    let (holds, other) = tokio::join!(holds, other);
    drop((holds.unwrap(), other.unwrap()));
    assert!(ftracing::trace_id().is_none(), "a span was left current");

    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 2, "{traces:#?}");
    let by_name = |name: &str| traces.iter().find(|t| t.name == name).unwrap();
    let holds = by_name("GET /holds");
    let other = by_name("GET /other");
    assert_ne!(holds.trace_id, other.trace_id);
    assert_eq!(other.children.len(), 1, "{other:#?}");
    assert_eq!(other.children[0].name, "own");
    assert_eq!(other.children[0].parent_id, Some(other.span_id));
    assert_eq!(holds.children.len(), 1, "{holds:#?}");
    let held = &holds.children[0];
    assert_eq!(held.name, "held");
    assert_eq!(held.children.len(), 1);
    assert_eq!(held.children[0].name, "under_held");
}
