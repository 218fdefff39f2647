use std::path::Path;
use std::sync::Arc;

use super::KubeadmError;
use super::cluster::{ControlPlaneKeys, WorkloadCluster};
use super::config::{self, endpoint};
use super::node::{KubeletView, clear_not_ready_taint, mark_control_plane};
use super::pki::ClusterCa;
use crate::{BootContext, EndpointMode, Mode};
use std::net::Ipv4Addr;

pub(crate) fn read(root: &Path, guest: &str) -> Result<Vec<u8>, KubeadmError> {
    let path = crate::cloudinit::guest_path(root, guest).map_err(|e| KubeadmError::Config(e.to_string()))?;
    std::fs::read(&path).map_err(|e| KubeadmError::Certificates(format!("couldn't load {guest}: {e}")))
}

/// Where the API server of a new cluster binds, besides 127.0.0.1 (`None`: on the endpoint
/// itself, which then must be 127.0.0.1).
pub(crate) fn serving_address(
    mode: EndpointMode,
    raw_endpoint: &str,
    host: &str,
    vm_ips: &[String],
) -> Result<Option<Ipv4Addr>, KubeadmError> {
    match mode {
        EndpointMode::Vip if matches!(host, "127.0.0.1" | "localhost") => Ok(None),
        EndpointMode::Vip => Err(KubeadmError::Endpoint(format!(
            "{raw_endpoint}: the simulator serves workload API servers on 127.0.0.1 only; set the cluster's controlPlaneEndpoint host to 127.0.0.1"
        ))),
        EndpointMode::LoadBalanced => {
            let first = vm_ips.first().map(String::as_str).unwrap_or_default();
            match first.parse::<Ipv4Addr>() {
                Ok(ip) if ip.is_loopback() => Ok(Some(ip)),
                _ => Err(KubeadmError::Endpoint(format!(
                    "{raw_endpoint} is load-balanced, so the API server binds the VM's own address, but the VM's first IP {first:?} is not inside 127.0.0.0/8 (the simulator binds loopback addresses only)"
                ))),
            }
        }
    }
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
    let bind = match ctx.options.mode {
        Mode::Full => serving_address(ctx.options.endpoint, &raw_endpoint, &host, &ctx.vm.ips)?,
        Mode::NodesOnly => None,
    };
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
            WorkloadCluster::start(&host, port, bind, version.clone(), cluster_yaml, keys, dir).await?
        }
    };
    let cluster = Arc::new(cluster);
    ctx.clusters.insert(cluster.clone(), &ctx.vm.id);
    let kubelet = KubeletView::new(
        &init_cfg.node_registration,
        ctx.hostname,
        true,
        ctx.vm,
        &version,
        ctx.root,
    );
    if let Some(admin) = cluster.admin() {
        kubelet.register(&cluster.local_server(), &cluster.ca).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_the_api_server_binds() {
        let ips = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            serving_address(EndpointMode::Vip, "127.0.0.1:6443", "127.0.0.1", &[]).unwrap(),
            None
        );
        assert!(
            serving_address(
                EndpointMode::Vip,
                "127.16.0.9:6443",
                "127.16.0.9",
                &ips(&["127.16.0.2"])
            )
            .is_err()
        );
        assert_eq!(
            serving_address(
                EndpointMode::LoadBalanced,
                "127.16.9.9:6443",
                "127.16.9.9",
                &ips(&["127.16.0.2"])
            )
            .unwrap(),
            Some(Ipv4Addr::new(127, 16, 0, 2))
        );
        assert_eq!(
            serving_address(
                EndpointMode::LoadBalanced,
                "k8s.example:6443",
                "k8s.example",
                &ips(&["127.16.0.3"])
            )
            .unwrap(),
            Some(Ipv4Addr::new(127, 16, 0, 3))
        );
        let e = serving_address(EndpointMode::LoadBalanced, "x:6443", "x", &ips(&["10.0.0.2"])).unwrap_err();
        assert!(e.to_string().contains("127.0.0.0/8"), "{e}");
        assert!(serving_address(EndpointMode::LoadBalanced, "x:6443", "x", &[]).is_err());
    }
}
