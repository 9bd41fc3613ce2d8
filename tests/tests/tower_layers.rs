//! The tower layers on real sockets: a hyper HTTP/1.1 server on 127.0.0.1 serving a
//! `TraceServerLayer`-wrapped service, and a `TraceClientLayer`-wrapped hyper client sending
//! to a test server that reports the headers it received.
//!
//! Every test records into its own test context (the server's tasks are spawned with it),
//! so they run in parallel; every network wait is bounded by a timeout.

use bytes::Bytes;
use foundations::telemetry::bridge::{TraceClientLayer, TraceServerLayer, TracedBody};
use foundations::telemetry::tracing::{self as ftracing, StartTraceOptions, TagValue};
use foundations::telemetry::user_tracing::{self, RoutingMetadata};
use foundations::telemetry::{self, TelemetryContext, TestSpan, TestTelemetryContext};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tower::{ServiceBuilder, ServiceExt};

const DEADLINE: Duration = Duration::from_secs(10);
const INBOUND_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const INBOUND_PARENT: &str = "00f067aa0ba902b7";

#[derive(Debug)]
struct Tenant(String);

impl RoutingMetadata for Tenant {
    fn group_key(&self) -> String {
        self.0.clone()
    }
    fn encode(&self) -> String {
        format!("tenant={}", self.0)
    }
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The application: a handler span, a user span when a user trace is active, and a
/// response per path.
async fn handler(request: Request<Incoming>) -> Result<Response<BoxBody>, String> {
    // Scopes are not `Send`: the handler's spans travel in a context.
    let ctx = ftracing::span("handler")
        .into_context()
        .scope_and(|| user_tracing::user_span("user_handler").into_context());
    ctx.apply(respond(request)).await
}

async fn respond(request: Request<Incoming>) -> Result<Response<BoxBody>, String> {
    tokio::task::yield_now().await;
    let path = request.uri().path().to_owned();
    let full = |status: StatusCode| {
        let mut response = Response::new(Full::new(Bytes::from(path.clone())).boxed());
        *response.status_mut() = status;
        Ok(response)
    };
    match path.as_str() {
        "/unavailable" => full(StatusCode::SERVICE_UNAVAILABLE),
        "/not-found" => full(StatusCode::NOT_FOUND),
        "/error" => Err("handler failed".to_owned()),
        "/stream" => {
            // Two chunks, the second only after the client has had time to see the head.
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from("first ")).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = tx.send(Bytes::from("second")).await;
            });
            Ok(Response::new(ChannelBody(rx).boxed()))
        }
        _ => full(StatusCode::OK),
    }
}

/// A streaming body: one data frame per chunk received, ended when the sender is gone.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// Serves the traced application on 127.0.0.1 with `ctx` current in every connection task.
async fn serve(ctx: &TestTelemetryContext) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = TraceServerLayer::new()
        .with_route(|req: &Request<Incoming>| {
            let path = req.uri().path();
            Some(if path.starts_with("/users/") {
                "/users/{id}".to_owned()
            } else {
                path.to_owned()
            })
        })
        .with_user_trace(|req: &Request<Incoming>| {
            let tenant = req.headers().get("x-tenant")?.to_str().ok()?;
            Some(Tenant(tenant.to_owned()))
        });
    let service = ServiceBuilder::new().layer(layer).service_fn(handler);
    ctx.scope_and(|| {
        telemetry::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let service = TowerToHyperService::new(service.clone());
                telemetry::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    });
    addr
}

/// Sends one request on a new connection; `None` when the exchange failed.
async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Option<Response<Incoming>> {
    tokio::time::timeout(DEADLINE, async {
        let stream = TcpStream::connect(addr).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        sender.send_request(request).await.ok()
    })
    .await
    .expect("bounded exchange")
}

async fn body_text(response: Response<Incoming>) -> String {
    let body = tokio::time::timeout(DEADLINE, response.into_body().collect())
        .await
        .expect("bounded body")
        .unwrap();
    String::from_utf8(body.to_bytes().to_vec()).unwrap()
}

fn request(path: &str) -> http::request::Builder {
    Request::get(path)
        .header("host", "api.example.test:8080")
        .header("user-agent", "tower-test/1.0")
}

fn tag<'a>(span: &'a TestSpan, name: &str) -> Option<&'a TagValue> {
    span.tag(name)
}

fn text(value: &str) -> Option<TagValue> {
    Some(TagValue::String(value.to_owned().into()))
}

/// Waits (bounded) until `n` traces are finished in `ctx`.
async fn traces(ctx: &TestTelemetryContext, n: usize) -> Vec<TestSpan> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let traces = ctx.traces(Default::default());
        if traces.len() >= n || tokio::time::Instant::now() > deadline {
            return traces;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_layer_continues_inbound_traces_with_semconv_attributes() {
    let ctx = TelemetryContext::test();
    let addr = serve(&ctx).await;
    let traceparent = format!("00-{INBOUND_TRACE}-{INBOUND_PARENT}-01");
    let response = send(
        addr,
        request("/users/42")
            .header("traceparent", &traceparent)
            .header("tracestate", "vendor=abc")
            .body(Full::default())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "/users/42");

    let traces = traces(&ctx, 1).await;
    assert_eq!(traces.len(), 1, "{traces:#?}");
    let server = &traces[0];
    assert_eq!(server.name, "GET /users/{id}");
    assert_eq!(server.trace_id.to_string(), INBOUND_TRACE);
    assert_eq!(
        server.parent_id.map(|id| id.to_string()).as_deref(),
        Some(INBOUND_PARENT)
    );
    assert!(server.remote_parent);
    assert_eq!(
        server
            .trace_state
            .as_ref()
            .map(|ts| ts.to_string())
            .as_deref(),
        Some("vendor=abc")
    );
    assert_eq!(tag(server, "span.kind"), text("server").as_ref());
    assert_eq!(tag(server, "http.request.method"), text("GET").as_ref());
    assert_eq!(tag(server, "url.path"), text("/users/42").as_ref());
    assert_eq!(tag(server, "url.scheme"), text("http").as_ref());
    assert_eq!(
        tag(server, "server.address"),
        text("api.example.test").as_ref()
    );
    assert_eq!(
        tag(server, "user_agent.original"),
        text("tower-test/1.0").as_ref()
    );
    assert_eq!(
        tag(server, "http.response.status_code"),
        Some(&TagValue::Integer(200))
    );
    assert_eq!(tag(server, "error"), None);
    let handler = &server.children[0];
    assert_eq!(handler.name, "handler");
    assert_eq!(handler.parent_id, Some(server.span_id));
    // No tenant header: no user trace at all.
    assert!(ctx.user_traces(Default::default()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_5xx_set_status_error_and_4xx_does_not() {
    let ctx = TelemetryContext::test();
    let addr = serve(&ctx).await;
    let unavailable = send(addr, request("/unavailable").body(Full::default()).unwrap()).await;
    assert_eq!(
        unavailable.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let not_found = send(addr, request("/not-found").body(Full::default()).unwrap()).await;
    assert_eq!(not_found.unwrap().status(), StatusCode::NOT_FOUND);
    // The handler's error closes the connection: hyper gives the client no response.
    assert!(
        send(addr, request("/error").body(Full::default()).unwrap())
            .await
            .is_none()
    );

    let traces = traces(&ctx, 3).await;
    let find = |name: &str| traces.iter().find(|t| t.name == name).unwrap();
    let unavailable = find("GET /unavailable");
    assert_eq!(
        tag(unavailable, "http.response.status_code"),
        Some(&TagValue::Integer(503))
    );
    assert_eq!(tag(unavailable, "error"), Some(&TagValue::Boolean(true)));
    let not_found = find("GET /not-found");
    assert_eq!(
        tag(not_found, "http.response.status_code"),
        Some(&TagValue::Integer(404))
    );
    assert_eq!(tag(not_found, "error"), None);
    let error = find("GET /error");
    assert_eq!(tag(error, "error"), Some(&TagValue::Boolean(true)));
    assert_eq!(tag(error, "error.message"), text("handler failed").as_ref());
    // A fresh trace for each: no inbound traceparent.
    assert_eq!(unavailable.parent_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_trace_follows_the_routing_the_closure_picks() {
    let ctx = TelemetryContext::test();
    let addr = serve(&ctx).await;
    let traceparent = format!("00-{INBOUND_TRACE}-{INBOUND_PARENT}-00");
    let with_tenant = send(
        addr,
        request("/users/7")
            .header("x-tenant", "acme")
            .header("traceparent", &traceparent)
            .body(Full::default())
            .unwrap(),
    )
    .await
    .unwrap();
    body_text(with_tenant).await;
    let other = send(
        addr,
        request("/items")
            .header("x-tenant", "globex")
            .body(Full::default())
            .unwrap(),
    )
    .await
    .unwrap();
    body_text(other).await;
    let none = send(addr, request("/items").body(Full::default()).unwrap())
        .await
        .unwrap();
    body_text(none).await;

    // The inbound trace is unsampled: its internal spans are not recorded, the two fresh
    // ones are.
    let internal = traces(&ctx, 2).await;
    assert_eq!(internal.len(), 2, "{internal:#?}");
    let mut user = ctx.user_traces(Default::default());
    user.sort_by_key(|t| t.routing.clone());
    assert_eq!(
        user.len(),
        2,
        "no user trace when the closure says None: {user:#?}"
    );
    let acme = &user[0];
    assert_eq!(acme.routing.as_deref(), Some("tenant=acme"));
    assert_eq!(acme.name, "GET /users/{id}");
    // Continued from the inbound header, and recorded: starting it is the decision.
    assert_eq!(acme.trace_id.to_string(), INBOUND_TRACE);
    assert_eq!(
        acme.parent_id.map(|id| id.to_string()).as_deref(),
        Some(INBOUND_PARENT)
    );
    assert_eq!(
        tag(acme, "http.response.status_code"),
        Some(&TagValue::Integer(200))
    );
    assert_eq!(acme.children[0].name, "user_handler");
    assert_eq!(acme.children[0].routing.as_deref(), Some("tenant=acme"));
    let globex = &user[1];
    assert_eq!(globex.routing.as_deref(), Some("tenant=globex"));
    assert_eq!(globex.name, "GET /items");
    assert_eq!(globex.children[0].routing.as_deref(), Some("tenant=globex"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_span_ends_when_the_streaming_body_completes() {
    let ctx = TelemetryContext::test();
    let addr = serve(&ctx).await;
    let response = send(addr, request("/stream").body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The head arrived; the body has not finished: the server span is still open.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        ctx.traces(Default::default())
            .iter()
            .all(|t| t.name != "GET /stream"),
        "the span ended before the body did"
    );
    assert_eq!(body_text(response).await, "first second");
    let traces = traces(&ctx, 1).await;
    let server = traces.iter().find(|t| t.name == "GET /stream").unwrap();
    let open_for = server
        .finish_time
        .duration_since(server.start_time)
        .unwrap();
    assert!(open_for >= Duration::from_millis(250), "{open_for:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_are_never_cross_parented() {
    let ctx = TelemetryContext::test();
    let addr = serve(&ctx).await;
    let requests: Vec<_> = (0..200u32)
        .map(|n| {
            let trace = format!("{:032x}", 0x1000 + n);
            let parent = format!("{:016x}", 0x2000 + n);
            let request = request(&format!("/users/{n}"))
                .header("traceparent", format!("00-{trace}-{parent}-01"))
                .body(Full::default())
                .unwrap();
            tokio::spawn(async move {
                let response = send(addr, request).await.expect("served");
                assert_eq!(body_text(response).await, format!("/users/{n}"));
            })
        })
        .collect();
    for request in requests {
        request.await.unwrap();
    }
    let traces = traces(&ctx, 200).await;
    assert_eq!(traces.len(), 200);
    for server in &traces {
        let n = match tag(server, "url.path") {
            Some(TagValue::String(path)) => {
                path.trim_start_matches("/users/").parse::<u32>().unwrap()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(server.trace_id.to_string(), format!("{:032x}", 0x1000 + n));
        assert_eq!(
            server.parent_id.map(|id| id.to_string()),
            Some(format!("{:016x}", 0x2000 + n))
        );
        assert_eq!(server.children.len(), 1);
        let handler = &server.children[0];
        assert_eq!(handler.parent_id, Some(server.span_id));
        assert_eq!(handler.trace_id, server.trace_id);
    }
}

/// A test server that answers with the `traceparent` and `tracestate` it received.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let header = |name| {
                        req.headers()
                            .get(name)
                            .map_or("-", |v: &http::HeaderValue| v.to_str().unwrap_or("?"))
                            .to_owned()
                    };
                    let status = if req.uri().path() == "/missing" {
                        404
                    } else {
                        200
                    };
                    let mut response = Response::new(Full::new(Bytes::from(format!(
                        "{} {}",
                        header("traceparent"),
                        header("tracestate")
                    ))));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A hyper client as a tower service: one connection per request, bounded in time.
async fn hyper_client(request: Request<Full<Bytes>>) -> Result<Response<Incoming>, String> {
    let authority = request.uri().authority().unwrap().to_string();
    tokio::time::timeout(DEADLINE, async move {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| "timed out".to_owned())?
}

async fn traced_text(response: Response<TracedBody<Incoming>>) -> String {
    let body = response.into_body().collect().await.unwrap();
    String::from_utf8(body.to_bytes().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_layer_injects_the_client_span_context_a_server_receives() {
    let ctx = TelemetryContext::test();
    let addr = echo_server().await;
    let client = ServiceBuilder::new()
        .layer(TraceClientLayer::new())
        .service_fn(hyper_client);
    let inbound = format!("00-{INBOUND_TRACE}-{INBOUND_PARENT}-01");
    let (ok, missing) = ctx
        .apply(async {
            let root = ftracing::start_trace(
                "job",
                StartTraceOptions::default()
                    .continue_from_headers(Some(inbound.as_bytes()), Some(b"vendor=abc")),
            );
            root.into_context()
                .apply(async {
                    let uri = format!("http://{addr}/items");
                    let request = Request::get(uri)
                        .header(
                            "traceparent",
                            "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01",
                        )
                        .body(Full::default())
                        .unwrap();
                    let ok = traced_text(client.clone().oneshot(request).await.unwrap()).await;
                    let request = Request::get(format!("http://{addr}/missing"))
                        .body(Full::default())
                        .unwrap();
                    let missing = client.clone().oneshot(request).await.unwrap();
                    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
                    (ok, traced_text(missing).await)
                })
                .await
        })
        .await;

    let traces = traces(&ctx, 1).await;
    let root = &traces[0];
    assert_eq!(root.children.len(), 2, "{root:#?}");
    for (client_span, received) in root.children.iter().zip([&ok, &missing]) {
        assert_eq!(client_span.name, "GET");
        assert_eq!(tag(client_span, "span.kind"), text("client").as_ref());
        // Replaced the request's own header with the client span's context.
        assert_eq!(
            received,
            &format!("00-{INBOUND_TRACE}-{}-01 vendor=abc", client_span.span_id)
        );
        assert_eq!(
            tag(client_span, "server.address"),
            text("127.0.0.1").as_ref()
        );
        assert_eq!(
            tag(client_span, "server.port"),
            Some(&TagValue::Integer(addr.port().into()))
        );
    }
    assert_eq!(
        tag(&root.children[0], "http.response.status_code"),
        Some(&TagValue::Integer(200))
    );
    assert_eq!(tag(&root.children[0], "error"), None);
    assert_eq!(
        tag(&root.children[1], "http.response.status_code"),
        Some(&TagValue::Integer(404))
    );
    assert_eq!(
        tag(&root.children[1], "error"),
        Some(&TagValue::Boolean(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_client_layer_sends_the_user_trace_and_nothing_without_one() {
    let ctx = TelemetryContext::test();
    let addr = echo_server().await;
    let client = ServiceBuilder::new()
        .layer(TraceClientLayer::new().user())
        .service_fn(hyper_client);
    let uri = format!("http://{addr}/origin");
    let (with_user, without_user) = ctx
        .apply(async {
            let _internal = ftracing::start_trace("request", StartTraceOptions::default());
            let internal_trace = ftracing::trace_id().unwrap();
            let user = user_tracing::start_user_trace("customer", Tenant("acme".into()), None);
            let user_trace = user_tracing::w3c_traceparent().unwrap().trace_id;
            assert_ne!(user_trace, internal_trace);
            let context = user.into_context();
            let request = Request::get(&uri).body(Full::default()).unwrap();
            let with_user = context
                .clone()
                .apply(client.clone().oneshot(request))
                .await
                .unwrap();
            let with_user = (traced_text(with_user).await, user_trace);
            drop(context);
            let request = Request::get(&uri).body(Full::default()).unwrap();
            let without_user = traced_text(client.clone().oneshot(request).await.unwrap()).await;
            (with_user, without_user)
        })
        .await;
    let ((received, user_trace), none) = (with_user, without_user);
    let user = ctx.user_traces(Default::default());
    let user_client = user[0].find("GET").expect("a user client span");
    // A fresh user trace: sampled, with a random trace id (flags 03).
    assert_eq!(
        received,
        format!("00-{user_trace}-{}-03 -", user_client.span_id)
    );
    assert_eq!(
        tag(user_client, "http.response.status_code"),
        Some(&TagValue::Integer(200))
    );
    // No user trace: the internal ids are not sent to the customer's origin.
    assert_eq!(none, "- -");
}
