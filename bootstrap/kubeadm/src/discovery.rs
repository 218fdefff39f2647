//! File discovery: the kubeconfig a joining node reads instead of using a bootstrap token,
//! written as an extra file with CABPK's defaults (server from the Cluster endpoint, CA from
//! the cluster CA; context, cluster and user all named `default`).

use openssl::base64::encode_block;
use serde_json::{Map, Value, json};

use crate::api::{File, FileDiscoveryKubeConfig};
use crate::render::goyaml;

pub fn kubeconfig_file(path: &str, kc: &FileDiscoveryKubeConfig, default_server: &str, ca_pem: &[u8]) -> File {
    let c = &kc.cluster;
    let mut cluster = Map::new();
    let server = if c.server.is_empty() { default_server } else { &c.server };
    cluster.insert("server".into(), server.into());
    let ca = if c.certificate_authority_data.is_empty() {
        encode_block(ca_pem).replace('\n', "")
    } else {
        c.certificate_authority_data.clone()
    };
    if !ca.is_empty() {
        cluster.insert("certificate-authority-data".into(), ca.into());
    }
    if !c.tls_server_name.is_empty() {
        cluster.insert("tls-server-name".into(), c.tls_server_name.clone().into());
    }
    if c.insecure_skip_tls_verify == Some(true) {
        cluster.insert("insecure-skip-tls-verify".into(), true.into());
    }
    if !c.proxy_url.is_empty() {
        cluster.insert("proxy-url".into(), c.proxy_url.clone().into());
    }
    let mut user = Map::new();
    if let Some(exec) = &kc.user.exec {
        let mut e = Map::new();
        let api_version = if exec.api_version.is_empty() {
            "client.authentication.k8s.io/v1"
        } else {
            &exec.api_version
        };
        e.insert("apiVersion".into(), api_version.into());
        e.insert("command".into(), exec.command.clone().into());
        if let Some(args) = &exec.args {
            e.insert("args".into(), json!(args));
        }
        if let Some(env) = &exec.env {
            e.insert("env".into(), serde_json::to_value(env).unwrap_or(Value::Null));
        }
        e.insert("interactiveMode".into(), "Never".into());
        if exec.provide_cluster_info == Some(true) {
            e.insert("provideClusterInfo".into(), true.into());
        }
        user.insert("exec".into(), Value::Object(e));
    }
    if let Some(ap) = &kc.user.auth_provider {
        user.insert("auth-provider".into(), json!({"name": ap.name, "config": ap.config}));
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default", "cluster": cluster}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "current-context": "default",
        "preferences": {},
        "users": [{"name": "default", "user": user}],
    });
    File {
        path: path.to_string(),
        owner: "root:root".into(),
        permissions: "0640".into(),
        content: goyaml::to_string(&doc),
        ..Default::default()
    }
}

/// Why token discovery cannot be completed yet.
#[derive(Debug, thiserror::Error)]
pub enum TokenDiscoveryError {
    /// The cluster CA cannot be hashed: joining without a pin would trust any API server, so
    /// this is an error, never a silent `unsafeSkipCAVerification` (upstream does the same).
    #[error("cannot compute the cluster CA's public-key hash for discovery: {0}")]
    CaHash(#[from] crate::pki::PkiError),
    /// Neither the config nor the Cluster names the API server to join.
    #[error("the Cluster has no valid spec.controlPlaneEndpoint yet")]
    NoEndpoint,
}

/// Fills in what bootstrap-token discovery leaves empty, the way CABPK's `reconcileDiscovery`
/// does: the CA pins from the cluster CA and the API server from the Cluster's endpoint. The
/// token itself is not touched (the controller creates one in the workload cluster, `capstan
/// render` a throwaway one). One function for both so a preview and the real thing agree.
pub fn default_bootstrap_token(
    bt: &mut crate::api::BootstrapTokenDiscovery,
    cluster: &capstan_api::core::Cluster,
    ca_pem: &[u8],
) -> Result<(), TokenDiscoveryError> {
    if bt.ca_cert_hashes.as_ref().is_none_or(Vec::is_empty) {
        bt.ca_cert_hashes = Some(crate::pki::ca_cert_hashes(ca_pem)?);
    }
    if bt.api_server_endpoint.is_empty() {
        bt.api_server_endpoint = cluster
            .spec
            .control_plane_endpoint
            .as_ref()
            .and_then(crate::document::endpoint_string)
            .ok_or(TokenDiscoveryError::NoEndpoint)?;
    }
    Ok(())
}
