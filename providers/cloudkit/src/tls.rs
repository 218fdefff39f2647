//! The HTTPS client every cloud client uses: verification on by default against the system
//! roots or, when given, only a private CA bundle; off only when explicitly asked, and said so
//! in the log.

use std::time::Duration;

/// How a client trusts its endpoint, and how long it waits.
#[derive(Debug, Clone, Copy)]
pub struct TlsSettings<'a> {
    /// Trust exactly these CA certificates (PEM) instead of the system roots.
    pub ca_bundle_pem: Option<&'a [u8]>,
    /// Accept any certificate. Only with an explicit user setting.
    pub insecure_skip_verify: bool,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Names the endpoint in the warning logged when verification is off.
    pub endpoint_host: &'a str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsError {
    #[error("invalid CA bundle: {0}")]
    InvalidCaBundle(String),
    #[error("CA bundle holds no certificate")]
    EmptyCaBundle,
    #[error("building HTTP client: {0}")]
    Build(String),
}

/// A reqwest client for one endpoint's settings.
pub fn http_client(s: &TlsSettings<'_>) -> Result<reqwest::Client, TlsError> {
    // reqwest brings no crypto provider of its own: it uses the process default.
    capstan_runtime::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(s.request_timeout)
        .connect_timeout(s.connect_timeout);
    if let Some(pem) = s.ca_bundle_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| TlsError::InvalidCaBundle(e.to_string()))?;
        if certs.is_empty() {
            return Err(TlsError::EmptyCaBundle);
        }
        builder = builder.tls_certs_only(certs);
    }
    if s.insecure_skip_verify {
        tracing::warn!(endpoint = s.endpoint_host, "TLS certificate verification is disabled");
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| TlsError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pem: Option<&[u8]>) -> TlsSettings<'_> {
        TlsSettings {
            ca_bundle_pem: pem,
            insecure_skip_verify: false,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            endpoint_host: "example",
        }
    }

    #[test]
    fn bad_bundles_are_named() {
        assert!(http_client(&settings(None)).is_ok());
        assert_eq!(
            http_client(&settings(Some(b"no pem here"))).unwrap_err(),
            TlsError::EmptyCaBundle
        );
        let broken = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            http_client(&settings(Some(broken))).unwrap_err(),
            TlsError::InvalidCaBundle(_) | TlsError::EmptyCaBundle
        ));
    }
}
