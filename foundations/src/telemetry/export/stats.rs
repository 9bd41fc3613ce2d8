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

/// The live counters of one exporter, shared by its workers. The queue counts what entered
/// it and what it dropped itself; these count everything after.
#[derive(Debug, Default)]
pub(super) struct Counters {
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
    /// The snapshot of these counters together with the queue's.
    pub(super) fn snapshot(&self, queue: QueueStats) -> ExporterStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ExporterStats {
            spans_queued: queue.queued,
            spans_exported: load(&self.exported),
            dropped_queue_full: queue.dropped_queue_full,
            dropped_no_routing: load(&self.no_routing),
            dropped_invalid_routing: load(&self.invalid_routing),
            dropped_routing_panicked: load(&self.routing_panicked),
            dropped_rejected: load(&self.rejected),
            dropped_retries_exhausted: load(&self.retries_exhausted),
            dropped_too_large: load(&self.too_large),
            dropped_at_shutdown: load(&self.at_shutdown),
            dropped_after_shutdown: queue.dropped_after_close,
            dropped_callback_panicked: queue.dropped_callback_panicked,
            requests: load(&self.requests),
            retries: load(&self.retries),
            bytes_sent: load(&self.bytes_sent),
            truncated_values: load(&self.truncated_values),
            roots_rate_limited: queue.roots_rate_limited,
        }
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
