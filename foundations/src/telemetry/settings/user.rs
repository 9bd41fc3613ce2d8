//! The user pipeline's settings ([`UserTracingSettings`], feature `user-tracing`): the
//! receiver's socket, identity, routing header, and the shared [`ExportSettings`].
//!
//! This module owns the `user_tracing:` section and its checks only; it starts nothing.

use super::export::ExportSettings;
use super::limits::SpanLimitsSettings;
use super::rate_limit::RateLimitSettings;
use super::{SettingsError, UnknownFields};
use serde::Deserialize;
use std::path::PathBuf;

/// Settings of the user pipeline and its OTLP/HTTP exporter over a Unix domain socket.
///
/// Only [`socket_path`](Self::socket_path) must be set.
#[derive(Clone, Debug, Deserialize, PartialEq)]
// No `deny_unknown_fields`: serde does not support it with `flatten`. Keys that no field
// takes land in `unknown`, and `validate` rejects them by name.
#[serde(default)]
#[non_exhaustive]
pub struct UserTracingSettings {
    /// Record and export user spans. Default: `true`.
    pub enabled: bool,
    /// The Unix domain socket of the OTLP/HTTP receiver. Required (no default).
    pub socket_path: PathBuf,
    /// The `service.name` resource attribute customers see. Default: `unknown_service`.
    pub service_name: String,
    /// The request header that carries the encoded routing of a request's spans.
    /// Default: `cf-trace-config`.
    pub routing_header: String,
    /// The most user traces started per second that are recorded; the rest start
    /// unsampled. Default: disabled.
    pub rate_limit: RateLimitSettings,
    /// The exporter's queue, batching and request knobs, written directly under
    /// `user_tracing:` (`user_tracing.max_batch_size`, …).
    #[serde(flatten)]
    pub export: ExportSettings,
    /// How much one span keeps (`user_tracing.span_limits.max_attributes`, …). Default:
    /// OpenTelemetry's (128 attributes, events, attributes per event and links).
    pub span_limits: SpanLimitsSettings,
    /// Keys no field took; must stay the last field (flattened fields take their keys in
    /// field order, and a map takes whatever is left).
    #[serde(flatten)]
    pub(super) unknown: UnknownFields,
}

impl Default for UserTracingSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            socket_path: PathBuf::new(),
            service_name: "unknown_service".to_owned(),
            routing_header: "cf-trace-config".to_owned(),
            rate_limit: RateLimitSettings::default(),
            export: ExportSettings::default(),
            span_limits: SpanLimitsSettings::default(),
            unknown: UnknownFields::new(),
        }
    }
}

/// The longest Unix socket path that can be connected to (`sun_path`, less its NUL).
const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Headers the exporter (or HTTP itself) sets: a routing header must not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "user-agent",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-connection",
];

impl UserTracingSettings {
    /// Checks every value of an enabled pipeline, naming the first invalid one as
    /// `user_tracing.<field>`.
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let field = |name: &str| format!("user_tracing.{name}");
        if !self.enabled {
            return Ok(());
        }
        if self.socket_path.as_os_str().is_empty() {
            return Err(SettingsError::new(
                field("socket_path"),
                "must be set while user tracing is enabled",
            ));
        }
        if !self.socket_path.is_absolute() {
            return Err(SettingsError::new(
                field("socket_path"),
                format!("{} is not an absolute path", self.socket_path.display()),
            ));
        }
        // `sun_path` holds 108 bytes, the terminating NUL included: a longer path can never
        // be connected to, so say so now rather than retry for ever.
        let length = self.socket_path.as_os_str().len();
        if length > MAX_SOCKET_PATH_BYTES {
            return Err(SettingsError::new(
                field("socket_path"),
                format!(
                    "is {length} bytes; a Unix socket path holds at most {MAX_SOCKET_PATH_BYTES}"
                ),
            ));
        }
        if hyper::header::HeaderName::from_bytes(self.routing_header.as_bytes()).is_err() {
            return Err(SettingsError::new(
                field("routing_header"),
                format!("{:?} is not a valid HTTP header name", self.routing_header),
            ));
        }
        let lowercase = self.routing_header.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lowercase.as_str()) {
            return Err(SettingsError::new(
                field("routing_header"),
                format!(
                    "{:?} is a header the exporter sets itself",
                    self.routing_header
                ),
            ));
        }
        self.rate_limit.validate("user_tracing")?;
        self.export.validate("user_tracing")?;
        self.span_limits.validate("user_tracing")
    }
}
