//! A workload cluster's control plane as `kubeadm init` leaves it: a real etcd + kube-apiserver
//! serving with the cluster's own CA on the control-plane endpoint, the ConfigMaps and RBAC that
//! kubeadm's upload-config and bootstrap-token phases create, and the one controller joins depend
//! on (the bootstrap signer, which kube-controller-manager would run).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use capstan_localplane::{LocalPlane, PlaneOptions, SuppliedPki};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::KubeadmError;
use super::clients::{Identity, Trust, kubeconfig};
use super::discovery::{BootstrapToken, CLUSTER_INFO, JWS_PREFIX, sign_detached};
use super::node::NodeRecord;
use super::pki::ClusterCa;

/// The key material `kubeadm init` found on disk.
pub struct ControlPlaneKeys {
    pub ca: ClusterCa,
    pub ca_key_pem: Vec<u8>,
    pub sa_key_pem: Vec<u8>,
    pub sa_pub_pem: Vec<u8>,
    pub front_proxy_ca_pem: Vec<u8>,
}

pub struct WorkloadCluster {
    /// `host:port` it serves on (its controlPlaneEndpoint).
    pub endpoint: String,
    /// `address:port` the API server binds when that is not the endpoint (a load balancer
    /// fronts the endpoint).
    local: Option<String>,
    pub kubernetes_version: String,
    pub ca: ClusterCa,
    /// `None` in nodes-only mode.
    plane: Option<Mutex<LocalPlane>>,
    admin: Option<Client>,
    signer: Option<tokio::task::JoinHandle<()>>,
    nodes: Mutex<BTreeMap<String, NodeRecord>>,
    /// etcd data and logs, removed with the cluster.
    dir: Option<PathBuf>,
}

impl Drop for WorkloadCluster {
    fn drop(&mut self) {
        if let Some(s) = &self.signer {
            s.abort();
        }
        // Processes first (their guards kill and reap), then their data.
        drop(self.plane.take());
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl WorkloadCluster {
    /// A cluster that exists only as a record of its nodes (benchmarks with many clusters).
    pub fn recorded(endpoint: String, kubernetes_version: String, ca: ClusterCa) -> Self {
        WorkloadCluster {
            endpoint,
            local: None,
            kubernetes_version,
            ca,
            plane: None,
            admin: None,
            signer: None,
            nodes: Mutex::new(BTreeMap::new()),
            dir: None,
        }
    }

    /// Starts the control plane on `host:port` (a loopback address), or on `bind:port` when a
    /// load balancer fronts `host:port`, and runs kubeadm's post-start phases.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        host: &str,
        port: u16,
        bind: Option<std::net::Ipv4Addr>,
        kubernetes_version: String,
        cluster_configuration_yaml: String,
        keys: ControlPlaneKeys,
        dir: PathBuf,
    ) -> Result<Self, KubeadmError> {
        let endpoint = format!("{host}:{port}");
        let plane = LocalPlane::start_with(PlaneOptions {
            extra_args: vec![
                "--enable-bootstrap-token-auth".into(),
                "--authorization-mode=Node,RBAC".into(),
                "--enable-admission-plugins=NodeRestriction".into(),
                "--allow-privileged=true".into(),
            ],
            port: Some(port),
            bind_address: bind,
            pki: Some(SuppliedPki {
                ca_cert_pem: keys.ca.cert_pem.clone(),
                ca_key_pem: keys.ca_key_pem.clone(),
                sa_key_pem: keys.sa_key_pem,
                sa_pub_pem: keys.sa_pub_pem,
                front_proxy_ca_pem: Some(keys.front_proxy_ca_pem),
                extra_sans: std::iter::once(host.to_string())
                    .chain(bind.map(|b| b.to_string()))
                    .collect(),
            }),
            dir: Some(dir.clone()),
            // The image's version: a node asking for a version the test bed has not built fails
            // its boot with the reason, as a real one would with the wrong image.
            kubernetes_version: Some(kubernetes_version.clone()),
        })
        .await
        .map_err(|e| KubeadmError::ControlPlane(format!("{e:#}")))?;
        let admin = plane
            .client()
            .await
            .map_err(|e| KubeadmError::ControlPlane(format!("admin client: {e:#}")))?;
        upload_config(&admin, &endpoint, &keys.ca.cert_pem, &cluster_configuration_yaml).await?;
        let signer = tokio::spawn(bootstrap_signer(admin.clone()));
        Ok(WorkloadCluster {
            endpoint,
            local: bind.map(|b| format!("{b}:{port}")),
            kubernetes_version,
            ca: keys.ca,
            plane: Some(Mutex::new(plane)),
            admin: Some(admin),
            signer: Some(signer),
            nodes: Mutex::new(BTreeMap::new()),
            dir: Some(dir),
        })
    }

    pub fn server(&self) -> String {
        format!("https://{}", self.endpoint)
    }

    /// The API server as the control-plane node reaches it locally: the endpoint, unless a
    /// load balancer fronts it.
    pub fn local_server(&self) -> String {
        format!("https://{}", self.local.as_deref().unwrap_or(&self.endpoint))
    }

    /// Admin access, as `/etc/kubernetes/admin.conf` gives a control-plane node.
    pub fn admin(&self) -> Option<&Client> {
        self.admin.as_ref()
    }

    pub fn has_apiserver(&self) -> bool {
        self.plane.is_some()
    }

    /// The API server's pid, for tests that check nothing outlives the cluster.
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.plane
            .as_ref()
            .and_then(|p| p.lock().ok().map(|p| p.apiserver_pid()))
    }

    pub fn record_node(&self, node: NodeRecord) {
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.insert(node.name.clone(), node);
        }
    }

    pub fn forget_vm(&self, vm_id: &str) {
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.retain(|_, n| n.vm_id != vm_id);
        }
    }

    pub fn nodes(&self) -> Vec<NodeRecord> {
        self.nodes
            .lock()
            .map(|n| n.values().cloned().collect())
            .unwrap_or_default()
    }

    /// An admin kubeconfig document (client certificate `kubernetes-admin`, `system:masters`).
    pub fn admin_kubeconfig(&self) -> Result<String, KubeadmError> {
        let (cert, key) = self.ca.client_cert("kubernetes-admin", "system:masters")?;
        Ok(kubeconfig(
            &self.server(),
            &Trust::Ca(&self.ca.cert_pem),
            &Identity::Certificate {
                cert_pem: &cert,
                key_pem: &key,
            },
        ))
    }
}

fn object<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, KubeadmError> {
    serde_json::from_value(v).map_err(|e| KubeadmError::Internal(e.to_string()))
}

async fn create<K>(api: Api<K>, obj: serde_json::Value) -> Result<(), KubeadmError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = object(obj)?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(KubeadmError::ControlPlane(format!("creating {}: {e}", obj.name_any()))),
    }
}

/// kubeadm's upload-config, bootstrap-token (cluster-info + RBAC) phases.
async fn upload_config(
    admin: &Client,
    endpoint: &str,
    ca_pem: &[u8],
    cluster_configuration: &str,
) -> Result<(), KubeadmError> {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    let kube_system = |c: &Client| Api::<ConfigMap>::namespaced(c.clone(), "kube-system");
    create(
        kube_system(admin),
        json!({"metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
               "data": {"ClusterConfiguration": cluster_configuration}}),
    )
    .await?;
    let info = kubeconfig(&format!("https://{endpoint}"), &Trust::Ca(ca_pem), &Identity::Anonymous);
    // kubeadm writes cluster-info without users or contexts.
    let info = info.split("users:").next().unwrap_or_default().to_string();
    create(
        Api::<ConfigMap>::namespaced(admin.clone(), "kube-public"),
        json!({"metadata": {"name": CLUSTER_INFO, "namespace": "kube-public"}, "data": {"kubeconfig": info}}),
    )
    .await?;
    const TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
    create(
        Api::<Role>::namespaced(admin.clone(), "kube-public"),
        json!({"metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CLUSTER_INFO], "verbs": ["get"]}]}),
    )
    .await?;
    create(
        Api::<RoleBinding>::namespaced(admin.clone(), "kube-public"),
        json!({"metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubeadm:bootstrap-signer-clusterinfo"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}]}),
    )
    .await?;
    create(
        Api::<Role>::namespaced(admin.clone(), "kube-system"),
        json!({"metadata": {"name": "kubeadm:nodes-kubeadm-config", "namespace": "kube-system"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kubeadm-config"], "verbs": ["get"]}]}),
    )
    .await?;
    create(
        Api::<RoleBinding>::namespaced(admin.clone(), "kube-system"),
        json!({"metadata": {"name": "kubeadm:nodes-kubeadm-config", "namespace": "kube-system"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubeadm:nodes-kubeadm-config"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": TOKEN_GROUP},
                            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}]}),
    )
    .await?;
    create(
        Api::<ClusterRoleBinding>::all(admin.clone()),
        json!({"metadata": {"name": "kubeadm:kubelet-bootstrap"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-bootstrapper"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": TOKEN_GROUP}]}),
    )
    .await?;
    create(
        Api::<ClusterRole>::all(admin.clone()),
        json!({"metadata": {"name": "kubeadm:get-nodes"},
               "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}),
    )
    .await?;
    create(
        Api::<ClusterRoleBinding>::all(admin.clone()),
        json!({"metadata": {"name": "kubeadm:get-nodes"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubeadm:get-nodes"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": TOKEN_GROUP}]}),
    )
    .await?;
    Ok(())
}

/// Whether a bootstrap token Secret may sign cluster-info now (the signer's rules: usage
/// `signing`, not expired).
fn signing_token(s: &Secret, now: chrono::DateTime<chrono::Utc>) -> Option<BootstrapToken> {
    let data = s.data.as_ref()?;
    let get = |k: &str| data.get(k).and_then(|v| String::from_utf8(v.0.clone()).ok());
    if get("usage-bootstrap-signing").as_deref() != Some("true") {
        return None;
    }
    if let Some(exp) = get("expiration") {
        let exp = chrono::DateTime::parse_from_rfc3339(&exp).ok()?;
        if exp < now {
            return None;
        }
    }
    BootstrapToken::parse(&format!("{}.{}", get("token-id")?, get("token-secret")?)).ok()
}

/// kube-controller-manager's bootstrap signer: keeps one `jws-kubeconfig-<id>` per valid signing
/// token in cluster-info, and none for expired or deleted ones.
async fn bootstrap_signer(admin: Client) {
    let secrets = Api::<Secret>::namespaced(admin.clone(), "kube-system");
    let info = Api::<ConfigMap>::namespaced(admin, "kube-public");
    let list = ListParams::default().fields("type=bootstrap.kubernetes.io/token");
    loop {
        if let (Ok(tokens), Ok(cm)) = (secrets.list(&list).await, info.get(CLUSTER_INFO).await) {
            let now = chrono::Utc::now();
            let data = cm.data.clone().unwrap_or_default();
            let content = data.get("kubeconfig").cloned().unwrap_or_default();
            let mut want: BTreeMap<String, String> = BTreeMap::new();
            for t in tokens.items.iter().filter_map(|s| signing_token(s, now)) {
                if let Ok(sig) = sign_detached(&content, &t) {
                    want.insert(format!("{JWS_PREFIX}{}", t.id), sig);
                }
            }
            let have: BTreeMap<String, String> = data
                .iter()
                .filter(|(k, _)| k.starts_with(JWS_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if have != want {
                let mut patch = serde_json::Map::new();
                for k in have.keys().filter(|k| !want.contains_key(*k)) {
                    patch.insert(k.clone(), serde_json::Value::Null);
                }
                for (k, v) in &want {
                    patch.insert(k.clone(), json!(v));
                }
                if let Err(e) = info
                    .patch(
                        CLUSTER_INFO,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"data": patch})),
                    )
                    .await
                {
                    tracing::debug!(error = %e, "bootstrap signer could not update cluster-info");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
