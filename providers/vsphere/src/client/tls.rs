//! How the client trusts vCenter: the system roots, a private CA bundle, a pinned SHA-256
//! certificate thumbprint, or (only when asked explicitly) nothing at all.
//!
//! CAPV treats an empty thumbprint as "do not verify" (its session.go passes `insecure=true`);
//! here no setting means verification against the system roots, and `Insecure` has to be said.
//!
//! Pinning lives here, not in the cloud kit: it needs a rustls certificate verifier and a
//! preconfigured rustls client, which the kit (a reqwest builder over borrowed settings, used
//! by every provider) does not have, and only vCenter hands out thumbprints. CA bundles and the
//! insecure flag go through the kit's [`capstan_cloudkit::tls::http_client`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::Digest;

/// A SHA-256 fingerprint of a certificate's DER, as vCenter shows it
/// (`AB:CD:...`, 32 bytes; with or without colons, any case).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thumbprint(pub [u8; 32]);

impl Thumbprint {
    pub fn of_der(der: &[u8]) -> Thumbprint {
        Thumbprint(sha2::Sha256::digest(der).into())
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        f.write_str(&hex.join(":"))
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThumbprintError {
    /// A SHA-1 thumbprint (20 bytes): vCenter shows both, only SHA-256 is accepted here.
    #[error("a thumbprint of {0} bytes is not SHA-256 (32 bytes); SHA-1 thumbprints are not accepted")]
    WrongLength(usize),
    #[error("a thumbprint is hex digits, optionally separated by colons")]
    NotHex,
}

impl FromStr for Thumbprint {
    type Err = ThumbprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s.trim().chars().filter(|c| *c != ':').collect();
        if !digits.chars().all(|c| c.is_ascii_hexdigit()) || !digits.len().is_multiple_of(2) {
            return Err(ThumbprintError::NotHex);
        }
        let bytes: Vec<u8> = (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| ThumbprintError::NotHex))
            .collect::<Result<_, _>>()?;
        let n = bytes.len();
        bytes
            .try_into()
            .map(Thumbprint)
            .map_err(|_| ThumbprintError::WrongLength(n))
    }
}

/// How the client trusts the server's certificate. The default verifies against the system roots.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum TlsTrust {
    /// The system's roots.
    #[default]
    System,
    /// Exactly these CA certificates (PEM), not the system roots.
    CaBundle(Vec<u8>),
    /// Only a leaf certificate with this SHA-256 fingerprint; no CA, name or expiry is trusted
    /// or checked instead (as govmomi's thumbprint check), because the fingerprint names the
    /// one certificate the user accepted.
    Thumbprint(Thumbprint),
    /// No verification at all. Only from an explicit user setting; logged when used.
    Insecure,
}

/// A CA bundle is public, but long: its size says enough.
impl fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsTrust::System => f.write_str("System"),
            TlsTrust::CaBundle(pem) => write!(f, "CaBundle(<{} bytes>)", pem.len()),
            TlsTrust::Thumbprint(t) => write!(f, "Thumbprint({t})"),
            TlsTrust::Insecure => f.write_str("Insecure"),
        }
    }
}

impl TlsTrust {
    /// What distinguishes two settings, for the client pool's key.
    pub(crate) fn key(&self) -> String {
        match self {
            TlsTrust::System => "system".into(),
            TlsTrust::CaBundle(pem) => format!("ca:{}", capstan_cloudkit::sha256_hex(pem)),
            TlsTrust::Thumbprint(t) => format!("pin:{t}"),
            TlsTrust::Insecure => "insecure".into(),
        }
    }
}

/// The HTTPS client for one vCenter and trust setting.
pub(crate) fn http_client(
    trust: &TlsTrust,
    host: &str,
    request_timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, String> {
    let kit = |ca_bundle_pem: Option<&[u8]>, insecure_skip_verify: bool| {
        capstan_cloudkit::tls::http_client(&capstan_cloudkit::TlsSettings {
            ca_bundle_pem,
            insecure_skip_verify,
            request_timeout,
            connect_timeout,
            endpoint_host: host,
        })
        .map_err(|e| e.to_string())
    };
    match trust {
        TlsTrust::System => kit(None, false),
        TlsTrust::CaBundle(pem) => kit(Some(pem), false),
        TlsTrust::Insecure => kit(None, true),
        TlsTrust::Thumbprint(t) => pinned_client(*t, request_timeout, connect_timeout),
    }
}

fn pinned_client(
    pin: Thumbprint,
    request_timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, String> {
    capstan_runtime::install_crypto_provider();
    let provider = CryptoProvider::get_default()
        .cloned()
        .ok_or("no TLS crypto provider installed")?;
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedLeaf { pin, provider }))
        .with_no_client_auth();
    reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(connect_timeout)
        .tls_backend_preconfigured(config)
        .build()
        .map_err(|e| e.to_string())
}

/// Accepts exactly the leaf whose SHA-256 is pinned; the handshake signatures are still
/// verified, so the server must hold that certificate's key.
#[derive(Debug)]
struct PinnedLeaf {
    pin: Thumbprint,
    provider: Arc<CryptoProvider>,
}

#[derive(Debug, thiserror::Error)]
#[error("the server's certificate has SHA-256 thumbprint {seen}, not the pinned {pinned}")]
struct PinMismatch {
    seen: Thumbprint,
    pinned: Thumbprint,
}

impl ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Thumbprint::of_der(end_entity);
        if seen == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            rustls::OtherError(Arc::new(PinMismatch { seen, pinned: self.pin })),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_parse_with_or_without_colons() {
        let hex = "AB".repeat(32);
        let t: Thumbprint = hex.parse().unwrap();
        assert_eq!(t.0, [0xab; 32]);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(colons.parse::<Thumbprint>().unwrap(), t);
        assert_eq!(t.to_string(), vec!["AB"; 32].join(":"));
        assert_eq!(
            "aa".repeat(20).parse::<Thumbprint>().unwrap_err(),
            ThumbprintError::WrongLength(20)
        );
        assert_eq!("zz".parse::<Thumbprint>().unwrap_err(), ThumbprintError::NotHex);
        assert_eq!("abc".parse::<Thumbprint>().unwrap_err(), ThumbprintError::NotHex);
        assert_eq!("".parse::<Thumbprint>().unwrap_err(), ThumbprintError::WrongLength(0));
    }
}
