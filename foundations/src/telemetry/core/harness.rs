//! Harnesses: where a pipeline's root spans come from and where its finished spans go.
//!
//! A harness owns the sampling decision for new roots (ratio, inbound flag, and the root
//! rate limit when one is set) and the sink that finished spans enter: for an installed harness, the bounded queue that a [`SpanDrain`] reads; for a
//! test context, its in-memory sink (a `SpanSink`). It also owns a `cf_rustracing`
//! [`Tracer`](cf_rustracing::Tracer), used only for spans that need a full
//! `cf_rustracing` span (see the `span` module). There is one process-global harness per
//! pipeline, installed once with [`install`]; until then (or when tracing is disabled) no
//! harness answers and every span is inert: nothing is allocated or recorded.
//!
//! This module must not know which span is current (the scope stack owns that) nor how
//! spans are encoded or sent (exporters read a [`SpanDrain`]).

use super::finished::FinishedSpan;
use super::identity::{ParentSpan, RawFinishedSpan, SpanState};
use super::limits::SpanLimits;
use super::pipeline::{PerPipeline, Pipeline};
use super::queue::{SpanDrain, SpanQueue};
use super::rate_limit::{MAX_ROOTS_PER_SECOND, RootRateLimiter};
use super::routing::Routing;
use crate::telemetry::propagation::traceparent::TraceparentContext;
use crate::telemetry::propagation::tracestate::TraceState;
use cf_rustracing::sampler::AllSampler;
use cf_rustracing::span::SpanConsumer;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The installed harness of each pipeline: set once, by [`install`], for the whole process.
static HARNESSES: PerPipeline<OnceLock<Harness>> =
    PerPipeline::new(OnceLock::new(), OnceLock::new());

/// Set once anything that can record a span exists: a harness of either pipeline installed,
/// or a test harness made. Until then every span call returns at once on one load.
static ANYTHING_INSTALLED: AtomicBool = AtomicBool::new(false);

/// Records that a harness (installed, or a test one) exists from now on.
pub(crate) fn note_installed() {
    ANYTHING_INSTALLED.store(true, Ordering::Relaxed);
}

/// `false` while no harness of either pipeline is installed and no test harness was made.
#[inline(always)]
pub(crate) fn anything_installed() -> bool {
    ANYTHING_INSTALLED.load(Ordering::Relaxed)
}

/// The installed harness of pipeline `P`, if any.
#[inline]
pub(crate) fn global<P: Pipeline>() -> Option<&'static Harness> {
    HARNESSES.get::<P>().get()
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

    /// Counts a span lost to a panicking finish callback.
    fn count_callback_panic(&self) {
        match self {
            Sink::Queue(queue) => queue.count_callback_panic(),
            // A test context shows what was recorded; a lost span is simply absent there.
            #[cfg(feature = "testing")]
            Sink::Other(_) => {}
        }
    }

    /// Counts a root the rate limit started unsampled.
    fn count_rate_limited(&self) {
        match self {
            Sink::Queue(queue) => queue.count_rate_limited(),
            // Test contexts have no rate limit.
            #[cfg(feature = "testing")]
            Sink::Other(_) => {}
        }
    }
}

/// Hands spans that finished as `cf_rustracing` spans to a sink, as records bounded by the
/// pipeline's span limits.
struct RawSpanConsumer(Sink, SpanLimits);

impl SpanConsumer<SpanState> for RawSpanConsumer {
    fn consume_span(&self, span: RawFinishedSpan) {
        // Converted here, on the finishing thread, so the raw span's buffers are freed
        // where they were allocated (see the `finished` module).
        self.0.push_with(|| FinishedSpan::from_raw(&span, &self.1));
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

/// A pipeline's sampling policy, span limits and span sink.
pub(crate) struct Harness {
    sink: Sink,
    limits: SpanLimits,
    /// Starts the spans that need a full `cf_rustracing` span; its consumer feeds `sink`.
    tracer: cf_rustracing::Tracer<AllSampler, SpanState>,
    sampling: RootSampling,
    /// The root-creation rate limit, if enabled: asked only for roots that would be
    /// recorded.
    rate_limit: Option<RootRateLimiter>,
}

/// What a new root continues, and how it is sampled.
#[derive(Default)]
pub(crate) struct RootOptions {
    pub(crate) inbound: Option<(TraceparentContext, Option<TraceState>)>,
    /// `Some(decision)` overrides both the ratio and the inbound sampled flag.
    pub(crate) force_sampling: Option<bool>,
    /// Routing of the new trace (user pipeline), inherited by every descendant.
    pub(crate) routing: Option<Arc<Routing>>,
}

impl Harness {
    /// A harness whose spans go to `sink` (a test context's).
    #[cfg(feature = "testing")]
    pub(crate) fn new(sampling: RootSampling, sink: Arc<dyn SpanSink>, limits: SpanLimits) -> Self {
        Self::with_sink(sampling, Sink::Other(sink), limits)
    }

    fn with_sink(sampling: RootSampling, sink: Sink, limits: SpanLimits) -> Self {
        Self {
            tracer: cf_rustracing::Tracer::with_consumer(
                AllSampler,
                RawSpanConsumer(sink.clone(), limits),
            ),
            sink,
            limits,
            sampling,
            rate_limit: None,
        }
    }

    /// Limits recorded roots to `max_roots_per_second` (see the `rate_limit` module).
    pub(crate) fn with_rate_limit(mut self, limiter: Option<RootRateLimiter>) -> Self {
        self.rate_limit = limiter;
        self
    }

    /// What one span of this pipeline keeps.
    #[inline]
    pub(crate) fn limits(&self) -> &SpanLimits {
        &self.limits
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

    /// Counts a span that its finish callback lost by panicking.
    pub(crate) fn count_callback_panic(&self) {
        self.sink.count_callback_panic();
    }

    /// Whether the rate limit lets one more root of pipeline `P` be recorded; counts the
    /// refusal. Free when no limit is set.
    #[inline]
    fn admit<P: Pipeline>(&self) -> bool {
        match &self.rate_limit {
            None => true,
            Some(limiter) => limiter.admit::<P>() || self.refuse(),
        }
    }

    #[cold]
    #[inline(never)]
    fn refuse(&self) -> bool {
        self.sink.count_rate_limited();
        false
    }

    #[inline]
    fn sample_new_root(&self) -> bool {
        match self.sampling {
            RootSampling::Always => true,
            RootSampling::Ratio(ratio) | RootSampling::RatioIgnoringParent(ratio) => {
                ratio >= 1.0 || (ratio > 0.0 && Self::draw_below(ratio))
            }
        }
    }

    /// A random draw that succeeds with probability `ratio`: out of line, so that the
    /// ratios that need no draw (0 and 1) stay a compare in the caller.
    #[inline(never)]
    fn draw_below(ratio: f64) -> bool {
        rand::random::<f64>() < ratio
    }
}

impl HarnessRef {
    /// Whether a new trace (no inbound `traceparent`) of pipeline `P` is recorded: as
    /// `force_sampling` says, else by the sampling ratio and then the rate limit. What
    /// [`plan_root`](Self::plan_root) decides for such a root, for callers that build the
    /// root's identity themselves (once per root: a limit counts each call).
    #[inline]
    pub(crate) fn samples_new_root<P: Pipeline>(&self, force_sampling: Option<bool>) -> bool {
        force_sampling.unwrap_or_else(|| self.sample_new_root() && self.admit::<P>())
    }

    /// Decides a new root of pipeline `P`: its identity, and whether it is recorded. Cheap,
    /// and runs no application code; callers then build the span where it will live.
    ///
    /// A root that sampling would record is then subject to the rate limit, if one is set:
    /// continued traces whose inbound flag says sampled included, so that no caller can
    /// push this service past its limit; a limited root starts unsampled, as a whole trace.
    /// Only [`force_sampling`](RootOptions::force_sampling) bypasses the limit: it is the
    /// application's explicit decision.
    #[inline]
    pub(crate) fn plan_root<P: Pipeline>(&self, options: RootOptions) -> RootPlan {
        let limited = |sampled: bool| sampled && self.admit::<P>();
        match options.inbound {
            Some((inbound, trace_state)) => {
                let remote = SpanState::remote(&inbound, trace_state).with_routing(options.routing);
                let sampled = options.force_sampling.unwrap_or_else(|| {
                    limited(match self.sampling {
                        RootSampling::Ratio(_) => inbound.flags.is_sampled(),
                        RootSampling::RatioIgnoringParent(_) => self.sample_new_root(),
                        RootSampling::Always => true,
                    })
                });
                // Recorded or not, this service takes part in the request: the root gets a
                // span id of its own, which is what a downstream `traceparent` names as its
                // parent (W3C Level 2). Trace id and flags (random bit included) are kept.
                let state = remote.child().with_sampled(sampled);
                if !sampled {
                    return RootPlan::Unsampled(state);
                }
                RootPlan::Recorded {
                    state,
                    parent: Some(ParentSpan::of(&remote)),
                }
            }
            None => {
                let sampled = self.samples_new_root::<P>(options.force_sampling);
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
    /// Not recorded: the root's identity (its own span id; its descendants get theirs).
    Unsampled(SpanState),
    /// Recorded: the new span's state, and its remote parent if it continues a trace.
    Recorded {
        state: SpanState,
        parent: Option<ParentSpan>,
    },
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("sampling", &self.sampling)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

/// Options for installing a pipeline's harness without an exporter (see
/// `telemetry::testing::install_tracing`).
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "testing")]
/// # {
/// use foundations::telemetry::testing::HarnessOptions;
///
/// let options = HarnessOptions::default()
///     .sampling_ratio(0.25)
///     .max_queue_size(Some(10_000));
/// assert_eq!(options.get_sampling_ratio(), 0.25);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HarnessOptions {
    sampling_ratio: f64,
    parent_based: bool,
    max_queue_size: Option<usize>,
    max_roots_per_second: Option<u64>,
    span_limits: SpanLimits,
}

// Public through `telemetry::testing`: some accessors are for its users only.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
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
    /// [`QueueStats::dropped_queue_full`](super::queue::QueueStats::dropped_queue_full). Default: 1,000,000.
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

    /// Limits the roots recorded per second (`None`, the default: no limit). Roots past
    /// the rate start unsampled, with all their descendants, and are counted in
    /// [`QueueStats::roots_rate_limited`](super::queue::QueueStats::roots_rate_limited).
    /// At most 10,000,000.
    pub fn max_roots_per_second(mut self, rate: Option<u64>) -> Self {
        self.max_roots_per_second = rate;
        self
    }

    /// The configured root rate limit.
    pub fn get_max_roots_per_second(&self) -> Option<u64> {
        self.max_roots_per_second
    }

    /// What one span keeps: attributes, events, attributes per event, links, value length.
    /// Default: [`SpanLimits::default`] (OpenTelemetry's).
    pub fn span_limits(mut self, limits: SpanLimits) -> Self {
        self.span_limits = limits;
        self
    }

    /// The configured span limits.
    pub fn get_span_limits(&self) -> SpanLimits {
        self.span_limits
    }
}

impl Default for HarnessOptions {
    fn default() -> Self {
        Self {
            sampling_ratio: Self::DEFAULT_SAMPLING_RATIO,
            parent_based: true,
            max_queue_size: Some(Self::DEFAULT_MAX_QUEUE_SIZE),
            max_roots_per_second: None,
            span_limits: SpanLimits::default(),
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
    /// The root rate limit is not in `1..=10_000_000` roots per second.
    InvalidRateLimit(u64),
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
            InstallError::InvalidRateLimit(rate) => {
                write!(
                    f,
                    "max_roots_per_second {rate} is not in 1..={MAX_ROOTS_PER_SECOND}"
                )
            }
        }
    }
}

impl std::error::Error for InstallError {}

/// Installs the process-global harness of pipeline `P`; the returned [`SpanDrain`] receives
/// every finished span of `P` from then on.
///
/// A pipeline whose roots are sampled ([`Pipeline::SAMPLED`]) samples by the options' ratio
/// (parent-based or not); the other records every root it is asked to start. Invalid options
/// are rejected before anything is installed.
pub(crate) fn install<P: Pipeline>(options: &HarnessOptions) -> Result<SpanDrain, InstallError> {
    check::<P>(options)?;
    let ratio = options.sampling_ratio;
    let sampling = match (P::SAMPLED, options.parent_based) {
        (false, _) => RootSampling::Always,
        (true, true) => RootSampling::Ratio(ratio),
        (true, false) => RootSampling::RatioIgnoringParent(ratio),
    };
    let (queue, drain) = SpanDrain::new(options.max_queue_size);
    HARNESSES
        .get::<P>()
        .set(
            Harness::with_sink(sampling, Sink::Queue(queue), options.span_limits)
                .with_rate_limit(options.max_roots_per_second.map(RootRateLimiter::new)),
        )
        .map_err(|_| InstallError::AlreadyInstalled)?;
    note_installed();
    Ok(drain)
}

/// Whether [`install`] would succeed now: the options are valid and no harness of `P` is
/// installed. Lets `init` check both pipelines before it installs either.
pub(crate) fn check<P: Pipeline>(options: &HarnessOptions) -> Result<(), InstallError> {
    let ratio = options.sampling_ratio;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(InstallError::InvalidSamplingRatio(ratio));
    }
    if options.max_queue_size == Some(0) {
        return Err(InstallError::ZeroQueueSize);
    }
    if let Some(rate) = options.max_roots_per_second {
        if !(1..=MAX_ROOTS_PER_SECOND).contains(&rate) {
            return Err(InstallError::InvalidRateLimit(rate));
        }
    }
    if HARNESSES.get::<P>().get().is_some() {
        return Err(InstallError::AlreadyInstalled);
    }
    Ok(())
}

#[cfg(test)]
#[path = "harness_tests.rs"]
mod tests;
