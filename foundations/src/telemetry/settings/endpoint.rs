//! The syntax of an exporter endpoint: `unix:///path`, `http://…` or `https://…`, parsed
//! into an [`Endpoint`], with the path rules of each protocol (OTLP/HTTP: a request path,
//! `/v1/traces` by default; OTLP/gRPC: none, the service path is fixed).
//!
//! Settings validation and the environment resolution parse endpoints here; the transport
//! (`telemetry::export`) connects to the parsed value. This module owns the syntax only: it
//! opens no connection.

use hyper::Uri;
use std::fmt;
use std::path::PathBuf;

/// The OTLP/HTTP traces path.
pub(crate) const TRACES_PATH: &str = "/v1/traces";

/// The wire protocol of an OTLP output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// OTLP/HTTP with a protobuf body (`http/protobuf`), the default.
    #[default]
    HttpProtobuf,
    /// OTLP/gRPC (`grpc`).
    Grpc,
}

/// A parsed exporter endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A Unix domain socket; requests go to [`TRACES_PATH`].
    Unix(PathBuf),
    /// `http://` or `https://`, with the full request URI.
    Http(Uri),
}

impl Endpoint {
    /// Parses `unix:///path`, `http://…` or `https://…`. With `append_traces_path`, an
    /// HTTP endpoint without a path gets `/v1/traces`; one with a path is used as is.
    pub(crate) fn parse(value: &str, append_traces_path: bool) -> Result<Self, String> {
        let value = value.trim();
        if let Some(path) = value.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{value:?}: a unix endpoint needs an absolute path (unix:///path)"
                ));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let uri: Uri = value
            .parse()
            .map_err(|error| format!("{value:?} is not a valid URI: {error}"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(format!(
                    "{value:?}: the scheme must be http://, https:// or unix://"
                ));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("{value:?} has no host"));
        }
        let has_path = uri.path() != "/" && !uri.path().is_empty();
        if append_traces_path && !has_path {
            let base = value.trim_end_matches('/');
            let full: Uri = format!("{base}{TRACES_PATH}")
                .parse()
                .map_err(|error| format!("{value:?}: {error}"))?;
            return Ok(Endpoint::Http(full));
        }
        Ok(Endpoint::Http(uri))
    }

    /// Parses an OTLP/gRPC endpoint: `unix:///path`, `http://host:port` or
    /// `https://host:port`. gRPC requests go to the fixed service path, so an endpoint with a
    /// path is refused rather than silently ignored.
    pub(crate) fn parse_grpc(value: &str) -> Result<Self, String> {
        let endpoint = Self::parse(value, false)?;
        if let Endpoint::Http(uri) = &endpoint {
            if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
                return Err(format!(
                    "{:?}: a gRPC endpoint takes no path (requests go to the OTLP service)",
                    value.trim()
                ));
            }
        }
        Ok(endpoint)
    }

    /// `https://`: the transport speaks TLS.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Endpoint::Http(uri) if uri.scheme_str() == Some("https"))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Http(uri) => write!(f, "{uri}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_the_documented_rules() {
        assert_eq!(
            Endpoint::parse("http://collector:4318", true)
                .unwrap()
                .to_string(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            Endpoint::parse("http://collector:4318/", true)
                .unwrap()
                .to_string(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            Endpoint::parse("https://c:4318/custom/traces", true)
                .unwrap()
                .to_string(),
            "https://c:4318/custom/traces"
        );
        assert_eq!(
            Endpoint::parse("http://c:4318", false).unwrap().to_string(),
            "http://c:4318/"
        );
        assert_eq!(
            Endpoint::parse("unix:///run/otel.sock", true).unwrap(),
            Endpoint::Unix("/run/otel.sock".into())
        );
        assert_eq!(
            Endpoint::parse_grpc("http://c:4317").unwrap().to_string(),
            "http://c:4317/"
        );
        assert_eq!(
            Endpoint::parse_grpc("unix:///run/otel-grpc.sock").unwrap(),
            Endpoint::Unix("/run/otel-grpc.sock".into())
        );
        for bad in [
            "http://c:4317/v1/traces",
            "https://c:4317/x?y",
            "ftp://c:4317",
        ] {
            assert!(Endpoint::parse_grpc(bad).is_err(), "{bad}");
        }
        for bad in [
            "ftp://x",
            "collector:4318",
            "unix://relative",
            "http://",
            "not a uri",
        ] {
            assert!(Endpoint::parse(bad, true).is_err(), "{bad}");
        }
    }
}
