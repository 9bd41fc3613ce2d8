//! The standard OpenTelemetry environment variables, read where the settings leave a value
//! unset: the endpoint precedence (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), `OTEL_RESOURCE_ATTRIBUTES` (percent-decoded), and
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
//!
//! Every function takes the environment as a lookup function, so tests inject their own and
//! nothing here reads (or races on) the process's variables by itself. This module only
//! interprets values; [`TracingSettings::resolve`](super::TracingSettings::resolve) decides
//! when they apply.

use super::SettingsError;
use super::endpoint::Endpoint;
use std::collections::BTreeMap;

/// The export endpoint, by precedence: the explicit setting (`/v1/traces` appended when it
/// has no path), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is), `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (`/v1/traces` always appended), else `http://localhost:4318/v1/traces`.
pub(super) fn resolve_endpoint(
    explicit: Option<&str>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, SettingsError> {
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
