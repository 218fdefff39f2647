//! Cluster discovery as `kubeadm join` does it: fetch `kube-public/cluster-info` without
//! trusting the server, check the bootstrap signer's detached JWS for our token id, pin the CA
//! against `caCertHashes`, then fetch again over verified TLS and compare.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::x509::X509;
use sha2::{Digest, Sha256};

use super::KubeadmError;
use super::clients::{Identity, Trust, client};

pub const CLUSTER_INFO: &str = "cluster-info";
pub const JWS_PREFIX: &str = "jws-kubeconfig-";

/// A bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

impl BootstrapToken {
    pub fn parse(s: &str) -> Result<Self, KubeadmError> {
        let valid = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        match s.split_once('.') {
            Some((id, secret)) if valid(id, 6) && valid(secret, 16) => Ok(BootstrapToken {
                id: id.into(),
                secret: secret.into(),
            }),
            _ => Err(KubeadmError::Config(
                "the bootstrap token does not match [a-z0-9]{6}.[a-z0-9]{16}".into(),
            )),
        }
    }

    pub fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<Vec<u8>, KubeadmError> {
    let key = PKey::hmac(key).map_err(|e| KubeadmError::Internal(e.to_string()))?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key).map_err(|e| KubeadmError::Internal(e.to_string()))?;
    signer.update(data).map_err(|e| KubeadmError::Internal(e.to_string()))?;
    signer.sign_to_vec().map_err(|e| KubeadmError::Internal(e.to_string()))
}

/// The bootstrap signer's detached JWS (`header..signature`, HS256 keyed by the token secret,
/// `kid` = token id) over `content`.
pub fn sign_detached(content: &str, token: &BootstrapToken) -> Result<String, KubeadmError> {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{}"}}"#, token.id));
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(content));
    let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(token.secret.as_bytes(), input.as_bytes())?);
    Ok(format!("{header}..{sig}"))
}

/// Verifies a detached JWS as kubeadm does: the protected header must say HS256 and our token
/// id, and the MAC over `header.payload` must match.
pub fn verify_detached(content: &str, jws: &str, token: &BootstrapToken) -> bool {
    let mut parts = jws.split('.');
    let (Some(header), Some(""), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(header_json) = URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    let Ok(h) = serde_json::from_slice::<serde_json::Value>(&header_json) else {
        return false;
    };
    if h["alg"] != "HS256" || h["kid"] != token.id.as_str() {
        return false;
    }
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(content));
    let (Ok(expected), Ok(given)) = (
        hmac_sha256(token.secret.as_bytes(), input.as_bytes()),
        URL_SAFE_NO_PAD.decode(sig),
    ) else {
        return false;
    };
    // memcmp::eq is constant-time but panics on a length mismatch.
    expected.len() == given.len() && openssl::memcmp::eq(&expected, &given)
}

/// `sha256:<hex>` of the certificate's SubjectPublicKeyInfo, kubeadm's `caCertHashes` format.
pub fn ca_cert_hash(ca_pem: &[u8]) -> Result<String, KubeadmError> {
    let cert = X509::from_pem(ca_pem).map_err(|e| KubeadmError::Discovery(format!("invalid CA certificate: {e}")))?;
    let spki = cert
        .public_key()
        .and_then(|k| k.public_key_to_der())
        .map_err(|e| KubeadmError::Discovery(format!("invalid CA public key: {e}")))?;
    Ok(format!("sha256:{}", hex(&Sha256::digest(&spki))))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The API server and CA a joining node has found.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub server: String,
    pub ca_pem: Vec<u8>,
}

/// `clusters[0].cluster.{server, certificate-authority-data}` of a kubeconfig document.
pub fn cluster_of_kubeconfig(text: &str) -> Result<Discovered, KubeadmError> {
    let kc: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| KubeadmError::Discovery(format!("invalid kubeconfig: {e}")))?;
    let cluster = &kc["clusters"][0]["cluster"];
    let server = cluster["server"]
        .as_str()
        .ok_or_else(|| KubeadmError::Discovery("kubeconfig has no cluster server".into()))?;
    let ca = cluster["certificate-authority-data"]
        .as_str()
        .ok_or_else(|| KubeadmError::Discovery("kubeconfig has no certificate-authority-data".into()))?;
    let ca_pem = STANDARD
        .decode(ca.trim())
        .map_err(|e| KubeadmError::Discovery(format!("certificate-authority-data: {e}")))?;
    Ok(Discovered {
        server: server.to_string(),
        ca_pem,
    })
}

async fn fetch_cluster_info(server: &str, trust: Trust<'_>) -> Result<ConfigMap, KubeadmError> {
    let c = client(server, trust, Identity::Anonymous).await?;
    Api::<ConfigMap>::namespaced(c, "kube-public")
        .get(CLUSTER_INFO)
        .await
        .map_err(|e| KubeadmError::Unreachable(format!("cannot fetch kube-public/{CLUSTER_INFO} from {server}: {e}")))
}

/// One attempt at token discovery. `Err(Unreachable)` and a missing signature are worth
/// retrying (the server or the signer may not be there yet); the rest is final.
pub async fn discover_with_token(
    endpoint: &str,
    token: &BootstrapToken,
    ca_cert_hashes: &[String],
    unsafe_skip_ca_verification: bool,
) -> Result<Discovered, KubeadmError> {
    if ca_cert_hashes.is_empty() && !unsafe_skip_ca_verification {
        return Err(KubeadmError::Config(
            "token discovery needs caCertHashes or unsafeSkipCAVerification: true".into(),
        ));
    }
    let server = format!("https://{endpoint}");
    let cm = fetch_cluster_info(&server, Trust::Insecure).await?;
    let data = cm.data.unwrap_or_default();
    let content = data
        .get("kubeconfig")
        .ok_or_else(|| KubeadmError::Discovery(format!("{CLUSTER_INFO} has no kubeconfig key")))?;
    let jws = data.get(&format!("{JWS_PREFIX}{}", token.id)).ok_or_else(|| {
        KubeadmError::NotSigned(format!(
            "there is no JWS signed token in the {CLUSTER_INFO} ConfigMap for token ID {:?}",
            token.id
        ))
    })?;
    if !verify_detached(content, jws, token) {
        return Err(KubeadmError::Discovery(format!(
            "failed to verify JWS signature of received cluster info object, can't trust this API Server (token ID {:?})",
            token.id
        )));
    }
    let found = cluster_of_kubeconfig(content)?;
    if !unsafe_skip_ca_verification {
        let hash = ca_cert_hash(&found.ca_pem)?;
        if !ca_cert_hashes.iter().any(|h| h.eq_ignore_ascii_case(&hash)) {
            return Err(KubeadmError::Discovery(format!(
                "cluster CA found in {CLUSTER_INFO} ConfigMap is invalid: none of the public keys \"{hash}\" are pinned"
            )));
        }
    }
    // The second fetch trusts the pinned CA: a server that cannot prove it holds that CA's
    // serving certificate is not the cluster.
    let again = fetch_cluster_info(&found.server, Trust::Ca(&found.ca_pem)).await?;
    if again.data.unwrap_or_default().get("kubeconfig") != Some(content) {
        return Err(KubeadmError::Discovery(format!(
            "{CLUSTER_INFO} changed between the insecure and the secure fetch"
        )));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jws_round_trip_and_rejections() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let jws = sign_detached("content", &t).unwrap();
        assert!(jws.contains(".."));
        assert!(verify_detached("content", &jws, &t));
        assert!(!verify_detached("other", &jws, &t));
        let wrong = BootstrapToken::parse("abcdef.0123456789abcdee").unwrap();
        assert!(!verify_detached("content", &jws, &wrong));
        let other_id = BootstrapToken::parse("zzzzzz.0123456789abcdef").unwrap();
        assert!(!verify_detached("content", &jws, &other_id));
        assert!(BootstrapToken::parse("ABCDEF.0123456789abcdef").is_err());
        assert!(!format!("{t:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn jws_header_is_what_the_bootstrap_signer_writes() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let jws = sign_detached("content", &t).unwrap();
        let (header, _) = jws.split_once("..").unwrap();
        assert_eq!(
            String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap(),
            r#"{"alg":"HS256","kid":"abcdef"}"#
        );
    }
}
