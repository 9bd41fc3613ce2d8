//! The exporter: drains a harness queue and delivers spans as OTLP/HTTP requests
//! (`POST /v1/traces`). Both pipelines use it: the user pipeline over a Unix domain socket,
//! with routing; the internal pipeline to any OTLP/HTTP collector, without.
//!
//! - **Batching**: each of `num_tasks` workers takes up to `max_batch_size` spans from the
//!   queue, or whatever is there once the flush interval passes.
//! - **Routing** (user pipeline): a batch is grouped by `RoutingMetadata::group_key()`; each
//!   group becomes its own requests, whose routing header carries the group's `encode()`.
//!   A request never holds spans of two routings. Spans without routing, and groups whose
//!   encoded routing is not a valid header value, are dropped and counted (with one logged
//!   error per group), never sent.
//! - **Transport** ([`Transport`]): hyper 1 with pooled keep-alive connections; every worker
//!   has at most one request in flight, so at most `num_tasks` connections are open.
//! - **Failures** follow the OTLP specification: connection failures, dropped connections,
//!   timeouts and 429/502/503/504 are retried with exponential backoff and jitter, honouring
//!   `Retry-After` on 429/503 (capped); every other status is final; a `partial_success`
//!   is counted and logged, never retried. A receiver that cannot be connected to (its socket
//!   does not exist yet) is retried without limit while spans wait in the queue.
//!
//! Every span that enters the queue ends up in exactly one counter of [`ExporterStats`]:
//! exported, or dropped for a named reason.
//!
//! This module owns delivery. It must not change spans (that is `otlp`) or decide what is
//! recorded (that is the harness).

use crate::telemetry::core::finished::FinishedSpan;
use crate::telemetry::core::queue::SpanDrain;
use crate::telemetry::otlp::{ConversionCounts, EncodedRequest, OtlpEncoder};
use crate::telemetry::settings::{Compression, RetrySettings};
use crate::telemetry::transport::Transport;
use bytes::Bytes;
use cf_rustracing::span::RoutingMetadata;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{
    CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use hyper::{Request, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// Most bytes of a response body that are read.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Where an exporter is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Exporting as spans arrive.
    Running,
    /// Shutting down: send everything queued, without waiting for full batches.
    Draining,
    /// The shutdown deadline passed: stop now and count what is left as dropped.
    Aborted,
}

/// How one exporter sends.
#[derive(Debug)]
pub(crate) struct ExporterConfig {
    /// The routing header; `None` sends no routing header and does not group.
    pub(crate) routing_header: Option<HeaderName>,
    pub(crate) num_tasks: usize,
    pub(crate) max_batch_size: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) retry: RetrySettings,
    pub(crate) compression: Compression,
    pub(crate) max_request_bytes: usize,
    pub(crate) encoder: OtlpEncoder,
}

/// A snapshot of an exporter's counters, all since it started.
///
/// Every span that entered the queue is in exactly one of `spans_exported` and the
/// `dropped_*` counters, or still waiting (`spans_queued` minus the rest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExporterStats {
    /// Spans that entered the queue.
    pub spans_queued: u64,
    /// Spans the receiver accepted.
    pub spans_exported: u64,
    /// Spans dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Spans dropped because they carried no routing (user pipeline).
    pub dropped_no_routing: u64,
    /// Spans dropped because their routing did not encode to a valid header value.
    pub dropped_invalid_routing: u64,
    /// Spans the receiver rejected: `partial_success.rejected_spans`, or a final error status.
    pub dropped_rejected: u64,
    /// Spans dropped after the last allowed retry failed.
    pub dropped_retries_exhausted: u64,
    /// Spans that alone exceed `max_request_bytes`.
    pub dropped_too_large: u64,
    /// Spans still queued or in flight when the shutdown deadline passed.
    pub dropped_at_shutdown: u64,
    /// HTTP requests sent (every attempt).
    pub requests: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Request body bytes sent (after compression), every attempt.
    pub bytes_sent: u64,
    /// String values cut to the attribute size limit.
    pub truncated_values: u64,
}

impl ExporterStats {
    /// All spans dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_no_routing
            + self.dropped_invalid_routing
            + self.dropped_rejected
            + self.dropped_retries_exhausted
            + self.dropped_too_large
            + self.dropped_at_shutdown
    }

    /// Spans neither exported nor dropped yet: waiting in the queue or in flight.
    pub fn pending(&self) -> u64 {
        (self.spans_queued + self.dropped_queue_full)
            .saturating_sub(self.spans_exported + self.dropped())
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    exported: AtomicU64,
    no_routing: AtomicU64,
    invalid_routing: AtomicU64,
    rejected: AtomicU64,
    retries_exhausted: AtomicU64,
    too_large: AtomicU64,
    at_shutdown: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    bytes_sent: AtomicU64,
    truncated_values: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// A running exporter: its queue, counters and configuration, shared by its workers.
pub(crate) struct Exporter {
    config: ExporterConfig,
    drain: SpanDrain,
    counters: Counters,
    transport: Transport,
    user_agent: HeaderValue,
}

impl Exporter {
    pub(crate) fn new(config: ExporterConfig, transport: Transport, drain: SpanDrain) -> Arc<Self> {
        Arc::new(Self {
            config,
            drain,
            counters: Counters::default(),
            transport,
            user_agent: HeaderValue::from_static(concat!(
                "foundations/",
                env!("CARGO_PKG_VERSION")
            )),
        })
    }

    pub(crate) fn num_tasks(&self) -> usize {
        self.config.num_tasks
    }

    /// A snapshot of the counters, including the queue's.
    pub(crate) fn stats(&self) -> ExporterStats {
        let queue = self.drain.stats();
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ExporterStats {
            spans_queued: queue.queued,
            spans_exported: load(&c.exported),
            dropped_queue_full: queue.dropped_queue_full,
            dropped_no_routing: load(&c.no_routing),
            dropped_invalid_routing: load(&c.invalid_routing),
            dropped_rejected: load(&c.rejected),
            dropped_retries_exhausted: load(&c.retries_exhausted),
            dropped_too_large: load(&c.too_large),
            dropped_at_shutdown: load(&c.at_shutdown),
            requests: load(&c.requests),
            retries: load(&c.retries),
            bytes_sent: load(&c.bytes_sent),
            truncated_values: load(&c.truncated_values),
        }
    }

    /// One worker: runs until the phase leaves `Running` and the queue is empty, or until
    /// `Aborted`.
    pub(crate) async fn run_worker(self: Arc<Self>, mut phase: watch::Receiver<Phase>) {
        let mut batch = Vec::with_capacity(self.config.max_batch_size);
        loop {
            let current = *phase.borrow_and_update();
            match current {
                Phase::Aborted => break,
                Phase::Draining => {
                    if self
                        .drain
                        .drain_into(&mut batch, self.config.max_batch_size)
                        == 0
                    {
                        break;
                    }
                }
                Phase::Running => {
                    tokio::select! {
                        // Cancel-safe: spans are only taken after the wait completes.
                        _ = self.drain.recv_batch(
                            &mut batch,
                            self.config.max_batch_size,
                            self.config.flush_interval,
                        ) => {}
                        changed = phase.changed() => {
                            if changed.is_err() {
                                // The driver is gone without shutting down: keep exporting
                                // for the life of the process.
                                return self.run_detached(batch).await;
                            }
                            continue;
                        }
                    }
                }
            }
            if !batch.is_empty() {
                self.export(&mut batch, &phase).await;
            }
        }
        // Aborted: whatever is still queued will never be sent.
        let mut left = 0;
        while self.drain.try_recv().is_some() {
            left += 1;
        }
        add(&self.counters.at_shutdown, left);
    }

    async fn run_detached(self: Arc<Self>, mut batch: Vec<FinishedSpan>) {
        let (_keep, phase) = watch::channel(Phase::Running);
        loop {
            if !batch.is_empty() {
                self.export(&mut batch, &phase).await;
            }
            self.drain
                .recv_batch(
                    &mut batch,
                    self.config.max_batch_size,
                    self.config.flush_interval,
                )
                .await;
        }
    }

    /// Exports one batch and empties it.
    async fn export(&self, batch: &mut Vec<FinishedSpan>, phase: &watch::Receiver<Phase>) {
        let mut counts = ConversionCounts::default();
        match &self.config.routing_header {
            None => {
                let (requests, oversized) = self.config.encoder.encode(
                    batch.iter(),
                    self.config.max_request_bytes,
                    &mut counts,
                );
                add(&self.counters.too_large, oversized);
                for request in requests {
                    self.send(request, None, phase).await;
                }
            }
            Some(header) => {
                for (value, spans) in self.group_by_routing(batch) {
                    let (requests, oversized) = self.config.encoder.encode(
                        spans,
                        self.config.max_request_bytes,
                        &mut counts,
                    );
                    add(&self.counters.too_large, oversized);
                    for request in requests {
                        self.send(request, Some((header, &value)), phase).await;
                    }
                }
            }
        }
        self.counters
            .truncated_values
            .fetch_add(counts.truncated_values, Ordering::Relaxed);
        batch.clear();
    }

    /// Groups spans by routing; drops (and counts) those that cannot be sent.
    ///
    /// The spans of a trace share one routing object, so `group_key()` (which allocates) is
    /// asked once per distinct object, not once per span.
    fn group_by_routing<'a>(
        &self,
        batch: &'a [FinishedSpan],
    ) -> Vec<(HeaderValue, Vec<&'a FinishedSpan>)> {
        struct Group<'a> {
            key: String,
            header: Option<HeaderValue>,
            spans: Vec<&'a FinishedSpan>,
        }
        let mut groups: Vec<Group<'a>> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let mut by_object: HashMap<*const (), usize> = HashMap::new();
        for span in batch {
            let Some(routing) = span.routing() else {
                add(&self.counters.no_routing, 1);
                continue;
            };
            let object = routing as *const dyn RoutingMetadata as *const ();
            let index = *by_object.entry(object).or_insert_with(|| {
                let key = routing.group_key();
                *by_key.entry(key.clone()).or_insert_with(|| {
                    groups.push(Group {
                        header: HeaderValue::from_str(&routing.encode()).ok(),
                        key,
                        spans: Vec::new(),
                    });
                    groups.len() - 1
                })
            });
            groups[index].spans.push(span);
        }
        let mut sendable = Vec::with_capacity(groups.len());
        for group in groups {
            match group.header {
                Some(header) => sendable.push((header, group.spans)),
                None => {
                    add(&self.counters.invalid_routing, group.spans.len());
                    log::error!(
                        "foundations user tracing: routing {:?} does not encode to a valid \
                         header value; dropped {} spans",
                        group.key,
                        group.spans.len()
                    );
                }
            }
        }
        sendable
    }

    /// Sends one request, retrying as the specification allows, and counts its spans.
    async fn send(
        &self,
        request: EncodedRequest,
        routing: Option<(&HeaderName, &HeaderValue)>,
        phase: &watch::Receiver<Phase>,
    ) {
        let spans = request.spans;
        let (body, encoding) = match self.config.compression {
            Compression::None => (Bytes::from(request.body), None),
            Compression::Gzip => (Bytes::from(gzip(&request.body)), Some("gzip")),
        };
        let retry = &self.config.retry;
        let mut attempts = 0u32;
        let mut connect_failures = 0u32;
        loop {
            let mut builder = Request::post(self.transport.uri().clone())
                .header(CONTENT_TYPE, "application/x-protobuf")
                .header(USER_AGENT, self.user_agent.clone());
            if let Some(encoding) = encoding {
                builder = builder.header(CONTENT_ENCODING, encoding);
            }
            if let Some((name, value)) = routing {
                builder = builder.header(name, value);
            }
            let Ok(http_request) = builder.body(Full::new(body.clone())) else {
                // Only reachable with an invalid header, which validation excludes.
                add(&self.counters.rejected, spans);
                return;
            };
            add(&self.counters.requests, 1);
            add(&self.counters.bytes_sent, body.len());

            let outcome = tokio::select! {
                outcome = tokio::time::timeout(
                    self.config.request_timeout,
                    self.transport.request(http_request),
                ) => outcome,
                _ = aborted(phase.clone()) => {
                    add(&self.counters.at_shutdown, spans);
                    return;
                }
            };
            let delay = match outcome {
                Ok(Ok(response)) => {
                    let status = response.status();
                    if status.is_success() {
                        self.accept(response, spans).await;
                        return;
                    }
                    if !is_retryable(status) {
                        add(&self.counters.rejected, spans);
                        log::error!(
                            "foundations exporter: receiver answered {status}; dropped {spans} \
                             spans (not retried)"
                        );
                        return;
                    }
                    attempts += 1;
                    let retry_after = matches!(
                        status,
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    )
                    .then(|| retry_after(response.headers().get(RETRY_AFTER)?, retry))
                    .flatten();
                    retry_after.unwrap_or_else(|| backoff(retry, attempts))
                }
                Ok(Err(error)) if error.is_connect() => {
                    // Nothing was sent: wait for the receiver as long as it takes.
                    connect_failures = connect_failures.saturating_add(1);
                    if connect_failures == 1 || connect_failures % 50 == 0 {
                        log::warn!(
                            "foundations exporter: cannot connect to {}: {error}; retrying",
                            self.transport.endpoint()
                        );
                    }
                    backoff(retry, connect_failures)
                }
                Ok(Err(_)) | Err(_) => {
                    // The connection dropped, or the request timed out.
                    attempts += 1;
                    backoff(retry, attempts)
                }
            };
            if attempts >= retry.max_attempts {
                add(&self.counters.retries_exhausted, spans);
                log::error!(
                    "foundations exporter: giving up after {attempts} attempts; dropped {spans} \
                     spans"
                );
                return;
            }
            add(&self.counters.retries, 1);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = aborted(phase.clone()) => {
                    add(&self.counters.at_shutdown, spans);
                    return;
                }
            }
        }
    }

    /// Counts a successful response, reading `partial_success` from its body.
    async fn accept(&self, response: hyper::Response<hyper::body::Incoming>, spans: usize) {
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map(|collected| collected.to_bytes());
        let rejected = match body {
            Ok(bytes) => match ExportTraceServiceResponse::decode(bytes) {
                Ok(ExportTraceServiceResponse {
                    partial_success: Some(partial),
                }) => {
                    let rejected = usize::try_from(partial.rejected_spans.max(0))
                        .unwrap_or(spans)
                        .min(spans);
                    if rejected > 0 || !partial.error_message.is_empty() {
                        log::warn!(
                            "foundations exporter: receiver rejected {rejected} of {spans} \
                             spans: {}",
                            partial.error_message
                        );
                    }
                    rejected
                }
                // An empty or undecodable body on 200 is full success.
                _ => 0,
            },
            Err(_) => 0,
        };
        add(&self.counters.rejected, rejected);
        add(&self.counters.exported, spans - rejected);
    }
}

/// Completes when `phase` becomes `Aborted` (or its sender is gone for good).
async fn aborted(mut phase: watch::Receiver<Phase>) {
    while *phase.borrow_and_update() != Phase::Aborted {
        if phase.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Exponential backoff for the `attempt`-th retry (1-based), capped, plus up to 50% jitter.
fn backoff(retry: &RetrySettings, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let base = retry
        .initial_backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(retry.max_backoff_ms);
    let jitter = rand::random_range(0..=base / 2);
    Duration::from_millis(base + jitter)
}

/// `Retry-After` as seconds or an HTTP date, capped; `None` when unparseable.
fn retry_after(value: &HeaderValue, retry: &RetrySettings) -> Option<Duration> {
    let value = value.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    };
    Some(wait.min(Duration::from_millis(retry.max_retry_after_ms)))
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates_and_is_capped() {
        let retry = RetrySettings::default();
        let header = HeaderValue::from_static("1");
        assert_eq!(retry_after(&header, &retry), Some(Duration::from_secs(1)));
        let huge = HeaderValue::from_static("86400");
        assert_eq!(retry_after(&huge, &retry), Some(Duration::from_secs(30)));
        let date = HeaderValue::from_str(&httpdate::fmt_http_date(
            SystemTime::now() + Duration::from_secs(5),
        ))
        .unwrap();
        let wait = retry_after(&date, &retry).unwrap();
        assert!(
            wait <= Duration::from_secs(5) && wait >= Duration::from_secs(3),
            "{wait:?}"
        );
        assert_eq!(retry_after(&HeaderValue::from_static("soon"), &retry), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let retry = RetrySettings::default();
        for attempt in 1..=30 {
            let base = (100u64 << (attempt - 1).min(20)).min(5_000);
            let wait = backoff(&retry, attempt).as_millis() as u64;
            assert!(
                (base..=base + base / 2).contains(&wait),
                "{attempt}: {wait}"
            );
        }
    }

    #[test]
    fn only_the_specified_statuses_are_retried() {
        for code in [429, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap()));
        }
        for code in [400, 401, 403, 404, 413, 500, 501] {
            assert!(!is_retryable(StatusCode::from_u16(code).unwrap()));
        }
    }

    #[test]
    fn gzip_round_trips() {
        let body = b"hello hello hello hello".repeat(100);
        let compressed = gzip(&body);
        let mut decoder = flate2::read::GzDecoder::new(compressed.as_slice());
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut decoder, &mut out).unwrap();
        assert_eq!(out, body);
    }
}
