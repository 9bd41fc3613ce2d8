//! Telemetry settings: the YAML block that `telemetry::init` reads.
//!
//! Every field has a documented default, unknown fields are rejected, and invalid values are
//! reported by [`TelemetrySettings::validate`] (which `init` calls) with the path of the
//! offending field. This module owns parsing and validation only: it starts nothing, and it
//! imports nothing else from `telemetry` (the pipelines and the exporters read settings,
//! never the other way round).
//!
//! - [`TracingSettings`]: the `tracing:` section (internal pipeline), resolved against the
//!   OpenTelemetry environment variables by [`TracingSettings::resolve`].
//! - [`UserTracingSettings`]: the `user_tracing:` section (feature `user-tracing`).
//! - [`ExportSettings`]: the exporter knobs of both sections, written once and flattened into
//!   each, so `tracing.max_batch_size` and `user_tracing.max_batch_size` are the same knob
//!   with the same default and the same check.
//! - [`RateLimitSettings`]: the root-creation rate limit, `rate_limit:` in each section.
//! - [`SpanLimitsSettings`]: the `span_limits` block of each section, the same for both.
//!
//! ```
//! use foundations::telemetry::settings::TelemetrySettings;
//!
//! let settings = TelemetrySettings::from_yaml(
//!     r#"
//! tracing:
//!   service_name: edge-proxy
//!   sampling:
//!     ratio: 0.1
//!   output:
//!     otlp_http:
//!       endpoint: http://collector:4318
//! user_tracing:
//!   socket_path: /run/otel/traces.sock
//!   service_name: edge-proxy
//!   compression: gzip
//! "#,
//! )
//! .unwrap();
//! let user = settings.user_tracing.as_ref().unwrap();
//! assert_eq!(user.routing_header, "cf-trace-config");
//! assert_eq!(user.export.max_batch_size, 512);
//!
//! let error = TelemetrySettings::from_yaml("user_tracing:\n  num_tasks: 0\n  socket_path: /s\n")
//!     .unwrap_err();
//! assert!(error.to_string().contains("user_tracing.num_tasks"));
//! ```

mod endpoint;
mod env;
mod export;
mod limits;
mod rate_limit;
mod tracing;
#[cfg(feature = "user-tracing")]
mod user;

pub use endpoint::OtlpProtocol;
pub(crate) use endpoint::{Endpoint, TRACES_PATH};
pub use export::{Compression, ExportSettings, RetrySettings};
pub use limits::SpanLimitsSettings;
pub use rate_limit::RateLimitSettings;
pub use tracing::{
    LiveTracesSettings, ResolvedTracing, SamplingSettings, TracingOutput, TracingSettings,
};
#[cfg(feature = "user-tracing")]
pub use user::UserTracingSettings;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// All telemetry settings.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TelemetrySettings {
    /// The internal pipeline. Default: enabled, everything sampled.
    pub tracing: TracingSettings,
    /// The user pipeline; absent (the default) means off. Needs feature `user-tracing`.
    #[cfg(feature = "user-tracing")]
    pub user_tracing: Option<UserTracingSettings>,
}

/// The keys of a section that flattens [`ExportSettings`] and that no field took. serde's
/// `deny_unknown_fields` does not work with `flatten`, so such a section collects them here
/// and [`TelemetrySettings::validate`] rejects them by name.
type UnknownFields = BTreeMap<String, serde::de::IgnoredAny>;

fn reject_unknown_fields(section: &str, unknown: &UnknownFields) -> Result<(), SettingsError> {
    match unknown.keys().next() {
        None => Ok(()),
        Some(key) => Err(SettingsError::new(
            format!("{section}.{key}"),
            format!("unknown field `{key}`"),
        )),
    }
}

/// Settings that could not be parsed or are invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsError {
    field: String,
    message: String,
}

impl SettingsError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The dotted path of the offending field (e.g. `user_tracing.num_tasks`), or `<yaml>`
    /// when the document itself could not be parsed.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid telemetry settings: `{}`: {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for SettingsError {}

impl TelemetrySettings {
    /// Parses and validates settings from a YAML document.
    ///
    /// # Errors
    ///
    /// Malformed YAML, unknown fields, wrong types, or invalid values, with the offending
    /// field named.
    pub fn from_yaml(yaml: &str) -> Result<Self, SettingsError> {
        let settings: Self = serde_saphyr::from_str(yaml)
            .map_err(|error| SettingsError::new("<yaml>", error.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every value; `telemetry::init` calls this first.
    ///
    /// Unknown fields are reported before invalid values, as a parse error would be.
    ///
    /// # Errors
    ///
    /// The first invalid field found.
    pub fn validate(&self) -> Result<(), SettingsError> {
        reject_unknown_fields("tracing", &self.tracing.unknown)?;
        #[cfg(feature = "user-tracing")]
        if let Some(user) = &self.user_tracing {
            reject_unknown_fields("user_tracing", &user.unknown)?;
        }
        self.tracing.validate()?;
        #[cfg(feature = "user-tracing")]
        if let Some(user) = &self.user_tracing {
            user.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod protocol_tests;
#[cfg(test)]
mod tests;
