//! The rustls client configuration both OTLP transports use for `https://` endpoints: the
//! system roots, or the certificates of a CA bundle file, with clear errors about that file.
//!
//! This module owns trust roots only; connections are the transports'.

use std::path::Path;
use std::sync::Arc;

/// A rustls client configuration (ring provider, safe default versions) trusting the system
/// roots, or only the certificates of `ca_bundle`, a PEM file.
pub(super) fn tls_config(ca_bundle: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_bundle {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|error| format!("cannot read CA bundle {}: {error}", path.display()))?;
            for cert in certs {
                let cert = cert
                    .map_err(|error| format!("bad certificate in {}: {error}", path.display()))?;
                roots.add(cert).map_err(|error| {
                    format!("unusable certificate in {}: {error}", path.display())
                })?;
            }
            if roots.is_empty() {
                return Err(format!("CA bundle {} holds no certificate", path.display()));
            }
        }
        None => {
            // Certificates the system store cannot parse are skipped, like other clients do.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS setup failed: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_bundle_is_a_clear_error() {
        let error = tls_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
