use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use super::KubeadmError;
use super::clients::{Identity, Trust, client};
use super::cluster::WorkloadCluster;
use super::config::{self, ClusterConfiguration, JoinConfiguration, endpoint};
use super::discovery::{BootstrapToken, Discovered, ca_cert_hash, cluster_of_kubeconfig, discover_with_token};
use super::init::read;
use super::node::{KubeletView, clear_not_ready_taint, mark_control_plane};
use crate::{BootContext, Mode};

/// What a control-plane join needs on disk (kubeadm's "failure loading certificate" checks).
const SHARED_CERTS: &[&str] = &[
    "ca.crt",
    "ca.key",
    "sa.key",
    "sa.pub",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
];

/// Retries `attempt` while it fails with a retryable error, until `timeout`; the last error
/// is what the user sees.
async fn retrying<T, F, Fut>(timeout: Duration, mut attempt: F) -> Result<T, KubeadmError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, KubeadmError>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match attempt().await {
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

fn tls_bootstrap_token(join: &JoinConfiguration) -> Result<BootstrapToken, KubeadmError> {
    let raw = join
        .discovery
        .tls_bootstrap_token
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| join.discovery.bootstrap_token.as_ref().map(|b| b.token.clone()))
        .ok_or_else(|| {
            KubeadmError::Config("discovery has neither tlsBootstrapToken nor bootstrapToken.token".into())
        })?;
    BootstrapToken::parse(&raw)
}

async fn discover(ctx: &BootContext<'_>, join: &JoinConfiguration) -> Result<Discovered, KubeadmError> {
    match (&join.discovery.bootstrap_token, &join.discovery.file) {
        (Some(bt), _) => {
            let token = BootstrapToken::parse(&bt.token)?;
            let (host, port) = endpoint(&bt.api_server_endpoint)?;
            let ep = format!("{host}:{port}");
            retrying(ctx.options.join_timeout, || {
                discover_with_token(&ep, &token, &bt.ca_cert_hashes, bt.unsafe_skip_ca_verification)
            })
            .await
        }
        (None, Some(f)) => {
            let text = read(ctx.root, &f.kube_config_path)
                .map_err(|e| KubeadmError::Discovery(format!("file discovery: {e}")))?;
            cluster_of_kubeconfig(&String::from_utf8_lossy(&text))
        }
        (None, None) => Err(KubeadmError::Config("discovery needs bootstrapToken or file".into())),
    }
}

/// Authenticates with the bootstrap token and reads the cluster's configuration, as `kubeadm
/// join` does before it starts the kubelet. Wrong and expired tokens fail here (401).
async fn read_cluster_configuration(
    found: &Discovered,
    token: &BootstrapToken,
) -> Result<ClusterConfiguration, KubeadmError> {
    let c = client(
        &found.server,
        Trust::Ca(&found.ca_pem),
        Identity::Token(&token.bearer()),
    )
    .await?;
    let cm = Api::<ConfigMap>::namespaced(c, "kube-system")
        .get("kubeadm-config")
        .await
        .map_err(|e| match e {
            kube::Error::Api(ref s) if s.code == 401 => KubeadmError::Unauthorized(format!(
                "the API server rejected bootstrap token {:?} (unknown, wrong secret or expired)",
                token.id
            )),
            kube::Error::Api(ref s) if s.code == 403 => KubeadmError::Unauthorized(format!(
                "bootstrap token {:?} may not read kube-system/kubeadm-config: {}",
                token.id, s.message
            )),
            other => KubeadmError::Unreachable(format!("reading kube-system/kubeadm-config: {other}")),
        })?;
    let text = cm
        .data
        .and_then(|d| d.get("ClusterConfiguration").cloned())
        .ok_or_else(|| KubeadmError::Discovery("kubeadm-config has no ClusterConfiguration".into()))?;
    serde_saphyr::from_str(&text).map_err(|e| KubeadmError::Discovery(format!("kubeadm-config: {e}")))
}

fn check_shared_certificates(ctx: &BootContext<'_>, found: &Discovered) -> Result<(), KubeadmError> {
    let missing: Vec<&str> = SHARED_CERTS
        .iter()
        .copied()
        .filter(|f| read(ctx.root, &format!("/etc/kubernetes/pki/{f}")).is_err())
        .collect();
    if !missing.is_empty() {
        return Err(KubeadmError::Certificates(format!(
            "one or more conditions for hosting a new control plane instance is not satisfied: missing shared certificates {} under /etc/kubernetes/pki",
            missing.join(", ")
        )));
    }
    let on_disk = read(ctx.root, "/etc/kubernetes/pki/ca.crt")?;
    if ca_cert_hash(&on_disk)? != ca_cert_hash(&found.ca_pem)? {
        return Err(KubeadmError::Certificates(
            "/etc/kubernetes/pki/ca.crt is not the CA of the cluster being joined".into(),
        ));
    }
    Ok(())
}

/// `kubeadm join --config <config>`.
pub async fn join(ctx: &BootContext<'_>, config_path: &str) -> Result<Arc<WorkloadCluster>, KubeadmError> {
    if config_path.is_empty() {
        return Err(KubeadmError::Config("kubeadm join without --config".into()));
    }
    let text = read(ctx.root, config_path).map_err(|e| KubeadmError::Config(e.to_string()))?;
    let join = config::parse(&String::from_utf8_lossy(&text))?
        .join
        .ok_or_else(|| KubeadmError::Config(format!("{config_path} has no JoinConfiguration")))?;
    let token = tls_bootstrap_token(&join)?;
    let control_plane = join.control_plane.is_some();

    if ctx.options.mode == Mode::NodesOnly {
        let raw = join
            .discovery
            .bootstrap_token
            .as_ref()
            .map(|b| b.api_server_endpoint.clone())
            .unwrap_or_default();
        let (host, port) = endpoint(&raw)?;
        let cluster = ctx
            .clusters
            .get(&format!("{host}:{port}"))
            .ok_or_else(|| KubeadmError::Unreachable(format!("no cluster at {host}:{port}")))?;
        let kubelet = KubeletView::new(
            &join.node_registration,
            ctx.hostname,
            control_plane,
            ctx.vm,
            &cluster.kubernetes_version,
            ctx.root,
        );
        cluster.record_node(kubelet.record);
        return Ok(cluster);
    }

    let found = discover(ctx, &join).await?;
    let cluster_cfg = retrying(ctx.options.join_timeout, || read_cluster_configuration(&found, &token)).await?;
    if control_plane {
        check_shared_certificates(ctx, &found)?;
    }
    let server_endpoint = found
        .server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    // The CSR signer (kube-controller-manager) of that cluster issues the kubelet's certificate.
    let cluster = ctx.clusters.get(&server_endpoint).ok_or_else(|| {
        KubeadmError::Registration(format!("no control plane of the simulator serves {}", found.server))
    })?;
    let version = cluster_cfg
        .kubernetes_version
        .unwrap_or_else(|| cluster.kubernetes_version.clone());
    let kubelet = KubeletView::new(
        &join.node_registration,
        ctx.hostname,
        control_plane,
        ctx.vm,
        &version,
        ctx.root,
    );
    kubelet.register(&found.server, &cluster.ca).await?;
    if let Some(admin) = cluster.admin() {
        clear_not_ready_taint(admin, &kubelet.record.name).await?;
        if control_plane {
            mark_control_plane(admin, &kubelet.record.name, join.node_registration.taints.as_deref()).await?;
        }
    }
    cluster.record_node(kubelet.record.clone());
    Ok(cluster)
}
