//! Harnesses: where a pipeline's root spans come from and where its finished spans go.
//!
//! A harness owns the sampling decision for new roots and the sink that finished spans
//! enter: for an installed harness, the bounded queue that a [`SpanDrain`] reads; for a
//! test context, its in-memory sink (a `SpanSink`). It also owns a `cf_rustracing`
//! [`Tracer`](cf_rustracing::Tracer), used only for spans that need a full
//! `cf_rustracing` span (see the `state` module). There is one process-global harness per
//! pipeline, installed once with [`install`]; until then (or when tracing is disabled) no
//! harness answers and every span is inert: nothing is allocated or recorded.
//!
//! This module must not know which span is current (the scope stack owns that) nor how
//! spans are encoded or sent (exporters read a [`SpanDrain`]).

use super::finished::FinishedSpan;
use super::state::{LiveSpan, LocalSpan, ParentRef, RawFinishedSpan, SharedSpan, SpanState};
use super::w3c::{TraceState, TraceparentContext};
use cf_rustracing::sampler::AllSampler;
use cf_rustracing::span::{RoutingMetadata, SpanConsumer};
use crossbeam_queue::SegQueue;
use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// The two span pipelines. They share code, never state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pipeline {
    /// The service's own spans.
    Internal,
    /// Spans the service emits for its customers.
    User,
}

static INTERNAL_HARNESS: OnceLock<Harness> = OnceLock::new();
static USER_HARNESS: OnceLock<Harness> = OnceLock::new();

fn global_slot(pipeline: Pipeline) -> &'static OnceLock<Harness> {
    match pipeline {
        Pipeline::Internal => &INTERNAL_HARNESS,
        Pipeline::User => &USER_HARNESS,
    }
}

/// The installed harness of a pipeline, if any.
#[inline]
pub(crate) fn global(pipeline: Pipeline) -> Option<&'static Harness> {
    global_slot(pipeline).get()
}

/// The harness a live span was started from, and finishes into.
///
/// An installed harness lives for the whole process, so spans refer to it by a plain
/// reference: children copy a pointer, not a reference count.
#[derive(Clone)]
pub(crate) enum HarnessRef {
    Global(&'static Harness),
    /// A test context's harness, kept alive by its spans.
    #[cfg(any(test, feature = "testing"))]
    Owned(Arc<Harness>),
}

impl Deref for HarnessRef {
    type Target = Harness;

    #[inline]
    fn deref(&self) -> &Harness {
        match self {
            HarnessRef::Global(harness) => harness,
            #[cfg(any(test, feature = "testing"))]
            HarnessRef::Owned(harness) => harness,
        }
    }
}

/// Where a test harness's finished spans go.
#[cfg(feature = "testing")]
pub(crate) trait SpanSink: Send + Sync {
    fn push(&self, span: FinishedSpan);
}

/// Where a harness's finished spans go.
#[derive(Clone)]
enum Sink {
    /// An installed harness's queue, called directly: a span record is large, and a call
    /// through a trait object costs it one more copy on the way into the queue.
    Queue(Arc<SpanQueue>),
    #[cfg(feature = "testing")]
    Other(Arc<dyn SpanSink>),
}

impl Sink {
    /// Pushes the record `make` builds. Built only once there is room, and built right
    /// where the queue takes it: a record is large, and each copy of it shows.
    #[inline]
    fn push_with(&self, make: impl FnOnce() -> FinishedSpan) {
        match self {
            Sink::Queue(queue) => queue.push_with(make),
            #[cfg(feature = "testing")]
            Sink::Other(sink) => sink.push(make()),
        }
    }
}

/// Hands spans that finished as `cf_rustracing` spans to a sink, as records.
struct RawSpanConsumer(Sink);

impl SpanConsumer<SpanState> for RawSpanConsumer {
    fn consume_span(&self, span: RawFinishedSpan) {
        // Converted here, on the finishing thread, so the raw span's buffers are freed
        // where they were allocated (see the `finished` module).
        self.0.push_with(|| FinishedSpan::from_raw(&span));
    }
}

/// How a harness decides whether a new root is recorded.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RootSampling {
    /// Parent-based ratio sampling: the ratio decides new roots; an inbound parent's
    /// sampled flag decides continued traces.
    Ratio(f64),
    /// The ratio decides every root, continued traces included: the inbound sampled flag is
    /// ignored (`sampling.parent_based: false`).
    RatioIgnoringParent(f64),
    /// Every root is recorded, inbound sampled flag or not: calling the API *is* the
    /// decision (the user pipeline).
    #[cfg_attr(
        not(any(feature = "testing", feature = "user-tracing", test)),
        allow(dead_code)
    )]
    Always,
}

/// A pipeline's sampling policy and span sink.
pub(crate) struct Harness {
    sink: Sink,
    /// Starts the spans that need a full `cf_rustracing` span; its consumer feeds `sink`.
    tracer: cf_rustracing::Tracer<AllSampler, SpanState>,
    sampling: RootSampling,
}

/// What a new root continues, and how it is sampled.
#[derive(Default)]
pub(crate) struct RootOptions {
    pub(crate) inbound: Option<(TraceparentContext, Option<TraceState>)>,
    /// `Some(decision)` overrides both the ratio and the inbound sampled flag.
    pub(crate) force_sampling: Option<bool>,
    /// Routing of the new trace (user pipeline), inherited by every descendant.
    pub(crate) routing: Option<Arc<dyn RoutingMetadata>>,
}

impl Harness {
    /// A harness whose spans go to `sink` (a test context's).
    #[cfg(feature = "testing")]
    pub(crate) fn new(sampling: RootSampling, sink: Arc<dyn SpanSink>) -> Self {
        Self::with_sink(sampling, Sink::Other(sink))
    }

    fn with_sink(sampling: RootSampling, sink: Sink) -> Self {
        Self {
            tracer: cf_rustracing::Tracer::with_consumer(AllSampler, RawSpanConsumer(sink.clone())),
            sink,
            sampling,
        }
    }

    pub(crate) fn tracer(&self) -> &cf_rustracing::Tracer<AllSampler, SpanState> {
        &self.tracer
    }

    /// Hands a finished span to the sink, as the record `make` builds (see
    /// [`Sink::push_with`]).
    #[inline]
    pub(crate) fn finish_with(&self, make: impl FnOnce() -> FinishedSpan) {
        self.sink.push_with(make);
    }

    fn sample_new_root(&self) -> bool {
        match self.sampling {
            RootSampling::Always => true,
            RootSampling::Ratio(ratio) | RootSampling::RatioIgnoringParent(ratio) => {
                ratio >= 1.0 || (ratio > 0.0 && rand::random::<f64>() < ratio)
            }
        }
    }
}

impl HarnessRef {
    /// Starts a root span: a new trace, or the local root of an inbound one.
    #[cfg_attr(not(any(feature = "user-tracing", test)), allow(dead_code))]
    #[inline]
    pub(crate) fn start_root(self, name: Cow<'static, str>, options: RootOptions) -> LocalSpan {
        match self.plan_root(options) {
            RootPlan::Unsampled(state) => LocalSpan::Shared(SharedSpan::NonRecording(state)),
            RootPlan::Recorded { state, parent } => {
                LocalSpan::Owned(LiveSpan::start(self, name, state, parent, None))
            }
        }
    }

    /// Decides a new root: its identity, and whether it is recorded. Cheap, and runs no
    /// application code; callers then build the span where it will live.
    #[inline]
    pub(crate) fn plan_root(&self, options: RootOptions) -> RootPlan {
        match options.inbound {
            Some((inbound, trace_state)) => {
                let remote = SpanState::remote(&inbound, trace_state).with_routing(options.routing);
                let sampled = options.force_sampling.unwrap_or(match self.sampling {
                    RootSampling::Ratio(_) => inbound.flags.is_sampled(),
                    RootSampling::RatioIgnoringParent(_) => self.sample_new_root(),
                    RootSampling::Always => true,
                });
                if !sampled {
                    // Nothing is recorded, so there is no new span to name as the parent:
                    // forward the inbound parent id unchanged, with the sampled flag unset.
                    return RootPlan::Unsampled(remote.with_sampled(false));
                }
                RootPlan::Recorded {
                    state: remote.child().with_sampled(true),
                    parent: Some(ParentRef::of(&remote)),
                }
            }
            None => {
                let sampled = options
                    .force_sampling
                    .unwrap_or_else(|| self.sample_new_root());
                let state = SpanState::new_root(sampled).with_routing(options.routing);
                if sampled {
                    RootPlan::Recorded {
                        state,
                        parent: None,
                    }
                } else {
                    RootPlan::Unsampled(state)
                }
            }
        }
    }
}

/// What [`HarnessRef::plan_root`] decided for a new root.
pub(crate) enum RootPlan {
    /// Not recorded: the identity that the root and all its descendants share.
    Unsampled(SpanState),
    /// Recorded: the new span's state, and its remote parent if it continues a trace.
    Recorded {
        state: SpanState,
        parent: Option<ParentRef>,
    },
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("sampling", &self.sampling)
            .finish_non_exhaustive()
    }
}

/// Options for [`install`]ing the internal pipeline's harness.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing::HarnessOptions;
///
/// let options = HarnessOptions::default()
///     .sampling_ratio(0.25)
///     .max_queue_size(Some(10_000));
/// assert_eq!(options.get_sampling_ratio(), 0.25);
/// ```
#[derive(Clone, Debug)]
pub struct HarnessOptions {
    sampling_ratio: f64,
    parent_based: bool,
    max_queue_size: Option<usize>,
}

impl HarnessOptions {
    /// Default fraction of new traces that are recorded: `1.0` (all of them).
    pub const DEFAULT_SAMPLING_RATIO: f64 = 1.0;
    /// Default bound of the finished-span queue: 1,000,000 spans.
    pub const DEFAULT_MAX_QUEUE_SIZE: usize = 1_000_000;

    /// Fraction of new traces (roots without an inbound parent) that are recorded, in
    /// `0.0..=1.0`. Continued traces follow their inbound sampled flag. Default: `1.0`.
    pub fn sampling_ratio(mut self, ratio: f64) -> Self {
        self.sampling_ratio = ratio;
        self
    }

    /// The configured sampling ratio.
    pub fn get_sampling_ratio(&self) -> f64 {
        self.sampling_ratio
    }

    /// Bound of the queue between finished spans and their consumer; `None` is unbounded.
    /// A span finished while the queue is full is dropped and counted in
    /// [`QueueStats::dropped_queue_full`]. Default: 1,000,000.
    pub fn max_queue_size(mut self, size: Option<usize>) -> Self {
        self.max_queue_size = size;
        self
    }

    /// The configured queue bound.
    pub fn get_max_queue_size(&self) -> Option<usize> {
        self.max_queue_size
    }

    /// Whether continued traces follow the inbound sampled flag (`true`, the default) or are
    /// sampled by the ratio like new ones (`false`).
    pub fn parent_based(mut self, parent_based: bool) -> Self {
        self.parent_based = parent_based;
        self
    }

    /// The configured parent-based setting.
    pub fn get_parent_based(&self) -> bool {
        self.parent_based
    }
}

impl Default for HarnessOptions {
    fn default() -> Self {
        Self {
            sampling_ratio: Self::DEFAULT_SAMPLING_RATIO,
            parent_based: true,
            max_queue_size: Some(Self::DEFAULT_MAX_QUEUE_SIZE),
        }
    }
}

/// Why a harness could not be installed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum InstallError {
    /// A harness is already installed for this pipeline; it can be installed once per process.
    AlreadyInstalled,
    /// The sampling ratio is not a number in `0.0..=1.0`.
    InvalidSamplingRatio(f64),
    /// A bounded queue must hold at least one span.
    ZeroQueueSize,
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::AlreadyInstalled => {
                f.write_str("a tracing harness is already installed for this pipeline")
            }
            InstallError::InvalidSamplingRatio(ratio) => {
                write!(f, "sampling ratio {ratio} is not in 0.0..=1.0")
            }
            InstallError::ZeroQueueSize => f.write_str("max_queue_size must be at least 1"),
        }
    }
}

impl std::error::Error for InstallError {}

/// Installs the process-global harness of the internal pipeline.
///
/// From then on, [`start_trace`](super::start_trace) and [`span`](super::span) record spans
/// (subject to sampling), and every finished span enters a queue whose receiving end is the
/// returned [`SpanDrain`]: an exporter, or your own consumer, reads it. Finished spans that
/// find the queue full are dropped and counted.
///
/// # Errors
///
/// [`InstallError::AlreadyInstalled`] on a second call; invalid options are rejected before
/// anything is installed.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing::{self, HarnessOptions, StartTraceOptions};
///
/// let drain = tracing::install(HarnessOptions::default()).unwrap();
/// drop(tracing::start_trace("request", StartTraceOptions::default()));
///
/// let span = drain.try_recv().expect("the finished root is queued");
/// assert_eq!(span.name(), "request");
/// assert!(tracing::install(HarnessOptions::default()).is_err());
/// ```
pub fn install(options: HarnessOptions) -> Result<SpanDrain, InstallError> {
    install_pipeline(
        Pipeline::Internal,
        if options.parent_based {
            RootSampling::Ratio(options.sampling_ratio)
        } else {
            RootSampling::RatioIgnoringParent(options.sampling_ratio)
        },
        &options,
    )
}

pub(crate) fn install_pipeline(
    pipeline: Pipeline,
    sampling: RootSampling,
    options: &HarnessOptions,
) -> Result<SpanDrain, InstallError> {
    let ratio = options.sampling_ratio;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(InstallError::InvalidSamplingRatio(ratio));
    }
    if options.max_queue_size == Some(0) {
        return Err(InstallError::ZeroQueueSize);
    }
    let slot = global_slot(pipeline);
    if slot.get().is_some() {
        return Err(InstallError::AlreadyInstalled);
    }
    let (queue, drain) = SpanDrain::new(options.max_queue_size);
    slot.set(Harness::with_sink(sampling, Sink::Queue(queue)))
        .map_err(|_| InstallError::AlreadyInstalled)?;
    Ok(drain)
}

/// A snapshot of a harness queue's counters. All counts are since installation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Finished spans that entered the queue.
    pub queued: u64,
    /// Finished spans dropped because the queue was full.
    pub dropped_queue_full: u64,
}

/// The bounded queue between finished spans and their consumer.
///
/// Lock-free on the producer side: a finished span costs a push and one atomic add.
/// Producers never wake the consumer per span (that is a syscall each time); they wake it
/// only when the queue length reaches the threshold a waiting consumer asked for, so a
/// batching consumer is woken once per batch, or by its own flush timeout.
///
/// Producers and consumers run on different cores, so what each side writes per span lives
/// on its own cache line, and a batch consumer settles `len` once per batch: every write the
/// consumer makes to the producers' line costs the next producer a cache miss.
struct SpanQueue {
    spans: SegQueue<FinishedSpan>,
    producers: CacheLine<ProducerCounters>,
    /// Spans taken out by consumers; `queued` is derived from it so that producers pay for
    /// one counter, not two.
    popped: CacheLine<AtomicU64>,
    wake: Notify,
}

/// What producers read or write for every span.
struct ProducerCounters {
    /// Spans pushed and not yet accounted as popped, counted before the push so that the
    /// bound is never exceeded. Consumers subtract after popping, so it may briefly count
    /// spans already taken out: the bound errs on the side of holding fewer.
    len: AtomicUsize,
    max_len: usize,
    /// Queue length at which producers wake waiting consumers; `usize::MAX` when none waits.
    wake_at: AtomicUsize,
    dropped_queue_full: AtomicU64,
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
            spans: SegQueue::new(),
            producers: CacheLine(ProducerCounters {
                len: AtomicUsize::new(0),
                max_len: max_len.unwrap_or(usize::MAX),
                wake_at: AtomicUsize::new(usize::MAX),
                dropped_queue_full: AtomicU64::new(0),
            }),
            popped: CacheLine(AtomicU64::new(0)),
            wake: Notify::new(),
        }
    }

    fn len(&self) -> usize {
        self.producers.len.load(Ordering::Acquire)
    }

    /// Pushes the record `make` builds, if there is room (see [`Sink::push_with`]).
    #[inline]
    fn push_with(&self, make: impl FnOnce() -> FinishedSpan) {
        let counters = &*self.producers;
        let len = counters.len.fetch_add(1, Ordering::AcqRel);
        if len >= counters.max_len {
            counters.len.fetch_sub(1, Ordering::AcqRel);
            counters.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.spans.push(make());
        if len + 1 == counters.wake_at.load(Ordering::Acquire) {
            self.wake.notify_waiters();
        }
    }

    /// Moves up to `limit` spans into `buffer`, accounting for them once. Returns how many.
    fn pop_into(&self, buffer: &mut Vec<FinishedSpan>, limit: usize) -> usize {
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
        let span = self.spans.pop()?;
        self.producers.len.fetch_sub(1, Ordering::AcqRel);
        self.popped.fetch_add(1, Ordering::Relaxed);
        Some(span)
    }

    /// Waits until at least `count` spans are queued, or until `deadline`.
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
                None => notified.await,
            }
        }
    }
}

/// The receiving end of a harness queue: every finished, sampled span of the pipeline.
///
/// Exporters read it in batches with [`recv_batch`](Self::recv_batch); simpler consumers
/// use [`recv`](Self::recv) or the non-blocking [`try_recv`](Self::try_recv). Clones share
/// the queue, so several workers can drain it; each span is received once.
#[derive(Clone)]
pub struct SpanDrain {
    queue: Arc<SpanQueue>,
}

impl SpanDrain {
    fn new(max_len: Option<usize>) -> (Arc<SpanQueue>, Self) {
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
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn harness(max_len: Option<usize>) -> (Arc<Harness>, SpanDrain) {
        let (queue, drain) = SpanDrain::new(max_len);
        let harness = Harness::with_sink(RootSampling::Always, Sink::Queue(queue));
        (Arc::new(harness), drain)
    }

    fn finish_spans(harness: &Arc<Harness>, count: usize) {
        for _ in 0..count {
            let harness = HarnessRef::Owned(Arc::clone(harness));
            drop(harness.start_root("s".into(), RootOptions::default()));
        }
    }

    #[test]
    fn full_queue_drops_and_counts_every_extra_span() {
        let (harness, drain) = harness(Some(10));
        finish_spans(&harness, 25);
        assert_eq!(drain.len(), 10);
        assert_eq!(
            drain.stats(),
            QueueStats {
                queued: 10,
                dropped_queue_full: 15
            }
        );
        let mut batch = Vec::new();
        assert_eq!(drain.drain_into(&mut batch, 100), 10);
        // Room again after draining.
        finish_spans(&harness, 1);
        assert_eq!(drain.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recv_batch_wakes_when_the_batch_is_full() {
        let (harness, drain) = harness(None);
        let producer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            finish_spans(&harness, 64);
        });
        let started = Instant::now();
        let mut batch = Vec::new();
        let mut received = 0;
        while received < 64 {
            received += drain
                .recv_batch(&mut batch, 64, Duration::from_secs(30))
                .await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "woken by the batch, not the timeout"
        );
        assert_eq!(batch.len(), 64);
        producer.join().unwrap();
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn recv_batch_returns_a_partial_batch_after_max_wait() {
        let (harness, drain) = harness(None);
        finish_spans(&harness, 3);
        let mut batch = Vec::new();
        let received = drain
            .recv_batch(&mut batch, 512, Duration::from_millis(200))
            .await;
        assert_eq!(received, 3);
        let received = drain
            .recv_batch(&mut batch, 512, Duration::from_millis(200))
            .await;
        assert_eq!(received, 0, "an empty queue times out with nothing");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recv_waits_for_a_single_span() {
        let (harness, drain) = harness(None);
        let producer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            finish_spans(&harness, 1);
        });
        let span = tokio::time::timeout(Duration::from_secs(30), drain.recv())
            .await
            .expect("woken by the span");
        assert_eq!(span.name(), "s");
        producer.join().unwrap();
    }
}

#[cfg(test)]
mod sampling_tests {
    use super::*;
    use crate::telemetry::tracing::w3c::TraceparentContext;

    fn sampled_share(sampling: RootSampling, inbound: Option<&str>) -> f64 {
        let (queue, _drain) = SpanDrain::new(None);
        let harness = Arc::new(Harness::with_sink(sampling, Sink::Queue(queue)));
        let runs = 4_000;
        let sampled = (0..runs)
            .filter(|_| {
                let options = RootOptions {
                    inbound: inbound.map(|tp| (tp.parse::<TraceparentContext>().unwrap(), None)),
                    ..Default::default()
                };
                HarnessRef::Owned(Arc::clone(&harness))
                    .start_root("r".into(), options)
                    .state()
                    .flags()
                    .is_sampled()
            })
            .count();
        sampled as f64 / runs as f64
    }

    #[test]
    fn parent_based_follows_the_inbound_flag_and_ratio_ignoring_parent_does_not() {
        let sampled_inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let unsampled_inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(
            sampled_share(RootSampling::Ratio(0.0), Some(sampled_inbound)),
            1.0
        );
        assert_eq!(
            sampled_share(RootSampling::Ratio(1.0), Some(unsampled_inbound)),
            0.0
        );
        assert_eq!(
            sampled_share(
                RootSampling::RatioIgnoringParent(0.0),
                Some(sampled_inbound)
            ),
            0.0
        );
        assert_eq!(
            sampled_share(
                RootSampling::RatioIgnoringParent(1.0),
                Some(unsampled_inbound)
            ),
            1.0
        );
        let half = sampled_share(
            RootSampling::RatioIgnoringParent(0.5),
            Some(sampled_inbound),
        );
        assert!((0.45..=0.55).contains(&half), "{half}");
    }
}
