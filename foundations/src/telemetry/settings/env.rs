//! The standard OpenTelemetry environment variables, read where the settings leave a value
//! unset: the endpoint precedence (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), the protocol (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then
//! `OTEL_EXPORTER_OTLP_PROTOCOL`), `OTEL_RESOURCE_ATTRIBUTES` (percent-decoded), and
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
//!
//! Every function takes the environment as a lookup function, so tests inject their own and
//! nothing here reads (or races on) the process's variables by itself. This module only
//! interprets values; [`TracingSettings::resolve`](super::TracingSettings::resolve) decides
//! when they apply.

use super::SettingsError;
use super::endpoint::{Endpoint, OtlpProtocol};
use std::collections::BTreeMap;

/// The export endpoint, by precedence, for `protocol`:
///
/// - OTLP/HTTP: the explicit setting (`/v1/traces` appended when it has no path),
///   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is), `OTEL_EXPORTER_OTLP_ENDPOINT`
///   (`/v1/traces` always appended), else `http://localhost:4318/v1/traces`;
/// - OTLP/gRPC: the same sources, each used as is (a gRPC endpoint has no path), else
///   `http://localhost:4317`.
///
/// `field` names the explicit setting in errors.
pub(super) fn resolve_endpoint(
    explicit: Option<&str>,
    protocol: OtlpProtocol,
    field: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, SettingsError> {
    let grpc = protocol == OtlpProtocol::Grpc;
    let (source, value, append) = if let Some(explicit) = explicit {
        (field, explicit.to_owned(), true)
    } else if let Some(value) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value, false)
    } else if let Some(value) = env("OTEL_EXPORTER_OTLP_ENDPOINT") {
        // The generic endpoint names the collector; over HTTP the signal path is always
        // appended, over gRPC the service path is fixed.
        let value = if grpc {
            value
        } else {
            format!("{}/v1/traces", value.trim().trim_end_matches('/'))
        };
        ("OTEL_EXPORTER_OTLP_ENDPOINT", value, false)
    } else if grpc {
        (
            "default endpoint",
            "http://localhost:4317".to_owned(),
            false,
        )
    } else {
        ("default endpoint", "http://localhost:4318".to_owned(), true)
    };
    let parsed = if grpc {
        Endpoint::parse_grpc(&value)
    } else {
        Endpoint::parse(&value, append)
    };
    parsed
        .map(|endpoint| endpoint.to_string())
        .map_err(|message| SettingsError::new(source, message))
}

/// The OTLP transport protocol from `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else
/// `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or `http/protobuf` (the specification's default).
/// `http/json` is not supported and, like any other value, is an error naming the variable.
pub(super) fn protocol(
    env: &impl Fn(&str) -> Option<String>,
) -> Result<OtlpProtocol, SettingsError> {
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(value) = env(name) {
            return match value.trim() {
                "grpc" => Ok(OtlpProtocol::Grpc),
                "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
                other => Err(SettingsError::new(
                    name,
                    format!("{other:?} is not a supported protocol (grpc or http/protobuf)"),
                )),
            };
        }
    }
    Ok(OtlpProtocol::HttpProtobuf)
}

/// `OTEL_RESOURCE_ATTRIBUTES` (`key=value,…`, values percent-encoded) as a map; empty when
/// unset.
pub(super) fn resource_attributes(
    env: &impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, SettingsError> {
    let mut attributes = BTreeMap::new();
    let Some(raw) = env("OTEL_RESOURCE_ATTRIBUTES") else {
        return Ok(attributes);
    };
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
    Ok(attributes)
}

/// `(ratio, parent_based)` from `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`; without
/// them, everything, parent-based.
pub(super) fn sampler(env: &impl Fn(&str) -> Option<String>) -> Result<(f64, bool), SettingsError> {
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
