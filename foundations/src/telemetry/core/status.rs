//! [`SpanKind`] and [`SpanStatus`]: a span's kind and status as typed values, and how they
//! are recorded as tags (`span.kind`, `otel.status_code`, `error`, `error.message`) and read
//! back from them, for both pipelines.
//!
//! A span keeps its kind and status as tags, so the typed API and the tags set by hand are
//! one mechanism: the last tag written wins. The exporter and the test harness read them
//! back with the functions here. This module owns that mapping; it records nothing itself.

use cf_rustracing::tag::{Tag, TagValue};
use std::borrow::Cow;

/// Tag that records a span's kind: `server`, `client`, `producer`, `consumer`, `internal`.
pub(crate) const SPAN_KIND_TAG: &str = "span.kind";
/// Tag that records a span's status code: `OK`, `ERROR` or `UNSET` (any case).
pub(crate) const STATUS_CODE_TAG: &str = "otel.status_code";
/// Tag that marks a span as an error when `true` (status Error); `false` is status Unset.
pub(crate) const ERROR_TAG: &str = "error";
/// Tag with the message of an error status.
pub(crate) const ERROR_MESSAGE_TAG: &str = "error.message";

/// What a span represents in a request (OpenTelemetry's span kind). Default: `Internal`.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing::{self, SpanKind, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("GET /users", StartTraceOptions::default());
/// tracing::set_span_kind(SpanKind::Server);
/// # drop(_root);
/// # assert_eq!(ctx.traces(Default::default())[0].kind, SpanKind::Server);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SpanKind {
    /// An operation inside the service (the default).
    #[default]
    Internal,
    /// The service handling a request from a remote client.
    Server,
    /// A request to a remote service.
    Client,
    /// A message sent for later, asynchronous processing.
    Producer,
    /// A message received for processing.
    Consumer,
}

impl SpanKind {
    /// The value of the `span.kind` tag that records this kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }

    /// The kind a `span.kind` tag value names (any case); `None` for any other value.
    pub fn from_tag_value(value: &TagValue) -> Option<Self> {
        let TagValue::String(kind) = value else {
            return None;
        };
        Self::parse(kind)
    }

    /// The kind `name` names (`server`, `client`, ... in any case); `None` for any other.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        [
            SpanKind::Internal,
            SpanKind::Server,
            SpanKind::Client,
            SpanKind::Producer,
            SpanKind::Consumer,
        ]
        .into_iter()
        .find(|candidate| name.eq_ignore_ascii_case(candidate.as_str()))
    }

    pub(crate) fn tag(self) -> Tag {
        Tag::new(SPAN_KIND_TAG, self.as_str())
    }
}

/// A span's status (OpenTelemetry's): unset, ok, or an error with a message.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing::{self, SpanStatus, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("charge", StartTraceOptions::default());
/// tracing::set_span_status(SpanStatus::error("card declined"));
/// # drop(_root);
/// # assert_eq!(ctx.traces(Default::default())[0].status, SpanStatus::error("card declined"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SpanStatus {
    /// No status set (the default).
    #[default]
    Unset,
    /// The operation succeeded (set explicitly).
    Ok,
    /// The operation failed.
    Error {
        /// What went wrong; may be empty.
        message: Cow<'static, str>,
    },
}

impl SpanStatus {
    /// An error status with `message`.
    pub fn error(message: impl Into<Cow<'static, str>>) -> Self {
        SpanStatus::Error {
            message: message.into(),
        }
    }

    /// The tags that record this status, replacing any earlier status tags.
    pub(crate) fn into_tags(self) -> [Tag; 3] {
        let (code, is_error, message) = match self {
            SpanStatus::Unset => ("UNSET", false, Cow::Borrowed("")),
            SpanStatus::Ok => ("OK", false, Cow::Borrowed("")),
            SpanStatus::Error { message } => ("ERROR", true, message),
        };
        // The code goes last: the last status tag decides, and `error = false` alone would
        // say Unset.
        [
            Tag::new(ERROR_TAG, is_error),
            Tag::new(ERROR_MESSAGE_TAG, message),
            Tag::new(STATUS_CODE_TAG, code),
        ]
    }

    /// The status recorded by `tags` (name and value, in the order they were set).
    #[cfg(feature = "testing")]
    pub(crate) fn from_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a TagValue)>) -> Self {
        let mut code = StatusCode::Unset;
        let mut message = "";
        for (name, value) in tags {
            match status_tag(name, value) {
                Some(StatusTag::Code(new)) => code = new,
                Some(StatusTag::Message(new)) => message = new,
                None => {}
            }
        }
        match code {
            StatusCode::Unset => SpanStatus::Unset,
            StatusCode::Ok => SpanStatus::Ok,
            StatusCode::Error => SpanStatus::error(message.to_owned()),
        }
    }
}

/// A status code, as the status tags record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusCode {
    Unset,
    Ok,
    Error,
}

/// What one tag says about a span's status.
pub(crate) enum StatusTag<'a> {
    Code(StatusCode),
    Message(&'a str),
}

/// What the tag `name` = `value` says about the span's status; `None` when it is not a
/// status tag (or a value the mapping does not know: then it stays an attribute).
pub(crate) fn status_tag<'a>(name: &str, value: &'a TagValue) -> Option<StatusTag<'a>> {
    match (name, value) {
        (ERROR_TAG, TagValue::Boolean(true)) => Some(StatusTag::Code(StatusCode::Error)),
        // Any other `error` value is no error (and is not exported as an attribute).
        (ERROR_TAG, _) => Some(StatusTag::Code(StatusCode::Unset)),
        (ERROR_MESSAGE_TAG, TagValue::String(message)) => Some(StatusTag::Message(message)),
        (STATUS_CODE_TAG, TagValue::String(code)) => {
            let code = match code.to_ascii_uppercase().as_str() {
                "OK" => StatusCode::Ok,
                "ERROR" => StatusCode::Error,
                "UNSET" => StatusCode::Unset,
                _ => return None,
            };
            Some(StatusTag::Code(code))
        }
        _ => None,
    }
}

/// Longest `exception.message` recorded, in bytes: 4 KiB; a longer source chain is cut.
pub const MAX_EXCEPTION_MESSAGE_BYTES: usize = 4 * 1024;

/// `error`'s message followed by those of its sources, joined with `": "`, cut (at a
/// character boundary) to [`MAX_EXCEPTION_MESSAGE_BYTES`]. Runs the errors' `Display`.
pub(crate) fn error_chain_message(error: &(dyn std::error::Error + '_)) -> String {
    use std::fmt::Write;
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        if message.len() >= MAX_EXCEPTION_MESSAGE_BYTES {
            break;
        }
        let _ = write!(message, ": {next}");
        source = next.source();
    }
    if message.len() > MAX_EXCEPTION_MESSAGE_BYTES {
        let mut end = MAX_EXCEPTION_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}
