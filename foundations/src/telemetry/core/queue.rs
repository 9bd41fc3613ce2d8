//! The bounded queue between the threads that finish spans and the consumer that exports
//! them: [`SpanDrain`] is its receiving end, [`QueueStats`] its counters.
//!
//! A finished span goes first into its thread's own ring ([`super::rings`]), which costs no
//! shared atomic; a full ring wakes a waiting consumer (it is a batch ready) and the thread
//! goes on in a new ring. Only when the rings' share of the bound is used up does a span
//! take the shared, bounded queue. Consumers read both.
//!
//! This module owns the hand-over and its accounting (every span offered is queued or
//! counted as dropped). It must not know what a span holds beyond its record type, nor who
//! consumes it.

use super::finished::FinishedSpan;
use super::rings::{NotPushed, Rings};
use crossbeam_queue::SegQueue;
use std::cell::Cell;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A snapshot of a harness queue's counters. All counts are since installation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Finished spans that entered the queue.
    pub queued: u64,
    /// Finished spans dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Finished spans dropped because the queue was closed (telemetry was shut down).
    pub dropped_after_close: u64,
    /// Spans lost because their finish callback panicked (the panic is caught).
    pub dropped_callback_panicked: u64,
    /// Roots that sampling would have recorded but the root rate limit started unsampled.
    /// Not spans: an unsampled root and its descendants are never produced, so this is
    /// outside the balance.
    pub roots_rate_limited: u64,
}

/// The bounded queue between finished spans and their consumer.
///
/// Lock-free on the producer side: a finished span costs a push into its thread's ring.
/// Producers never wake the consumer per span (that is a syscall each time); they wake it
/// only when their ring, or the shared queue, reaches the threshold a waiting consumer
/// asked for, so a batching consumer is woken once per batch, or by its own flush timeout.
/// A busy thread skips even that: one that woke a consumer less than
/// [`BATCH_WAKE_SPACING`] ago raises the threshold to half its ring instead, which on a
/// busy thread is soon reached (see [`wake_or_defer`]).
///
/// Producers and consumers run on different cores, so what each side writes per span lives
/// on its own cache line, and a batch consumer settles `len` once per batch: every write the
/// consumer makes to the producers' line costs the next producer a cache miss.
pub(super) struct SpanQueue {
    /// Each producer thread's own ring, tried first.
    rings: Rings,
    /// The shared queue: spans whose thread's ring was full.
    spans: SegQueue<FinishedSpan>,
    producers: CacheLine<ProducerCounters>,
    /// Spans taken out by consumers; `queued` is derived from it so that producers pay for
    /// one counter, not two.
    popped: CacheLine<AtomicU64>,
    /// Roots the rate limit refused: bumped per refused root, on a line of its own so that
    /// an overload does not slow down the producers of recorded spans.
    rate_limited: CacheLine<AtomicU64>,
    wake: Notify,
}

/// What producers read or write for every span.
struct ProducerCounters {
    /// Spans pushed and not yet accounted as popped, counted before the push so that the
    /// bound is never exceeded. Consumers subtract after popping, so it may briefly count
    /// spans already taken out: the bound errs on the side of holding fewer.
    len: AtomicUsize,
    /// The bound; 0 once the queue is closed, so that a closed queue costs producers no
    /// check of their own.
    max_len: AtomicUsize,
    /// Queue length at which producers wake waiting consumers; `usize::MAX` when none waits.
    wake_at: AtomicUsize,
    dropped_queue_full: AtomicU64,
    closed: AtomicBool,
    dropped_after_close: AtomicU64,
    dropped_callback_panicked: AtomicU64,
}

/// Keeps its value on cache lines of its own (128 bytes: adjacent-line prefetch pairs
/// 64-byte lines on x86).
#[repr(align(128))]
struct CacheLine<T>(T);

impl<T> Deref for CacheLine<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl SpanQueue {
    fn new(max_len: Option<usize>) -> Self {
        Self {
            rings: Rings::new(max_len),
            spans: SegQueue::new(),
            producers: CacheLine(ProducerCounters {
                len: AtomicUsize::new(0),
                max_len: AtomicUsize::new(max_len.unwrap_or(usize::MAX)),
                wake_at: AtomicUsize::new(usize::MAX),
                dropped_queue_full: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                dropped_after_close: AtomicU64::new(0),
                dropped_callback_panicked: AtomicU64::new(0),
            }),
            popped: CacheLine(AtomicU64::new(0)),
            rate_limited: CacheLine(AtomicU64::new(0)),
            wake: Notify::new(),
        }
    }

    /// The size of each thread's ring, oldest first.
    #[cfg(test)]
    pub(super) fn ring_capacities(&self) -> Vec<usize> {
        self.rings.capacities()
    }

    /// Spans in the shared queue.
    fn shared_len(&self) -> usize {
        self.producers.len.load(Ordering::Acquire)
    }

    /// Spans waiting, in the rings and the shared queue.
    fn len(&self) -> usize {
        self.shared_len() + self.rings.len()
    }

    /// Pushes the record `make` builds, if there is room (see [`Sink::push_with`]).
    #[inline]
    pub(super) fn push_with(&self, make: impl FnOnce() -> FinishedSpan) {
        // Closed (0) is checked before the rings: a closed queue takes nothing more.
        if self.producers.max_len.load(Ordering::Relaxed) != 0 {
            match self.rings.push(make) {
                Ok(pushed) => {
                    let wake_at = self.producers.wake_at.load(Ordering::Relaxed);
                    // This ring alone holds the batch a consumer waits for, or a full one
                    // was left behind: a batch is ready, whatever the others hold. Whether
                    // it is worth a wake-up yet is decided out of line.
                    if pushed.len == wake_at || (pushed.filled && wake_at != usize::MAX) {
                        self.wake_from_ring(pushed.filled, pushed.len, wake_at);
                    }
                }
                Err(not_pushed) => {
                    match not_pushed {
                        NotPushed::Unbuilt(make) => self.push_shared(make),
                        NotPushed::Built(record) => self.push_shared(move || record),
                    }
                    // The ring is full: a batch is ready, whatever the shared queue holds.
                    if self.producers.wake_at.load(Ordering::Acquire) != usize::MAX {
                        self.wake.notify_waiters();
                    }
                }
            }
            return;
        }
        self.push_shared(make);
    }

    /// Wakes the waiting consumers, or defers it as [`wake_or_defer`] says.
    #[cold]
    #[inline(never)]
    fn wake_from_ring(&self, filled: bool, len: usize, wake_at: usize) {
        let now = Instant::now();
        // `None` on an exiting thread: no record of its wake-ups, no reason to skip one.
        let since_last_wake = LAST_RING_WAKE
            .try_with(Cell::get)
            .ok()
            .flatten()
            .map(|last| now - last);
        // Looked up again rather than carried in `Pushed`: one more field there costs the
        // inlined push +480 instructions per root + 9 (register spills), this lookup
        // runs once per batch.
        let ring = self.rings.this_threads_capacity().unwrap_or(0);
        match wake_or_defer(filled, len, ring, since_last_wake) {
            None => {
                let _ = LAST_RING_WAKE.try_with(|last| last.set(Some(now)));
                self.wake.notify_waiters();
            }
            // Unless a consumer has set a threshold of its own since.
            Some(later) => {
                let _ = self.producers.wake_at.compare_exchange(
                    wake_at,
                    later,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Pushes into the shared queue, if there is room.
    fn push_shared(&self, make: impl FnOnce() -> FinishedSpan) {
        let counters = &*self.producers;
        let len = counters.len.fetch_add(1, Ordering::AcqRel);
        if len >= counters.max_len.load(Ordering::Relaxed) {
            counters.len.fetch_sub(1, Ordering::AcqRel);
            let reason = if counters.closed.load(Ordering::Acquire) {
                &counters.dropped_after_close
            } else {
                &counters.dropped_queue_full
            };
            reason.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.spans.push(make());
        if len + 1 == counters.wake_at.load(Ordering::Acquire) {
            self.wake.notify_waiters();
        }
    }

    /// Counts a span whose finish callback panicked: it never reached the queue.
    pub(super) fn count_callback_panic(&self) {
        self.producers
            .dropped_callback_panicked
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a root that the rate limit started unsampled.
    pub(super) fn count_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Moves up to `limit` spans into `buffer`, accounting for them once. Returns how many.
    fn pop_into(&self, buffer: &mut Vec<FinishedSpan>, limit: usize) -> usize {
        let from_rings = self.rings.pop_into(buffer, limit);
        if from_rings > 0 {
            self.popped.fetch_add(from_rings as u64, Ordering::Relaxed);
        }
        from_rings + self.pop_shared_into(buffer, limit - from_rings)
    }

    fn pop_shared_into(&self, buffer: &mut Vec<FinishedSpan>, limit: usize) -> usize {
        let mut popped = 0;
        while popped < limit {
            match self.spans.pop() {
                Some(span) => buffer.push(span),
                None => break,
            }
            popped += 1;
        }
        if popped > 0 {
            // `len` first: `stats` reads `len` before `popped`, so a span is then counted
            // by neither for a moment, never twice.
            self.producers.len.fetch_sub(popped, Ordering::AcqRel);
            self.popped.fetch_add(popped as u64, Ordering::Relaxed);
        }
        popped
    }

    fn pop(&self) -> Option<FinishedSpan> {
        if let Some(span) = self.rings.pop() {
            self.popped.fetch_add(1, Ordering::Relaxed);
            return Some(span);
        }
        let span = self.spans.pop()?;
        self.producers.len.fetch_sub(1, Ordering::AcqRel);
        self.popped.fetch_add(1, Ordering::Relaxed);
        Some(span)
    }

    /// Waits until at least `count` spans are queued, or until `deadline`.
    ///
    /// Producers wake a waiting consumer when the shared queue reaches `count` or a ring
    /// fills; spans sitting in rings below that are seen at `deadline`, or, without one, at
    /// the next [`RING_POLL`] tick.
    async fn wait_for(&self, count: usize, deadline: Option<tokio::time::Instant>) {
        loop {
            if self.len() >= count {
                return;
            }
            let notified = self.wake.notified();
            tokio::pin!(notified);
            // Register before publishing the threshold and re-checking the length, so that
            // a producer crossing the threshold in between cannot be missed.
            notified.as_mut().enable();
            self.producers.wake_at.store(count, Ordering::Release);
            if self.len() >= count {
                return;
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = tokio::time::timeout(RING_POLL, notified).await;
                }
            }
        }
    }
}

/// The least time between two wake-ups a thread makes for a batch in its ring: a wake-up
/// is a system call on the producing thread (a futex, and on a virtual machine an
/// interrupt to another processor), which at a batch of 512 spans every few dozen
/// microseconds took a tenth of a busy thread's time.
pub(super) const BATCH_WAKE_SPACING: Duration = Duration::from_millis(1);

thread_local! {
    /// When this thread last woke a consumer from its ring.
    static LAST_RING_WAKE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Makes this thread a busy one for the next hour, as if it had just woken a consumer.
#[cfg(test)]
pub(super) fn pretend_this_thread_just_woke_a_consumer() {
    let later = Instant::now() + Duration::from_secs(3600);
    LAST_RING_WAKE.with(|last| last.set(Some(later)));
}

/// What a push that brought a thread's ring (`ring` spans in all) to `len` spans, the
/// waiting consumer's threshold or a full ring, does: `None` to wake the consumer, or the
/// later threshold to wait for instead.
///
/// - A ring that filled (the thread went on in a new one) always wakes it: a batch is
///   ready, and the thread is not slowed by the consumer's absence.
/// - A thread that woke a consumer less than [`BATCH_WAKE_SPACING`] ago (`since_last_wake`)
///   is busy: it raises the threshold to half its ring, which it reaches soon, and the
///   consumer drains it then, or at its deadline. A ring already half full wakes it.
pub(super) fn wake_or_defer(
    filled: bool,
    len: usize,
    ring: usize,
    since_last_wake: Option<Duration>,
) -> Option<usize> {
    let busy = since_last_wake.is_some_and(|since| since < BATCH_WAKE_SPACING);
    (!filled && busy && ring / 2 > len).then_some(ring / 2)
}

/// How often a consumer waiting without a deadline looks into the rings.
const RING_POLL: Duration = Duration::from_millis(10);

/// The receiving end of a harness queue: every finished, sampled span of the pipeline.
///
/// Exporters read it in batches with [`recv_batch`](Self::recv_batch); simpler consumers
/// use [`recv`](Self::recv) or the non-blocking [`try_recv`](Self::try_recv). Clones share
/// the queue, so several workers can drain it; each span is received once.
#[derive(Clone)]
pub struct SpanDrain {
    queue: Arc<SpanQueue>,
}

// Public through `telemetry::testing`: some accessors are for its users only.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl SpanDrain {
    pub(super) fn new(max_len: Option<usize>) -> (Arc<SpanQueue>, Self) {
        let queue = Arc::new(SpanQueue::new(max_len));
        (Arc::clone(&queue), Self { queue })
    }

    /// Waits for the next finished span.
    ///
    /// Wakes on every first span after the queue was empty; a consumer that can wait a
    /// little should prefer [`recv_batch`](Self::recv_batch), which is woken once per batch.
    pub async fn recv(&self) -> FinishedSpan {
        loop {
            if let Some(span) = self.queue.pop() {
                return span;
            }
            self.queue.wait_for(1, None).await;
        }
    }

    /// Waits until `max_batch` spans are queued or `max_wait` has passed, then moves up to
    /// `max_batch` spans into `buffer`. Returns how many were added (0 when `max_wait`
    /// passed with an empty queue).
    pub async fn recv_batch(
        &self,
        buffer: &mut Vec<FinishedSpan>,
        max_batch: usize,
        max_wait: Duration,
    ) -> usize {
        let max_batch = max_batch.max(1);
        let deadline = tokio::time::Instant::now().checked_add(max_wait);
        self.queue.wait_for(max_batch, deadline).await;
        self.drain_into(buffer, max_batch)
    }

    /// Moves up to `limit` queued spans into `buffer` without waiting. Returns how many.
    pub fn drain_into(&self, buffer: &mut Vec<FinishedSpan>, limit: usize) -> usize {
        self.queue.pop_into(buffer, limit)
    }

    /// Takes the next finished span if one is queued.
    pub fn try_recv(&self) -> Option<FinishedSpan> {
        self.queue.pop()
    }

    /// Number of spans waiting in the queue.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// `true` when no span is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the queue's counters.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            // Read `len` first: a span pushed in between is then counted by neither, never
            // twice. The snapshot is exact whenever the queue is quiet.
            queued: {
                let len = self.queue.len() as u64;
                self.queue.popped.load(Ordering::Relaxed) + len
            },
            dropped_queue_full: self
                .queue
                .producers
                .dropped_queue_full
                .load(Ordering::Relaxed),
            dropped_after_close: self
                .queue
                .producers
                .dropped_after_close
                .load(Ordering::Relaxed),
            dropped_callback_panicked: self
                .queue
                .producers
                .dropped_callback_panicked
                .load(Ordering::Relaxed),
            roots_rate_limited: self.queue.rate_limited.load(Ordering::Relaxed),
        }
    }

    /// Closes the queue: spans finished from now on are dropped and counted
    /// ([`QueueStats::dropped_after_close`]); those already queued can still be received.
    pub fn close(&self) {
        let counters = &*self.queue.producers;
        counters.closed.store(true, Ordering::Release);
        counters.max_len.store(0, Ordering::Release);
    }
}

impl fmt::Debug for SpanDrain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanDrain")
            .field("queued_now", &self.len())
            .field("stats", &self.stats())
            .finish()
    }
}
