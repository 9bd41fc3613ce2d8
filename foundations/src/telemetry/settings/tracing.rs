//! The internal pipeline's settings ([`TracingSettings`]: identity, sampling, output, and
//! the shared [`ExportSettings`]) and their resolution against the OpenTelemetry environment
//! variables into [`ResolvedTracing`].
//!
//! This module owns the `tracing:` section and its checks only; the variables themselves are
//! interpreted in `env`, and nothing here starts or records anything.

use super::endpoint::{Endpoint, OtlpProtocol};
use super::env;
use super::export::ExportSettings;
use super::limits::SpanLimitsSettings;
use super::rate_limit::RateLimitSettings;
use super::{SettingsError, UnknownFields};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Settings of the internal pipeline and its exporter.
///
/// Identity and sampling left unset here fall back to the standard OpenTelemetry
/// environment variables (see [`ResolvedTracing`]).
#[derive(Clone, Debug, Deserialize, PartialEq)]
// No `deny_unknown_fields`: serde does not support it with `flatten`. Keys that no field
// takes land in `unknown`, and `validate` rejects them by name.
#[serde(default)]
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
    /// The most new roots recorded per second. Default: disabled.
    pub rate_limit: RateLimitSettings,
    /// The live registry of in-flight traces (`tracing::live_traces`). Default: roots
    /// tracked, their descendants not.
    pub live_traces: LiveTracesSettings,
    /// The exporter's queue, batching and request knobs, written directly under `tracing:`
    /// (`tracing.max_batch_size`, …).
    #[serde(flatten)]
    pub export: ExportSettings,
    /// How much one span keeps (`tracing.span_limits.max_attributes`, …). Default:
    /// OpenTelemetry's (128 attributes, events, attributes per event and links).
    pub span_limits: SpanLimitsSettings,
    /// Keys no field took; must stay the last field (flattened fields take their keys in
    /// field order, and a map takes whatever is left).
    #[serde(flatten)]
    pub(super) unknown: UnknownFields,
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
            rate_limit: RateLimitSettings::default(),
            live_traces: LiveTracesSettings::default(),
            export: ExportSettings::default(),
            span_limits: SpanLimitsSettings::default(),
            unknown: UnknownFields::new(),
        }
    }
}

/// The live registry of in-flight internal traces, as `init` sets it up; the same switches
/// as `tracing::set_live_traces_enabled` and `tracing::set_live_descendants_enabled`.
///
/// ```yaml
/// live_traces:
///   enabled: true        # recorded roots are listed while open (the default)
///   descendants: false   # their open recorded descendants too (costs two locks each)
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LiveTracesSettings {
    /// List recorded roots while they are open. Default: `true`.
    pub enabled: bool,
    /// List their open recorded descendants too. Default: `false`.
    pub descendants: bool,
}

impl Default for LiveTracesSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            descendants: false,
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
/// ---
/// output:
///   otlp_grpc:
///     endpoint: http://collector.internal:4317    # or https://… or unix:///path
/// ---
/// output:
///   otlp: {}    # OTLP/HTTP or OTLP/gRPC, as OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL says
/// ```
///
/// Compression, timeouts, batching and retries are the shared [`ExportSettings`] knobs
/// under `tracing:`, whatever the protocol.
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
    /// OTLP/gRPC (`TraceService/Export` over HTTP/2) to a collector.
    OtlpGrpc {
        /// `http://host:port` (h2c over TCP), `https://host:port` (TLS) or `unix:///path`,
        /// without a path. Default: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
        /// `OTEL_EXPORTER_OTLP_ENDPOINT` (both as is), else `http://localhost:4317`.
        #[serde(default)]
        endpoint: Option<String>,
        /// PEM file of the CA certificates that verify an `https` collector, instead of the
        /// system roots.
        #[serde(default)]
        ca_bundle: Option<PathBuf>,
    },
    /// OTLP with the protocol taken from `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` or `http/protobuf`), else OTLP/HTTP; then as
    /// [`OtlpHttp`](Self::OtlpHttp) or [`OtlpGrpc`](Self::OtlpGrpc).
    Otlp {
        /// As for the chosen protocol.
        #[serde(default)]
        endpoint: Option<String>,
        /// As for the chosen protocol.
        #[serde(default)]
        ca_bundle: Option<PathBuf>,
    },
}

impl TracingOutput {
    /// The CA bundle of an OTLP output, if one is set.
    pub fn ca_bundle(&self) -> Option<&Path> {
        match self {
            TracingOutput::None => None,
            TracingOutput::OtlpHttp { ca_bundle, .. }
            | TracingOutput::OtlpGrpc { ca_bundle, .. }
            | TracingOutput::Otlp { ca_bundle, .. } => ca_bundle.as_deref(),
        }
    }

    /// The dotted path of this output's settings, for errors.
    pub(crate) fn field(&self) -> &'static str {
        match self {
            TracingOutput::None => "tracing.output",
            TracingOutput::OtlpHttp { .. } => "tracing.output.otlp_http",
            TracingOutput::OtlpGrpc { .. } => "tracing.output.otlp_grpc",
            TracingOutput::Otlp { .. } => "tracing.output.otlp",
        }
    }
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
    /// The protocol spoken to `endpoint` (meaningless without one).
    pub protocol: OtlpProtocol,
}

impl TracingSettings {
    /// Applies the OpenTelemetry environment variables where these settings leave values
    /// unset: the endpoint precedence, the protocol of output `otlp`, `OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`. `env`
    /// looks a variable up (`|name| std::env::var(name).ok()` in production).
    ///
    /// # Errors
    ///
    /// A variable with an invalid value, named in the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use foundations::telemetry::settings::{OtlpProtocol, TracingOutput, TracingSettings};
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
    ///
    /// // Output `otlp` follows the protocol variables; gRPC endpoints get no path.
    /// settings.output = TracingOutput::Otlp { endpoint: None, ca_bundle: None };
    /// let env = |name: &str| match name {
    ///     "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" => Some("grpc".to_owned()),
    ///     _ => None,
    /// };
    /// let resolved = settings.resolve(env).unwrap();
    /// assert_eq!(resolved.protocol, OtlpProtocol::Grpc);
    /// assert_eq!(resolved.endpoint.as_deref(), Some("http://localhost:4317/"));
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

        let mut attributes = env::resource_attributes(&non_empty)?;
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
            None => env::sampler(&non_empty)?,
        };

        let field = format!("{}.endpoint", self.output.field());
        let (endpoint, protocol) = match &self.output {
            TracingOutput::None => (None, OtlpProtocol::HttpProtobuf),
            TracingOutput::OtlpHttp { endpoint, .. } => {
                (Some(endpoint), OtlpProtocol::HttpProtobuf)
            }
            TracingOutput::OtlpGrpc { endpoint, .. } => (Some(endpoint), OtlpProtocol::Grpc),
            TracingOutput::Otlp { endpoint, .. } => (Some(endpoint), env::protocol(&non_empty)?),
        };
        let endpoint = match endpoint {
            None => None,
            Some(explicit) => Some(env::resolve_endpoint(
                explicit.as_deref(),
                protocol,
                &field,
                &non_empty,
            )?),
        };
        Ok(ResolvedTracing {
            service_name,
            resource_attributes,
            sampling_ratio,
            parent_based,
            endpoint,
            protocol,
        })
    }

    /// Checks every value, naming the first invalid one as `tracing.<field>`.
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if let Some(sampling) = &self.sampling {
            if !(0.0..=1.0).contains(&sampling.ratio) {
                return Err(SettingsError::new(
                    "tracing.sampling.ratio",
                    format!("{} is not in 0.0..=1.0", sampling.ratio),
                ));
            }
        }
        self.rate_limit.validate("tracing")?;
        self.export.validate("tracing")?;
        self.span_limits.validate("tracing")?;
        // An `otlp` endpoint's protocol is known only once the environment is read: `resolve`
        // checks it.
        let parsed = match &self.output {
            TracingOutput::OtlpHttp {
                endpoint: Some(endpoint),
                ..
            } => Endpoint::parse(endpoint, true),
            TracingOutput::OtlpGrpc {
                endpoint: Some(endpoint),
                ..
            } => Endpoint::parse_grpc(endpoint),
            _ => return Ok(()),
        };
        parsed.map(drop).map_err(|message| {
            SettingsError::new(format!("{}.endpoint", self.output.field()), message)
        })
    }
}
