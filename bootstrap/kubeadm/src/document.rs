//! One bootstrap document from a KubeadmConfig spec, its Cluster and Machine, and the
//! certificates: the part of the reconciler that needs no API server, shared with
//! `capstan render`.

use capstan_api::core::{ApiEndpoint, Cluster};

use crate::api::{File, KubeadmConfigSpec, Taint, User};
use crate::pki::Certificates;
use crate::render::kubeadm::{self, ClusterExtras, KubeadmApi};
use crate::render::{CloudInitInput, DocumentKind, RenderError, cloudinit, ignition};

/// Taint every worker joins with until CAPI has synced its labels (`node.cluster.x-k8s.io/uninitialized`).
pub const UNINITIALIZED_TAINT: &str = "node.cluster.x-k8s.io/uninitialized";

/// `host:port` of a valid endpoint.
pub fn endpoint_string(e: &ApiEndpoint) -> Option<String> {
    e.is_valid().then(|| {
        format!(
            "{}:{}",
            e.host.as_deref().unwrap_or_default(),
            e.port.unwrap_or_default()
        )
    })
}

/// What the Cluster adds to the ClusterConfiguration at init.
pub fn cluster_extras(cluster: &Cluster, kubernetes_version: &str) -> ClusterExtras {
    let network = cluster.spec.cluster_network.as_ref();
    ClusterExtras {
        cluster_name: cluster.metadata.name.clone().unwrap_or_default(),
        control_plane_endpoint: cluster.spec.control_plane_endpoint.as_ref().and_then(endpoint_string),
        dns_domain: network.and_then(|n| n.service_domain.clone()),
        service_subnets: network
            .and_then(|n| n.services.as_ref())
            .map(|s| s.cidr_blocks.clone())
            .unwrap_or_default(),
        pod_subnets: network
            .and_then(|n| n.pods.as_ref())
            .map(|s| s.cidr_blocks.clone())
            .unwrap_or_default(),
        kubernetes_version: kubernetes_version.to_string(),
    }
}

/// Inputs with files and users already resolved (content and passwords filled in).
pub struct DocumentInput<'a> {
    pub kind: DocumentKind,
    pub spec: &'a KubeadmConfigSpec,
    pub cluster: &'a Cluster,
    /// `Machine.spec.version`.
    pub kubernetes_version: &'a str,
    pub certificates: &'a Certificates,
    pub files: Vec<File>,
    pub users: Vec<User>,
    /// Extra files after the user's (the discovery kubeconfig).
    pub additional_files: Vec<File>,
    /// The KubeadmConfig's `bootstrap.capstan.dev/ignition-version` annotation (Ignition only).
    pub ignition_version: Option<String>,
}

/// Renders the bootstrap document in the spec's format: cloud-config, or Ignition JSON for
/// `format: ignition` (the data Secret's `format` key follows `spec.format`).
pub fn render(input: DocumentInput<'_>) -> Result<String, RenderError> {
    let api = KubeadmApi::for_version(input.kubernetes_version)?;
    let spec = input.spec;
    let ignition = match spec.format {
        Some(crate::api::Format::Ignition) => Some(ignition::spec_version(input.ignition_version.as_deref())?),
        _ => None,
    };
    let mut ci = CloudInitInput {
        certificates: match input.kind {
            DocumentKind::JoinWorker => Vec::new(),
            _ => input.certificates.files(),
        },
        files: input.files.into_iter().chain(input.additional_files).collect(),
        boot_commands: spec.boot_commands.clone().unwrap_or_default(),
        pre_kubeadm_commands: spec.pre_kubeadm_commands.clone().unwrap_or_default(),
        post_kubeadm_commands: spec.post_kubeadm_commands.clone().unwrap_or_default(),
        users: input.users,
        ntp: spec.ntp.clone(),
        disk_setup: spec.disk_setup.clone(),
        mounts: spec
            .mounts
            .iter()
            .flatten()
            .map(|m| m.iter().map(|p| p.0.clone()).collect())
            .collect(),
        verbosity: spec.verbosity,
        ..Default::default()
    };
    match input.kind {
        DocumentKind::InitControlPlane => {
            let extras = cluster_extras(input.cluster, input.kubernetes_version);
            ci.cluster_configuration = kubeadm::cluster_configuration(
                api,
                &spec.cluster_configuration,
                &extras,
                &spec.init_configuration.timeouts,
            );
            ci.init_configuration = kubeadm::init_configuration(api, &spec.init_configuration);
        }
        DocumentKind::JoinControlPlane => {
            ci.join_configuration = kubeadm::join_configuration(api, &spec.join_configuration);
        }
        DocumentKind::JoinWorker => {
            // The stored spec never gets the taint; only the rendered copy does.
            let mut join = spec.join_configuration.clone();
            let taints = join.node_registration.taints.get_or_insert_with(Vec::new);
            if !taints.iter().any(|t| t.key == UNINITIALIZED_TAINT) {
                taints.push(Taint {
                    key: UNINITIALIZED_TAINT.into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                });
            }
            ci.join_configuration = kubeadm::join_configuration(api, &join);
        }
    }
    match ignition {
        Some(version) => ignition::render(
            input.kind,
            &ci,
            version,
            &spec.ignition.container_linux_config.additional_config,
        ),
        None => cloudinit::render(input.kind, &ci),
    }
}
