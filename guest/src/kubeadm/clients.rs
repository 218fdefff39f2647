//! Clients for a workload API server with the identities a node uses in turn: anonymous and
//! unverified (discovery's first look), a bootstrap token, a kubelet certificate, and admin.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::KubeadmError;

pub enum Trust<'a> {
    /// Accept any serving certificate: only for the first cluster-info fetch, whose content is
    /// then verified by signature and CA pinning.
    Insecure,
    Ca(&'a [u8]),
}

pub enum Identity<'a> {
    Anonymous,
    Token(&'a str),
    Certificate { cert_pem: &'a [u8], key_pem: &'a [u8] },
}

/// A kubeconfig document for `server`; also what kubeadm writes to disk (`admin.conf`,
/// `kubelet.conf`).
pub fn kubeconfig(server: &str, trust: &Trust<'_>, identity: &Identity<'_>) -> String {
    let cluster = match trust {
        Trust::Insecure => "    insecure-skip-tls-verify: true\n".to_string(),
        Trust::Ca(ca) => format!("    certificate-authority-data: {}\n", STANDARD.encode(ca)),
    };
    let user = match identity {
        Identity::Anonymous => "  user: {}\n".to_string(),
        Identity::Token(t) => format!("  user:\n    token: {t}\n"),
        Identity::Certificate { cert_pem, key_pem } => format!(
            "  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            STANDARD.encode(cert_pem),
            STANDARD.encode(key_pem)
        ),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: workload\n  cluster:\n    server: {server}\n{cluster}users:\n- name: node\n{user}contexts:\n- name: node\n  context:\n    cluster: workload\n    user: node\ncurrent-context: node\n"
    )
}

pub async fn client(server: &str, trust: Trust<'_>, identity: Identity<'_>) -> Result<Client, KubeadmError> {
    let yaml = kubeconfig(server, &trust, &identity);
    let kc = Kubeconfig::from_yaml(&yaml).map_err(|e| KubeadmError::Internal(format!("kubeconfig: {e}")))?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| KubeadmError::Internal(format!("kubeconfig: {e}")))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    Client::try_from(config).map_err(|e| KubeadmError::Internal(format!("client: {e}")))
}
