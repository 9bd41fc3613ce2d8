//! Where exporters send: an OTLP/HTTP endpoint over a Unix domain socket, plain TCP, or TLS,
//! behind one pooled keep-alive HTTP/1.1 client.
//!
//! | endpoint | transport |
//! |---|---|
//! | `unix:///run/otel.sock` | Unix domain socket, path `/v1/traces` |
//! | `http://host:port[/path]` | TCP |
//! | `https://host:port[/path]` | TLS (rustls): system roots, or a CA bundle file |
//!
//! This module owns connections only: the endpoint's syntax is parsed by the settings
//! (`settings::Endpoint`), and what is sent, and when, is the worker's business.

use crate::telemetry::settings::{Endpoint, TRACES_PATH};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

enum ClientKind {
    Unix(Client<hyperlocal::UnixConnector, Full<Bytes>>),
    Tcp(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
}

/// A pooled HTTP/1.1 client bound to one endpoint.
pub(crate) struct Transport {
    client: ClientKind,
    uri: Uri,
    endpoint: Endpoint,
}

impl Transport {
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

fn tls_config(ca_bundle: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_bundle {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|error| format!("cannot read CA bundle {}: {error}", path.display()))?;
            for cert in certs {
                let cert = cert
                    .map_err(|error| format!("bad certificate in {}: {error}", path.display()))?;
                roots.add(cert).map_err(|error| {
                    format!("unusable certificate in {}: {error}", path.display())
                })?;
            }
            if roots.is_empty() {
                return Err(format!("CA bundle {} holds no certificate", path.display()));
            }
        }
        None => {
            // Certificates the system store cannot parse are skipped, like other clients do.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS setup failed: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_bundle_is_a_clear_error() {
        let error = tls_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
