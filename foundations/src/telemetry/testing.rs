//! In-memory span sinks for tests (feature `testing`).
//!
//! [`TelemetryContext::test`] returns a [`TestTelemetryContext`]: a context whose own
//! harnesses record every span started inside it (100% sampling) into memory, where
//! [`TestTelemetryContext::traces`] (internal pipeline) and `user_traces` (user pipeline)
//! read them back as trees. Each test context has its own
//! sinks, so tests running in parallel in one process never see each other's spans, and
//! nothing reaches the process-global harnesses or their exporters.
//!
//! This module owns the sinks and the tree view of finished spans; it must not change how
//! spans are created or carried.

pub use crate::telemetry::core::finished::{FinishedSpan, SpanTags};
pub use crate::telemetry::core::harness::{HarnessOptions, InstallError};
pub use crate::telemetry::core::identity::ParentSpan;
pub use crate::telemetry::core::queue::{QueueStats, SpanDrain};

use crate::telemetry::TelemetryContext;
use crate::telemetry::core::harness::{self, Harness, RootSampling, SpanSink};
use crate::telemetry::core::limits::SpanLimits;
use crate::telemetry::core::links::SpanLink;
use crate::telemetry::core::pipeline::{Internal, PerPipeline};
use crate::telemetry::core::status::{SpanKind, SpanStatus};
use crate::telemetry::propagation::ids::{SpanId, TraceFlags, TraceId};
use crate::telemetry::propagation::tracestate::TraceState;
use cf_rustracing::tag::TagValue;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::SystemTime;

/// A span of this name makes the exporter worker that encodes it panic: tests use it to
/// provoke a worker's death and check that it is restarted and that the spans it held are
/// counted (`ExporterStats::dropped_worker_panicked`). Only builds with the `testing`
/// feature look for it.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::testing::PANIC_IN_EXPORT;
///
/// assert!(PANIC_IN_EXPORT.starts_with("foundations."));
/// ```
pub const PANIC_IN_EXPORT: &str = "foundations.testing.panic_in_export";

/// Collects finished spans of one pipeline of one test context.
#[derive(Default)]
struct TestSink {
    spans: Mutex<Vec<FinishedSpan>>,
}

impl SpanSink for TestSink {
    fn push(&self, span: FinishedSpan) {
        self.spans.lock().push(span);
    }
}

impl TelemetryContext {
    /// A context for tests: spans started inside it are recorded (all of them) into
    /// in-memory sinks of its own, readable with [`TestTelemetryContext::traces`].
    ///
    /// # Examples
    ///
    /// ```
    /// use foundations::telemetry::TelemetryContext;
    /// use foundations::telemetry::tracing::{self, StartTraceOptions};
    ///
    /// let ctx = TelemetryContext::test();
    /// ctx.scope_and(|| {
    ///     let _root = tracing::start_trace("root", StartTraceOptions::default());
    ///     let _child = tracing::span("child");
    /// });
    /// let traces = ctx.traces(Default::default());
    /// assert_eq!(traces[0].name, "root");
    /// assert_eq!(traces[0].children[0].name, "child");
    /// ```
    pub fn test() -> TestTelemetryContext {
        Self::test_with_span_limits(SpanLimits::default())
    }

    /// Like [`test`](Self::test), with span limits other than the defaults, for both
    /// pipelines.
    ///
    /// # Examples
    ///
    /// ```
    /// use foundations::add_span_tags;
    /// use foundations::telemetry::{SpanLimits, TelemetryContext};
    /// use foundations::telemetry::tracing::{self, StartTraceOptions};
    ///
    /// let ctx = TelemetryContext::test_with_span_limits(SpanLimits::default().with_max_attributes(2));
    /// ctx.scope_and(|| {
    ///     let _root = tracing::start_trace("root", StartTraceOptions::default());
    ///     add_span_tags!("a" => 1, "b" => 2, "c" => 3);
    /// });
    /// let root = &ctx.traces(Default::default())[0];
    /// assert_eq!(root.tags.len(), 2);
    /// assert_eq!(root.dropped_attributes_count, 1);
    /// ```
    pub fn test_with_span_limits(limits: SpanLimits) -> TestTelemetryContext {
        crate::telemetry::core::current::note_test_harness();
        let sinks = PerPipeline::new(Arc::new(TestSink::default()), Arc::new(TestSink::default()));
        let internal = Harness::new(RootSampling::Ratio(1.0), sinks.internal.clone(), limits);
        let user = Harness::new(RootSampling::Always, sinks.user.clone(), limits);
        let ctx = TelemetryContext::with_test_harnesses(PerPipeline::new(
            Some(Arc::new(internal)),
            Some(Arc::new(user)),
        ));
        TestTelemetryContext { ctx, sinks }
    }
}

/// A [`TelemetryContext`] that records its spans in memory. Created by
/// [`TelemetryContext::test`].
///
/// It dereferences to its `TelemetryContext`, so `scope()`, `scope_and()` and
/// `with_forked_trace()` work as usual; [`apply`](Self::apply) takes `&self`.
pub struct TestTelemetryContext {
    ctx: TelemetryContext,
    sinks: PerPipeline<Arc<TestSink>>,
}

impl Deref for TestTelemetryContext {
    type Target = TelemetryContext;

    fn deref(&self) -> &TelemetryContext {
        &self.ctx
    }
}

impl std::fmt::Debug for TestTelemetryContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestTelemetryContext")
            .field("internal_spans", &self.sinks.internal.spans.lock().len())
            .field("user_spans", &self.sinks.user.spans.lock().len())
            .finish_non_exhaustive()
    }
}

impl TestTelemetryContext {
    /// Wraps `future` so that this test context is current during every poll of it.
    pub fn apply<F: Future>(&self, future: F) -> crate::telemetry::WithTelemetryContext<F> {
        self.ctx.clone().apply(future)
    }

    /// The finished spans of the internal pipeline, as trees.
    ///
    /// A span is a root when it has no parent, when its parent is remote (a trace continued
    /// from an inbound `traceparent`), or when its parent was not recorded here or has not
    /// finished yet.
    pub fn traces(&self, options: TestTraceOptions) -> Vec<TestSpan> {
        build_trees(&self.sinks.internal.spans.lock(), &options)
    }

    /// The recorded internal spans as exporters receive them (for in-crate exporter tests).
    #[cfg(test)]
    pub(crate) fn finished_internal_spans(&self) -> Vec<FinishedSpan> {
        self.sinks.internal.spans.lock().clone()
    }

    /// The finished spans of the user pipeline, as trees; each span shows the routing of its
    /// trace ([`TestSpan::routing`]). Roots are chosen as in [`traces`](Self::traces).
    #[cfg(feature = "user-tracing")]
    pub fn user_traces(&self, options: TestTraceOptions) -> Vec<TestSpan> {
        build_trees(&self.sinks.user.spans.lock(), &options)
    }
}

/// How [`TestTelemetryContext::traces`] presents its trees.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TestTraceOptions {
    /// Order roots and siblings by start time (the default). When `false`, they keep the
    /// order in which they finished.
    pub order_by_start_time: bool,
}

impl Default for TestTraceOptions {
    fn default() -> Self {
        Self {
            order_by_start_time: true,
        }
    }
}

/// A log entry of a [`TestSpan`].
#[derive(Clone, Debug, PartialEq)]
pub struct TestLog {
    /// When the entry was recorded.
    pub time: SystemTime,
    /// Its fields, sorted by name.
    pub fields: Vec<(String, String)>,
    /// Fields beyond the per-event attribute limit, dropped.
    pub dropped_attributes_count: u32,
}

/// A finished span and its finished children, as [`TestTelemetryContext::traces`] shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct TestSpan {
    /// Operation name.
    pub name: String,
    /// Trace id.
    pub trace_id: TraceId,
    /// Span id.
    pub span_id: SpanId,
    /// The parent's span id; for a continued root, the inbound parent id.
    pub parent_id: Option<SpanId>,
    /// `true` when the parent is a span of another process (an inbound `traceparent`).
    pub remote_parent: bool,
    /// W3C trace flags.
    pub flags: TraceFlags,
    /// The W3C `tracestate` carried by the trace.
    pub trace_state: Option<TraceState>,
    /// Tags, sorted by name (at most the attribute limit).
    pub tags: Vec<(String, TagValue)>,
    /// Tags set beyond the attribute limit, dropped (OTLP `dropped_attributes_count`).
    pub dropped_attributes_count: u32,
    /// The span's kind, as exported (from the `span.kind` tag; default `Internal`).
    pub kind: SpanKind,
    /// The span's status, as exported (from the status tags, the last one set winning).
    pub status: SpanStatus,
    /// The span's links, in the order added.
    pub links: Vec<SpanLink>,
    /// Links added beyond the links limit and dropped.
    pub dropped_links_count: u32,
    /// Log entries, in the order recorded (at most the events limit).
    pub logs: Vec<TestLog>,
    /// Log entries added beyond the events limit, dropped (OTLP `dropped_events_count`).
    pub dropped_events_count: u32,
    /// Start time.
    pub start_time: SystemTime,
    /// Finish time.
    pub finish_time: SystemTime,
    /// The header value the trace's routing encoded to (user pipeline); `None` for internal
    /// spans, and for a routing whose `encode()` panicked or gave no valid header value.
    pub routing: Option<String>,
    /// Finished children.
    pub children: Vec<TestSpan>,
}

impl TestSpan {
    /// The value of tag `name`, if set.
    pub fn tag(&self, name: &str) -> Option<&TagValue> {
        self.tags.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The first span named `name` in this tree (depth first, this span included).
    pub fn find(&self, name: &str) -> Option<&TestSpan> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|child| child.find(name))
    }

    /// Every span of this tree, depth first, this span first.
    pub fn iter(&self) -> impl Iterator<Item = &TestSpan> {
        let mut stack = vec![self];
        std::iter::from_fn(move || {
            let span = stack.pop()?;
            stack.extend(span.children.iter().rev());
            Some(span)
        })
    }
}

fn to_test_span(span: &FinishedSpan) -> TestSpan {
    let state = span.state();
    let mut tags: Vec<_> = span
        .tags()
        .iter()
        .map(|tag| (tag.name().to_owned(), tag.value().clone()))
        .collect();
    tags.sort_by(|a, b| a.0.cmp(&b.0));
    let kind = span
        .tags()
        .iter()
        .rev()
        .find(|tag| tag.name() == "span.kind")
        .and_then(|tag| SpanKind::from_tag_value(tag.value()))
        .unwrap_or_default();
    let status = SpanStatus::from_tags(span.tags().iter().map(|tag| (tag.name(), tag.value())));
    TestSpan {
        name: span.name().to_owned(),
        trace_id: state.trace_id(),
        span_id: state.span_id(),
        parent_id: span.parent().map(|parent| parent.span_id),
        remote_parent: span.parent().is_some_and(|parent| parent.is_remote),
        flags: state.flags(),
        trace_state: state.trace_state().cloned(),
        tags,
        dropped_attributes_count: span.dropped_attributes_count(),
        kind,
        status,
        links: span.links().to_vec(),
        dropped_links_count: span.dropped_links_count(),
        logs: span
            .logs()
            .iter()
            .enumerate()
            .map(|(position, log)| TestLog {
                time: log.time(),
                fields: log
                    .fields()
                    .iter()
                    .map(|field| (field.name().to_owned(), field.value().to_owned()))
                    .collect(),
                dropped_attributes_count: span.event_dropped_attributes_count(position),
            })
            .collect(),
        dropped_events_count: span.dropped_events_count(),
        start_time: span.start_time(),
        finish_time: span.finish_time(),
        routing: span
            .routing_header()
            .and_then(|header| header.ok().map(str::to_owned)),
        children: Vec::new(),
    }
}

fn build_trees(finished: &[FinishedSpan], options: &TestTraceOptions) -> Vec<TestSpan> {
    let spans: Vec<TestSpan> = finished.iter().map(to_test_span).collect();
    let local_ids: HashSet<(TraceId, SpanId)> =
        spans.iter().map(|s| (s.trace_id, s.span_id)).collect();
    let is_root = |span: &TestSpan| match span.parent_id {
        Some(parent) => span.remote_parent || !local_ids.contains(&(span.trace_id, parent)),
        None => true,
    };
    let (roots, mut rest): (Vec<_>, Vec<_>) = spans.into_iter().partition(is_root);
    let mut roots: Vec<TestSpan> = roots
        .into_iter()
        .map(|root| attach_children(root, &mut rest, options))
        .collect();
    if options.order_by_start_time {
        roots.sort_by_key(|span| span.start_time);
    }
    roots
}

fn attach_children(
    mut parent: TestSpan,
    pool: &mut Vec<TestSpan>,
    options: &TestTraceOptions,
) -> TestSpan {
    let (children, rest): (Vec<_>, Vec<_>) = std::mem::take(pool).into_iter().partition(|span| {
        span.trace_id == parent.trace_id && span.parent_id == Some(parent.span_id)
    });
    *pool = rest;
    parent.children = children
        .into_iter()
        .map(|child| attach_children(child, pool, options))
        .collect();
    if options.order_by_start_time {
        parent.children.sort_by_key(|span| span.start_time);
    }
    parent
}

/// Installs the process-global harness of the internal pipeline without an exporter: every
/// finished, sampled span enters a queue whose receiving end is the returned [`SpanDrain`],
/// for a test or a benchmark to read. [`telemetry::init`](crate::telemetry::init) is how a
/// service starts the pipeline; this is the same harness without the export.
///
/// Finished spans that find the queue full are dropped and counted
/// ([`QueueStats::dropped_queue_full`]).
///
/// # Errors
///
/// [`InstallError::AlreadyInstalled`] on a second call (or after `init`); invalid options are
/// rejected before anything is installed.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::testing::{self, HarnessOptions};
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// let drain = testing::install_tracing(HarnessOptions::default()).unwrap();
/// drop(tracing::start_trace("request", StartTraceOptions::default()));
///
/// let span = drain.try_recv().expect("the finished root is queued");
/// assert_eq!(span.name(), "request");
/// assert!(testing::install_tracing(HarnessOptions::default()).is_err());
/// ```
pub fn install_tracing(options: HarnessOptions) -> Result<SpanDrain, InstallError> {
    harness::install::<Internal>(&options)
}

/// Installs the process-global harness of the user pipeline without an exporter (feature
/// `user-tracing`), as [`install_tracing`] does for the internal one. The sampling options
/// are ignored: a user trace is recorded whenever it is started.
///
/// # Errors
///
/// [`InstallError::AlreadyInstalled`] on a second call (or after `init`), or an invalid queue
/// size.
#[cfg(feature = "user-tracing")]
pub fn install_user_tracing(options: HarnessOptions) -> Result<SpanDrain, InstallError> {
    harness::install::<crate::telemetry::core::pipeline::User>(&options.sampling_ratio(1.0))
}
