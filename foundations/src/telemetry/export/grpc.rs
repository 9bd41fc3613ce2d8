//! The OTLP/gRPC send path: `opentelemetry.proto.collector.trace.v1.TraceService/Export`
//! over one multiplexed HTTP/2 connection (`grpc_call`, on hyper), to `http://` (h2c),
//! `https://` (rustls, system roots or a CA bundle) or `unix://` endpoints.
//!
//! The request message is the same `ExportTraceServiceRequest` the HTTP path sends: the
//! bytes the `otlp` encoder already wrote go into the gRPC frame as they are, instead of
//! being decoded into `opentelemetry-proto` structs and encoded again. Compression is
//! gRPC's own (`grpc-encoding: gzip`, the message compressed inside its frame).
//!
//! Failures follow the OTLP specification for gRPC (decided in `retry`): the retryable codes
//! are retried with backoff, honouring `RetryInfo`; a connection that cannot be made is
//! retried without limit, and a call that breaks in transport (no status from the
//! receiver) is retried as `UNAVAILABLE`, as over HTTP; `partial_success` is counted, never
//! retried. One deadline covers each attempt's whole exchange, and is sent to the receiver
//! as `grpc-timeout`.
//!
//! This module owns the gRPC exchange of one request only; batching, encoding, phases and
//! the counters' meaning are the worker's.

use super::grpc_call::{CallError, Frame, GrpcConnection};
use super::otlp::gzip;
use super::retry::{backoff, grpc_retry, wait_to_retry};
use super::stats::{Counters, add, rejected_by};
use crate::telemetry::settings::{Compression, Endpoint, RetrySettings};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// A gRPC client bound to one endpoint; its connection is opened on first use, inside the
/// exporter's runtime (which runs the connection's task).
pub(crate) struct GrpcTransport {
    connection: GrpcConnection,
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
        let gzip = matches!(compression, Compression::Gzip);
        let connection = GrpcConnection::new(&endpoint, ca_bundle, gzip, connect_timeout)?;
        Ok(Self {
            connection,
            compression,
            display: endpoint,
        })
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
        let sent_bytes = body.len() + 5;
        let (message, compressed) = match self.compression {
            Compression::None => (body, false),
            Compression::Gzip => (Bytes::from(gzip(&body)), true),
        };
        let Some(frame) = Frame::new(message, compressed) else {
            // Unreachable under `max_request_bytes`, which is far below 4 GiB.
            add(&counters.rejected, spans);
            log::error!(
                "foundations exporter: a request of {sent_bytes} bytes is too long for gRPC; \
                 dropped {spans} spans"
            );
            return;
        };
        let mut attempts = 0u32;
        let mut connect_failures = 0u32;
        loop {
            add(&counters.requests, 1);
            add(&counters.bytes_sent, sent_bytes);
            let call = self.connection.call(&frame, timeout);
            let outcome = tokio::select! {
                outcome = tokio::time::timeout(timeout, call) => outcome,
                _ = aborted() => {
                    add(&counters.at_shutdown, spans);
                    return;
                }
            };
            let delay = match outcome {
                Ok(Ok(response)) => {
                    accept(response, spans, counters);
                    return;
                }
                Ok(Err(CallError::Connect(error))) => {
                    // Nothing was sent: wait for the receiver as long as it takes.
                    connect_failures = connect_failures.saturating_add(1);
                    if connect_failures == 1 || connect_failures % 50 == 0 {
                        log::warn!(
                            "foundations exporter: cannot connect to {}: {error}; retrying",
                            self.display,
                        );
                    }
                    backoff(retry, connect_failures)
                }
                Ok(Err(CallError::Transport(error))) => {
                    // No status from the receiver: the connection dropped or broke mid-call.
                    // gRPC libraries report this as UNAVAILABLE, and HTTP retries it too.
                    attempts += 1;
                    log::warn!(
                        "foundations exporter: call to {} failed in transport: {error}; retrying",
                        self.display,
                    );
                    backoff(retry, attempts)
                }
                Ok(Err(CallError::Status(status))) => match grpc_retry(&status, retry) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
