//! What the kubelet registers, and what kubeadm's mark-control-plane phase adds to it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::KubeadmError;
use super::clients::{Identity, Trust, client};
use super::config::{NodeRegistration, Taint};
use super::pki::ClusterCa;

pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// A node as the emulation records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub name: String,
    /// `None` when the kubelet ran without `--provider-id`.
    pub provider_id: Option<String>,
    pub control_plane: bool,
    pub vm_id: String,
}

/// Everything the kubelet would know about itself at registration.
#[derive(Debug, Clone)]
pub struct KubeletView {
    pub record: NodeRecord,
    pub labels: BTreeMap<String, String>,
    pub address: Option<String>,
    pub kubelet_version: String,
    /// `nodeInfo.osImage`: the image the VM booted.
    pub os_image: &'static str,
    pub system_uuid: String,
    /// `--register-with-taints`, which kubeadm derives from `nodeRegistration.taints` (a worker
    /// join from the bootstrap provider carries `node.cluster.x-k8s.io/uninitialized`).
    pub register_taints: Vec<Taint>,
}

impl KubeletView {
    /// Name and flags as the kubelet derives them from kubeadm's `nodeRegistration` (name
    /// defaults to the hostname; `--node-labels` and `--provider-id` come from the extra args).
    pub fn new(
        reg: &NodeRegistration,
        hostname: &str,
        control_plane: bool,
        vm: &crate::VmInfo,
        kubelet_version: &str,
        root: &std::path::Path,
    ) -> Self {
        let name = reg
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| hostname.to_string())
            .to_lowercase();
        let args = &reg.kubelet_extra_args;
        let mut labels: BTreeMap<String, String> = args
            .get("node-labels")
            .unwrap_or_default()
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        labels.insert("kubernetes.io/hostname".into(), name.clone());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        labels.insert("kubernetes.io/arch".into(), "amd64".into());
        KubeletView {
            record: NodeRecord {
                name,
                // KUBELET_EXTRA_ARGS comes after kubeadm's flags on the kubelet command line,
                // so its --provider-id wins.
                provider_id: sysconfig_provider_id(root)
                    .or_else(|| args.get("provider-id").map(str::to_string))
                    .filter(|p| !p.is_empty()),
                control_plane,
                vm_id: vm.id.clone(),
            },
            labels,
            address: vm.ips.first().cloned(),
            kubelet_version: kubelet_version.to_string(),
            os_image: vm.os.os_image(),
            system_uuid: vm.uuid.clone(),
            register_taints: reg.taints.clone().unwrap_or_default(),
        }
    }

    fn node(&self) -> Result<Node, KubeadmError> {
        let mut addresses = vec![json!({"type": "Hostname", "address": self.record.name})];
        if let Some(ip) = &self.address {
            addresses.insert(0, json!({"type": "InternalIP", "address": ip}));
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let taints: Vec<serde_json::Value> = self
            .register_taints
            .iter()
            .map(|t| json!({"key": t.key, "value": t.value, "effect": t.effect}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": self.record.name, "labels": self.labels},
            "spec": {"providerID": self.record.provider_id, "taints": taints},
            "status": {
                // The kubelet's four conditions: Cluster API's NodeHealthy wants every one.
                "conditions": [
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                     "message": "kubelet has sufficient memory available", "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
                     "message": "kubelet has no disk pressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
                     "message": "kubelet has sufficient PID available", "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "kubelet is posting ready status (capstan guest emulation)",
                     "lastHeartbeatTime": now, "lastTransitionTime": now},
                ],
                "addresses": addresses,
                "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "nodeInfo": {
                    "machineID": self.system_uuid.replace('-', ""),
                    "systemUUID": self.system_uuid,
                    "bootID": self.record.vm_id,
                    "kernelVersion": "6.1.0-emulated",
                    "osImage": self.os_image,
                    "containerRuntimeVersion": "containerd://1.7.0-emulated",
                    "kubeletVersion": self.kubelet_version,
                    "kubeProxyVersion": self.kubelet_version,
                    "operatingSystem": "linux",
                    "architecture": "amd64"
                }
            }
        }))
        .map_err(|e| KubeadmError::Internal(format!("node object: {e}")))
    }

    /// Registers the Node as the kubelet does, with its own certificate (`system:node:<name>`,
    /// so the Node authorizer and NodeRestriction apply), then posts its status.
    pub async fn register(&self, server: &str, ca: &ClusterCa) -> Result<(), KubeadmError> {
        let (cert, key) = ca.client_cert(&format!("system:node:{}", self.record.name), "system:nodes")?;
        let kubelet = client(
            server,
            Trust::Ca(&ca.cert_pem),
            Identity::Certificate {
                cert_pem: &cert,
                key_pem: &key,
            },
        )
        .await?;
        let nodes: Api<Node> = Api::all(kubelet);
        let node = self.node()?;
        let status = node.status.clone();
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            // A rebooted kubelet finds its Node and updates it.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                return Err(KubeadmError::Registration(format!(
                    "kubelet could not register Node {:?}: {e}",
                    self.record.name
                )));
            }
        }
        nodes
            .patch_status(
                &self.record.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .map_err(|e| KubeadmError::Registration(format!("kubelet could not post node status: {e}")))?;
        Ok(())
    }
}

/// Where RPM and Debian packages let the admin add kubelet flags (`KUBELET_EXTRA_ARGS`, read by
/// kubeadm's kubelet drop-in as an EnvironmentFile).
const KUBELET_ENV_FILES: [&str; 2] = ["/etc/sysconfig/kubelet", "/etc/default/kubelet"];

/// `--provider-id` from `KUBELET_EXTRA_ARGS`, if a kubelet environment file sets one.
pub fn sysconfig_provider_id(root: &std::path::Path) -> Option<String> {
    KUBELET_ENV_FILES.iter().find_map(|f| {
        let path = crate::cloudinit::guest_path(root, f).ok()?;
        let env = crate::ignition::systemd::parse_env_file(&std::fs::read_to_string(path).ok()?);
        let args = env.get("KUBELET_EXTRA_ARGS")?;
        let mut words = args.split_whitespace();
        while let Some(w) = words.next() {
            if let Some(v) = w.strip_prefix("--provider-id=") {
                return Some(v.to_string());
            }
            if w == "--provider-id" {
                return words.next().map(str::to_string);
            }
        }
        None
    })
}

/// What the API server taints a new Node with until the node lifecycle controller sees it Ready.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

/// kube-controller-manager's node lifecycle controller, once the kubelet has posted Ready:
/// removes the `not-ready` taint the API server (TaintNodesByCondition) put on the new Node.
pub async fn clear_not_ready_taint(admin: &kube::Client, name: &str) -> Result<(), KubeadmError> {
    let nodes = Api::<Node>::all(admin.clone());
    let node = nodes
        .get(name)
        .await
        .map_err(|e| KubeadmError::Registration(format!("reading Node {name}: {e}")))?;
    let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
    if !taints.iter().any(|t| t.key == NOT_READY_TAINT) {
        return Ok(());
    }
    let kept: Vec<_> = taints.into_iter().filter(|t| t.key != NOT_READY_TAINT).collect();
    nodes
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": kept}})),
        )
        .await
        .map_err(|e| KubeadmError::Registration(format!("untainting {name}: {e}")))?;
    Ok(())
}

/// kubeadm's mark-control-plane phase (run with admin credentials): the role label and taints.
pub async fn mark_control_plane(
    admin: &kube::Client,
    name: &str,
    taints: Option<&[Taint]>,
) -> Result<(), KubeadmError> {
    let taints: Vec<serde_json::Value> = match taints {
        None => vec![json!({"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"})],
        Some(t) => t
            .iter()
            .map(|t| json!({"key": t.key, "value": t.value, "effect": t.effect}))
            .collect(),
    };
    Api::<Node>::all(admin.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"labels": {CONTROL_PLANE_LABEL: "", "node.kubernetes.io/exclude-from-external-load-balancers": ""}},
                "spec": {"taints": taints}
            })),
        )
        .await
        .map_err(|e| KubeadmError::Registration(format!("marking {name} as control plane: {e}")))?;
    Ok(())
}
