//! The internal pipeline's macros: `record_span_error!`, `add_span_tags!`,
//! `add_span_log_fields!`, `set_span_finish_callback!`. Exported at the crate root; each
//! asks first whether the current internal span is recorded, so that its arguments are
//! evaluated only then, and expands to the calls in [`macros`](super::macros).
//!
//! This module holds only the macro definitions and their docs: what they call is
//! `macros`' and the core's.

/// Records an error on the current span of the internal pipeline, as
/// [`tracing::record_error`](crate::telemetry::tracing::record_error) does; the expression
/// (anything that derefs to a `std::error::Error`, by reference) is evaluated only when the
/// span is recorded.
///
/// # Examples
///
/// ```
/// use foundations::record_span_error;
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("parse", StartTraceOptions::default());
/// if let Err(error) = "x".parse::<u8>() {
///     record_span_error!(error);
/// }
/// ```
#[macro_export]
macro_rules! record_span_error {
    ($error:expr $(,)?) => {
        if $crate::telemetry::tracing::__private::INTERNAL.is_recording() {
            $crate::telemetry::tracing::__private::INTERNAL.record_error(&$error);
        }
    };
}

/// Adds tags to the current span of the internal pipeline.
///
/// Each tag is `name => value`, where the name converts into `Cow<'static, str>` and the
/// value into a [`TagValue`](crate::telemetry::tracing::TagValue) (string, `bool`, `i64` or `f64`). A tag replaces an earlier one
/// of the same name. The expressions are evaluated only when the current span is recorded.
///
/// # Examples
///
/// ```
/// use foundations::add_span_tags;
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("request", StartTraceOptions::default());
/// add_span_tags!("http.request.method" => "GET", "retry" => false, "attempt" => 1);
/// ```
#[macro_export]
macro_rules! add_span_tags {
    // One tag of literals, the commonest case: building it runs no application code, so
    // the check and the hand-over take one borrow of the stack.
    ($name:literal => $value:literal $(,)?) => {
        $crate::telemetry::tracing::__private::INTERNAL.set_literal_tag(|| {
            $crate::telemetry::tracing::__private::MacroTag::new($name, $value)
        })
    };
    // One tag, the common case, is handed over as it is: no array to iterate.
    ($name:expr => $value:expr $(,)?) => {
        if $crate::telemetry::tracing::__private::INTERNAL.is_recording() {
            $crate::telemetry::tracing::__private::INTERNAL.set_macro_tag(
                $crate::telemetry::tracing::__private::MacroTag::new($name, $value),
            );
        }
    };
    ($($name:expr => $value:expr),+ $(,)?) => {
        if $crate::telemetry::tracing::__private::INTERNAL.is_recording() {
            $crate::telemetry::tracing::__private::INTERNAL.set_macro_tags([
                $($crate::telemetry::tracing::__private::MacroTag::new($name, $value)),+
            ]);
        }
    };
}

/// Adds a log entry (timestamped key–value fields) to the current span of the internal
/// pipeline.
///
/// Names and values convert into `Cow<'static, str>`. The expressions are evaluated only when
/// the current span is recorded.
///
/// # Examples
///
/// ```
/// use foundations::add_span_log_fields;
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("request", StartTraceOptions::default());
/// add_span_log_fields!("event" => "cache_miss", "key" => format!("user/{}", 42));
/// ```
#[macro_export]
macro_rules! add_span_log_fields {
    ($($name:expr => $value:expr),+ $(,)?) => {
        if $crate::telemetry::tracing::__private::INTERNAL.is_recording() {
            $crate::telemetry::tracing::__private::INTERNAL.log([
                $($crate::telemetry::tracing::LogField::new($name, $value)),+
            ]);
        }
    };
}

/// Sets a callback that runs when the current span of the internal pipeline finishes.
///
/// The callback receives the span (`&mut Span`) just before it is queued, so it can add
/// last-minute tags; children opened later inherit it. It runs on whichever thread drops the
/// span's last handle, never under a lock of ours.
///
/// # Examples
///
/// ```
/// use foundations::set_span_finish_callback;
/// use foundations::telemetry::tracing::{self, Span, StartTraceOptions, Tag};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("request", StartTraceOptions::default());
/// set_span_finish_callback!(|span: &mut Span| span.set_tag(|| Tag::new("finished", true)));
/// ```
#[macro_export]
macro_rules! set_span_finish_callback {
    ($callback:expr) => {
        if $crate::telemetry::tracing::__private::INTERNAL.is_recording() {
            $crate::telemetry::tracing::__private::INTERNAL.set_finish_callback($callback);
        }
    };
}
