//! The demo's HTTP service and its backend, instrumented with both pipelines.
//!
//! Per request the service opens an internal server span (continuing an inbound
//! `traceparent`) and, when the request names a tenant (`x-tenant`), a user trace routed to
//! that tenant. Handler steps are `#[span_fn(.., user = true)]` functions, so each appears in
//! both pipelines. The call to the backend gets a client span and the `traceparent` /
//! `tracestate` headers of that span. The response status is recorded; 5xx marks the spans as
//! errors.
//!
//! `POST /test` serves the W3C trace-context test-service contract: the body is a JSON list
//! of `{ "url": .., "arguments": .. }`; each item's `arguments` is POSTed as JSON to its `url`
//! with headers from a fresh client span (one span per call), and the answer comes after
//! every callback is done.
//!
//! This module owns the service and backend; the telemetry itself is `foundations`'.

use bytes::Bytes;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::user_tracing::{self, RoutingMetadata};
use foundations::{add_span_tags, add_user_span_tags, span_fn};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

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

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
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

/// What the service needs to reach.
#[derive(Clone)]
pub struct Service {
    backend: SocketAddr,
    client: HttpClient,
}

impl Service {
    /// A service that calls the backend at `backend`.
    pub fn new(backend: SocketAddr) -> Arc<Self> {
        Arc::new(Self {
            backend,
            client: http_client(),
        })
    }

    /// Handles one request.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let traceparent = single_header(&parts.headers, "traceparent");
        let tracestate = joined_header(&parts.headers, "tracestate");
        let name = format!("{} {}", parts.method, parts.uri.path());

        let options = StartTraceOptions::default()
            .continue_from_headers(traceparent.as_deref(), tracestate.as_deref());
        let root = tracing::start_trace(name.clone(), options);
        add_span_tags!(
            "span.kind" => "server",
            "http.request.method" => parts.method.to_string(),
            "url.path" => parts.uri.path().to_owned()
        );
        let tenant = parts
            .headers
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(|t| Tenant(t.to_owned()));
        let user_root = tenant.map(|tenant| {
            user_tracing::start_user_trace_from_headers(
                name,
                tenant,
                traceparent.as_deref(),
                tracestate.as_deref(),
            )
        });
        // One context carries both spans; the scopes must end before the first `.await`.
        let ctx = root.into_context();
        drop(user_root);

        let response = ctx
            .clone()
            .apply(async move {
                if parts.method == Method::POST && parts.uri.path() == "/test" {
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    return self.trace_context_test(&body).await;
                }
                self.respond(parts.uri.path()).await
            })
            .await;

        let status = response.status();
        ctx.scope_and(|| {
            add_span_tags!("http.response.status_code" => i64::from(status.as_u16()));
            add_user_span_tags!("http.response.status_code" => i64::from(status.as_u16()));
            if status.is_server_error() {
                add_span_tags!("error" => true, "error.message" => status.to_string());
                add_user_span_tags!("error" => true, "error.message" => status.to_string());
            }
        });
        response
    }

    async fn respond(&self, path: &str) -> Response<Full<Bytes>> {
        load_profile().await;
        let backend_status = self.call_backend(path).await;
        if backend_status.is_success() {
            render_page().await;
            text(StatusCode::OK, "hello\n")
        } else {
            text(StatusCode::BAD_GATEWAY, "backend failed\n")
        }
    }

    #[span_fn("call_backend", user = true)]
    async fn call_backend(&self, path: &str) -> StatusCode {
        let client_span = tracing::span("backend GET");
        add_span_tags!("span.kind" => "client");
        let headers = outbound_headers();
        let uri = format!("http://{}{}", self.backend, path);
        let ctx = client_span.into_context();
        let client = self.client.clone();
        let status = ctx
            .clone()
            .apply(async move {
                let mut request = Request::get(uri);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let Ok(request) = request.body(Full::new(Bytes::new())) else {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                };
                match client.request(request).await {
                    Ok(response) => response.status(),
                    Err(_) => StatusCode::BAD_GATEWAY,
                }
            })
            .await;
        ctx.scope_and(|| {
            add_span_tags!("http.response.status_code" => i64::from(status.as_u16()));
            if status.is_server_error() {
                add_span_tags!("error" => true);
            }
        });
        status
    }

    /// The W3C trace-context test-service contract.
    async fn trace_context_test(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(body) else {
            return text(StatusCode::BAD_REQUEST, "expected a JSON list\n");
        };
        let calls: Vec<_> = items
            .into_iter()
            .filter_map(|item| {
                let url = item.get("url")?.as_str()?.to_owned();
                let arguments = item.get("arguments").cloned().unwrap_or_default();
                // A distinct client span, and so a distinct parent id, per callback.
                let span = tracing::span("test callback");
                add_span_tags!("span.kind" => "client", "url.full" => url.clone());
                let headers = outbound_headers();
                Some((span.into_context(), url, arguments, headers))
            })
            .collect();
        let client = self.client.clone();
        let tasks: Vec<_> = calls
            .into_iter()
            .map(|(ctx, url, arguments, headers)| {
                let client = client.clone();
                tokio::spawn(ctx.apply(async move {
                    let mut request = Request::post(url).header("content-type", "application/json");
                    for (name, value) in headers {
                        request = request.header(name, value);
                    }
                    if let Ok(request) = request.body(Full::new(Bytes::from(arguments.to_string())))
                    {
                        let _ = client.request(request).await;
                    }
                }))
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        text(StatusCode::OK, "")
    }
}

#[span_fn("load_profile", user = true)]
async fn load_profile() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}

#[span_fn("render_page", user = true)]
async fn render_page() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// `traceparent` and `tracestate` of the current internal span.
fn outbound_headers() -> Vec<(&'static str, HeaderValue)> {
    let mut headers = Vec::with_capacity(2);
    if let Some(traceparent) = tracing::w3c_traceparent() {
        if let Ok(value) = HeaderValue::from_str(&traceparent.to_header_value()) {
            headers.push(("traceparent", value));
        }
        let tracestate = tracing::w3c_tracestate()
            .and_then(|tracestate| HeaderValue::from_str(&tracestate.to_header_value()).ok());
        if let Some(value) = tracestate {
            headers.push(("tracestate", value));
        }
    }
    headers
}

/// The header's value when it occurs exactly once; several `traceparent` headers are invalid.
fn single_header(headers: &HeaderMap, name: &str) -> Option<Vec<u8>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then(|| first.as_bytes().to_vec())
}

/// Every value of a list-valued header, joined with `,` in order.
fn joined_header(headers: &HeaderMap, name: &str) -> Option<Vec<u8>> {
    let values: Vec<&[u8]> = headers
        .get_all(name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    (!values.is_empty()).then(|| values.join(&b","[..]))
}
