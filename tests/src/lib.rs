//! Shared helpers for the integration tests in `tests/tests/`.
//!
//! [`OtlpSink`] is a real OTLP/HTTP receiver: a hyper HTTP/1.1 server on a Unix domain
//! socket in a temporary directory. It decodes every request body with
//! `opentelemetry-proto`, answers as a scripted [`Reply`] policy says, and records what it
//! received and how many connections were opened. [`GrpcSink`] is its OTLP/gRPC
//! counterpart (tonic's server on TCP, TLS or a Unix socket).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use opentelemetry_proto;

mod grpc;
pub mod memory;
pub mod raw;
pub use grpc::{EXPORT_PATH, GrpcReceived, GrpcReply, GrpcSink};

/// How the sink answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// `200` with an empty `ExportTraceServiceResponse`.
    Ok,
    /// `200` with a `partial_success` rejecting `rejected` spans.
    Partial { rejected: i64, message: String },
    /// Any status, optionally with a `Retry-After` value.
    Status {
        code: u16,
        retry_after: Option<String>,
    },
    /// Never answer (the connection stays open until the client gives up).
    Hang,
    /// `200`, as [`Reply::Ok`], after waiting this long: a slow receiver.
    Delay(Duration),
}

/// A request the sink received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    /// The decoded body (decompressed first when `Content-Encoding: gzip`).
    pub body: ExportTraceServiceRequest,
    /// Body bytes as they arrived on the wire.
    pub wire_bytes: usize,
    pub at: Instant,
    /// What the sink answered.
    pub reply: String,
}

impl Received {
    /// Every span in the request.
    pub fn spans(&self) -> Vec<&Span> {
        self.body
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .collect()
    }

    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

type Policy = dyn Fn(usize) -> Reply + Send + Sync;

struct Shared {
    received: Mutex<Vec<Received>>,
    connections: AtomicUsize,
    policy: Box<Policy>,
    /// When set, requests are decoded and counted but not kept (for benchmarks).
    count_only: bool,
    spans: AtomicUsize,
    wire_bytes: AtomicUsize,
    requests: AtomicUsize,
}

impl Shared {
    fn new(policy: Box<Policy>, count_only: bool) -> Arc<Self> {
        Arc::new(Self {
            received: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            policy,
            count_only,
            spans: AtomicUsize::new(0),
            wire_bytes: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        })
    }
}

pub(crate) fn sink_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("sink runtime")
}

/// An OTLP/HTTP receiver on a Unix socket or TCP. Stops when dropped.
pub struct OtlpSink {
    _dir: Option<tempfile::TempDir>,
    path: PathBuf,
    addr: Option<std::net::SocketAddr>,
    shared: Arc<Shared>,
    _runtime: tokio::runtime::Runtime,
}

/// A fresh socket path in its own temporary directory (nothing listens yet).
pub fn socket_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("otlp.sock");
    (dir, path)
}

impl OtlpSink {
    /// Starts a sink that answers `200 OK` to everything.
    pub fn start() -> Self {
        Self::with_policy(|_| Reply::Ok)
    }

    /// Starts a sink whose answer to the `n`-th request (0-based) is `policy(n)`.
    pub fn with_policy(policy: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let (dir, path) = socket_path();
        let mut sink = Self::start_at(&path, policy);
        sink._dir = Some(dir);
        sink
    }

    /// Starts a sink listening at `path`.
    pub fn start_at(path: &Path, policy: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(path, Box::new(policy), false)
    }

    /// Starts a sink that answers `200 OK`, decodes and counts every request, and keeps
    /// nothing: memory stays flat however much it receives.
    pub fn counting() -> Self {
        let (dir, path) = socket_path();
        let mut sink = Self::start_with(&path, Box::new(|_| Reply::Ok), true);
        sink._dir = Some(dir);
        sink
    }

    fn start_with(path: &Path, policy: Box<Policy>, count_only: bool) -> Self {
        let shared = Shared::new(policy, count_only);
        let runtime = sink_runtime();
        let listener = {
            let _guard = runtime.enter();
            tokio::net::UnixListener::bind(path).expect("bind the sink socket")
        };
        let accept_shared = Arc::clone(&shared);
        runtime.spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    serve(&accept_shared, stream);
                }
            }
        });
        Self {
            _dir: None,
            path: path.to_owned(),
            addr: None,
            shared,
            _runtime: runtime,
        }
    }

    /// Starts a sink on TCP `127.0.0.1` (an ephemeral port) that answers `200 OK`.
    pub fn start_tcp() -> Self {
        Self::start_tcp_with(false, |stream| async move { Some(stream) })
    }

    /// Like [`counting`](Self::counting), on an ephemeral `127.0.0.1` port.
    pub fn counting_tcp() -> Self {
        Self::start_tcp_with(true, |stream| async move { Some(stream) })
    }

    /// Starts a TLS sink on `127.0.0.1` (an ephemeral port) with a fresh self-signed
    /// certificate for `localhost`. Returns the sink and the certificate as PEM, for the
    /// client's CA bundle.
    pub fn start_tls() -> (Self, String) {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("self-signed certificate");
        let cert_pem = certified.cert.pem();
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let sink = Self::start_tcp_with(false, move |stream| {
            let acceptor = acceptor.clone();
            async move { acceptor.accept(stream).await.ok() }
        });
        (sink, cert_pem)
    }

    /// A `200 OK` sink on an ephemeral `127.0.0.1` port whose connections go through
    /// `accept` first (a TLS handshake, or nothing); `None` drops the connection.
    fn start_tcp_with<S, F, Fut>(count_only: bool, accept: F) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Option<S>> + Send,
    {
        let shared = Shared::new(Box::new(|_| Reply::Ok), count_only);
        let runtime = sink_runtime();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let accept_shared = Arc::clone(&shared);
        runtime.spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await
                    && let Some(stream) = accept(stream).await
                {
                    serve(&accept_shared, stream);
                }
            }
        });
        Self {
            _dir: None,
            path: PathBuf::new(),
            addr: Some(addr),
            shared,
            _runtime: runtime,
        }
    }

    /// The TCP address of a sink started with [`start_tcp`](Self::start_tcp).
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        self.addr
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().clone()
    }

    /// Every span received in requests answered `200`, in arrival order.
    pub fn accepted_spans(&self) -> Vec<(Received, Span)> {
        self.received()
            .into_iter()
            .filter(|r| r.reply == "ok" || r.reply.starts_with("partial"))
            .flat_map(|r| {
                let spans: Vec<Span> = r.spans().into_iter().cloned().collect();
                spans.into_iter().map(move |s| (r.clone(), s))
            })
            .collect()
    }

    /// Spans received so far (every request, whatever the reply).
    pub fn span_count(&self) -> usize {
        self.shared.spans.load(Ordering::SeqCst)
    }

    /// Body bytes received so far, as they were on the wire.
    pub fn wire_bytes(&self) -> usize {
        self.shared.wire_bytes.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn request_count(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until `predicate` holds for the received requests, or panics after `timeout`.
    pub fn wait_until(&self, timeout: Duration, predicate: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if predicate(&self.shared.received.lock()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sink: condition not met within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve<S>(shared: &Arc<Shared>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let service = service_fn(move |request| handle(Arc::clone(&shared), request));
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let wire = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let plain = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(wire.as_ref())
            .read_to_end(&mut out)
            .expect("valid gzip body");
        Bytes::from(out)
    } else {
        wire.clone()
    };
    shared.wire_bytes.fetch_add(wire.len(), Ordering::SeqCst);
    shared.requests.fetch_add(1, Ordering::SeqCst);
    if shared.count_only {
        let spans = count_spans(&plain).expect("body is a well-formed OTLP request");
        shared.spans.fetch_add(spans, Ordering::SeqCst);
        return Ok(ok(ExportTraceServiceResponse::default()));
    }
    let body = ExportTraceServiceRequest::decode(plain).expect("body decodes as OTLP");
    let span_count: usize = body
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    shared.spans.fetch_add(span_count, Ordering::SeqCst);
    let index = {
        let received = shared.received.lock();
        received.len()
    };
    let reply = (shared.policy)(index);
    let label = match &reply {
        Reply::Ok => "ok".to_owned(),
        Reply::Partial { rejected, .. } => format!("partial {rejected}"),
        Reply::Status { code, .. } => format!("status {code}"),
        Reply::Hang => "hang".to_owned(),
        Reply::Delay(delay) => format!("ok after {delay:?}"),
    };
    shared.received.lock().push(Received {
        path,
        headers,
        body,
        wire_bytes: wire.len(),
        at: Instant::now(),
        reply: label,
    });
    let response = match reply {
        Reply::Ok => ok(ExportTraceServiceResponse::default()),
        Reply::Partial { rejected, message } => ok(ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message,
            }),
        }),
        Reply::Status { code, retry_after } => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::from_u16(code).expect("status");
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", value.parse().expect("header value"));
            }
            response
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Reply::Delay(delay) => {
            tokio::time::sleep(delay).await;
            ok(ExportTraceServiceResponse::default())
        }
    };
    Ok(response)
}

fn ok(message: ExportTraceServiceResponse) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.encode_to_vec())));
    response.headers_mut().insert(
        "content-type",
        "application/x-protobuf".parse().expect("value"),
    );
    response
}

/// Lowercase hex of id bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts the spans of an encoded `ExportTraceServiceRequest` by walking its structure
/// (request → resource_spans → scope_spans → spans) without materialising anything. `None`
/// when the bytes are not well-formed protobuf down to that level.
pub fn count_spans(request: &[u8]) -> Option<usize> {
    let mut total = 0;
    for_each_field(request, |tag, field| match (tag, field) {
        (1, Field::Bytes(resource_spans)) => {
            for_each_field(resource_spans, |tag, field| match (tag, field) {
                (2, Field::Bytes(scope_spans)) => for_each_field(scope_spans, |tag, field| {
                    if let (2, Field::Bytes(span)) = (tag, field) {
                        for_each_field(span, |_, _| Some(()))?;
                        total += 1;
                    }
                    Some(())
                }),
                _ => Some(()),
            })
        }
        _ => Some(()),
    })?;
    Some(total)
}

enum Field<'a> {
    Bytes(&'a [u8]),
    Scalar,
}

/// Calls `f` with each field of one protobuf message, in order, allocating nothing (the
/// counting sink must not compete with the process it measures). `None` if the message
/// is malformed or `f` returns `None`.
fn for_each_field<'a>(
    mut buf: &'a [u8],
    mut f: impl FnMut(u32, Field<'a>) -> Option<()>,
) -> Option<()> {
    while !buf.is_empty() {
        let key = prost::encoding::decode_varint(&mut buf).ok()?;
        let tag = u32::try_from(key >> 3).ok()?;
        let field = match key & 7 {
            0 => {
                prost::encoding::decode_varint(&mut buf).ok()?;
                Field::Scalar
            }
            1 => {
                buf = buf.get(8..)?;
                Field::Scalar
            }
            2 => {
                let len = usize::try_from(prost::encoding::decode_varint(&mut buf).ok()?).ok()?;
                let bytes = buf.get(..len)?;
                buf = &buf[len..];
                Field::Bytes(bytes)
            }
            5 => {
                buf = buf.get(4..)?;
                Field::Scalar
            }
            _ => return None,
        };
        f(tag, field)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    #[test]
    fn count_spans_agrees_with_a_full_decode_and_rejects_garbage() {
        let span = |name: &str| Span {
            name: name.into(),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: 5,
            flags: 0x100,
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![
                        ScopeSpans {
                            spans: vec![span("a"), span("b")],
                            ..Default::default()
                        },
                        ScopeSpans {
                            spans: vec![span("c")],
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span("d")],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        };
        let bytes = request.encode_to_vec();
        assert_eq!(count_spans(&bytes), Some(4));
        assert_eq!(count_spans(&[]), Some(0));
        assert_eq!(count_spans(&bytes[..bytes.len() - 3]), None, "truncated");
        assert_eq!(count_spans(&[0x0b, 0x00]), None, "unknown wire type");
    }
}

/// A routing for tests: a tenant name, encoded as `tenant=<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

impl Tenant {
    /// The tenant called `name`.
    pub fn new(name: impl std::fmt::Display) -> Self {
        Self(name.to_string())
    }
}

impl foundations::telemetry::user_tracing::RoutingMetadata for Tenant {
    fn group_key(&self) -> String {
        self.0.clone()
    }

    fn encode(&self) -> String {
        format!("tenant={}", self.0)
    }
}
