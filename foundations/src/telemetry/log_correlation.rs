//! Log correlation: log lines written while a span is current carry its `trace_id` and
//! `span_id`, so logs and traces join up in whatever backend receives both.
//!
//! Two ways in:
//! - [`TraceLogger`] wraps any [`log::Log`] and adds `trace_id` and `span_id` as structured
//!   key-values to every record (the `log` crate's `kv` API).
//! - [`current_log_ids`] returns the ids for loggers that are not `log`-based.
//!
//! The ids are those of the internal pipeline's current span, sampled or not (an unsampled
//! trace still has an id worth grepping for). This module reads the current span; it never
//! creates or changes one.

use crate::telemetry::api::internal as tracing;
use crate::telemetry::propagation::ids::{SpanId, TraceId};
use log::kv::{self, Key, Source, Value, VisitSource};

/// The ids a log line should carry: those of the current internal span, if any.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::log_correlation::current_log_ids;
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// assert!(current_log_ids().is_none());
/// let _root = tracing::start_trace("job", StartTraceOptions::default());
/// let ids = current_log_ids().unwrap();
/// eprintln!("trace_id={} span_id={} starting job", ids.trace_id, ids.span_id);
/// ```
pub fn current_log_ids() -> Option<LogIds> {
    Some(LogIds {
        trace_id: tracing::trace_id()?,
        span_id: tracing::span_id()?,
    })
}

/// A trace id and span id to attach to a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogIds {
    /// The current trace.
    pub trace_id: TraceId,
    /// The current span.
    pub span_id: SpanId,
}

/// A [`log::Log`] that adds `trace_id` and `span_id` key-values to every record written while
/// a span is current, then passes it to the wrapped logger.
///
/// # Examples
///
/// ```no_run
/// use foundations::telemetry::log_correlation::TraceLogger;
///
/// # struct MyLogger;
/// # impl log::Log for MyLogger {
/// #     fn enabled(&self, _: &log::Metadata) -> bool { true }
/// #     fn log(&self, _: &log::Record) {}
/// #     fn flush(&self) {}
/// # }
/// log::set_boxed_logger(Box::new(TraceLogger::new(MyLogger))).unwrap();
/// log::set_max_level(log::LevelFilter::Info);
/// ```
#[derive(Debug)]
pub struct TraceLogger<L> {
    inner: L,
}

impl<L: log::Log> TraceLogger<L> {
    /// Wraps `inner`.
    pub fn new(inner: L) -> Self {
        Self { inner }
    }

    /// The wrapped logger.
    pub fn inner(&self) -> &L {
        &self.inner
    }
}

impl<L: log::Log> log::Log for TraceLogger<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        let Some(ids) = current_log_ids() else {
            return self.inner.log(record);
        };
        let source = WithIds {
            trace_id: ids.trace_id.to_string(),
            span_id: ids.span_id.to_string(),
            rest: record.key_values(),
        };
        self.inner.log(
            &log::Record::builder()
                .args(*record.args())
                .metadata(record.metadata().clone())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .key_values(&source)
                .build(),
        );
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// The record's own key-values, preceded by the trace ids.
struct WithIds<'a> {
    trace_id: String,
    span_id: String,
    rest: &'a dyn Source,
}

impl Source for WithIds<'_> {
    fn visit<'kvs>(&'kvs self, visitor: &mut dyn VisitSource<'kvs>) -> Result<(), kv::Error> {
        visitor.visit_pair(
            Key::from_str("trace_id"),
            Value::from(self.trace_id.as_str()),
        )?;
        visitor.visit_pair(Key::from_str("span_id"), Value::from(self.span_id.as_str()))?;
        self.rest.visit(visitor)
    }
}
