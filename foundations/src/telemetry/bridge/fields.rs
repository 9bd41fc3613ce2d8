//! `tracing` field values → span tags and log fields, with the OpenTelemetry conventions
//! `tracing-opentelemetry` users rely on (`otel.name`, `otel.kind`, `otel.status_code`,
//! `otel.status_message`) and the `error` field.
//!
//! This module only translates values; which span receives them is the layer's decision.

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

/// The tags that carry kind and status in the OTLP mapping.
const KIND_TAG: &str = "span.kind";
const ERROR_TAG: &str = "error";
const ERROR_MESSAGE_TAG: &str = "error.message";

/// What the fields of a span (at creation or in a later `record`) say.
#[derive(Default)]
pub(crate) struct SpanFields {
    pub(crate) tags: SmallVec<[Tag; 4]>,
    /// `otel.name`.
    pub(crate) name: Option<String>,
    /// `foundations.user = true`.
    pub(crate) user: bool,
}

impl SpanFields {
    fn tag(&mut self, field: &Field, value: impl Into<cf_rustracing::tag::TagValue>) {
        self.tags.push(Tag::new(field.name(), value));
    }

    /// A string value, which may be one of the conventional fields.
    fn text(&mut self, field: &Field, value: Cow<'_, str>) {
        match field.name() {
            OTEL_NAME => self.name = Some(value.into_owned()),
            OTEL_KIND => {
                let kind = value.to_ascii_lowercase();
                self.tags.push(Tag::new(KIND_TAG, kind));
            }
            OTEL_STATUS_CODE => {
                if value.eq_ignore_ascii_case("error") {
                    self.tags.push(Tag::new(ERROR_TAG, true));
                } else if value.eq_ignore_ascii_case("ok") {
                    self.tags.push(Tag::new(ERROR_TAG, false));
                }
                // `unset` and anything else leave the status alone.
            }
            OTEL_STATUS_MESSAGE | OTEL_STATUS_DESCRIPTION => {
                self.tags
                    .push(Tag::new(ERROR_MESSAGE_TAG, value.into_owned()));
            }
            ERROR => self.error(value.into_owned()),
            USER_OPT_IN => self.user = value.eq_ignore_ascii_case("true"),
            _ => self.tag(field, value.into_owned()),
        }
    }

    fn error(&mut self, message: String) {
        self.tags.push(Tag::new(ERROR_TAG, true));
        self.tags.push(Tag::new(ERROR_MESSAGE_TAG, message));
    }
}

impl Visit for SpanFields {
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
            // `error = false` is a (successful) status too.
            ERROR => self.tags.push(Tag::new(ERROR_TAG, value)),
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
