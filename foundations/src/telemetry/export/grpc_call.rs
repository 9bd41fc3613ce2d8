//! One OTLP/gRPC unary call on an HTTP/2 connection (the `h2` crate): the connection an
//! exporter's workers share (opened on first use, reopened once closed), the call's wire
//! form (a 5-byte length prefix before the message, `te: trailers`, `grpc-timeout`,
//! `grpc-encoding`), and its outcome read from the response (`grpc-status`, `grpc-message`
//! and the status details that carry `RetryInfo`, from the trailers or a trailers-only
//! response).
//!
//! The worker's task hands the request's headers and its whole message to the connection
//! in one step: no service stack, queue or task of its own sits between them (a body
//! streamed from a task of its own would reach the connection after the headers, in a
//! write of its own), and the already-encoded message is sent as it is, behind its prefix,
//! without being copied into another buffer. The connection's task writes the frames.
//!
//! This module owns the connection and the wire form of one call; whether a failure is
//! retried, and what is counted, is `grpc`'s.

use super::tls::tls_config;
use crate::telemetry::settings::Endpoint;
use base64::Engine;
use bytes::buf::Chain;
use bytes::{Buf, Bytes};
use h2::client::SendRequest;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, TE, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tonic::{Code, Status};
use tower_service::Service;

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The OTLP trace service's method.
pub(super) const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Most bytes of a response message that are read, as over HTTP.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
const GRPC_STATUS_DETAILS: &str = "grpc-status-details-bin";
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// A request's data: the 5-byte prefix, then the message.
type CallData = Chain<Bytes, Bytes>;

/// An open connection: its handle, and whether its task has ended.
#[derive(Clone)]
struct Open {
    sender: SendRequest<CallData>,
    closed: Arc<AtomicBool>,
}

/// Why a call did not succeed.
#[derive(Debug)]
pub(super) enum CallError {
    /// No connection could be made: nothing reached the receiver.
    Connect(BoxError),
    /// The call broke before the receiver sent a status.
    Transport(BoxError),
    /// The receiver's status, not `OK`.
    Status(Status),
}

enum Connector {
    /// The socket's path, dialled with tokio.
    Unix(std::path::PathBuf),
    Tcp(HttpConnector),
    Tls(hyper_rustls::HttpsConnector<HttpConnector>),
}

/// The HTTP/2 connection to one gRPC endpoint, shared by the exporter's workers: HTTP/2
/// multiplexes their calls.
pub(super) struct GrpcConnection {
    connector: Connector,
    /// What the TCP or TLS connector dials (a Unix socket is dialled by its path).
    dial: Uri,
    /// Every call's absolute URI: the scheme and authority become the `:scheme` and
    /// `:authority` of the request, which HTTP/2 requires.
    target: Uri,
    /// The headers every call carries.
    headers: HeaderMap,
    connect_timeout: Duration,
    /// The open connection's handle; locked while one is being opened, so that workers
    /// that find none wait for that one rather than open their own.
    open: tokio::sync::Mutex<Option<Open>>,
}

impl GrpcConnection {
    /// A connection to `endpoint`, opened on the first call. `ca_bundle`, a PEM file,
    /// replaces the system roots for TLS; `gzip` says whether messages are compressed;
    /// opening is bounded by `connect_timeout`.
    pub(super) fn new(
        endpoint: &Endpoint,
        ca_bundle: Option<&Path>,
        gzip: bool,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        let (connector, dial, authority, scheme) = match endpoint {
            Endpoint::Unix(path) => (
                Connector::Unix(path.clone()),
                Uri::from_static("http://localhost/"),
                // A socket has no name; grpc-go and tonic servers take any authority.
                "localhost".to_owned(),
                "http",
            ),
            Endpoint::Http(uri) => {
                let authority = uri
                    .authority()
                    .ok_or_else(|| format!("{endpoint}: no host"))?
                    .to_string();
                let mut tcp = HttpConnector::new();
                tcp.set_nodelay(true);
                tcp.set_connect_timeout(Some(connect_timeout));
                if endpoint.is_tls() {
                    tcp.enforce_http(false);
                    let connector = hyper_rustls::HttpsConnectorBuilder::new()
                        .with_tls_config(tls_config(ca_bundle)?)
                        .https_only()
                        .enable_http2()
                        .wrap_connector(tcp);
                    (Connector::Tls(connector), uri.clone(), authority, "https")
                } else {
                    (Connector::Tcp(tcp), uri.clone(), authority, "http")
                }
            }
        };
        let target = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(EXPORT_PATH)
            .build()
            .map_err(|error| format!("{endpoint}: {error}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("foundations/", env!("CARGO_PKG_VERSION"))),
        );
        // grpc-go servers (the Collector) answer a gzip request with a gzip response.
        headers.insert(GRPC_ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        if gzip {
            headers.insert(GRPC_ENCODING, HeaderValue::from_static("gzip"));
        }
        Ok(Self {
            connector,
            dial,
            target,
            headers,
            connect_timeout,
            open: tokio::sync::Mutex::new(None),
        })
    }

    /// One attempt at sending `frame`, the receiver told to give up after `timeout`:
    /// sends it and reads the response to its status.
    pub(super) async fn call(
        &self,
        frame: &Frame,
        timeout: Duration,
    ) -> Result<ExportTraceServiceResponse, CallError> {
        let request = self.head(timeout);
        let mut sender = self.sender().await?;
        let (response, mut stream) = sender
            .send_request(request, false)
            .map_err(|error| CallError::Transport(error.into()))?;
        // Flow control holds back what the receiver's window does not take yet; the
        // message is in memory already, so nothing is gained by reserving capacity first.
        stream
            .send_data(frame.prefix.clone().chain(frame.message.clone()), true)
            .map_err(|error| CallError::Transport(error.into()))?;
        let response = response
            .await
            .map_err(|error| CallError::Transport(error.into()))?;
        read_response(response).await
    }

    /// A call's request head; the receiver is told to give up after `timeout`.
    fn head(&self, timeout: Duration) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.target.clone();
        *request.version_mut() = hyper::Version::HTTP_2;
        *request.headers_mut() = self.headers.clone();
        request
            .headers_mut()
            .insert(GRPC_TIMEOUT, grpc_timeout(timeout));
        request
    }

    /// A handle to the open connection, ready for a new stream; opens one if there is none
    /// or it has closed. A connection found closed only when asked for a stream is replaced
    /// once: nothing was sent on it.
    async fn sender(&self) -> Result<SendRequest<CallData>, CallError> {
        let mut open = self.open.lock().await;
        for _ in 0..2 {
            let current = match open.as_ref() {
                Some(current) if !current.closed.load(Ordering::Acquire) => current.clone(),
                _ => {
                    *open = None;
                    let opened = tokio::time::timeout(self.connect_timeout, self.connect())
                        .await
                        .map_err(|_| {
                            CallError::Connect(
                                format!("no connection within {:?}", self.connect_timeout).into(),
                            )
                        })?
                        .map_err(CallError::Connect)?;
                    open.insert(opened).clone()
                }
            };
            match current.sender.ready().await {
                Ok(sender) => return Ok(sender),
                Err(_) => *open = None,
            }
        }
        Err(CallError::Transport(
            "a new connection closed before its first call".into(),
        ))
    }

    async fn connect(&self) -> Result<Open, BoxError> {
        match &self.connector {
            Connector::Unix(path) => run(tokio::net::UnixStream::connect(path).await?).await,
            Connector::Tcp(c) => run(TokioIo::new(dial(c.clone(), self.dial.clone()).await?)).await,
            Connector::Tls(c) => run(TokioIo::new(dial(c.clone(), self.dial.clone()).await?)).await,
        }
    }
}

/// Dials `uri` with `connector`.
async fn dial<C>(mut connector: C, uri: Uri) -> Result<C::Response, BoxError>
where
    C: Service<Uri>,
    C::Error: Into<BoxError>,
{
    std::future::poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    connector.call(uri).await.map_err(Into::into)
}

/// Runs an HTTP/2 connection over `io` on the current runtime; it ends when every handle
/// to it is dropped, or on an error, which reaches the calls in flight as theirs.
async fn run<T>(io: T) -> Result<Open, BoxError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = h2::client::Builder::new()
        .enable_push(false)
        .handshake::<_, CallData>(io)
        .await?;
    let closed = Arc::new(AtomicBool::new(false));
    let ended = Arc::clone(&closed);
    tokio::spawn(async move {
        let _ = connection.await;
        ended.store(true, Ordering::Release);
    });
    Ok(Open { sender, closed })
}

/// A message in its gRPC frame: the prefix (the compressed flag and the length,
/// big-endian) and the message, kept apart so that the message is never copied, and both
/// cheap to share between attempts.
pub(super) struct Frame {
    prefix: Bytes,
    message: Bytes,
}

impl Frame {
    /// `message`, gzipped when `compressed`; `None` when it is too long for the prefix's
    /// 32-bit length.
    pub(super) fn new(message: Bytes, compressed: bool) -> Option<Self> {
        let length = u32::try_from(message.len()).ok()?.to_be_bytes();
        let prefix = [
            u8::from(compressed),
            length[0],
            length[1],
            length[2],
            length[3],
        ];
        Some(Self {
            prefix: Bytes::copy_from_slice(&prefix),
            message,
        })
    }
}

/// `grpc-timeout`: at most 8 digits and a unit; milliseconds, or seconds when longer.
fn grpc_timeout(timeout: Duration) -> HeaderValue {
    let millis = timeout.as_millis().max(1);
    let value = if millis < 100_000_000 {
        format!("{millis}m")
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("99999999S"))
}

/// The call's outcome from its response: a status from a trailers-only response or from
/// the trailers after the message, else a transport failure (the response ended without
/// one). A response without `grpc-status` and with an HTTP error status gets the code the
/// gRPC specification maps that status to.
async fn read_response(
    response: hyper::Response<h2::RecvStream>,
) -> Result<ExportTraceServiceResponse, CallError> {
    let (parts, mut body) = response.into_parts();
    if let Some(status) = status_of(&parts.headers) {
        // Trailers-only: no message follows.
        return match status.code() {
            Code::Ok => Ok(ExportTraceServiceResponse::default()),
            _ => Err(CallError::Status(status)),
        };
    }
    if parts.status != StatusCode::OK {
        let code = code_of_http_status(parts.status);
        let message = format!("HTTP status {} without a gRPC status", parts.status);
        return Err(CallError::Status(Status::new(code, message)));
    }
    let transport = |error: h2::Error| CallError::Transport(error.into());
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(transport)?;
        // Given back at once: the window only bounds what is buffered here.
        let _ = body.flow_control().release_capacity(chunk.len());
        if data.len() + chunk.len() > MAX_RESPONSE_BYTES + 5 {
            return Err(CallError::Transport(
                format!("a response message over {MAX_RESPONSE_BYTES} bytes").into(),
            ));
        }
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.map_err(transport)?;
    let status = trailers
        .as_ref()
        .and_then(status_of)
        .ok_or_else(|| CallError::Transport("the response ended without a grpc-status".into()))?;
    if status.code() != Code::Ok {
        return Err(CallError::Status(status));
    }
    let gzipped = parts
        .headers
        .get(GRPC_ENCODING)
        .is_some_and(|value| value == "gzip");
    Ok(decode_message(Bytes::from(data), gzipped))
}

/// The status in `headers`, if they hold a `grpc-status`. A message that is not valid
/// percent-encoded UTF-8, or details that are not base64, are left out rather than failing
/// the call: the code is what decides.
fn status_of(headers: &HeaderMap) -> Option<Status> {
    let code = Code::from_bytes(headers.get(GRPC_STATUS)?.as_bytes());
    let message = headers
        .get(GRPC_MESSAGE)
        .and_then(|value| {
            percent_encoding::percent_decode(value.as_bytes())
                .decode_utf8()
                .ok()
        })
        .map(|message| message.into_owned())
        .unwrap_or_default();
    // Binary metadata may come padded or not.
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let details = headers
        .get(GRPC_STATUS_DETAILS)
        .and_then(|value| engine.decode(value.as_bytes()).ok())
        .unwrap_or_default();
    Some(Status::with_details(code, message, details.into()))
}

/// The gRPC specification's mapping of an HTTP status that came without a gRPC status.
fn code_of_http_status(status: StatusCode) -> Code {
    match status {
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// The response message of a successful call. A missing, truncated or undecodable one
/// (or one compressed in an encoding we did not offer) is full success, as over HTTP.
fn decode_message(mut data: Bytes, gzipped: bool) -> ExportTraceServiceResponse {
    if data.len() < 5 {
        return ExportTraceServiceResponse::default();
    }
    let compressed = data.get_u8() == 1;
    let length = data.get_u32() as usize;
    if length > data.len() || length > MAX_RESPONSE_BYTES {
        return ExportTraceServiceResponse::default();
    }
    let message = data.split_to(length);
    if !compressed {
        return ExportTraceServiceResponse::decode(message).unwrap_or_default();
    }
    if !gzipped {
        return ExportTraceServiceResponse::default();
    }
    let mut plain = Vec::new();
    let read = flate2::read::GzDecoder::new(message.as_ref())
        .take(MAX_RESPONSE_BYTES as u64)
        .read_to_end(&mut plain);
    match read {
        Ok(_) => ExportTraceServiceResponse::decode(plain.as_slice()).unwrap_or_default(),
        Err(_) => ExportTraceServiceResponse::default(),
    }
}

#[cfg(test)]
#[path = "grpc_call_tests.rs"]
mod tests;
