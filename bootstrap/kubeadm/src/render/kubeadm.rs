//! The hub kubeadm types (`KubeadmConfigSpec`) converted to the kubeadm API the joining or
//! initialising machine's version understands: `kubeadm.k8s.io/v1beta3` for Kubernetes 1.22–1.30,
//! `v1beta4` from 1.31 (`bootstrap/kubeadm/pkg/types/utils.go`). Older versions are an error.
//!
//! Field presence follows the Go types' JSON tags: value structs are always written (`etcd: {}`),
//! `omitempty` scalars only when set, `nodeRegistration.taints` always (`null` when unset), so the
//! YAML matches what CABPK writes.

use serde_json::{Map, Value, json};

use super::{RenderError, goformat::duration, goyaml};
use crate::api::{
    ApiEndpoint, Arg, BootstrapToken, ClusterConfiguration, ControlPlaneComponent, EnvVar, InitConfiguration,
    JoinConfiguration, NodeRegistrationOptions, Patches, Timeouts, is_default,
};

/// The kubeadm config API version for a Kubernetes version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubeadmApi {
    V1Beta3,
    V1Beta4,
}

impl KubeadmApi {
    pub fn for_version(version: &str) -> Result<Self, RenderError> {
        let (major, minor) = parse_version(version)?;
        match (major, minor) {
            (1, m) if m >= 31 => Ok(KubeadmApi::V1Beta4),
            (1, m) if m >= 22 => Ok(KubeadmApi::V1Beta3),
            (1, _) => Err(RenderError::UnsupportedVersion(version.to_string())),
            _ => Ok(KubeadmApi::V1Beta4),
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            KubeadmApi::V1Beta3 => "kubeadm.k8s.io/v1beta3",
            KubeadmApi::V1Beta4 => "kubeadm.k8s.io/v1beta4",
        }
    }
}

/// `v1.30.2`, `1.31.0-rc.1+abc` → (1, 30).
pub fn parse_version(version: &str) -> Result<(u64, u64), RenderError> {
    let v = version.strip_prefix('v').unwrap_or(version);
    let mut parts = v.split(['.', '-', '+']);
    let parse = |p: Option<&str>| p.and_then(|s| s.parse::<u64>().ok());
    match (parse(parts.next()), parse(parts.next())) {
        (Some(major), Some(minor)) => Ok((major, minor)),
        _ => Err(RenderError::InvalidVersion(version.to_string())),
    }
}

/// What the Cluster and Machine contribute to the ClusterConfiguration at init
/// (`computeClusterConfigurationAndAdditionalData`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterExtras {
    pub cluster_name: String,
    /// `host:port` of `Cluster.spec.controlPlaneEndpoint`; used only if the spec sets none.
    pub control_plane_endpoint: Option<String>,
    pub dns_domain: Option<String>,
    pub service_subnets: Vec<String>,
    pub pod_subnets: Vec<String>,
    /// `Machine.spec.version`.
    pub kubernetes_version: String,
}

fn put(m: &mut Map<String, Value>, key: &str, v: Value) {
    m.insert(key.to_string(), v);
}

fn put_str(m: &mut Map<String, Value>, key: &str, s: &str) {
    if !s.is_empty() {
        put(m, key, Value::from(s));
    }
}

fn put_list(m: &mut Map<String, Value>, key: &str, l: &Option<Vec<String>>) {
    if let Some(l) = l.as_ref().filter(|l| !l.is_empty()) {
        put(m, key, json!(l));
    }
}

fn typed(api: KubeadmApi, kind: &str) -> Map<String, Value> {
    let mut m = Map::new();
    put(&mut m, "apiVersion", api.api_version().into());
    put(&mut m, "kind", kind.into());
    m
}

/// v1beta3 has `map[string]string` (a repeated flag keeps the last value); v1beta4 a list.
fn args(api: KubeadmApi, args: &Option<Vec<Arg>>) -> Option<Value> {
    let args = args.as_ref().filter(|a| !a.is_empty())?;
    Some(match api {
        KubeadmApi::V1Beta3 => {
            let mut m = Map::new();
            for a in args {
                m.insert(a.name.clone(), a.value.clone().into());
            }
            Value::Object(m)
        }
        KubeadmApi::V1Beta4 => json!(
            args.iter()
                .map(|a| json!({"name": a.name, "value": a.value}))
                .collect::<Vec<_>>()
        ),
    })
}

fn envs(api: KubeadmApi, envs: &Option<Vec<EnvVar>>, m: &mut Map<String, Value>) {
    // Only v1beta4 knows extraEnvs.
    if let (KubeadmApi::V1Beta4, Some(e)) = (api, envs.as_ref().filter(|e| !e.is_empty())) {
        put(m, "extraEnvs", serde_json::to_value(e).unwrap_or(Value::Null));
    }
}

fn component(api: KubeadmApi, c: &ControlPlaneComponent) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(a) = args(api, &c.extra_args) {
        put(&mut m, "extraArgs", a);
    }
    if let Some(v) = c.extra_volumes.as_ref().filter(|v| !v.is_empty()) {
        put(&mut m, "extraVolumes", serde_json::to_value(v).unwrap_or(Value::Null));
    }
    envs(api, &c.extra_envs, &mut m);
    m
}

/// The ClusterConfiguration document for `kubeadm init`. `init_timeouts` carries
/// `controlPlaneComponentHealthCheckSeconds`, which v1beta3 keeps under `apiServer`.
pub fn cluster_configuration(
    api: KubeadmApi,
    cfg: &ClusterConfiguration,
    extras: &ClusterExtras,
    init_timeouts: &Timeouts,
) -> String {
    let mut m = typed(api, "ClusterConfiguration");

    let mut etcd = Map::new();
    if !is_default(&cfg.etcd.local) {
        let l = &cfg.etcd.local;
        let mut local = Map::new();
        put_str(&mut local, "imageRepository", &l.image_repository);
        put_str(&mut local, "imageTag", &l.image_tag);
        // `dataDir` has no omitempty in kubeadm's types.
        put(&mut local, "dataDir", l.data_dir.clone().into());
        if let Some(a) = args(api, &l.extra_args) {
            put(&mut local, "extraArgs", a);
        }
        envs(api, &l.extra_envs, &mut local);
        put_list(&mut local, "serverCertSANs", &l.server_cert_sans);
        put_list(&mut local, "peerCertSANs", &l.peer_cert_sans);
        put(&mut etcd, "local", Value::Object(local));
    }
    if let Some(e) = &cfg.etcd.external {
        put(
            &mut etcd,
            "external",
            json!({"endpoints": e.endpoints, "caFile": e.ca_file, "certFile": e.cert_file, "keyFile": e.key_file}),
        );
    }
    put(&mut m, "etcd", Value::Object(etcd));

    let mut networking = Map::new();
    put_str(&mut networking, "serviceSubnet", &extras.service_subnets.join(","));
    put_str(&mut networking, "podSubnet", &extras.pod_subnets.join(","));
    put_str(&mut networking, "dnsDomain", extras.dns_domain.as_deref().unwrap_or(""));
    put(&mut m, "networking", Value::Object(networking));

    put_str(&mut m, "kubernetesVersion", &extras.kubernetes_version);
    let endpoint = if cfg.control_plane_endpoint.is_empty() {
        extras.control_plane_endpoint.clone().unwrap_or_default()
    } else {
        cfg.control_plane_endpoint.clone()
    };
    put_str(&mut m, "controlPlaneEndpoint", &endpoint);

    let mut api_server = component(
        api,
        &ControlPlaneComponent {
            extra_args: cfg.api_server.extra_args.clone(),
            extra_volumes: cfg.api_server.extra_volumes.clone(),
            extra_envs: cfg.api_server.extra_envs.clone(),
        },
    );
    put_list(&mut api_server, "certSANs", &cfg.api_server.cert_sans);
    if let (KubeadmApi::V1Beta3, Some(s)) = (api, init_timeouts.control_plane_component_health_check_seconds) {
        put(&mut api_server, "timeoutForControlPlane", duration(s.into()).into());
    }
    put(&mut m, "apiServer", Value::Object(api_server));
    put(
        &mut m,
        "controllerManager",
        Value::Object(component(api, &cfg.controller_manager)),
    );
    put(&mut m, "scheduler", Value::Object(component(api, &cfg.scheduler)));

    let mut dns = Map::new();
    put_str(&mut dns, "imageRepository", &cfg.dns.image_repository);
    put_str(&mut dns, "imageTag", &cfg.dns.image_tag);
    put(&mut m, "dns", Value::Object(dns));

    put_str(&mut m, "certificatesDir", &cfg.certificates_dir);
    put_str(&mut m, "imageRepository", &cfg.image_repository);
    if !cfg.feature_gates.is_empty() {
        put(&mut m, "featureGates", json!(cfg.feature_gates));
    }
    put_str(&mut m, "clusterName", &extras.cluster_name);

    if api == KubeadmApi::V1Beta4 {
        put(&mut m, "proxy", json!({}));
        if let Some(alg) = cfg.encryption_algorithm {
            put(&mut m, "encryptionAlgorithm", alg.as_str().into());
        }
        if let Some(d) = cfg.certificate_validity_period_days {
            put(
                &mut m,
                "certificateValidityPeriod",
                duration(i64::from(d) * 86_400).into(),
            );
        }
        if let Some(d) = cfg.ca_certificate_validity_period_days {
            put(
                &mut m,
                "caCertificateValidityPeriod",
                duration(i64::from(d) * 86_400).into(),
            );
        }
    }
    goyaml::to_string(&Value::Object(m))
}

fn node_registration(api: KubeadmApi, n: &NodeRegistrationOptions) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "name", &n.name);
    put_str(&mut m, "criSocket", &n.cri_socket);
    // No omitempty upstream: nil taints are written as null (kubeadm then applies its defaults).
    put(
        &mut m,
        "taints",
        n.taints
            .as_ref()
            .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
            .unwrap_or(Value::Null),
    );
    if let Some(a) = args(api, &n.kubelet_extra_args) {
        put(&mut m, "kubeletExtraArgs", a);
    }
    put_list(&mut m, "ignorePreflightErrors", &n.ignore_preflight_errors);
    if let Some(p) = n.image_pull_policy {
        put(
            &mut m,
            "imagePullPolicy",
            serde_json::to_value(p).unwrap_or(Value::Null),
        );
    }
    if let (KubeadmApi::V1Beta4, Some(s)) = (api, n.image_pull_serial) {
        put(&mut m, "imagePullSerial", s.into());
    }
    Value::Object(m)
}

fn endpoint(e: &ApiEndpoint) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "advertiseAddress", &e.advertise_address);
    if let Some(p) = e.bind_port.filter(|p| *p != 0) {
        put(&mut m, "bindPort", p.into());
    }
    Value::Object(m)
}

fn patches(p: &Patches, m: &mut Map<String, Value>) {
    if !p.directory.is_empty() {
        put(m, "patches", json!({"directory": p.directory}));
    }
}

fn timeouts(api: KubeadmApi, t: &Timeouts, m: &mut Map<String, Value>) {
    if api != KubeadmApi::V1Beta4 || is_default(t) {
        return;
    }
    let mut out = Map::new();
    for (key, v) in [
        (
            "controlPlaneComponentHealthCheck",
            t.control_plane_component_health_check_seconds,
        ),
        ("kubeletHealthCheck", t.kubelet_health_check_seconds),
        ("kubernetesAPICall", t.kubernetes_api_call_seconds),
        ("etcdAPICall", t.etcd_api_call_seconds),
        ("tlsBootstrap", t.tls_bootstrap_seconds),
        ("discovery", t.discovery_seconds),
    ] {
        if let Some(s) = v {
            put(&mut out, key, duration(s.into()).into());
        }
    }
    put(m, "timeouts", Value::Object(out));
}

fn bootstrap_token(t: &BootstrapToken) -> Value {
    let mut m = Map::new();
    put(&mut m, "token", t.token.clone().into());
    put_str(&mut m, "description", &t.description);
    if let Some(ttl) = t.ttl_seconds {
        put(&mut m, "ttl", duration(ttl.into()).into());
    }
    if let Some(e) = &t.expires {
        put(&mut m, "expires", serde_json::to_value(e).unwrap_or(Value::Null));
    }
    put_list(&mut m, "usages", &t.usages);
    put_list(&mut m, "groups", &t.groups);
    Value::Object(m)
}

/// The InitConfiguration document.
pub fn init_configuration(api: KubeadmApi, cfg: &InitConfiguration) -> String {
    let mut m = typed(api, "InitConfiguration");
    if let Some(tokens) = cfg.bootstrap_tokens.as_ref().filter(|t| !t.is_empty()) {
        put(
            &mut m,
            "bootstrapTokens",
            Value::Array(tokens.iter().map(bootstrap_token).collect()),
        );
    }
    put(
        &mut m,
        "nodeRegistration",
        node_registration(api, &cfg.node_registration),
    );
    put(&mut m, "localAPIEndpoint", endpoint(&cfg.local_api_endpoint));
    put_list(&mut m, "skipPhases", &cfg.skip_phases);
    patches(&cfg.patches, &mut m);
    timeouts(api, &cfg.timeouts, &mut m);
    goyaml::to_string(&Value::Object(m))
}

/// The JoinConfiguration document (worker or control plane).
pub fn join_configuration(api: KubeadmApi, cfg: &JoinConfiguration) -> String {
    let mut m = typed(api, "JoinConfiguration");
    put(
        &mut m,
        "nodeRegistration",
        node_registration(api, &cfg.node_registration),
    );
    put_str(&mut m, "caCertPath", &cfg.ca_cert_path);

    let d = &cfg.discovery;
    let mut discovery = Map::new();
    if !is_default(&d.bootstrap_token) {
        let b = &d.bootstrap_token;
        let mut bt = Map::new();
        put(&mut bt, "token", b.token.clone().into());
        put_str(&mut bt, "apiServerEndpoint", &b.api_server_endpoint);
        put_list(&mut bt, "caCertHashes", &b.ca_cert_hashes);
        if b.unsafe_skip_ca_verification == Some(true) {
            put(&mut bt, "unsafeSkipCAVerification", true.into());
        }
        put(&mut discovery, "bootstrapToken", Value::Object(bt));
    }
    if let Some(f) = &d.file {
        put(&mut discovery, "file", json!({"kubeConfigPath": f.kube_config_path}));
    }
    put_str(&mut discovery, "tlsBootstrapToken", &d.tls_bootstrap_token);
    if let (KubeadmApi::V1Beta3, Some(s)) = (api, cfg.timeouts.discovery_seconds) {
        put(&mut discovery, "timeout", duration(s.into()).into());
    }
    put(&mut m, "discovery", Value::Object(discovery));

    if let Some(cp) = &cfg.control_plane {
        put(
            &mut m,
            "controlPlane",
            json!({"localAPIEndpoint": endpoint(&cp.local_api_endpoint)}),
        );
    }
    put_list(&mut m, "skipPhases", &cfg.skip_phases);
    patches(&cfg.patches, &mut m);
    timeouts(api, &cfg.timeouts, &mut m);
    goyaml::to_string(&Value::Object(m))
}
