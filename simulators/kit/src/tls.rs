//! A throwaway PKI (a CA and one server certificate per listening address) and an HTTPS
//! listener for axum, so clients under test verify certificates exactly as they would against a
//! real cloud with a private CA.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509Name, X509NameBuilder};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

pub struct Pki {
    pub ca_pem: String,
    /// One server configuration per address given to [`generate`], in that order.
    pub servers: Vec<Arc<rustls::ServerConfig>>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn new_key() -> Result<PKey<Private>, openssl::error::ErrorStack> {
    // P-256 rather than RSA: key generation is instant, which matters with one simulator per test.
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

fn builder(cn: &str, key: &PKey<Private>) -> Result<(X509Builder, X509Name), openssl::error::ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, cn)?;
    let name = name.build();
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_pubkey(key)?;
    // Backdated an hour so a small clock difference between processes does not matter.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let not_before = Asn1Time::from_unix(now.saturating_sub(3600) as i64)?;
    let not_after = Asn1Time::days_from_now(365)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    Ok((b, name))
}

/// A CA named `ca_name` and one server certificate signed by it for each of `ips` (a cloud
/// endpoint and, say, the host an upload goes to: separate addresses and certificates, as in life).
pub fn generate(ca_name: &str, ips: &[IpAddr]) -> io::Result<Pki> {
    let (ca, leaves) = (|| -> Result<_, openssl::error::ErrorStack> {
        let (ca, ca_key) = ca(ca_name)?;
        let leaves = ips
            .iter()
            .map(|ip| leaf(&ca, &ca_key, *ip))
            .collect::<Result<Vec<_>, _>>()?;
        // The CA key is dropped here: nothing else is ever signed with it.
        Ok((ca, leaves))
    })()
    .map_err(other)?;
    let ca_pem = String::from_utf8(ca.to_pem().map_err(other)?).map_err(other)?;
    let servers = leaves
        .iter()
        .map(|(cert, key)| server_config(&ca, cert, key))
        .collect::<io::Result<Vec<_>>>()?;
    Ok(Pki { ca_pem, servers })
}

/// A CA and one server certificate for `ip`, as PEM, for a server of someone else's that takes
/// its certificate as files (vcsim).
#[derive(Clone)]
pub struct PemPki {
    pub ca_pem: String,
    pub cert_pem: String,
    /// PKCS#8.
    pub key_pem: String,
    /// The server certificate's SHA-256 as vCenter shows it: colon-separated upper-case hex.
    pub thumbprint: String,
}

pub fn generate_pem(ca_name: &str, ip: IpAddr) -> io::Result<PemPki> {
    let (ca, (cert, key)) = (|| -> Result<_, openssl::error::ErrorStack> {
        let (ca, ca_key) = ca(ca_name)?;
        let leaf = leaf(&ca, &ca_key, ip)?;
        Ok((ca, leaf))
    })()
    .map_err(other)?;
    let pem = |r: Result<Vec<u8>, openssl::error::ErrorStack>| -> io::Result<String> {
        String::from_utf8(r.map_err(other)?).map_err(other)
    };
    let digest = cert.digest(MessageDigest::sha256()).map_err(other)?;
    Ok(PemPki {
        ca_pem: pem(ca.to_pem())?,
        cert_pem: pem(cert.to_pem())?,
        key_pem: pem(key.private_key_to_pem_pkcs8())?,
        thumbprint: digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"),
    })
}

fn ca(name: &str) -> Result<(X509, PKey<Private>), openssl::error::ErrorStack> {
    let key = new_key()?;
    let (mut b, subject) = builder(name, &key)?;
    b.set_issuer_name(&subject)?;
    b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build(), key))
}

fn leaf(ca: &X509, ca_key: &PKey<Private>, ip: IpAddr) -> Result<(X509, PKey<Private>), openssl::error::ErrorStack> {
    let key = new_key()?;
    let (mut b, _) = builder(&ip.to_string(), &key)?;
    b.set_issuer_name(ca.subject_name())?;
    b.append_extension(BasicConstraints::new().build()?)?;
    b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let san = SubjectAlternativeName::new()
        .ip(&ip.to_string())
        .dns("localhost")
        .build(&b.x509v3_context(Some(ca), None))?;
    b.append_extension(san)?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(Some(ca), None))?;
    b.append_extension(aki)?;
    b.sign(ca_key, MessageDigest::sha256())?;
    Ok((b.build(), key))
}

fn server_config(ca: &X509, cert: &X509, key: &PKey<Private>) -> io::Result<Arc<rustls::ServerConfig>> {
    let chain = vec![
        CertificateDer::from(cert.to_der().map_err(other)?),
        CertificateDer::from(ca.to_der().map_err(other)?),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.private_key_to_pkcs8().map_err(other)?));
    // An explicit provider: rustls refuses to pick one on its own when features could link two.
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An axum listener yielding TLS streams. Handshakes run in their own tasks so one slow or
/// broken client cannot stall accepting the others.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Returns the listener and the accept loop's handle (abort it to stop accepting).
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<(Self, tokio::task::JoinHandle<()>)> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (stream, addr) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "simulator accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "simulator TLS handshake failed"),
                        Err(_) => tracing::debug!("simulator TLS handshake timed out"),
                    }
                });
            }
        });
        Ok((TlsListener { rx, local }, task))
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept loop is gone (shutdown); never yield another connection.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
