//! The `span_limits` block of each pipeline's section ([`SpanLimitsSettings`]): how much one
//! span keeps, as OpenTelemetry's span limits. Defaults and bounds are written and checked
//! here once, for both pipelines.
//!
//! This module owns the values and their checks only; the recording that obeys them is the
//! core's.

use super::SettingsError;
use super::export::number;
use serde::Deserialize;

/// How much one span keeps; what is beyond is dropped and counted, and exported as OTLP
/// `dropped_attributes_count`, `dropped_events_count` (and each event's
/// `dropped_attributes_count`) and `dropped_links_count`.
///
/// In YAML, under `tracing.span_limits` or `user_tracing.span_limits`:
///
/// ```
/// use foundations::telemetry::settings::TelemetrySettings;
///
/// let settings = TelemetrySettings::from_yaml(
///     "tracing:\n  span_limits:\n    max_attributes: 32\n    max_attribute_value_length: 1024\n",
/// )
/// .unwrap();
/// let limits = &settings.tracing.span_limits;
/// assert_eq!(limits.max_attributes, 32);
/// assert_eq!(limits.max_events, 128, "the default");
/// assert_eq!(limits.max_attribute_value_length, Some(1024));
///
/// let error = TelemetrySettings::from_yaml("tracing:\n  span_limits:\n    max_links: 1000000\n")
///     .unwrap_err();
/// assert_eq!(error.field(), "tracing.span_limits.max_links");
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SpanLimitsSettings {
    /// Tags a span keeps (kind and status tags included). Default: 128.
    #[serde(deserialize_with = "number::plain")]
    pub max_attributes: usize,
    /// Log entries (OTLP events) a span keeps. Default: 128.
    #[serde(deserialize_with = "number::plain")]
    pub max_events: usize,
    /// Fields a log entry keeps, besides the `event` field that names it. Default: 128.
    #[serde(deserialize_with = "number::plain")]
    pub max_attributes_per_event: usize,
    /// Links a span keeps. Default: 128.
    #[serde(deserialize_with = "number::plain")]
    pub max_links: usize,
    /// Longest string value of a tag, log field or link attribute, in bytes (cut at a
    /// character boundary when the span records it). Default: none (the exporter still cuts at 64 KiB).
    #[serde(deserialize_with = "number::optional")]
    pub max_attribute_value_length: Option<usize>,
}

impl Default for SpanLimitsSettings {
    fn default() -> Self {
        Self {
            max_attributes: Self::DEFAULT_COUNT,
            max_events: Self::DEFAULT_COUNT,
            max_attributes_per_event: Self::DEFAULT_COUNT,
            max_links: Self::DEFAULT_COUNT,
            max_attribute_value_length: None,
        }
    }
}

impl SpanLimitsSettings {
    /// The default of every count: 128, as in OpenTelemetry.
    pub const DEFAULT_COUNT: usize = 128;
    /// Upper bound of every count: a span's memory stays bounded.
    pub const MAX_COUNT: usize = 65_536;
    /// Upper bound of `max_attribute_value_length`: the exporter's own cut, 64 KiB.
    pub const MAX_VALUE_LENGTH: usize = 64 * 1024;

    /// Checks every limit; errors name the field as `{section}.span_limits.{limit}`.
    pub(super) fn validate(&self, section: &str) -> Result<(), SettingsError> {
        let field = |name: &str| format!("{section}.span_limits.{name}");
        let counts = [
            ("max_attributes", self.max_attributes),
            ("max_events", self.max_events),
            ("max_attributes_per_event", self.max_attributes_per_event),
            ("max_links", self.max_links),
        ];
        for (name, value) in counts {
            if value > Self::MAX_COUNT {
                return Err(SettingsError::new(
                    field(name),
                    format!("must be at most {}", Self::MAX_COUNT),
                ));
            }
        }
        match self.max_attribute_value_length {
            Some(0) => Err(SettingsError::new(
                field("max_attribute_value_length"),
                "must be at least 1 (or null for no limit)",
            )),
            Some(length) if length > Self::MAX_VALUE_LENGTH => Err(SettingsError::new(
                field("max_attribute_value_length"),
                format!("must be at most {}", Self::MAX_VALUE_LENGTH),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
