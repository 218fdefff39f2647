//! The admin kubeconfig secret `<cluster>-kubeconfig`, as CAPI core writes it when no control-plane
//! provider does: a client certificate for `kubernetes-admin` in `system:masters`, signed by the
//! cluster CA from `<cluster>-ca`, valid for one year.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::json;

use capstan_api::contract::LABEL_CLUSTER_NAME;

/// Secret type CAPI uses for the secrets it generates.
pub const CLUSTER_SECRET_TYPE: &str = "cluster.x-k8s.io/secret";

pub fn ca_secret_name(cluster: &str) -> String {
    format!("{cluster}-ca")
}

/// A client certificate for `kubernetes-admin` (group `system:masters`) signed by the CA.
fn admin_cert(ca_cert: &X509, ca_key: &PKey<Private>) -> Result<(X509, PKey<Private>), ErrorStack> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("O", "system:masters")?;
    name.append_entry_by_text("CN", "kubernetes-admin")?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(63, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(ca_cert.subject_name())?;
    b.set_pubkey(&key)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // Backdated a little, as upstream does, so a skewed apiserver clock still accepts it.
    let not_before = Asn1Time::from_unix(now - 300)?;
    b.set_not_before(&not_before)?;
    let not_after = Asn1Time::from_unix(now + 365 * 24 * 3600)?;
    b.set_not_after(&not_after)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
    b.sign(ca_key, MessageDigest::sha256())?;
    Ok((b.build(), key))
}

/// The kubeconfig document, with upstream's cluster, user and context names.
pub fn admin_kubeconfig(cluster: &str, server: &str, ca_pem: &[u8], ca_key_pem: &[u8]) -> Result<String, ErrorStack> {
    let ca_cert = X509::from_pem(ca_pem)?;
    let ca_key = PKey::private_key_from_pem(ca_key_pem)?;
    let (cert, key) = admin_cert(&ca_cert, &ca_key)?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let user = format!("{cluster}-admin");
    let context = format!("{user}@{cluster}");
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(&cert.to_pem()?),
            "client-key-data": b64(&key.rsa()?.private_key_to_pem()?),
        }}],
    });
    Ok(serde_saphyr::to_string(&doc).expect("kubeconfig serialises"))
}

/// The `<cluster>-kubeconfig` Secret, owned (as controller) by the Cluster.
pub fn admin_kubeconfig_secret(cluster: &str, namespace: &str, owner: OwnerReference, kubeconfig: String) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(crate::workload::kubeconfig_secret_name(cluster)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(LABEL_CLUSTER_NAME.to_string(), cluster.to_string())])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        type_: Some(CLUSTER_SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([(
            "value".to_string(),
            ByteString(kubeconfig.into_bytes()),
        )])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (Vec<u8>, Vec<u8>) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "kubernetes").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(10).unwrap()).unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (b.build().to_pem().unwrap(), key.private_key_to_pem_pkcs8().unwrap())
    }

    #[test]
    fn admin_certificate_is_kubernetes_admin_in_system_masters_and_chains_to_the_ca() {
        let (ca_pem, ca_key) = ca();
        let text = admin_kubeconfig("c1", "https://10.0.0.1:6443", &ca_pem, &ca_key).unwrap();
        let cfg: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(cfg["current-context"], "c1-admin@c1");
        assert_eq!(cfg["contexts"][0]["context"]["user"], "c1-admin");
        assert_eq!(cfg["clusters"][0]["name"], "c1");
        assert_eq!(cfg["clusters"][0]["cluster"]["server"], "https://10.0.0.1:6443");
        let decode = |v: &serde_json::Value| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap()
        };
        let cert = X509::from_pem(&decode(&cfg["users"][0]["user"]["client-certificate-data"])).unwrap();
        let subject: Vec<String> = cert
            .subject_name()
            .entries()
            .map(|e| e.data().to_string().unwrap())
            .collect();
        assert_eq!(subject, ["system:masters", "kubernetes-admin"]);
        let ca_cert = X509::from_pem(&ca_pem).unwrap();
        assert!(cert.verify(&ca_cert.public_key().unwrap()).unwrap());
        let days = Asn1Time::days_from_now(0).unwrap().diff(cert.not_after()).unwrap().days;
        assert!((364..=365).contains(&days), "valid for a year, got {days} days");
        let key = PKey::private_key_from_pem(&decode(&cfg["users"][0]["user"]["client-key-data"])).unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
    }
}
