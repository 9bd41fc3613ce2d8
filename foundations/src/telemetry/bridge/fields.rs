//! `tracing` field values → span tags and log fields, with the OpenTelemetry conventions
//! `tracing-opentelemetry` users rely on (`otel.name`, `otel.kind`, `otel.status_code`,
//! `otel.status_message`) and the `error` field. Kind and status go through the typed
//! [`SpanKind`] and [`SpanStatus`], so they are recorded exactly as the public API records
//! them.
//!
//! This module only translates values; which span receives them is the layer's decision.

use super::interned;
use crate::telemetry::core::span::{LiveSpan, SpilledTags};
use crate::telemetry::core::status::{ERROR_MESSAGE_TAG, SpanKind, SpanStatus, StatusCode};
use cf_rustracing::log::LogField;
use cf_rustracing::tag::Tag;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::fmt::{self, Write as _};
use tracing_core::field::{Field, Visit};

/// The field that renames a span.
const OTEL_NAME: &str = "otel.name";
/// The field that sets a span's kind (`server`, `client`, `producer`, `consumer`, `internal`).
const OTEL_KIND: &str = "otel.kind";
/// The field that sets a span's status (`ok` or `error`, any case).
const OTEL_STATUS_CODE: &str = "otel.status_code";
/// The field that describes an error status (`otel.status_description` is accepted too).
const OTEL_STATUS_MESSAGE: &str = "otel.status_message";
const OTEL_STATUS_DESCRIPTION: &str = "otel.status_description";
/// The field that marks a span (or its error) as failed.
const ERROR: &str = "error";
/// The field that opts a span into the user pipeline (see the module docs of `bridge`).
pub(crate) const USER_OPT_IN: &str = "foundations.user";

/// Where a span's tags go as its fields are visited.
pub(crate) trait TagSink {
    fn push(&mut self, tag: Tag);
}

/// Collected as the fields are visited (application code runs there, with nothing borrowed),
/// then moved into their span (or two: internal and user) at once.
pub(crate) type CollectedTags = SpilledTags;

impl TagSink for CollectedTags {
    fn push(&mut self, tag: Tag) {
        SmallVec::push(self, tag);
    }
}

/// What the fields of a span (at creation or in a later `record`) say.
#[derive(Default)]
pub(crate) struct SpanFields<T = CollectedTags> {
    /// Typed tags, the kind's and status's included once [`of`](Self::of) returns.
    pub(crate) tags: T,
    /// `otel.name`.
    pub(crate) name: Option<String>,
    /// `foundations.user = true`.
    pub(crate) user: bool,
    /// The status code the fields set, if any (`otel.status_code`, `error`).
    code: Option<StatusCode>,
    /// `otel.status_message`, or the text of an `error` field.
    message: Option<String>,
}

impl SpanFields {
    /// The fields `record` visits, collected, their status appended to the tags.
    #[inline]
    pub(crate) fn of(record: impl FnOnce(&mut Self)) -> Self {
        let mut fields = Self::default();
        record(&mut fields);
        fields.push_status();
        fields
    }

    /// A copy of what the fields record (tags and name), for the user span of a span that
    /// opted in.
    #[cfg(feature = "user-tracing")]
    pub(crate) fn copy(&self) -> Self {
        Self {
            tags: self.tags.clone(),
            name: self.name.clone(),
            user: self.user,
            code: None,
            message: None,
        }
    }

    /// Moves the collected tags and name into `live`, a new span with no tags yet: the
    /// collected tags usually become its storage. Through `&mut`, so that the fields are
    /// not copied on their way; what was moved is gone from `self`.
    pub(crate) fn apply_first(&mut self, live: &mut LiveSpan) {
        if let Some(name) = self.name.take() {
            live.rename(Cow::Owned(name));
        }
        if !self.tags.is_empty() {
            live.set_first_tags(std::mem::take(&mut self.tags));
        }
    }

    /// Records the collected tags and name into `live`.
    pub(crate) fn apply(self, live: &mut LiveSpan) {
        if let Some(name) = self.name {
            live.rename(Cow::Owned(name));
        }
        if !self.tags.is_empty() {
            live.set_tags(self.tags);
        }
    }
}

impl<T: TagSink> SpanFields<T> {
    /// Appends the status the fields set to the tags, as the typed API records it (once all
    /// the fields are visited). A message alone (no code) only describes the status,
    /// whatever sets it.
    pub(crate) fn push_status(&mut self) {
        let status = match self.code.take() {
            Some(StatusCode::Error) => SpanStatus::error(self.message.take().unwrap_or_default()),
            Some(StatusCode::Ok) => SpanStatus::Ok,
            Some(StatusCode::Unset) => SpanStatus::Unset,
            None => {
                if let Some(message) = self.message.take() {
                    self.tags.push(Tag::new(ERROR_MESSAGE_TAG, message));
                }
                return;
            }
        };
        for tag in status.into_tags() {
            self.tags.push(tag);
        }
    }

    fn tag(&mut self, field: &Field, value: impl Into<cf_rustracing::tag::TagValue>) {
        self.tags.push(Tag::new(field.name(), value));
    }

    /// A string value, which may be one of the conventional fields.
    fn text(&mut self, field: &Field, value: Cow<'_, str>) {
        match field.name() {
            OTEL_NAME => self.name = Some(value.into_owned()),
            // An unknown kind is ignored, as `tracing-opentelemetry` does.
            OTEL_KIND => {
                if let Some(kind) = SpanKind::parse(&value) {
                    self.tags.push(kind.tag());
                }
            }
            OTEL_STATUS_CODE => {
                if value.eq_ignore_ascii_case("error") {
                    self.code = Some(StatusCode::Error);
                } else if value.eq_ignore_ascii_case("ok") {
                    self.code = Some(StatusCode::Ok);
                }
                // `unset` and anything else leave the status alone.
            }
            OTEL_STATUS_MESSAGE | OTEL_STATUS_DESCRIPTION => {
                self.message = Some(value.into_owned());
            }
            ERROR => self.error(value.into_owned()),
            USER_OPT_IN => self.user = value.eq_ignore_ascii_case("true"),
            // A value that keeps coming back is interned: the span keeps it inline.
            _ => self.tag(field, interned::field_value(value)),
        }
    }

    fn error(&mut self, message: String) {
        self.code = Some(StatusCode::Error);
        self.message = Some(message);
    }
}

impl<T: TagSink> Visit for SpanFields<T> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.tag(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(value) => self.tag(field, value),
            // OTLP integers are signed: a larger value is kept exactly, as text.
            Err(_) => self.tag(field, value.to_string()),
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(value) => self.tag(field, value),
            Err(_) => self.tag(field, value.to_string()),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match i64::try_from(value) {
            Ok(value) => self.tag(field, value),
            Err(_) => self.tag(field, value.to_string()),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.tag(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            USER_OPT_IN => self.user = value,
            // `error = false` is a status too: no error.
            ERROR => {
                self.code = Some(if value {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                })
            }
            _ => self.tag(field, value),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, Cow::Borrowed(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        match field.name() {
            ERROR => self.error(value.to_string()),
            _ => self.tag(field, value.to_string()),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, Cow::Owned(format!("{value:?}")));
    }
}

/// What an event says: its message, its other fields (as log fields), and whether it marks
/// its span as failed.
#[derive(Default)]
pub(crate) struct EventFields {
    pub(crate) message: Option<String>,
    pub(crate) fields: SmallVec<[LogField; 4]>,
    /// The `error` field's text, if the event has one.
    pub(crate) error: Option<String>,
}

impl EventFields {
    fn text(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = Some(value),
            ERROR => {
                self.error = Some(value.clone());
                self.fields.push(LogField::new(ERROR, value));
            }
            name => self.fields.push(LogField::new(name, value)),
        }
    }
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_owned());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == ERROR && !value {
            self.fields.push(LogField::new(ERROR, "false"));
            return;
        }
        self.text(field, value.to_string());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        // Writing to a `String` cannot fail.
        let _ = write!(text, "{value:?}");
        self.text(field, text);
    }
}
