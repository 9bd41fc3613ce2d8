//! The exporter and its workers: each of `num_tasks` workers takes up to `max_batch_size`
//! spans from the pipeline's queue (or whatever is there once the flush interval passes),
//! groups them by routing when the pipeline routes, encodes them, and sends each request
//! with retries, counting every span exactly once.
//!
//! Phases drive shutdown: `Running` exports as spans arrive, `Draining` sends everything
//! queued without waiting for full batches, `Aborted` (the deadline passed) stops at once
//! and counts what is left as dropped. A worker whose driver is dropped without a shutdown
//! keeps exporting for the life of the process.
//!
//! Each worker counts on counters of its own (the exporter's stats sum them), so that when
//! one panics, what it took from the queue and had not settled yet is known exactly and is
//! counted as dropped before the worker is restarted.
//!
//! Every worker has at most one request in flight, and encodes the next batch while it is:
//! the next request is ready when the receiver answers, and the receiver's time is not
//! the worker's. This module owns the loop and delivery;
//! it does not change spans (that is `otlp`) or decide what is recorded (that is the
//! harness).

use super::otlp::{ConversionCounts, EncodedRequest, OtlpEncoder, gzip};
use super::outbox::{Ahead, Outbox};
use super::retry::{backoff, is_retryable, retry_after, wait_to_retry};
use super::routing::group_by_routing;
use super::stats::{Counters, ExporterStats, add, rejected_by};
use super::transport::{Connection, SendError, Transport};
use crate::telemetry::core::finished::FinishedSpan;
use crate::telemetry::core::queue::SpanDrain;
use crate::telemetry::core::routing::log_rate_limited;
use crate::telemetry::settings::{Compression, ExportSettings, RetrySettings};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{
    CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use hyper::{Request, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

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
    routing_header: Option<HeaderName>,
    num_tasks: usize,
    max_batch_size: usize,
    flush_interval: Duration,
    request_timeout: Duration,
    retry: RetrySettings,
    compression: Compression,
    max_request_bytes: usize,
    encoder: OtlpEncoder,
}

impl ExporterConfig {
    /// The configuration of either pipeline's exporter: its knobs from `export`, its routing
    /// header (`None`: no routing), and its encoder.
    pub(crate) fn new(
        export: &ExportSettings,
        routing_header: Option<HeaderName>,
        encoder: OtlpEncoder,
    ) -> Self {
        Self {
            routing_header,
            num_tasks: export.num_tasks,
            max_batch_size: export.max_batch_size,
            flush_interval: export.flush_interval(),
            request_timeout: export.request_timeout(),
            retry: export.retry.clone(),
            compression: export.compression,
            max_request_bytes: export.max_request_bytes,
            encoder,
        }
    }
}

/// A running exporter: its queue, counters and configuration, shared by its workers.
pub(crate) struct Exporter {
    config: ExporterConfig,
    drain: SpanDrain,
    /// One set per worker; [`stats`](Self::stats) sums them.
    workers: Box<[Counters]>,
    transport: Transport,
    user_agent: HeaderValue,
    /// Bumped by [`flush`](Self::flush): a worker that sees a new value sends what is queued
    /// without waiting for a full batch.
    flush_generation: AtomicU64,
    flush_requested: Notify,
}

impl Exporter {
    pub(crate) fn new(config: ExporterConfig, transport: Transport, drain: SpanDrain) -> Arc<Self> {
        Arc::new(Self {
            workers: (0..config.num_tasks).map(|_| Counters::default()).collect(),
            config,
            drain,
            transport,
            user_agent: HeaderValue::from_static(concat!(
                "foundations/",
                env!("CARGO_PKG_VERSION")
            )),
            flush_generation: AtomicU64::new(0),
            flush_requested: Notify::new(),
        })
    }

    /// Asks the workers to send what is queued now, without waiting for full batches.
    pub(crate) fn flush(&self) {
        self.flush_generation.fetch_add(1, Ordering::AcqRel);
        self.flush_requested.notify_waiters();
    }

    /// Closes the queue: spans finished from now on are counted as dropped after shutdown.
    pub(crate) fn close(&self) {
        self.drain.close();
    }

    pub(crate) fn num_tasks(&self) -> usize {
        self.config.num_tasks
    }

    /// A snapshot of the counters, including the queue's.
    pub(crate) fn stats(&self) -> ExporterStats {
        Counters::snapshot(self.workers.iter(), self.drain.stats())
    }

    /// Settles worker `worker` after it panicked: what it held is dropped and counted
    /// (`dropped_worker_panicked`); the caller restarts it.
    pub(crate) fn settle_panicked_worker(&self, worker: usize) {
        let lost = self.workers[worker].settle_panicked_worker();
        static LAST_LOG_SECS: AtomicU64 = AtomicU64::new(0);
        log_rate_limited(&LAST_LOG_SECS, || {
            log::error!(
                "foundations exporter: a worker panicked; {lost} spans it held are dropped and \
                 counted (dropped_worker_panicked); the worker is restarted"
            )
        });
    }

    /// Worker number `worker` (below `num_tasks`): runs until the phase leaves `Running` and
    /// the queue is empty, or until `Aborted`. A worker restarted after a panic is run again
    /// under the same number, which keeps its counters.
    pub(crate) async fn run_worker(
        self: Arc<Self>,
        worker: usize,
        mut phase: watch::Receiver<Phase>,
    ) {
        let counters = &self.workers[worker];
        let mut batch = Vec::with_capacity(self.config.max_batch_size);
        let mut outbox = Outbox::new();
        let mut connection = Connection::default();
        let mut flushed_generation = 0;
        // Set by a flush: take what is queued without waiting for full batches, until the
        // queue is empty.
        let mut flushing = false;
        loop {
            let current = *phase.borrow_and_update();
            if current == Phase::Aborted {
                break;
            }
            if outbox.is_empty() {
                let mut detached = false;
                if current == Phase::Draining {
                    if self.take(&mut batch) == 0 {
                        break;
                    }
                } else {
                    let flush = self.flush_requested.notified();
                    tokio::pin!(flush);
                    // Registered before the generation is read: a flush in between wakes it.
                    flush.as_mut().enable();
                    flushing |= self.flush_seen(&mut flushed_generation);
                    if flushing {
                        if self.take(&mut batch) == 0 {
                            flushing = false;
                            continue;
                        }
                    } else {
                        tokio::select! {
                            _ = flush => continue,
                            // Cancel-safe: spans are only taken after the wait completes.
                            _ = self.drain.recv_batch(
                                &mut batch,
                                self.config.max_batch_size,
                                self.config.flush_interval,
                            ) => {}
                            changed = phase.changed() => {
                                if changed.is_ok() {
                                    continue;
                                }
                                // The driver is gone without shutting down: keep exporting
                                // for the life of the process.
                                detached = true;
                            }
                        }
                    }
                }
                if detached {
                    return self.run_detached(worker, batch, outbox, connection).await;
                }
                self.encode_batch(&mut batch, counters, &mut outbox);
                continue;
            }
            flushing |= self.flush_seen(&mut flushed_generation);
            let ahead = if flushing || current == Phase::Draining {
                Ahead::Now
            } else {
                Ahead::Wait
            };
            self.send_overlapped(
                &mut outbox,
                &mut batch,
                ahead,
                counters,
                &mut connection,
                &phase,
            )
            .await;
        }
        // Aborted: what is encoded and unsent, and whatever is still queued, will never be
        // sent.
        let mut left = outbox.spans();
        outbox.clear();
        add(&counters.at_shutdown, left);
        left = 0;
        while self.drain.try_recv().is_some() {
            left += 1;
        }
        add(&counters.taken, left);
        add(&counters.at_shutdown, left);
    }

    /// `true` (once) when a flush was asked for since `seen` was last updated.
    fn flush_seen(&self, seen: &mut u64) -> bool {
        let generation = self.flush_generation.load(Ordering::Acquire);
        std::mem::replace(seen, generation) != generation
    }

    /// Takes up to a batch of what is queued now, without waiting.
    fn take(&self, batch: &mut Vec<FinishedSpan>) -> usize {
        self.drain.drain_into(batch, self.config.max_batch_size)
    }

    async fn run_detached(
        self: Arc<Self>,
        worker: usize,
        mut batch: Vec<FinishedSpan>,
        mut outbox: Outbox,
        mut connection: Connection,
    ) {
        let counters = &self.workers[worker];
        let (_keep, phase) = watch::channel(Phase::Running);
        loop {
            if outbox.is_empty() {
                self.drain
                    .recv_batch(
                        &mut batch,
                        self.config.max_batch_size,
                        self.config.flush_interval,
                    )
                    .await;
                self.encode_batch(&mut batch, counters, &mut outbox);
                continue;
            }
            self.send_overlapped(
                &mut outbox,
                &mut batch,
                Ahead::Wait,
                counters,
                &mut connection,
                &phase,
            )
            .await;
        }
    }

    /// Sends the outbox's first request and, while it is in flight (the receiver reading
    /// and decoding it), takes the next batch and encodes it into the outbox, so that the
    /// next request is ready the moment this one is answered. Still one request in flight
    /// per worker: only the encoding overlaps.
    async fn send_overlapped(
        &self,
        outbox: &mut Outbox,
        batch: &mut Vec<FinishedSpan>,
        ahead: Ahead,
        counters: &Counters,
        connection: &mut Connection,
        phase: &watch::Receiver<Phase>,
    ) {
        let Some(next) = outbox.pop() else { return };
        let routing = self
            .config
            .routing_header
            .as_ref()
            .zip(next.routing.as_ref());
        let send = self.send(next.request, routing, counters, connection, phase);
        tokio::pin!(send);
        // The first poll hands the request to the connection's task; yielding once lets
        // that task write it before this one goes on encoding.
        let mut done = tokio::select! {
            biased;
            () = &mut send => true,
            () = tokio::task::yield_now() => false,
        };
        if !done && outbox.is_empty() {
            let taken = match ahead {
                Ahead::Now => self.take(batch),
                Ahead::Wait => tokio::select! {
                    biased;
                    () = &mut send => {
                        done = true;
                        0
                    }
                    // Cancel-safe: spans are only taken after the wait completes.
                    taken = self.drain.recv_batch(
                        batch,
                        self.config.max_batch_size,
                        self.config.flush_interval,
                    ) => taken,
                },
            };
            if taken > 0 {
                self.encode_batch(batch, counters, outbox);
            }
        }
        if !done {
            send.await;
        }
    }

    /// Encodes `batch` into requests at the back of `outbox` and empties it, counting on
    /// `counters` (its worker's).
    fn encode_batch(
        &self,
        batch: &mut Vec<FinishedSpan>,
        counters: &Counters,
        outbox: &mut Outbox,
    ) {
        if batch.is_empty() {
            return;
        }
        // From here the batch is this worker's to settle; if the worker panics before it
        // has, the restart counts what is left (see `settle_panicked_worker`).
        add(&counters.taken, batch.len());
        let mut counts = ConversionCounts::default();
        let max_bytes = self.config.max_request_bytes;
        match &self.config.routing_header {
            None => {
                let (requests, oversized) =
                    self.config
                        .encoder
                        .encode(batch.iter(), max_bytes, &mut counts);
                add(&counters.too_large, oversized);
                outbox.push(requests, None);
            }
            Some(_) => {
                for (value, spans) in group_by_routing(batch, counters) {
                    let (requests, oversized) =
                        self.config.encoder.encode(spans, max_bytes, &mut counts);
                    add(&counters.too_large, oversized);
                    outbox.push(requests, Some(value));
                }
            }
        }
        counters
            .truncated_values
            .fetch_add(counts.truncated_values, Ordering::Relaxed);
        batch.clear();
    }

    /// Sends one request, retrying as the specification allows, and counts its spans.
    async fn send(
        &self,
        request: EncodedRequest,
        routing: Option<(&HeaderName, &HeaderValue)>,
        counters: &Counters,
        connection: &mut Connection,
        phase: &watch::Receiver<Phase>,
    ) {
        let http = match &self.transport {
            Transport::Http(http) => http,
            Transport::Grpc(grpc) => {
                let (retry, timeout) = (&self.config.retry, self.config.request_timeout);
                let abort = || aborted(phase.clone());
                return grpc
                    .send(request.body, request.spans, retry, timeout, counters, abort)
                    .await;
            }
        };
        let spans = request.spans;
        let (body, encoding) = match self.config.compression {
            Compression::None => (request.body, None),
            Compression::Gzip => (Bytes::from(gzip(&request.body)), Some("gzip")),
        };
        let retry = &self.config.retry;
        let mut attempts = 0u32;
        let mut connect_failures = 0u32;
        loop {
            let mut builder = Request::post(http.path().clone())
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
                add(&counters.rejected, spans);
                return;
            };
            add(&counters.requests, 1);
            add(&counters.bytes_sent, body.len());

            // One deadline for the whole exchange: connect, write, status and headers, and the
            // response body. A receiver that stalls at any point costs at most this.
            let deadline = tokio::time::Instant::now() + self.config.request_timeout;
            let outcome = tokio::select! {
                outcome = tokio::time::timeout_at(
                    deadline,
                    http.send(connection, http_request),
                ) => outcome,
                _ = aborted(phase.clone()) => {
                    connection.discard();
                    add(&counters.at_shutdown, spans);
                    return;
                }
            };
            let delay = match outcome {
                Ok(Ok(response)) => {
                    let status = response.status();
                    if status.is_success() {
                        // The status says the receiver took the spans; the body only adds a
                        // possible partial rejection, read within what is left of the
                        // deadline. A body that stalls past it (or past shutdown's deadline)
                        // leaves the spans counted as exported.
                        let rejected = tokio::select! {
                            read = tokio::time::timeout_at(deadline, rejected_spans(response, spans)) => {
                                read.unwrap_or_else(|_| {
                                    connection.discard();
                                    log::warn!(
                                        "foundations exporter: the receiver accepted {spans} spans \
                                         but did not finish its response body in time"
                                    );
                                    0
                                })
                            }
                            _ = aborted(phase.clone()) => {
                                connection.discard();
                                0
                            }
                        };
                        add(&counters.rejected, rejected);
                        add(&counters.exported, spans - rejected);
                        return;
                    }
                    if !is_retryable(status) {
                        add(&counters.rejected, spans);
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
                Ok(Err(SendError::Connect(error))) => {
                    // Nothing was sent: wait for the receiver as long as it takes.
                    connect_failures = connect_failures.saturating_add(1);
                    if connect_failures == 1 || connect_failures % 50 == 0 {
                        log::warn!(
                            "foundations exporter: cannot connect to {}: {error}; retrying",
                            http.endpoint()
                        );
                    }
                    backoff(retry, connect_failures)
                }
                Ok(Err(SendError::Request(error))) => {
                    // The connection dropped mid-exchange.
                    log::debug!(
                        "foundations exporter: request to {} failed: {error}",
                        http.endpoint()
                    );
                    connection.discard();
                    attempts += 1;
                    backoff(retry, attempts)
                }
                Err(_) => {
                    // The whole exchange outlived its deadline.
                    connection.discard();
                    attempts += 1;
                    backoff(retry, attempts)
                }
            };
            if !wait_to_retry(
                attempts,
                delay,
                spans,
                retry,
                counters,
                aborted(phase.clone()),
            )
            .await
            {
                return;
            }
        }
    }
}

/// How many of the `spans` a successful response rejects, from the `partial_success` of its
/// body (at most [`MAX_RESPONSE_BYTES`] read). An empty or undecodable body rejects none.
async fn rejected_spans(response: hyper::Response<hyper::body::Incoming>, spans: usize) -> usize {
    let Ok(body) = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
    else {
        return 0;
    };
    let partial = ExportTraceServiceResponse::decode(body)
        .ok()
        .and_then(|response| response.partial_success);
    rejected_by(partial, spans)
}

/// Completes when `phase` becomes `Aborted` (or its sender is gone for good).
async fn aborted(mut phase: watch::Receiver<Phase>) {
    while *phase.borrow_and_update() != Phase::Aborted {
        if phase.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
