use std::path::Path;
use std::sync::Arc;

use super::KubeadmError;
use super::cluster::{ControlPlaneKeys, WorkloadCluster};
use super::config::{self, endpoint};
use super::node::{KubeletView, clear_not_ready_taint, mark_control_plane};
use super::pki::ClusterCa;
use crate::{BootContext, Mode};

pub(crate) fn read(root: &Path, guest: &str) -> Result<Vec<u8>, KubeadmError> {
    let path = crate::cloudinit::guest_path(root, guest).map_err(|e| KubeadmError::Config(e.to_string()))?;
    std::fs::read(&path).map_err(|e| KubeadmError::Certificates(format!("couldn't load {guest}: {e}")))
}

/// `kubeadm init --config <config>`: control plane up, this node registered.
pub async fn init(ctx: &BootContext<'_>, config_path: &str) -> Result<Arc<WorkloadCluster>, KubeadmError> {
    if config_path.is_empty() {
        return Err(KubeadmError::Config("kubeadm init without --config".into()));
    }
    let text = read(ctx.root, config_path).map_err(|e| KubeadmError::Config(e.to_string()))?;
    let file = config::parse(&String::from_utf8_lossy(&text))?;
    let cluster_cfg = file.cluster.clone().unwrap_or_default();
    let init_cfg = file.init.clone().unwrap_or_default();
    let raw_endpoint = cluster_cfg.control_plane_endpoint.clone().ok_or_else(|| {
        KubeadmError::Endpoint(
            "ClusterConfiguration.controlPlaneEndpoint is empty; the simulator needs it to place the API server".into(),
        )
    })?;
    let (host, port) = endpoint(&raw_endpoint)?;
    if ctx.options.mode == Mode::Full && !matches!(host.as_str(), "127.0.0.1" | "localhost") {
        return Err(KubeadmError::Endpoint(format!(
            "{raw_endpoint}: the simulator serves workload API servers on 127.0.0.1 only; set the cluster's controlPlaneEndpoint host to 127.0.0.1"
        )));
    }
    let endpoint = format!("{host}:{port}");
    if ctx.clusters.get(&endpoint).is_some() {
        return Err(KubeadmError::Endpoint(format!(
            "[preflight] Port {port} is in use: another cluster's API server listens on {endpoint}"
        )));
    }
    let pki = "/etc/kubernetes/pki";
    let ca_cert_pem = read(ctx.root, &format!("{pki}/ca.crt"))?;
    let ca_key_pem = read(ctx.root, &format!("{pki}/ca.key"))?;
    let ca = ClusterCa::from_pem(&ca_cert_pem, &ca_key_pem)?;
    let version = cluster_cfg
        .kubernetes_version
        .clone()
        .unwrap_or_else(|| "v1.30.0".into());
    let cluster = match ctx.options.mode {
        Mode::NodesOnly => WorkloadCluster::recorded(endpoint.clone(), version.clone(), ca),
        Mode::Full => {
            let keys = ControlPlaneKeys {
                ca,
                ca_key_pem,
                sa_key_pem: read(ctx.root, &format!("{pki}/sa.key"))?,
                sa_pub_pem: read(ctx.root, &format!("{pki}/sa.pub"))?,
                front_proxy_ca_pem: read(ctx.root, &format!("{pki}/front-proxy-ca.crt"))?,
            };
            let cluster_yaml = serde_json::to_string_pretty(&file.cluster_raw).unwrap_or_default();
            let dir = ctx.options.state_dir.join("clusters").join(format!(
                "{}-{port}",
                cluster_cfg.cluster_name.as_deref().unwrap_or("kubernetes")
            ));
            WorkloadCluster::start(&host, port, version.clone(), cluster_yaml, keys, dir).await?
        }
    };
    let cluster = Arc::new(cluster);
    ctx.clusters.insert(cluster.clone(), &ctx.vm.id);
    let kubelet = KubeletView::new(&init_cfg.node_registration, ctx.hostname, true, ctx.vm, &version);
    if let Some(admin) = cluster.admin() {
        kubelet.register(&cluster.server(), &cluster.ca).await?;
        clear_not_ready_taint(admin, &kubelet.record.name).await?;
        mark_control_plane(
            admin,
            &kubelet.record.name,
            init_cfg.node_registration.taints.as_deref(),
        )
        .await?;
    }
    cluster.record_node(kubelet.record.clone());
    Ok(cluster)
}
