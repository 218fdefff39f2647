//! Certificates the emulated control plane issues with the cluster CA it was given: the
//! kubelet's client certificate (what the CSR signer of kube-controller-manager would sign after
//! TLS bootstrap) and kubeadm's admin certificate.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509, X509NameBuilder};

use super::KubeadmError;

/// The cluster CA as read from `ca.crt`/`ca.key`.
pub struct ClusterCa {
    pub cert: X509,
    pub key: PKey<Private>,
    pub cert_pem: Vec<u8>,
}

impl ClusterCa {
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, KubeadmError> {
        let cert = X509::from_pem(cert_pem).map_err(|e| KubeadmError::Certificates(format!("ca.crt: {e}")))?;
        let key =
            PKey::private_key_from_pem(key_pem).map_err(|e| KubeadmError::Certificates(format!("ca.key: {e}")))?;
        if !cert.public_key().map(|p| p.public_eq(&key)).unwrap_or(false) {
            return Err(KubeadmError::Certificates("ca.key does not match ca.crt".into()));
        }
        Ok(ClusterCa {
            cert,
            key,
            cert_pem: cert_pem.to_vec(),
        })
    }

    /// A client certificate (`CN`, `O`) valid for a year; returns PEM certificate and key.
    pub fn client_cert(&self, cn: &str, org: &str) -> Result<(Vec<u8>, Vec<u8>), KubeadmError> {
        let err = |e: openssl::error::ErrorStack| KubeadmError::Internal(format!("issuing {cn}: {e}"));
        let key = PKey::from_rsa(Rsa::generate(2048).map_err(err)?).map_err(err)?;
        let mut name = X509NameBuilder::new().map_err(err)?;
        name.append_entry_by_text("O", org).map_err(err)?;
        name.append_entry_by_text("CN", cn).map_err(err)?;
        let name = name.build();
        let mut b = X509::builder().map_err(err)?;
        b.set_version(2).map_err(err)?;
        let mut serial = BigNum::new().map_err(err)?;
        serial.rand(63, MsbOption::MAYBE_ZERO, false).map_err(err)?;
        let serial = serial.to_asn1_integer().map_err(err)?;
        b.set_serial_number(&serial).map_err(err)?;
        b.set_subject_name(&name).map_err(err)?;
        b.set_issuer_name(self.cert.subject_name()).map_err(err)?;
        b.set_pubkey(&key).map_err(err)?;
        let not_before = Asn1Time::days_from_now(0).map_err(err)?;
        let not_after = Asn1Time::days_from_now(365).map_err(err)?;
        b.set_not_before(&not_before).map_err(err)?;
        b.set_not_after(&not_after).map_err(err)?;
        b.append_extension(BasicConstraints::new().build().map_err(err)?)
            .map_err(err)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()
                .map_err(err)?,
        )
        .map_err(err)?;
        b.append_extension(ExtendedKeyUsage::new().client_auth().build().map_err(err)?)
            .map_err(err)?;
        b.sign(&self.key, MessageDigest::sha256()).map_err(err)?;
        Ok((
            b.build().to_pem().map_err(err)?,
            key.private_key_to_pem_pkcs8().map_err(err)?,
        ))
    }
}
