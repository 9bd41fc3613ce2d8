//! [`GrpcSink`]: a real OTLP/gRPC receiver, tonic's HTTP/2 server serving
//! `opentelemetry.proto.collector.trace.v1.TraceService/Export` on TCP, TLS or a Unix
//! socket. It accepts gzip (and, like grpc-go, answers a gzip request gzipped), decodes
//! every request with `opentelemetry-proto` (or, counting only, walks it down to the
//! spans), answers as a scripted [`GrpcReply`] policy says, and records what it received
//! with its request metadata. The benches' counting sinks also come as hyper's bare HTTP/2
//! server reading the gRPC frame itself, the counterpart of the OTLP/HTTP counting sink.

use crate::count_spans;
use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{BoxFuture, Service, http};
use tonic_types::{ErrorDetails, StatusExt};

/// The OTLP trace service's method path.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// How the sink answers one call.
#[derive(Clone, Debug)]
pub enum GrpcReply {
    /// `OK` with an empty response.
    Ok,
    /// `OK` with a `partial_success` rejecting `rejected` spans.
    Partial { rejected: i64, message: String },
    /// A failed status, with a `google.rpc.RetryInfo` when `retry_delay` is set.
    Status {
        code: tonic::Code,
        retry_delay: Option<Duration>,
    },
    /// Answer only after this long (longer than the client's deadline).
    Hang(Duration),
}

/// A call the sink received.
#[derive(Clone, Debug)]
pub struct GrpcReceived {
    /// When it arrived.
    pub at: Instant,
    /// The decoded request.
    pub request: ExportTraceServiceRequest,
    /// Its `grpc-encoding`, `grpc-timeout` and `user-agent` metadata.
    pub encoding: Option<String>,
    pub timeout: Option<String>,
    pub user_agent: Option<String>,
}

impl GrpcReceived {
    /// Every span of the request.
    pub fn spans(&self) -> Vec<&Span> {
        self.request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect()
    }
}

type Policy = Box<dyn Fn(usize) -> GrpcReply + Send + Sync>;

struct Shared {
    policy: Policy,
    counting: bool,
    calls: AtomicUsize,
    spans: AtomicUsize,
    wire_bytes: AtomicUsize,
    received: Mutex<Vec<GrpcReceived>>,
}

impl Shared {
    fn new(policy: Policy, counting: bool) -> Arc<Self> {
        Arc::new(Self {
            policy,
            counting,
            calls: AtomicUsize::new(0),
            spans: AtomicUsize::new(0),
            wire_bytes: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
        })
    }

    fn counting() -> Arc<Self> {
        Self::new(Box::new(|_| GrpcReply::Ok), true)
    }
}

/// An OTLP/gRPC receiver. Stops when dropped.
pub struct GrpcSink {
    shared: Arc<Shared>,
    endpoint: String,
    _dir: Option<tempfile::TempDir>,
    _runtime: tokio::runtime::Runtime,
}

impl GrpcSink {
    /// A receiver on an ephemeral `127.0.0.1` port, answering as `policy` says for the
    /// n-th call (0-based).
    pub fn start_tcp(policy: impl Fn(usize) -> GrpcReply + Send + Sync + 'static) -> Self {
        Self::tcp(Box::new(policy), false)
    }

    /// A receiver on TCP that answers `OK` and only counts spans and bytes (for benches):
    /// hyper's HTTP/2 server reading the gRPC frame itself, the counterpart of
    /// `OtlpSink::counting_tcp` (hyper's HTTP/1.1 server).
    pub fn counting() -> Self {
        let runtime = crate::sink_runtime();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let shared = Shared::counting();
        let accept_shared = Arc::clone(&shared);
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                serve_lean(&accept_shared, stream);
            }
        });
        Self::lean(runtime, shared, endpoint, None)
    }

    /// [`counting`](Self::counting) on tonic's server, the usual Rust gRPC receiver.
    pub fn counting_tonic() -> Self {
        Self::tcp(Box::new(|_| GrpcReply::Ok), true)
    }

    fn tcp(policy: Policy, counting: bool) -> Self {
        let runtime = crate::sink_runtime();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        Self::serve(
            runtime,
            incoming,
            policy,
            counting,
            format!("http://{addr}"),
            None,
        )
    }

    /// A receiver on a Unix socket in a temporary directory.
    pub fn start_unix(policy: impl Fn(usize) -> GrpcReply + Send + Sync + 'static) -> Self {
        let (dir, path): (_, PathBuf) = crate::socket_path();
        let mut sink = Self::start_unix_at(&path, policy);
        sink._dir = Some(dir);
        sink
    }

    /// [`counting`](Self::counting) on a Unix socket.
    pub fn counting_unix() -> Self {
        let (dir, path): (_, PathBuf) = crate::socket_path();
        let runtime = crate::sink_runtime();
        let listener = {
            let _guard = runtime.enter();
            tokio::net::UnixListener::bind(&path).expect("bind unix socket")
        };
        let shared = Shared::counting();
        let accept_shared = Arc::clone(&shared);
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                serve_lean(&accept_shared, stream);
            }
        });
        let endpoint = format!("unix://{}", path.display());
        Self::lean(runtime, shared, endpoint, Some(dir))
    }

    /// [`counting_tonic`](Self::counting_tonic) on a Unix socket.
    pub fn counting_tonic_unix() -> Self {
        let (dir, path): (_, PathBuf) = crate::socket_path();
        let mut sink = Self::unix_at(&path, Box::new(|_| GrpcReply::Ok), true);
        sink._dir = Some(dir);
        sink
    }

    fn lean(
        runtime: tokio::runtime::Runtime,
        shared: Arc<Shared>,
        endpoint: String,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        Self {
            shared,
            endpoint,
            _dir: dir,
            _runtime: runtime,
        }
    }

    /// A receiver on a Unix socket at `path`.
    pub fn start_unix_at(
        path: &std::path::Path,
        policy: impl Fn(usize) -> GrpcReply + Send + Sync + 'static,
    ) -> Self {
        Self::unix_at(path, Box::new(policy), false)
    }

    fn unix_at(path: &std::path::Path, policy: Policy, counting: bool) -> Self {
        let runtime = crate::sink_runtime();
        let listener = {
            let _guard = runtime.enter();
            tokio::net::UnixListener::bind(path).expect("bind unix socket")
        };
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let endpoint = format!("unix://{}", path.display());
        Self::serve(runtime, incoming, policy, counting, endpoint, None)
    }

    /// A TLS receiver for `localhost` on an ephemeral port, with a fresh self-signed
    /// certificate; returns it as PEM too, for the client's CA bundle.
    pub fn start_tls(
        policy: impl Fn(usize) -> GrpcReply + Send + Sync + 'static,
    ) -> (Self, String) {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("self-signed certificate");
        let cert_pem = certified.cert.pem();
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = crate::sink_runtime();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = tx.send(Ok::<_, std::io::Error>(stream)).await;
                    }
                });
            }
        });
        let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
        let endpoint = format!("https://localhost:{port}");
        let sink = Self::serve(runtime, incoming, Box::new(policy), false, endpoint, None);
        (sink, cert_pem)
    }

    fn serve<S, IO>(
        runtime: tokio::runtime::Runtime,
        incoming: S,
        policy: Policy,
        counting: bool,
        endpoint: String,
        dir: Option<tempfile::TempDir>,
    ) -> Self
    where
        S: tokio_stream::Stream<Item = Result<IO, std::io::Error>> + Send + 'static,
        IO: tokio::io::AsyncRead
            + tokio::io::AsyncWrite
            + tonic::transport::server::Connected
            + Unpin
            + Send
            + 'static,
    {
        let shared = Shared::new(policy, counting);
        let service = TraceService(Arc::clone(&shared));
        runtime.spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Self {
            shared,
            endpoint,
            _dir: dir,
            _runtime: runtime,
        }
    }

    /// The endpoint to configure: `http://127.0.0.1:port`, `https://localhost:port` or
    /// `unix:///path`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every call received, in order.
    pub fn received(&self) -> Vec<GrpcReceived> {
        self.shared.received.lock().clone()
    }

    /// Calls received.
    pub fn call_count(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Spans received in calls answered `OK` or partially.
    pub fn span_count(&self) -> usize {
        self.shared.spans.load(Ordering::SeqCst)
    }

    /// Message bytes received (after decompression).
    pub fn wire_bytes(&self) -> usize {
        self.shared.wire_bytes.load(Ordering::SeqCst)
    }

    /// Waits until `predicate` holds for the calls received; panics after `timeout`.
    pub fn wait_until(&self, timeout: Duration, predicate: impl Fn(&[GrpcReceived]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !predicate(&self.shared.received.lock()) {
            assert!(
                Instant::now() < deadline,
                "grpc sink: condition not met within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[derive(Clone)]
struct TraceService(Arc<Shared>);

impl tonic::server::NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> Service<http::Request<B>> for TraceService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.0);
        Box::pin(async move {
            if request.uri().path() != EXPORT_PATH {
                return Ok(tonic::Status::unimplemented("no such method").into_http());
            }
            // Like grpc-go (the Collector): a gzip request gets a gzip response.
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let gzipped = request
                .headers()
                .get("grpc-encoding")
                .is_some_and(|value| value == "gzip");
            let send = if gzipped {
                gzip
            } else {
                EnabledCompressionEncodings::default()
            };
            let mut grpc = tonic::server::Grpc::new(RawRequest)
                .apply_compression_config(gzip, send)
                .apply_max_message_size_config(Some(64 * 1024 * 1024), None);
            Ok(grpc.unary(Export(shared), request).await)
        })
    }
}

struct Export(Arc<Shared>);

impl tonic::server::UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<tonic::Response<ExportTraceServiceResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let shared = Arc::clone(&self.0);
        Box::pin(async move {
            let n = shared.calls.fetch_add(1, Ordering::SeqCst);
            let meta = |name: &str| {
                request
                    .metadata()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let (encoding, timeout, user_agent) = (
                meta("grpc-encoding"),
                meta("grpc-timeout"),
                meta("user-agent"),
            );
            let body = request.into_inner();
            shared.wire_bytes.fetch_add(body.len(), Ordering::SeqCst);
            let spans = if shared.counting {
                count_spans(&body).unwrap_or(0)
            } else {
                let request = ExportTraceServiceRequest::decode(body.clone())
                    .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
                let received = GrpcReceived {
                    at: Instant::now(),
                    request,
                    encoding,
                    timeout,
                    user_agent,
                };
                let spans = received.spans().len();
                shared.received.lock().push(received);
                spans
            };
            match (shared.policy)(n) {
                GrpcReply::Ok => {
                    shared.spans.fetch_add(spans, Ordering::SeqCst);
                    Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
                }
                GrpcReply::Partial { rejected, message } => {
                    shared.spans.fetch_add(spans, Ordering::SeqCst);
                    Ok(tonic::Response::new(ExportTraceServiceResponse {
                        partial_success: Some(ExportTracePartialSuccess {
                            rejected_spans: rejected,
                            error_message: message,
                        }),
                    }))
                }
                GrpcReply::Status { code, retry_delay } => Err(match retry_delay {
                    None => tonic::Status::new(code, "scripted failure"),
                    Some(delay) => tonic::Status::with_error_details(
                        code,
                        "scripted failure",
                        ErrorDetails::with_retry_info(Some(delay)),
                    ),
                }),
                GrpcReply::Hang(duration) => {
                    tokio::time::sleep(duration).await;
                    Err(tonic::Status::unavailable("answered too late"))
                }
            }
        })
    }
}

/// The sink's codec: requests are kept as bytes (decoded, or only counted, by the
/// handler); responses are `opentelemetry-proto` messages.
#[derive(Clone, Copy, Default)]
struct RawRequest;

impl Codec for RawRequest {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = RawRequest;
    type Decoder = RawRequest;

    fn encoder(&mut self) -> RawRequest {
        RawRequest
    }

    fn decoder(&mut self) -> RawRequest {
        RawRequest
    }
}

impl Encoder for RawRequest {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: ExportTraceServiceResponse,
        dst: &mut EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl Decoder for RawRequest {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The counting sinks' lean server: hyper's HTTP/2 server reading the gRPC frame by hand,
/// as the OTLP/HTTP counting sink is hyper's HTTP/1.1 server, so that a bench comparing
/// the two protocols compares what the protocols cost rather than two receivers' layers.
fn serve_lean<IO>(shared: &Arc<Shared>, io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let service = hyper::service::service_fn(move |request| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, Infallible>(count_call(&shared, request).await) }
        });
        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(hyper_util::rt::TokioIo::new(io), service)
            .await;
    });
}

type LeanBody = http_body_util::combinators::WithTrailers<
    http_body_util::Full<Bytes>,
    std::future::Ready<Option<Result<http::HeaderMap, Infallible>>>,
>;

/// Counts one call's spans and answers `OK` with an empty response message.
async fn count_call(
    shared: &Shared,
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<LeanBody> {
    use http_body_util::BodyExt;
    let gzipped = request
        .headers()
        .get("grpc-encoding")
        .is_some_and(|value| value == "gzip");
    let mut body = request
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let (code, spans) = match unframe(&mut body, gzipped) {
        Some(message) => {
            shared.wire_bytes.fetch_add(message.len(), Ordering::SeqCst);
            match count_spans(&message) {
                Some(spans) => ("0", spans),
                None => ("3", 0),
            }
        }
        None => ("13", 0),
    };
    shared.calls.fetch_add(1, Ordering::SeqCst);
    shared.spans.fetch_add(spans, Ordering::SeqCst);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static(code));
    let body = http_body_util::Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]))
        .with_trailers(std::future::ready(Some(Ok(trailers))));
    let mut response = http::Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// The message of a one-message gRPC request body, gunzipped if it is compressed.
fn unframe(body: &mut Bytes, gzipped: bool) -> Option<Bytes> {
    if body.len() < 5 {
        return None;
    }
    let compressed = body.get_u8() == 1;
    let length = body.get_u32() as usize;
    let message = body.split_to(length.min(body.len()));
    if !compressed {
        return Some(message);
    }
    if !gzipped {
        return None;
    }
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(message.as_ref()),
        &mut plain,
    )
    .ok()?;
    Some(Bytes::from(plain))
}
