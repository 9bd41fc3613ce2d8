//! The OTLP/gRPC send path: `opentelemetry.proto.collector.trace.v1.TraceService/Export`
//! over one multiplexed HTTP/2 connection (tonic), to `http://` (h2c), `https://` (rustls,
//! system roots or a CA bundle) or `unix://` endpoints.
//!
//! The request message is the same `ExportTraceServiceRequest` the HTTP path sends: the
//! bytes the `otlp` encoder already wrote go into the gRPC frame as they are, through a
//! pass-through codec, instead of being decoded into `opentelemetry-proto` structs and
//! encoded again. Compression is gRPC's own (`grpc-encoding: gzip`), done by tonic.
//!
//! Failures follow the OTLP specification for gRPC (decided in `retry`): the retryable codes
//! are retried with backoff, honouring `RetryInfo`; a connection that cannot be made is
//! retried without limit, and a call that breaks in transport (no status from the
//! receiver) is retried as `UNAVAILABLE`, as over HTTP; `partial_success` is counted, never
//! retried.
//!
//! This module owns the gRPC exchange of one request only; batching, encoding, phases and
//! the counters' meaning are the worker's.

use super::retry::{backoff, grpc_retry, wait_to_retry};
use super::stats::{Counters, add, rejected_by};
use super::tls::tls_config;
use crate::telemetry::settings::{Compression, Endpoint, RetrySettings};
use bytes::{BufMut, Bytes};
use hyper::http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::future::Future;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;
use tonic::codec::{
    BufferSettings, Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// The OTLP trace service's method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Most bytes of a response message that are read, as over HTTP.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A gRPC client bound to one endpoint. Its channel is made on first use, inside the
/// exporter's runtime (tonic spawns the connection's task there).
pub(crate) struct GrpcTransport {
    endpoint: tonic::transport::Endpoint,
    channel: OnceLock<Channel>,
    compression: Compression,
    display: Endpoint,
}

impl GrpcTransport {
    /// A client for `endpoint`. `ca_bundle`, a PEM file, replaces the system roots for TLS;
    /// connecting is bounded by `connect_timeout`.
    pub(crate) fn new(
        endpoint: Endpoint,
        ca_bundle: Option<&Path>,
        compression: Compression,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        let mut grpc = tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .map_err(|error| format!("{endpoint}: {error}"))?
            .connect_timeout(connect_timeout)
            .user_agent(concat!("foundations/", env!("CARGO_PKG_VERSION")))
            .map_err(|error| error.to_string())?;
        if endpoint.is_tls() {
            let tls = match ca_bundle {
                Some(path) => {
                    // The HTTP path's loader, for the same clear errors about the file.
                    tls_config(Some(path))?;
                    let pem = std::fs::read(path).map_err(|error| {
                        format!("cannot read CA bundle {}: {error}", path.display())
                    })?;
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
                }
                None => ClientTlsConfig::new().with_native_roots(),
            };
            grpc = grpc
                .tls_config(tls)
                .map_err(|error| format!("TLS setup failed: {error}"))?;
        }
        Ok(Self {
            endpoint: grpc,
            channel: OnceLock::new(),
            compression,
            display: endpoint,
        })
    }

    fn client(&self) -> tonic::client::Grpc<Channel> {
        let channel = self
            .channel
            .get_or_init(|| self.endpoint.connect_lazy())
            .clone();
        // grpc-go servers (the Collector) answer a gzip request with a gzip response.
        let client = tonic::client::Grpc::new(channel)
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .accept_compressed(CompressionEncoding::Gzip);
        match self.compression {
            Compression::None => client,
            Compression::Gzip => client.send_compressed(CompressionEncoding::Gzip),
        }
    }

    /// Sends one encoded request (its `spans` spans), retrying as the specification allows,
    /// and counts its spans; a future from `aborted` completing (the shutdown deadline
    /// passed) abandons it, counted as dropped at shutdown. `bytes_sent` counts the message
    /// and its 5-byte frame header, before gRPC compression.
    pub(super) async fn send<F: Future<Output = ()>>(
        &self,
        body: Bytes,
        spans: usize,
        retry: &RetrySettings,
        timeout: Duration,
        counters: &Counters,
        aborted: impl Fn() -> F,
    ) {
        let mut attempts = 0u32;
        let mut connect_failures = 0u32;
        loop {
            let mut client = self.client();
            let mut request = tonic::Request::new(body.clone());
            request.set_timeout(timeout);
            add(&counters.requests, 1);
            add(&counters.bytes_sent, body.len() + 5);
            let call = async {
                client
                    .ready()
                    .await
                    .map_err(|error| tonic::Status::from_error(error.into()))?;
                client
                    .unary(request, PathAndQuery::from_static(EXPORT_PATH), PassThrough)
                    .await
            };
            let outcome = tokio::select! {
                outcome = tokio::time::timeout(timeout, call) => outcome,
                _ = aborted() => {
                    add(&counters.at_shutdown, spans);
                    return;
                }
            };
            let delay = match outcome {
                Ok(Ok(response)) => {
                    accept(response.into_inner(), spans, counters);
                    return;
                }
                Ok(Err(status)) if is_connect_failure(&status) => {
                    // Nothing was sent: wait for the receiver as long as it takes.
                    connect_failures = connect_failures.saturating_add(1);
                    if connect_failures == 1 || connect_failures % 50 == 0 {
                        log::warn!(
                            "foundations exporter: cannot connect to {}: {}; retrying",
                            self.display,
                            status.message()
                        );
                    }
                    backoff(retry, connect_failures)
                }
                Ok(Err(status)) if is_transport_failure(&status) => {
                    // No status from the receiver: the connection dropped or broke mid-call.
                    // gRPC libraries report this as UNAVAILABLE, and HTTP retries it too.
                    attempts += 1;
                    log::warn!(
                        "foundations exporter: call to {} failed in transport: {}; retrying",
                        self.display,
                        status.message()
                    );
                    backoff(retry, attempts)
                }
                Ok(Err(status)) => match grpc_retry(&status, retry) {
                    None => {
                        add(&counters.rejected, spans);
                        log::error!(
                            "foundations exporter: receiver answered {:?}: {}; dropped {spans} \
                             spans (not retried)",
                            status.code(),
                            status.message()
                        );
                        return;
                    }
                    Some(delay) => {
                        attempts += 1;
                        delay.unwrap_or_else(|| backoff(retry, attempts))
                    }
                },
                Err(_) => {
                    // Our deadline passed (DEADLINE_EXCEEDED): retryable.
                    attempts += 1;
                    backoff(retry, attempts)
                }
            };
            if !wait_to_retry(attempts, delay, spans, retry, counters, aborted()).await {
                return;
            }
        }
    }
}

/// Counts a successful response, with its `partial_success`.
fn accept(response: ExportTraceServiceResponse, spans: usize, counters: &Counters) {
    let rejected = rejected_by(response.partial_success, spans);
    add(&counters.rejected, rejected);
    add(&counters.exported, spans - rejected);
}

/// A connection that could not be made: no request reached the receiver.
fn is_connect_failure(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// A failure of the call itself rather than a status the receiver sent: tonic keeps the
/// underlying error (hyper, h2, I/O) as the status's source, and a status read from the
/// response's trailers has none. tonic maps such failures to `UNKNOWN` or `INTERNAL`, which
/// would make a dropped connection final.
fn is_transport_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// The codec of `Export`: the request is already-encoded protobuf, written as is; the
/// response is decoded with `opentelemetry-proto`.
#[derive(Clone, Copy, Debug, Default)]
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = PassThrough;
    type Decoder = PassThrough;

    fn encoder(&mut self) -> Self::Encoder {
        PassThrough
    }

    fn decoder(&mut self) -> Self::Decoder {
        PassThrough
    }
}

/// The room tonic makes for a request before it is written: a request of the default
/// batch (512 spans, some 45 KiB) fits at once, where tonic's default (8 KiB) would regrow,
/// copying, several times per request.
const ENCODE_BUFFER_BYTES: usize = 64 * 1024;

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = tonic::Status;

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(ENCODE_BUFFER_BYTES, ENCODE_BUFFER_BYTES)
    }

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        // An undecodable response to a successful call is full success, as over HTTP.
        Ok(Some(
            ExportTraceServiceResponse::decode(src).unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failures_are_told_apart_from_answers() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = tonic::Status::from_error(Box::new(tonic::ConnectError(refused.into())));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(is_connect_failure(&status));
        assert!(!is_connect_failure(&tonic::Status::unavailable("busy")));

        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let dropped = tonic::Status::from_error(Box::new(reset));
        assert!(is_transport_failure(&dropped), "{dropped:?}");
        assert!(!is_connect_failure(&dropped));
        let answered = tonic::Status::invalid_argument("bad span");
        assert!(!is_transport_failure(&answered));
    }

    #[test]
    fn a_missing_ca_bundle_is_a_clear_error() {
        let endpoint = Endpoint::parse_grpc("https://c:4317").unwrap();
        let error = GrpcTransport::new(
            endpoint,
            Some(Path::new("/nonexistent/ca.pem")),
            Compression::None,
            Duration::from_secs(1),
        )
        .err()
        .unwrap();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
