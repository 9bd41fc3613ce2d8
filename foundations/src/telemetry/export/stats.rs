//! What an exporter counts: the live [`Counters`] its workers bump, and the public
//! [`ExporterStats`] snapshot. Every span that enters the queue ends up in exactly one
//! counter: exported, or dropped for a named reason.
//!
//! This module owns the arithmetic of the counters only; the worker decides when to count.

use crate::telemetry::core::queue::QueueStats;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of an exporter's counters, all since it started.
///
/// The balance: every span the pipeline finished ([`produced`](Self::produced)) is in
/// exactly one of `spans_exported` and the `dropped_*` counters, or still waiting
/// ([`pending`](Self::pending)).
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
    /// Dropped: the trace's `RoutingMetadata::encode()` panicked (user pipeline).
    pub dropped_routing_panicked: u64,
    /// Spans the receiver rejected: `partial_success.rejected_spans`, or a final error status.
    pub dropped_rejected: u64,
    /// Spans dropped after the last allowed retry failed.
    pub dropped_retries_exhausted: u64,
    /// Spans that alone exceed `max_request_bytes`.
    pub dropped_too_large: u64,
    /// Spans still queued or in flight when the shutdown deadline passed.
    pub dropped_at_shutdown: u64,
    /// Spans finished after shutdown began: never queued.
    pub dropped_after_shutdown: u64,
    /// Spans lost because their finish callback panicked (the panic is caught): never queued.
    pub dropped_callback_panicked: u64,
    /// Spans an exporter worker held (taken from the queue, not yet settled) when it
    /// panicked; the worker is restarted.
    pub dropped_worker_panicked: u64,
    /// Exporter workers restarted after a panic.
    pub worker_restarts: u64,
    /// HTTP requests sent (every attempt).
    pub requests: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Request body bytes sent (after compression), every attempt.
    pub bytes_sent: u64,
    /// String values cut to the attribute size limit.
    pub truncated_values: u64,
    /// Roots that the root rate limit (`rate_limit` setting) started unsampled. Not part
    /// of the balance: an unsampled trace produces no spans.
    pub roots_rate_limited: u64,
}

impl ExporterStats {
    /// All spans dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_no_routing
            + self.dropped_invalid_routing
            + self.dropped_routing_panicked
            + self.dropped_rejected
            + self.dropped_retries_exhausted
            + self.dropped_too_large
            + self.dropped_at_shutdown
            + self.dropped_after_shutdown
            + self.dropped_callback_panicked
            + self.dropped_worker_panicked
    }

    /// Every span the pipeline finished: queued, or dropped before the queue (full, after
    /// shutdown began, or lost to a panicking finish callback).
    pub fn produced(&self) -> u64 {
        self.spans_queued
            + self.dropped_queue_full
            + self.dropped_after_shutdown
            + self.dropped_callback_panicked
    }

    /// Spans neither exported nor dropped yet: waiting in the queue or in flight.
    pub fn pending(&self) -> u64 {
        self.produced()
            .saturating_sub(self.spans_exported + self.dropped())
    }
}

/// The live counters of one exporter worker (the exporter keeps one set per worker, and
/// its snapshot sums them). The queue counts what entered it and what it dropped itself;
/// these count everything after.
///
/// Per worker so that a worker that panics can be settled on its own: the spans it held are
/// those it [`took`](Self::taken) and did not settle yet, whatever the other workers did.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Spans this worker took from the queue into a batch.
    pub(super) taken: AtomicU64,
    pub(super) worker_panicked: AtomicU64,
    pub(super) worker_restarts: AtomicU64,
    pub(super) exported: AtomicU64,
    pub(super) no_routing: AtomicU64,
    pub(super) invalid_routing: AtomicU64,
    pub(super) routing_panicked: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) retries_exhausted: AtomicU64,
    pub(super) too_large: AtomicU64,
    pub(super) at_shutdown: AtomicU64,
    pub(super) requests: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) bytes_sent: AtomicU64,
    pub(super) truncated_values: AtomicU64,
}

/// Adds `n` to `counter`.
pub(super) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Counters {
    /// The snapshot of all workers' counters together with the queue's.
    pub(super) fn snapshot<'a>(
        workers: impl IntoIterator<Item = &'a Counters>,
        queue: QueueStats,
    ) -> ExporterStats {
        let mut stats = ExporterStats {
            spans_queued: queue.queued,
            dropped_queue_full: queue.dropped_queue_full,
            dropped_after_shutdown: queue.dropped_after_close,
            dropped_callback_panicked: queue.dropped_callback_panicked,
            roots_rate_limited: queue.roots_rate_limited,
            ..ExporterStats::default()
        };
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        for worker in workers {
            stats.spans_exported += load(&worker.exported);
            stats.dropped_no_routing += load(&worker.no_routing);
            stats.dropped_invalid_routing += load(&worker.invalid_routing);
            stats.dropped_routing_panicked += load(&worker.routing_panicked);
            stats.dropped_rejected += load(&worker.rejected);
            stats.dropped_retries_exhausted += load(&worker.retries_exhausted);
            stats.dropped_too_large += load(&worker.too_large);
            stats.dropped_at_shutdown += load(&worker.at_shutdown);
            stats.dropped_worker_panicked += load(&worker.worker_panicked);
            stats.worker_restarts += load(&worker.worker_restarts);
            stats.requests += load(&worker.requests);
            stats.retries += load(&worker.retries);
            stats.bytes_sent += load(&worker.bytes_sent);
            stats.truncated_values += load(&worker.truncated_values);
        }
        stats
    }

    /// Spans this worker took and did not settle (export or drop) yet: its batch in flight.
    /// Exact only while the worker does not run (it panicked, or has not started).
    fn in_flight(&self) -> u64 {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let settled = [
            &self.exported,
            &self.no_routing,
            &self.invalid_routing,
            &self.routing_panicked,
            &self.rejected,
            &self.retries_exhausted,
            &self.too_large,
            &self.at_shutdown,
            &self.worker_panicked,
        ]
        .into_iter()
        .map(load)
        .sum::<u64>();
        load(&self.taken).saturating_sub(settled)
    }

    /// Settles what a worker that panicked held: its batch in flight is dropped and counted,
    /// and the restart that follows is counted. Returns how many spans were dropped.
    pub(super) fn settle_panicked_worker(&self) -> u64 {
        let lost = self.in_flight();
        self.worker_panicked.fetch_add(lost, Ordering::Relaxed);
        self.worker_restarts.fetch_add(1, Ordering::Relaxed);
        lost
    }
}

/// How many of a request's `spans` a receiver's `partial_success` rejects (at most all of
/// them), logging the receiver's message when it sent one.
pub(super) fn rejected_by(partial: Option<ExportTracePartialSuccess>, spans: usize) -> usize {
    let Some(partial) = partial else {
        return 0;
    };
    let rejected = usize::try_from(partial.rejected_spans.max(0))
        .unwrap_or(spans)
        .min(spans);
    if rejected > 0 || !partial.error_message.is_empty() {
        log::warn!(
            "foundations exporter: receiver rejected {rejected} of {spans} spans: {}",
            partial.error_message
        );
    }
    rejected
}
