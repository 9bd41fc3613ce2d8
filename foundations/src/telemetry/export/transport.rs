//! Where exporters send: an OTLP/HTTP endpoint over a Unix domain socket, plain TCP, or TLS
//! ([`HttpTransport`], one keep-alive HTTP/1.1 connection per worker); or an OTLP/gRPC
//! endpoint (`grpc`). [`Transport`] is either.
//!
//! | endpoint | transport |
//! |---|---|
//! | `unix:///run/otel.sock` | Unix domain socket, path `/v1/traces` |
//! | `http://host:port[/path]` | TCP |
//! | `https://host:port[/path]` | TLS (rustls): system roots, or a CA bundle file |
//!
//! Each worker owns its connection ([`Connection`]) rather than sharing a pool: a worker
//! has one request in flight at a time, so the receiver sees at most `num_tasks`
//! connections, and a request never races a connection that is still finishing its last
//! response into opening another one.
//!
//! This module owns connections only: the endpoint's syntax is parsed by the settings
//! (`settings::Endpoint`), and what is sent, and when, is the worker's business.

use super::grpc::GrpcTransport;
use super::tls::tls_config;
use crate::telemetry::settings::{Compression, Endpoint, TRACES_PATH};
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HOST, HeaderValue};
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use std::path::Path;
use std::time::Duration;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

enum Connector {
    Unix(hyperlocal::UnixConnector),
    Tcp(HttpConnector),
    Tls(hyper_rustls::HttpsConnector<HttpConnector>),
}

/// How an exporter sends its requests.
// One per exporter, made once and never moved again: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Transport {
    /// OTLP/HTTP: `POST /v1/traces`.
    Http(HttpTransport),
    /// OTLP/gRPC: `TraceService/Export`.
    Grpc(GrpcTransport),
}

impl Transport {
    /// OTLP/HTTP to `endpoint`. `ca_bundle`, a PEM file, replaces the system roots for TLS.
    pub(crate) fn new(endpoint: Endpoint, ca_bundle: Option<&Path>) -> Result<Self, String> {
        HttpTransport::new(endpoint, ca_bundle).map(Transport::Http)
    }

    /// OTLP/gRPC to `endpoint` (see `grpc`).
    pub(crate) fn grpc(
        endpoint: Endpoint,
        ca_bundle: Option<&Path>,
        compression: Compression,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        GrpcTransport::new(endpoint, ca_bundle, compression, connect_timeout).map(Transport::Grpc)
    }
}

/// An OTLP/HTTP endpoint: how to connect to it, and what each request is addressed to.
pub(crate) struct HttpTransport {
    connector: Connector,
    /// What the connector dials.
    uri: Uri,
    /// The request target, in origin form (`/v1/traces`).
    path: Uri,
    host: HeaderValue,
    endpoint: Endpoint,
}

/// One worker's connection: opened on first use, kept while the receiver keeps it alive,
/// reopened after it closes or after a response that was not read to its end.
#[derive(Default)]
pub(crate) struct Connection {
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// Why a request got no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be opened: nothing was sent.
    Connect(BoxError),
    /// The connection failed while the request was in flight.
    Request(hyper::Error),
}

impl HttpTransport {
    /// A transport to `endpoint`. `ca_bundle`, a PEM file, replaces the system roots for TLS.
    pub(crate) fn new(endpoint: Endpoint, ca_bundle: Option<&Path>) -> Result<Self, String> {
        let (connector, uri, host) = match &endpoint {
            // Go's and hyper's servers refuse HTTP/1.1 without a Host; a socket has no name.
            Endpoint::Unix(path) => (
                Connector::Unix(hyperlocal::UnixConnector),
                hyperlocal::Uri::new(path, TRACES_PATH).into(),
                HeaderValue::from_static("localhost"),
            ),
            Endpoint::Http(uri) => {
                let connector = if endpoint.is_tls() {
                    Connector::Tls(
                        hyper_rustls::HttpsConnectorBuilder::new()
                            .with_tls_config(tls_config(ca_bundle)?)
                            .https_only()
                            .enable_http1()
                            .build(),
                    )
                } else {
                    let mut connector = HttpConnector::new();
                    connector.set_nodelay(true);
                    Connector::Tcp(connector)
                };
                let authority = uri
                    .authority()
                    .ok_or_else(|| format!("{endpoint}: no host"))?;
                let host = HeaderValue::from_str(authority.as_str())
                    .map_err(|_| format!("{endpoint}: invalid host"))?;
                (connector, uri.clone(), host)
            }
        };
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| format!("{endpoint}: {e}"))?;
        Ok(Self {
            connector,
            uri,
            path,
            host,
            endpoint,
        })
    }

    /// The request target (origin form) to build requests with.
    pub(crate) fn path(&self) -> &Uri {
        &self.path
    }

    /// The endpoint, for messages.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends `request` on `connection`, opening it first if it is not open (or no longer
    /// usable). The connection is kept for the next request: [`Connection::discard`] it when
    /// the response is not read to its end.
    pub(crate) async fn send(
        &self,
        connection: &mut Connection,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<hyper::body::Incoming>, SendError> {
        request.headers_mut().insert(HOST, self.host.clone());
        // A kept connection becomes ready once its task has seen the previous response end,
        // or fails if the receiver closed it; neither costs a round trip.
        let kept = match connection.sender.take() {
            Some(mut sender) if !sender.is_closed() => sender.ready().await.ok().map(|()| sender),
            _ => None,
        };
        let reused = kept.is_some();
        let mut sender = match kept {
            Some(sender) => sender,
            None => self.connect().await.map_err(SendError::Connect)?,
        };
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            // The receiver closed the kept connection before the request was written (its
            // idle timeout): the request is intact, send it once on a new connection.
            Err(mut error)
                if reused && error.message().is_some() && error.error().is_canceled() =>
            {
                let request = error.take_message().expect("checked above");
                sender = self.connect().await.map_err(SendError::Connect)?;
                sender
                    .send_request(request)
                    .await
                    .map_err(SendError::Request)?
            }
            Err(error) => return Err(SendError::Request(error.into_error())),
        };
        connection.sender = Some(sender);
        Ok(response)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, BoxError> {
        match &self.connector {
            Connector::Unix(c) => handshake(*c, self.uri.clone()).await,
            Connector::Tcp(c) => handshake(c.clone(), self.uri.clone()).await,
            Connector::Tls(c) => handshake(c.clone(), self.uri.clone()).await,
        }
    }
}

impl Connection {
    /// Forgets the connection: its last response was not read to its end, so it cannot carry
    /// another request.
    pub(crate) fn discard(&mut self) {
        self.sender = None;
    }
}

/// Dials `uri` with `connector` and runs an HTTP/1.1 connection over it on the current
/// runtime; the connection ends when its sender is dropped.
async fn handshake<C>(mut connector: C, uri: Uri) -> Result<SendRequest<Full<Bytes>>, BoxError>
where
    C: Service<Uri>,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Error: Into<BoxError>,
{
    std::future::poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    let io = connector.call(uri).await.map_err(Into::into)?;
    let (sender, connection) = http1::handshake(io).await?;
    tokio::spawn(async move {
        // Its errors reach the sender as the request's error.
        let _ = connection.await;
    });
    Ok(sender)
}
