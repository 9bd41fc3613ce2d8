//! The demo's HTTP service and its backend, instrumented with both pipelines.
//!
//! The service is an axum router traced by foundations' tower layers, so it holds no
//! per-request tracing code of its own: [`TraceServerLayer`] gives each request an internal
//! server span (continuing an inbound `traceparent`), named after axum's matched route, and,
//! when the request names a tenant (`x-tenant`), a user trace routed to that tenant; it
//! records the response status (5xx marks the spans as errors). Handler steps are
//! `#[span_fn(.., user = true)]` functions, so each appears in both pipelines. Calls to the
//! backend go through a client traced by [`TraceClientLayer`]: a client span per call, and
//! the `traceparent` / `tracestate` headers of that span.
//!
//! `GET /debug/traces` lists the traces in flight as JSON (see [`crate::debug`]): an
//! operator's view of what a stuck service is doing.
//!
//! `POST /test` serves the W3C trace-context test-service contract: the body is a JSON list
//! of `{ "url": .., "arguments": .. }`; each item's `arguments` is POSTed as JSON to its `url`
//! (one client span, and so one parent id, per call), and the answer comes after every
//! callback is done.
//!
//! This module owns the service and backend; the telemetry itself is `foundations`'.

use axum::extract::{MatchedPath, State};
use axum::routing::{get, post};
use bytes::Bytes;
use foundations::span_fn;
use foundations::telemetry::bridge::{TraceClient, TraceClientLayer, TraceServerLayer};
use foundations::telemetry::user_tracing::RoutingMetadata;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

/// The routing of a tenant's user traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

impl RoutingMetadata for Tenant {
    fn group_key(&self) -> String {
        self.0.clone()
    }

    fn encode(&self) -> String {
        format!("tenant={}", self.0)
    }
}

/// An HTTP client whose every request gets a client span and the trace context headers.
type HttpClient = TraceClient<Client<HttpConnector, Full<Bytes>>>;

fn http_client() -> HttpClient {
    ServiceBuilder::new()
        .layer(TraceClientLayer::new())
        .service(Client::builder(TokioExecutor::new()).build_http())
}

/// Serves `handler` on every connection `listener` accepts, until the task is dropped.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// The backend: answers `200 ok`, or `500` for paths under `/fail`, after a short delay.
pub async fn backend(request: Request<Incoming>) -> Response<Full<Bytes>> {
    tokio::time::sleep(Duration::from_millis(3)).await;
    if request.uri().path().starts_with("/fail") {
        text(StatusCode::INTERNAL_SERVER_ERROR, "backend failure")
    } else {
        text(StatusCode::OK, "ok")
    }
}

/// The span name's route: axum's matched route template (`/users/{id}`), else the path
/// (requests the fallback serves).
fn route(request: &Request<axum::body::Body>) -> Option<String> {
    match request.extensions().get::<MatchedPath>() {
        Some(matched) => Some(matched.as_str().to_owned()),
        None => Some(request.uri().path().to_owned()),
    }
}

/// The tenant a request's user trace is routed to, if it names one.
fn tenant(request: &Request<axum::body::Body>) -> Option<Tenant> {
    let tenant = request.headers().get("x-tenant")?.to_str().ok()?;
    Some(Tenant(tenant.to_owned()))
}

/// What the handlers share.
struct Backend {
    addr: SocketAddr,
    client: HttpClient,
}

/// The service: its router, traced.
#[derive(Clone)]
pub struct Service {
    router: axum::Router,
}

impl Service {
    /// A service that calls the backend at `backend`.
    pub fn new(backend: SocketAddr) -> Arc<Self> {
        let state = Arc::new(Backend {
            addr: backend,
            client: http_client(),
        });
        let router = axum::Router::new()
            .route("/test", post(trace_context_test))
            .route("/users/{id}", get(page))
            .fallback(page)
            .with_state(state)
            .layer(
                TraceServerLayer::new()
                    .with_route(route)
                    .with_user_trace(tenant),
            )
            // After the layer: looking at the traces in flight adds none.
            .route("/debug/traces", get(crate::debug::debug_traces));
        Arc::new(Self { router })
    }

    /// The traced router, to serve with `axum::serve`.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Handles one request (its response body collected), for [`serve`].
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let request = request.map(axum::body::Body::new);
        let Ok(response) = self.router.clone().oneshot(request).await;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Response::from_parts(parts, Full::new(body))
    }
}

/// `GET` of any page: a profile, the backend, a render.
async fn page(
    State(backend): State<Arc<Backend>>,
    request: Request<axum::body::Body>,
) -> Response<Full<Bytes>> {
    load_profile().await;
    let backend_status = call_backend(&backend, request.uri().path()).await;
    if backend_status.is_success() {
        render_page().await;
        text(StatusCode::OK, "hello\n")
    } else {
        text(StatusCode::BAD_GATEWAY, "backend failed\n")
    }
}

#[span_fn("call_backend", user = true)]
async fn call_backend(backend: &Backend, path: &str) -> StatusCode {
    let uri = format!("http://{}{}", backend.addr, path);
    let Ok(request) = Request::get(uri).body(Full::new(Bytes::new())) else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    match backend.client.clone().oneshot(request).await {
        Ok(response) => response.status(),
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

/// The W3C trace-context test-service contract.
async fn trace_context_test(
    State(backend): State<Arc<Backend>>,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(&body) else {
        return text(StatusCode::BAD_REQUEST, "expected a JSON list\n");
    };
    let tasks: Vec<_> = items
        .into_iter()
        .filter_map(|item| {
            let url = item.get("url")?.as_str()?.to_owned();
            let arguments = item.get("arguments").cloned().unwrap_or_default();
            let request = Request::post(url)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(arguments.to_string())))
                .ok()?;
            // Each call opens its client span when first polled, in the spawned task, which
            // carries this request's context.
            Some(foundations::telemetry::spawn(
                backend.client.clone().oneshot(request),
            ))
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    text(StatusCode::OK, "")
}

#[span_fn("load_profile", user = true)]
async fn load_profile() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}

#[span_fn("render_page", user = true)]
async fn render_page() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}
