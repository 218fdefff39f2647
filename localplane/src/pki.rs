//! Certificates for a local API server: a CA (throwaway or supplied), a serving certificate for
//! 127.0.0.1 signed by it, and the service-account key pair, so clients verify TLS as they would
//! in production.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder, X509Ref};

use crate::apiserver::SuppliedPki;

pub struct TestPki {
    pub ca_pem: Vec<u8>,
    pub ca_key_pem: Vec<u8>,
    pub serving_cert_pem: Vec<u8>,
    pub serving_key_pem: Vec<u8>,
    pub sa_key_pem: Vec<u8>,
    pub sa_pub_pem: Vec<u8>,
}

fn serial() -> anyhow::Result<openssl::asn1::Asn1Integer> {
    let mut bn = BigNum::new()?;
    bn.rand(63, MsbOption::MAYBE_ZERO, false)?;
    Ok(bn.to_asn1_integer()?)
}

fn key() -> anyhow::Result<PKey<Private>> {
    Ok(PKey::from_rsa(Rsa::generate(2048)?)?)
}

pub fn generate() -> anyhow::Result<TestPki> {
    let ca_key = key()?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "capstan-test-ca")?;
    let ca_name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let sn = serial()?;
    b.set_serial_number(&sn)?;
    b.set_subject_name(&ca_name)?;
    b.set_issuer_name(&ca_name)?;
    b.set_pubkey(&ca_key)?;
    let nb = Asn1Time::days_from_now(0)?;
    b.set_not_before(&nb)?;
    let na = Asn1Time::days_from_now(2)?;
    b.set_not_after(&na)?;
    b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    b.sign(&ca_key, MessageDigest::sha256())?;
    let ca = b.build();

    let (serving_cert_pem, serving_key_pem) = serving_cert(&ca, &ca_key, &[])?;
    let sa = Rsa::generate(2048)?;
    Ok(TestPki {
        ca_pem: ca.to_pem()?,
        ca_key_pem: ca_key.private_key_to_pem_pkcs8()?,
        serving_cert_pem,
        serving_key_pem,
        sa_key_pem: sa.private_key_to_pem()?,
        sa_pub_pem: sa.public_key_to_pem()?,
    })
}

/// Uses the caller's CA and service-account keys; only the serving certificate is new.
pub fn from_supplied(s: &SuppliedPki) -> anyhow::Result<TestPki> {
    let ca = X509::from_pem(&s.ca_cert_pem)?;
    let ca_key = PKey::private_key_from_pem(&s.ca_key_pem)?;
    let (serving_cert_pem, serving_key_pem) = serving_cert(&ca, &ca_key, &s.extra_sans)?;
    Ok(TestPki {
        ca_pem: s.ca_cert_pem.clone(),
        ca_key_pem: ca_key.private_key_to_pem_pkcs8()?,
        serving_cert_pem,
        serving_key_pem,
        sa_key_pem: s.sa_key_pem.clone(),
        sa_pub_pem: s.sa_pub_pem.clone(),
    })
}

/// A serving certificate for 127.0.0.1, `localhost`, the in-cluster names and `extra_sans`.
fn serving_cert(ca: &X509Ref, ca_key: &PKey<Private>, extra_sans: &[String]) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let srv_key = key()?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "kube-apiserver")?;
    let srv_name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let sn = serial()?;
    b.set_serial_number(&sn)?;
    b.set_subject_name(&srv_name)?;
    b.set_issuer_name(ca.subject_name())?;
    b.set_pubkey(&srv_key)?;
    let nb = Asn1Time::days_from_now(0)?;
    b.set_not_before(&nb)?;
    let na = Asn1Time::days_from_now(365)?;
    b.set_not_after(&na)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    let mut san = SubjectAlternativeName::new();
    san.ip("127.0.0.1")
        .dns("localhost")
        .dns("kubernetes")
        .dns("kubernetes.default")
        .dns("kubernetes.default.svc");
    for extra in extra_sans {
        if extra.parse::<std::net::IpAddr>().is_ok() {
            san.ip(extra);
        } else {
            san.dns(extra);
        }
    }
    let san = san.build(&b.x509v3_context(Some(ca), None))?;
    b.append_extension(san)?;
    b.sign(ca_key, MessageDigest::sha256())?;
    let srv = b.build();
    Ok((srv.to_pem()?, srv_key.private_key_to_pem_pkcs8()?))
}
