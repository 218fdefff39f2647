//! The parts of kubeadm's configuration files the emulation acts on, as kubeadm reads them:
//! a multi-document YAML file dispatched on `apiVersion`/`kind`. `v1beta3` (map-shaped
//! `kubeletExtraArgs`) and `v1beta4` (a list of `{name, value}`) are both accepted.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::KubeadmError;

const SUPPORTED: &[&str] = &["kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfiguration {
    #[serde(default)]
    pub control_plane_endpoint: Option<String>,
    #[serde(default)]
    pub kubernetes_version: Option<String>,
    #[serde(default)]
    pub cluster_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KubeletArgs {
    /// v1beta3.
    Map(BTreeMap<String, String>),
    /// v1beta4: order matters and a name may repeat; the last one wins, as on a command line.
    List(Vec<KubeletArg>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct KubeletArg {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

impl Default for KubeletArgs {
    fn default() -> Self {
        KubeletArgs::Map(BTreeMap::new())
    }
}

impl KubeletArgs {
    pub fn get(&self, name: &str) -> Option<&str> {
        match self {
            KubeletArgs::Map(m) => m.get(name).map(String::as_str),
            KubeletArgs::List(l) => l.iter().rev().find(|a| a.name == name).map(|a| a.value.as_str()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    pub effect: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRegistration {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kubelet_extra_args: KubeletArgs,
    /// `None` means kubeadm's default (the control-plane taint on control-plane nodes); an
    /// empty list means no taints.
    #[serde(default)]
    pub taints: Option<Vec<Taint>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitConfiguration {
    #[serde(default)]
    pub node_registration: NodeRegistration,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapTokenDiscovery {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub api_server_endpoint: String,
    #[serde(default)]
    pub ca_cert_hashes: Vec<String>,
    #[serde(default)]
    pub unsafe_skip_ca_verification: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileDiscovery {
    pub kube_config_path: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    #[serde(default)]
    pub bootstrap_token: Option<BootstrapTokenDiscovery>,
    #[serde(default)]
    pub file: Option<FileDiscovery>,
    #[serde(default)]
    pub tls_bootstrap_token: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinControlPlane {}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinConfiguration {
    #[serde(default)]
    pub node_registration: NodeRegistration,
    #[serde(default)]
    pub discovery: Discovery,
    #[serde(default)]
    pub control_plane: Option<JoinControlPlane>,
}

/// What one configuration file holds.
#[derive(Debug, Clone, Default)]
pub struct KubeadmFile {
    pub cluster: Option<ClusterConfiguration>,
    /// The ClusterConfiguration document as written, for the `kubeadm-config` ConfigMap.
    pub cluster_raw: serde_json::Value,
    pub init: Option<InitConfiguration>,
    pub join: Option<JoinConfiguration>,
}

/// Parses a `kubeadm --config` file. Unknown kinds (KubeletConfiguration, KubeProxyConfiguration)
/// are skipped as kubeadm would hand them to other components; an unknown kubeadm API version is
/// an error, as it is for kubeadm.
pub fn parse(text: &str) -> Result<KubeadmFile, KubeadmError> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| KubeadmError::Config(format!("invalid YAML: {e}")))?;
    let mut out = KubeadmFile::default();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let api_version = doc
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let kind = doc.get("kind").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        if !api_version.starts_with("kubeadm.k8s.io/") {
            continue;
        }
        if !SUPPORTED.contains(&api_version.as_str()) {
            return Err(KubeadmError::Config(format!(
                "{kind} has unsupported apiVersion {api_version:?} (supported: {})",
                SUPPORTED.join(", ")
            )));
        }
        let bad = |e: serde_json::Error| KubeadmError::Config(format!("{kind}: {e}"));
        match kind.as_str() {
            "ClusterConfiguration" => {
                out.cluster = Some(serde_json::from_value(doc.clone()).map_err(bad)?);
                out.cluster_raw = doc;
            }
            "InitConfiguration" => out.init = Some(serde_json::from_value(doc).map_err(bad)?),
            "JoinConfiguration" => out.join = Some(serde_json::from_value(doc).map_err(bad)?),
            other => {
                return Err(KubeadmError::Config(format!(
                    "unknown kubeadm kind {other:?} in {api_version}"
                )));
            }
        }
    }
    Ok(out)
}

/// `host:port` of an endpoint written as `host`, `host:port` or `https://host:port`.
pub fn endpoint(raw: &str) -> Result<(String, u16), KubeadmError> {
    let s = raw.trim().trim_start_matches("https://").trim_end_matches('/');
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| KubeadmError::Config(format!("endpoint {raw:?} has an invalid port")))?,
        ),
        None => (s, 6443),
    };
    if host.is_empty() {
        return Err(KubeadmError::Config(format!("endpoint {raw:?} has no host")));
    }
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kubelet_arg_shapes() {
        let f = parse(
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n    provider-id: dcs://a\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n  - name: provider-id\n    value: dcs://b\n  - name: provider-id\n    value: dcs://c\n",
        )
        .unwrap();
        assert_eq!(
            f.join.unwrap().node_registration.kubelet_extra_args.get("provider-id"),
            Some("dcs://a")
        );
        assert_eq!(
            f.init.unwrap().node_registration.kubelet_extra_args.get("provider-id"),
            Some("dcs://c")
        );
    }

    #[test]
    fn unsupported_version_and_endpoints() {
        let e = parse("apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\n").unwrap_err();
        assert!(e.to_string().contains("v1beta2"), "{e}");
        assert_eq!(endpoint("127.0.0.1:6443").unwrap(), ("127.0.0.1".into(), 6443));
        assert_eq!(endpoint("https://api.local").unwrap(), ("api.local".into(), 6443));
        assert!(endpoint(":6443").is_err());
    }
}
