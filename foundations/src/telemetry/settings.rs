//! Telemetry settings: the YAML block that [`telemetry::init`](crate::telemetry::init) reads.
//!
//! Every field has a documented default, unknown fields are rejected, and invalid values are
//! reported by [`TelemetrySettings::validate`] (which `init` calls) with the path of the
//! offending field. This module owns parsing and validation only: it starts nothing.
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
//! assert_eq!(user.max_batch_size, 512);
//!
//! let error = TelemetrySettings::from_yaml("user_tracing:\n  num_tasks: 0\n  socket_path: /s\n")
//!     .unwrap_err();
//! assert!(error.to_string().contains("user_tracing.num_tasks"));
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
#[cfg(feature = "user-tracing")]
use std::time::Duration;

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

/// Settings of the internal pipeline and its exporter.
///
/// Identity and sampling left unset here fall back to the standard OpenTelemetry
/// environment variables (see [`ResolvedTracing`]).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TracingSettings {
    /// Record internal spans at all. Default: `true`.
    pub enabled: bool,
    /// The `service.name` resource attribute. Default: `OTEL_SERVICE_NAME`, else
    /// `unknown_service`.
    pub service_name: Option<String>,
    /// The `service.version` resource attribute. Default: none.
    pub service_version: Option<String>,
    /// More resource attributes, e.g. `deployment.environment.name: prod`. Merged with
    /// `OTEL_RESOURCE_ATTRIBUTES`; these win on conflict. Default: none.
    pub resource_attributes: BTreeMap<String, String>,
    /// Tags added to every exported internal span (a span's own tag of the same name wins).
    /// Default: none.
    pub static_tags: BTreeMap<String, String>,
    /// How new and continued traces are sampled. Default: `OTEL_TRACES_SAMPLER` /
    /// `OTEL_TRACES_SAMPLER_ARG`, else everything, parent-based.
    pub sampling: Option<SamplingSettings>,
    /// Where internal spans go. Default: `none`.
    pub output: TracingOutput,
    /// Bound of the finished-span queue; `null` is unbounded. Default: 1,000,000.
    pub max_queue_size: Option<usize>,
    /// Exporter workers, each with at most one request in flight. Default: 1.
    pub num_tasks: usize,
    /// Spans taken from the queue per batch. Default: 512.
    pub max_batch_size: usize,
    /// Longest wait for a full batch before a partial one is sent, in milliseconds.
    /// Default: 200.
    pub flush_interval_ms: u64,
    /// Timeout of one export request, in milliseconds. Default: 10,000.
    pub request_timeout_ms: u64,
    /// When and how failed requests are retried.
    pub retry: RetrySettings,
    /// Request body compression. Default: `none`.
    pub compression: Compression,
    /// Largest uncompressed request body; larger batches are split. Default: 64 MiB.
    pub max_request_bytes: usize,
}

impl Default for TracingSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            service_name: None,
            service_version: None,
            resource_attributes: BTreeMap::new(),
            static_tags: BTreeMap::new(),
            sampling: None,
            output: TracingOutput::None,
            max_queue_size: Some(1_000_000),
            num_tasks: 1,
            max_batch_size: 512,
            flush_interval_ms: 200,
            request_timeout_ms: 10_000,
            retry: RetrySettings::default(),
            compression: Compression::None,
            max_request_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Sampling of the internal pipeline.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SamplingSettings {
    /// Fraction of traces recorded, `0.0..=1.0`. Default: `1.0`.
    pub ratio: f64,
    /// Continued traces follow the inbound sampled flag (`true`, the default), or are
    /// sampled by `ratio` like new ones (`false`).
    pub parent_based: bool,
}

impl Default for SamplingSettings {
    fn default() -> Self {
        Self {
            ratio: 1.0,
            parent_based: true,
        }
    }
}

/// Where the internal pipeline's spans go.
///
/// ```yaml
/// output: none
/// ---
/// output:
///   otlp_http:
///     endpoint: https://collector.internal:4318   # or http://… or unix:///path
///     ca_bundle: /etc/ssl/collector-ca.pem        # optional, https only
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum TracingOutput {
    /// Spans are recorded (ids, sampling, propagation and log correlation work) and then
    /// discarded. The default.
    #[default]
    None,
    /// OTLP/HTTP protobuf to a collector.
    OtlpHttp {
        /// `http://host:port` (TCP), `https://host:port` (TLS) or `unix:///path`;
        /// `/v1/traces` is appended to an HTTP endpoint without a path. Default:
        /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is), else `OTEL_EXPORTER_OTLP_ENDPOINT`
        /// (`/v1/traces` appended), else `http://localhost:4318`.
        #[serde(default)]
        endpoint: Option<String>,
        /// PEM file of the CA certificates that verify an `https` collector, instead of the
        /// system roots.
        #[serde(default)]
        ca_bundle: Option<PathBuf>,
    },
}

/// The internal pipeline's settings after applying environment variables: what `init`
/// actually uses.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ResolvedTracing {
    /// `service.name`.
    pub service_name: String,
    /// Every resource attribute, `service.name` and `service.version` included.
    pub resource_attributes: Vec<(String, String)>,
    /// Sampling ratio of new (and, without `parent_based`, continued) traces.
    pub sampling_ratio: f64,
    /// Whether continued traces follow the inbound sampled flag.
    pub parent_based: bool,
    /// The export endpoint, `None` for output `none`.
    pub endpoint: Option<String>,
}

impl TracingSettings {
    /// Applies the OpenTelemetry environment variables where these settings leave values
    /// unset: the endpoint precedence, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`. `env` looks a variable up
    /// (`|name| std::env::var(name).ok()` in production).
    ///
    /// # Errors
    ///
    /// A variable with an invalid value, named in the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use foundations::telemetry::settings::{TracingOutput, TracingSettings};
    ///
    /// let mut settings = TracingSettings::default();
    /// settings.output = TracingOutput::OtlpHttp { endpoint: None, ca_bundle: None };
    /// let env = |name: &str| match name {
    ///     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318".to_owned()),
    ///     "OTEL_SERVICE_NAME" => Some("checkout".to_owned()),
    ///     _ => None,
    /// };
    /// let resolved = settings.resolve(env).unwrap();
    /// assert_eq!(resolved.endpoint.as_deref(), Some("http://collector:4318/v1/traces"));
    /// assert_eq!(resolved.service_name, "checkout");
    /// ```
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedTracing, SettingsError> {
        let non_empty = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let service_name = self
            .service_name
            .clone()
            .or_else(|| non_empty("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| "unknown_service".to_owned());

        let mut attributes: BTreeMap<String, String> = BTreeMap::new();
        if let Some(raw) = non_empty("OTEL_RESOURCE_ATTRIBUTES") {
            for pair in raw.split(',').filter(|pair| !pair.trim().is_empty()) {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    SettingsError::new(
                        "OTEL_RESOURCE_ATTRIBUTES",
                        format!("{pair:?} is not key=value"),
                    )
                })?;
                let key = key.trim();
                if key.is_empty() {
                    return Err(SettingsError::new("OTEL_RESOURCE_ATTRIBUTES", "empty key"));
                }
                let value = percent_decode(value.trim()).ok_or_else(|| {
                    SettingsError::new(
                        "OTEL_RESOURCE_ATTRIBUTES",
                        format!("{value:?} has an invalid percent-encoding"),
                    )
                })?;
                attributes.insert(key.to_owned(), value);
            }
        }
        attributes.extend(self.resource_attributes.clone());
        attributes.insert("service.name".to_owned(), service_name.clone());
        if let Some(version) = &self.service_version {
            attributes.insert("service.version".to_owned(), version.clone());
        }
        let mut resource_attributes: Vec<(String, String)> = attributes.into_iter().collect();
        // `service.name` first, as collectors and people expect it.
        resource_attributes.sort_by_key(|(key, _)| key != "service.name");

        let (sampling_ratio, parent_based) = match &self.sampling {
            Some(sampling) => (sampling.ratio, sampling.parent_based),
            None => sampler_from_env(&non_empty)?,
        };

        let endpoint = match &self.output {
            TracingOutput::None => None,
            TracingOutput::OtlpHttp { endpoint, .. } => {
                Some(resolve_endpoint(endpoint.as_deref(), &non_empty)?)
            }
        };
        Ok(ResolvedTracing {
            service_name,
            resource_attributes,
            sampling_ratio,
            parent_based,
            endpoint,
        })
    }
}

fn resolve_endpoint(
    explicit: Option<&str>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, SettingsError> {
    use crate::telemetry::transport::Endpoint;
    let (source, value, append) = if let Some(explicit) = explicit {
        (
            "tracing.output.otlp_http.endpoint",
            explicit.to_owned(),
            true,
        )
    } else if let Some(value) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value, false)
    } else if let Some(value) = env("OTEL_EXPORTER_OTLP_ENDPOINT") {
        // The generic endpoint names the collector; the signal path is always appended.
        let value = format!("{}/v1/traces", value.trim().trim_end_matches('/'));
        ("OTEL_EXPORTER_OTLP_ENDPOINT", value, false)
    } else {
        ("default endpoint", "http://localhost:4318".to_owned(), true)
    };
    Endpoint::parse(&value, append)
        .map(|endpoint| endpoint.to_string())
        .map_err(|message| SettingsError::new(source, message))
}

fn sampler_from_env(env: &impl Fn(&str) -> Option<String>) -> Result<(f64, bool), SettingsError> {
    let Some(sampler) = env("OTEL_TRACES_SAMPLER") else {
        return Ok((1.0, true));
    };
    let ratio = || -> Result<f64, SettingsError> {
        match env("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(arg) => arg
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|ratio| (0.0..=1.0).contains(ratio))
                .ok_or_else(|| {
                    SettingsError::new(
                        "OTEL_TRACES_SAMPLER_ARG",
                        format!("{arg:?} is not a ratio in 0.0..=1.0"),
                    )
                }),
        }
    };
    Ok(match sampler.trim() {
        "always_on" => (1.0, false),
        "always_off" => (0.0, false),
        "traceidratio" => (ratio()?, false),
        "parentbased_always_on" => (1.0, true),
        "parentbased_always_off" => (0.0, true),
        "parentbased_traceidratio" => (ratio()?, true),
        other => {
            return Err(SettingsError::new(
                "OTEL_TRACES_SAMPLER",
                format!("{other:?} is not a supported sampler"),
            ));
        }
    })
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Settings of the user pipeline and its OTLP/HTTP exporter over a Unix domain socket.
///
/// Only [`socket_path`](Self::socket_path) must be set.
#[cfg(feature = "user-tracing")]
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
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
    /// Bound of the finished-span queue; `null` is unbounded. Default: 1,000,000.
    pub max_queue_size: Option<usize>,
    /// Exporter workers, each with at most one request in flight. Default: 1.
    pub num_tasks: usize,
    /// Spans taken from the queue per batch. Default: 512.
    pub max_batch_size: usize,
    /// Longest wait for a full batch before a partial one is sent, in milliseconds.
    /// Default: 200.
    pub flush_interval_ms: u64,
    /// Timeout of one export request, in milliseconds. Default: 10,000.
    pub request_timeout_ms: u64,
    /// When and how failed requests are retried.
    pub retry: RetrySettings,
    /// Request body compression. Default: `none`.
    pub compression: Compression,
    /// Largest uncompressed request body; larger batches are split. Default: 64 MiB.
    pub max_request_bytes: usize,
}

#[cfg(feature = "user-tracing")]
impl Default for UserTracingSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            socket_path: PathBuf::new(),
            service_name: "unknown_service".to_owned(),
            routing_header: "cf-trace-config".to_owned(),
            max_queue_size: Some(1_000_000),
            num_tasks: 1,
            max_batch_size: 512,
            flush_interval_ms: 200,
            request_timeout_ms: 10_000,
            retry: RetrySettings::default(),
            compression: Compression::None,
            max_request_bytes: 64 * 1024 * 1024,
        }
    }
}

#[cfg(feature = "user-tracing")]
impl UserTracingSettings {
    /// `flush_interval_ms` as a duration.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    /// `request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// Retry policy of an exporter.
///
/// Only what the OTLP specification calls retryable is retried: a connection that could not
/// be made or was dropped, a request that timed out, and the statuses 429, 502, 503 and 504.
/// A connection that cannot be made at all (for example, the receiver's socket does not
/// exist yet) is retried without limit while spans wait in the queue; the other failures at
/// most `max_attempts` times.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetrySettings {
    /// Attempts per request, the first included. Default: 5.
    pub max_attempts: u32,
    /// Backoff before the first retry, in milliseconds; doubled per attempt, plus up to 50%
    /// random jitter. Default: 100.
    pub initial_backoff_ms: u64,
    /// Longest backoff, in milliseconds. Default: 5,000.
    pub max_backoff_ms: u64,
    /// Longest wait a `Retry-After` header may impose, in milliseconds. Default: 30,000.
    pub max_retry_after_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff_ms: 100,
            max_backoff_ms: 5_000,
            max_retry_after_ms: 30_000,
        }
    }
}

/// Compression of request bodies.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Uncompressed (the default).
    #[default]
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
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

    /// Checks every value; [`telemetry::init`](crate::telemetry::init) calls this first.
    ///
    /// # Errors
    ///
    /// The first invalid field found.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let tracing = &self.tracing;
        if let Some(sampling) = &tracing.sampling {
            if !(0.0..=1.0).contains(&sampling.ratio) {
                return Err(SettingsError::new(
                    "tracing.sampling.ratio",
                    format!("{} is not in 0.0..=1.0", sampling.ratio),
                ));
            }
        }
        if tracing.max_queue_size == Some(0) {
            return Err(SettingsError::new(
                "tracing.max_queue_size",
                "must be at least 1 (or null for unbounded)",
            ));
        }
        check_export_knobs("tracing", &ExportKnobs::of_tracing(tracing))?;
        if let TracingOutput::OtlpHttp {
            endpoint: Some(endpoint),
            ..
        } = &tracing.output
        {
            crate::telemetry::transport::Endpoint::parse(endpoint, true).map_err(|message| {
                SettingsError::new("tracing.output.otlp_http.endpoint", message)
            })?;
        }
        #[cfg(feature = "user-tracing")]
        if let Some(user) = &self.user_tracing {
            user.validate()?;
        }
        Ok(())
    }
}

#[cfg(feature = "user-tracing")]
impl UserTracingSettings {
    fn validate(&self) -> Result<(), SettingsError> {
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
        if hyper::header::HeaderName::from_bytes(self.routing_header.as_bytes()).is_err() {
            return Err(SettingsError::new(
                field("routing_header"),
                format!("{:?} is not a valid HTTP header name", self.routing_header),
            ));
        }
        check_export_knobs("user_tracing", &ExportKnobs::of_user(self))?;
        if self.max_queue_size == Some(0) {
            return Err(SettingsError::new(
                field("max_queue_size"),
                "must be at least 1 (or null for unbounded)",
            ));
        }
        Ok(())
    }
}

/// The exporter knobs both pipelines share, for one validation.
struct ExportKnobs<'a> {
    num_tasks: usize,
    max_batch_size: usize,
    flush_interval_ms: u64,
    request_timeout_ms: u64,
    max_request_bytes: usize,
    retry: &'a RetrySettings,
}

impl<'a> ExportKnobs<'a> {
    fn of_tracing(settings: &'a TracingSettings) -> Self {
        Self {
            num_tasks: settings.num_tasks,
            max_batch_size: settings.max_batch_size,
            flush_interval_ms: settings.flush_interval_ms,
            request_timeout_ms: settings.request_timeout_ms,
            max_request_bytes: settings.max_request_bytes,
            retry: &settings.retry,
        }
    }

    #[cfg(feature = "user-tracing")]
    fn of_user(settings: &'a UserTracingSettings) -> Self {
        Self {
            num_tasks: settings.num_tasks,
            max_batch_size: settings.max_batch_size,
            flush_interval_ms: settings.flush_interval_ms,
            request_timeout_ms: settings.request_timeout_ms,
            max_request_bytes: settings.max_request_bytes,
            retry: &settings.retry,
        }
    }
}

fn check_export_knobs(section: &str, knobs: &ExportKnobs<'_>) -> Result<(), SettingsError> {
    let positive = [
        ("num_tasks", knobs.num_tasks as u64),
        ("max_batch_size", knobs.max_batch_size as u64),
        ("flush_interval_ms", knobs.flush_interval_ms),
        ("request_timeout_ms", knobs.request_timeout_ms),
        ("max_request_bytes", knobs.max_request_bytes as u64),
        ("retry.max_attempts", u64::from(knobs.retry.max_attempts)),
        ("retry.initial_backoff_ms", knobs.retry.initial_backoff_ms),
    ];
    for (name, value) in positive {
        if value == 0 {
            return Err(SettingsError::new(
                format!("{section}.{name}"),
                "must be greater than 0",
            ));
        }
    }
    if knobs.retry.max_backoff_ms < knobs.retry.initial_backoff_ms {
        return Err(SettingsError::new(
            format!("{section}.retry.max_backoff_ms"),
            "must not be less than retry.initial_backoff_ms",
        ));
    }
    Ok(())
}

#[cfg(all(test, feature = "user-tracing"))]
mod tests {
    use super::*;

    fn error_field(yaml: &str) -> String {
        TelemetrySettings::from_yaml(yaml)
            .unwrap_err()
            .field()
            .to_owned()
    }

    #[test]
    fn defaults_need_only_the_socket_path() {
        let settings = TelemetrySettings::from_yaml("user_tracing:\n  socket_path: /s\n").unwrap();
        let user = settings.user_tracing.unwrap();
        assert_eq!(
            user,
            UserTracingSettings {
                socket_path: "/s".into(),
                ..Default::default()
            }
        );
        assert_eq!(user.request_timeout(), Duration::from_secs(10));
        assert_eq!(settings.tracing, TracingSettings::default());
        assert_eq!(
            TelemetrySettings::from_yaml("").unwrap(),
            TelemetrySettings::default()
        );
    }

    #[test]
    fn null_queue_size_is_unbounded() {
        let settings = TelemetrySettings::from_yaml(
            "user_tracing:\n  socket_path: /s\n  max_queue_size: null\n",
        )
        .unwrap();
        assert_eq!(settings.user_tracing.unwrap().max_queue_size, None);
    }

    #[test]
    fn invalid_values_name_their_field() {
        let base = "user_tracing:\n  socket_path: /s\n";
        for (extra, field) in [
            ("  num_tasks: 0\n", "user_tracing.num_tasks"),
            ("  max_batch_size: 0\n", "user_tracing.max_batch_size"),
            (
                "  request_timeout_ms: 0\n",
                "user_tracing.request_timeout_ms",
            ),
            ("  flush_interval_ms: 0\n", "user_tracing.flush_interval_ms"),
            (
                "  routing_header: \"bad header\"\n",
                "user_tracing.routing_header",
            ),
            ("  max_queue_size: 0\n", "user_tracing.max_queue_size"),
            (
                "  retry:\n    max_attempts: 0\n",
                "user_tracing.retry.max_attempts",
            ),
        ] {
            assert_eq!(error_field(&format!("{base}{extra}")), field, "{extra}");
        }
        assert_eq!(
            error_field("user_tracing:\n  socket_path: \"\"\n"),
            "user_tracing.socket_path"
        );
        assert_eq!(
            error_field("tracing:\n  sampling:\n    ratio: 2\n"),
            "tracing.sampling.ratio"
        );
        assert_eq!(
            error_field("tracing:\n  num_tasks: 0\n"),
            "tracing.num_tasks"
        );
        assert_eq!(
            error_field("tracing:\n  output:\n    otlp_http:\n      endpoint: ftp://x\n"),
            "tracing.output.otlp_http.endpoint"
        );
    }

    #[test]
    fn disabled_user_tracing_needs_no_socket() {
        assert!(TelemetrySettings::from_yaml("user_tracing:\n  enabled: false\n").is_ok());
    }

    #[test]
    fn unknown_fields_and_bad_yaml_are_errors_that_say_so() {
        let error = TelemetrySettings::from_yaml("user_tracing:\n  socket_path: /s\n  sockt: 1\n")
            .unwrap_err();
        assert!(error.message().contains("sockt"), "{error}");
        let error = TelemetrySettings::from_yaml("user_tracing: [unclosed").unwrap_err();
        assert_eq!(error.field(), "<yaml>");
        let error = TelemetrySettings::from_yaml("user_tracing:\n  num_tasks: many\n").unwrap_err();
        assert!(
            error.message().contains("many") || error.message().contains("integer"),
            "{error}"
        );
        let error =
            TelemetrySettings::from_yaml("user_tracing:\n  socket_path: /s\n  compression: zstd\n")
                .unwrap_err();
        assert!(error.message().contains("zstd"), "{error}");
    }
}

/// The environment-variable rules of [`TracingSettings::resolve`]: one test per row, each
/// with its own injected environment, so nothing touches (or races on) the process's.
#[cfg(test)]
mod resolve_tests {
    use super::*;

    fn otlp(endpoint: Option<&str>) -> TracingSettings {
        TracingSettings {
            output: TracingOutput::OtlpHttp {
                endpoint: endpoint.map(str::to_owned),
                ca_bundle: None,
            },
            ..Default::default()
        }
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    const BOTH: &[(&str, &str)] = &[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces-env:4318/custom",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic-env:4318"),
    ];

    fn endpoint(
        settings: &TracingSettings,
        pairs: &'static [(&'static str, &'static str)],
    ) -> String {
        settings.resolve(env(pairs)).unwrap().endpoint.unwrap()
    }

    #[test]
    fn precedence_1_explicit_setting_wins_over_every_variable() {
        assert_eq!(
            endpoint(&otlp(Some("http://explicit:4318")), BOTH),
            "http://explicit:4318/v1/traces"
        );
    }

    #[test]
    fn precedence_2_traces_endpoint_variable_is_used_as_is() {
        assert_eq!(endpoint(&otlp(None), BOTH), "http://traces-env:4318/custom");
    }

    #[test]
    fn precedence_3_generic_endpoint_variable_gets_the_traces_path() {
        let only_generic: &[(&str, &str)] =
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic-env:4318/")];
        assert_eq!(
            endpoint(&otlp(None), only_generic),
            "http://generic-env:4318/v1/traces"
        );
    }

    #[test]
    fn precedence_4_default_is_localhost_4318() {
        assert_eq!(
            endpoint(&otlp(None), &[]),
            "http://localhost:4318/v1/traces"
        );
    }

    #[test]
    fn output_none_has_no_endpoint_whatever_the_environment() {
        assert_eq!(
            TracingSettings::default()
                .resolve(env(BOTH))
                .unwrap()
                .endpoint,
            None
        );
    }

    #[test]
    fn unix_and_https_endpoints_resolve() {
        assert_eq!(
            endpoint(&otlp(Some("unix:///run/otel.sock")), &[]),
            "unix:///run/otel.sock"
        );
        assert_eq!(
            endpoint(&otlp(Some("https://c:4318")), &[]),
            "https://c:4318/v1/traces"
        );
    }

    #[test]
    fn a_bad_variable_is_an_error_naming_it() {
        let bad: &[(&str, &str)] = &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318")];
        let error = otlp(None).resolve(env(bad)).unwrap_err();
        assert_eq!(error.field(), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        for (pairs, variable) in [
            (
                &[("OTEL_TRACES_SAMPLER", "sometimes")][..],
                "OTEL_TRACES_SAMPLER",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
                ][..],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "novalue")][..],
                "OTEL_RESOURCE_ATTRIBUTES",
            ),
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "k=%zz")][..],
                "OTEL_RESOURCE_ATTRIBUTES",
            ),
        ] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(pairs.to_vec().into_boxed_slice());
            let error = TracingSettings::default().resolve(env(pairs)).unwrap_err();
            assert_eq!(error.field(), variable, "{pairs:?}");
        }
    }

    #[test]
    fn service_name_and_resource_attributes_merge_settings_over_environment() {
        let vars: &[(&str, &str)] = &[
            ("OTEL_SERVICE_NAME", "from-env"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "team=edge,deployment.environment.name=staging,note=a%20b",
            ),
        ];
        let resolved = TracingSettings::default().resolve(env(vars)).unwrap();
        assert_eq!(resolved.service_name, "from-env");
        let mut settings = TracingSettings {
            service_name: Some("from-settings".into()),
            service_version: Some("1.2.3".into()),
            ..Default::default()
        };
        settings
            .resource_attributes
            .insert("deployment.environment.name".into(), "prod".into());
        let resolved = settings.resolve(env(vars)).unwrap();
        assert_eq!(resolved.service_name, "from-settings");
        let attributes: BTreeMap<_, _> = resolved.resource_attributes.iter().cloned().collect();
        assert_eq!(
            attributes["deployment.environment.name"], "prod",
            "settings win"
        );
        assert_eq!(attributes["team"], "edge");
        assert_eq!(attributes["note"], "a b");
        assert_eq!(attributes["service.version"], "1.2.3");
        assert_eq!(resolved.resource_attributes[0].0, "service.name");
    }

    #[test]
    fn sampler_variables_apply_only_when_settings_leave_sampling_unset() {
        let vars: &[(&str, &str)] = &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ];
        let resolved = TracingSettings::default().resolve(env(vars)).unwrap();
        assert_eq!(
            (resolved.sampling_ratio, resolved.parent_based),
            (0.25, true)
        );
        let always_off: &[(&str, &str)] = &[("OTEL_TRACES_SAMPLER", "always_off")];
        let resolved = TracingSettings::default().resolve(env(always_off)).unwrap();
        assert_eq!(
            (resolved.sampling_ratio, resolved.parent_based),
            (0.0, false)
        );
        let settings = TracingSettings {
            sampling: Some(SamplingSettings {
                ratio: 0.5,
                parent_based: false,
            }),
            ..Default::default()
        };
        let resolved = settings.resolve(env(vars)).unwrap();
        assert_eq!(
            (resolved.sampling_ratio, resolved.parent_based),
            (0.5, false)
        );
        let resolved = TracingSettings::default().resolve(env(&[])).unwrap();
        assert_eq!(
            (resolved.sampling_ratio, resolved.parent_based),
            (1.0, true)
        );
    }

    #[test]
    fn output_yaml_forms_parse() {
        let settings = TelemetrySettings::from_yaml("tracing:\n  output: none\n").unwrap();
        assert_eq!(settings.tracing.output, TracingOutput::None);
        let settings = TelemetrySettings::from_yaml(
            "tracing:\n  output:\n    otlp_http:\n      endpoint: http://c:4318\n      ca_bundle: /ca.pem\n",
        )
        .unwrap();
        assert_eq!(
            settings.tracing.output,
            TracingOutput::OtlpHttp {
                endpoint: Some("http://c:4318".into()),
                ca_bundle: Some("/ca.pem".into())
            }
        );
        let settings =
            TelemetrySettings::from_yaml("tracing:\n  output:\n    otlp_http: {}\n").unwrap();
        assert_eq!(
            settings.tracing.output,
            TracingOutput::OtlpHttp {
                endpoint: None,
                ca_bundle: None
            }
        );
        assert!(TelemetrySettings::from_yaml("tracing:\n  output: kafka\n").is_err());
    }
}
