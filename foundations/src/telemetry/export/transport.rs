//! Where exporters send: an OTLP/HTTP endpoint over a Unix domain socket, plain TCP, or TLS,
//! behind one pooled keep-alive HTTP/1.1 client ([`HttpTransport`]); or an OTLP/gRPC
//! endpoint (`grpc`). [`Transport`] is either.
//!
//! | endpoint | transport |
//! |---|---|
//! | `unix:///run/otel.sock` | Unix domain socket, path `/v1/traces` |
//! | `http://host:port[/path]` | TCP |
//! | `https://host:port[/path]` | TLS (rustls): system roots, or a CA bundle file |
//!
//! This module owns connections only: the endpoint's syntax is parsed by the settings
//! (`settings::Endpoint`), and what is sent, and when, is the worker's business.

use super::grpc::GrpcTransport;
use super::tls::tls_config;
use crate::telemetry::settings::{Compression, Endpoint, TRACES_PATH};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use std::path::Path;
use std::time::Duration;

enum ClientKind {
    Unix(Client<hyperlocal::UnixConnector, Full<Bytes>>),
    Tcp(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
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
    /// OTLP/HTTP to `endpoint`, keeping at most `max_idle` idle connections. `ca_bundle`, a
    /// PEM file, replaces the system roots for TLS.
    pub(crate) fn new(
        endpoint: Endpoint,
        max_idle: usize,
        ca_bundle: Option<&Path>,
    ) -> Result<Self, String> {
        HttpTransport::new(endpoint, max_idle, ca_bundle).map(Transport::Http)
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

/// A pooled HTTP/1.1 client bound to one endpoint.
pub(crate) struct HttpTransport {
    client: ClientKind,
    uri: Uri,
    endpoint: Endpoint,
}

impl HttpTransport {
    /// A client for `endpoint` keeping at most `max_idle` idle connections. `ca_bundle`, a
    /// PEM file, replaces the system roots for TLS.
    pub(crate) fn new(
        endpoint: Endpoint,
        max_idle: usize,
        ca_bundle: Option<&Path>,
    ) -> Result<Self, String> {
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_max_idle_per_host(max_idle)
            .pool_idle_timeout(Duration::from_secs(90));
        let (client, uri) = match &endpoint {
            Endpoint::Unix(path) => (
                ClientKind::Unix(builder.build(hyperlocal::UnixConnector)),
                hyperlocal::Uri::new(path, TRACES_PATH).into(),
            ),
            Endpoint::Http(uri) if endpoint.is_tls() => {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls_config(ca_bundle)?)
                    .https_only()
                    .enable_http1()
                    .build();
                (ClientKind::Tls(builder.build(connector)), uri.clone())
            }
            Endpoint::Http(uri) => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                (ClientKind::Tcp(builder.build(connector)), uri.clone())
            }
        };
        Ok(Self {
            client,
            uri,
            endpoint,
        })
    }

    /// The request URI.
    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The endpoint, for messages.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends a request on a pooled connection.
    pub(crate) fn request(&self, request: hyper::Request<Full<Bytes>>) -> ResponseFuture {
        match &self.client {
            ClientKind::Unix(client) => client.request(request),
            ClientKind::Tcp(client) => client.request(request),
            ClientKind::Tls(client) => client.request(request),
        }
    }
}
