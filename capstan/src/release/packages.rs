//! The clusterctl providers Capstan ships: one package per `capstan manager --provider`, each
//! with its CRDs, permissions, manager options and (infrastructure only) cluster templates.

use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use super::rbac;
use super::templates::CloudTemplates;

/// clusterctl's provider types Capstan has packages of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderType {
    Infrastructure,
    Bootstrap,
}

impl ProviderType {
    /// The word clusterctl puts before the provider name in labels and folder names.
    pub fn prefix(self) -> &'static str {
        match self {
            ProviderType::Infrastructure => "infrastructure",
            ProviderType::Bootstrap => "bootstrap",
        }
    }

    /// `type:` in clusterctl.yaml.
    pub fn clusterctl_type(self) -> &'static str {
        match self {
            ProviderType::Infrastructure => "InfrastructureProvider",
            ProviderType::Bootstrap => "BootstrapProvider",
        }
    }
}

/// A manager flag whose value comes from a clusterctl variable with a default.
pub struct ManagerOption {
    pub flag: &'static str,
    pub variable: &'static str,
    pub default: &'static str,
}

/// One provider package.
pub struct Package {
    /// The clusterctl provider name (`capstan-dcs`).
    pub name: &'static str,
    pub kind: ProviderType,
    /// The `--provider` the manager runs.
    pub manager_provider: &'static str,
    pub crds: Vec<CustomResourceDefinition>,
    pub rules: Vec<PolicyRule>,
    pub options: Vec<ManagerOption>,
    pub templates: Option<CloudTemplates>,
}

impl Package {
    /// `infrastructure-capstan-dcs`: the provider label, and the folder of the repository.
    pub fn label(&self) -> String {
        format!("{}-{}", self.kind.prefix(), self.name)
    }

    /// The components file clusterctl looks for in the version folder.
    pub fn components_file(&self) -> String {
        format!("{}-components.yaml", self.kind.prefix())
    }

    /// Names of the objects of this package (ServiceAccount, roles, Deployment, Service).
    pub fn object_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }
}

const fn opt(flag: &'static str, variable: &'static str, default: &'static str) -> ManagerOption {
    ManagerOption {
        flag,
        variable,
        default,
    }
}

/// Options every manager has.
fn common_options() -> Vec<ManagerOption> {
    vec![
        opt("--log-format", "CAPSTAN_LOG_FORMAT", "json"),
        opt(
            "--graceful-shutdown-timeout",
            "CAPSTAN_GRACEFUL_SHUTDOWN_TIMEOUT",
            "10s",
        ),
    ]
}

/// An infrastructure manager's options: the common ones, the cloud-operation timeout, and its
/// `--<kind>machine-concurrency`/`--<kind>cluster-concurrency` flags where it has them.
fn infrastructure_options(concurrency: Option<(&'static str, &'static str)>) -> Vec<ManagerOption> {
    let mut options = common_options();
    options.push(opt("--operation-timeout", "CAPSTAN_OPERATION_TIMEOUT", "30m"));
    if let Some((machine, cluster)) = concurrency {
        options.push(opt(machine, "CAPSTAN_MACHINE_CONCURRENCY", "10"));
        options.push(opt(cluster, "CAPSTAN_CLUSTER_CONCURRENCY", "10"));
    }
    options
}

pub fn dcs_templates() -> CloudTemplates {
    CloudTemplates {
        cluster: include_str!("../../../templates/dcs/cluster-template.yaml"),
        control_plane_machine: include_str!("../../../templates/dcs/control-plane-machine.yaml"),
        control_plane_kcp: include_str!("../../../templates/dcs/control-plane-kcp.yaml"),
        kube_vip: true,
        microos: Some((
            include_str!("../../../templates/dcs/cluster-template-microos.yaml"),
            include_str!("../../../templates/dcs/control-plane-machine-microos.yaml"),
        )),
        standalone_values: &[],
    }
}

fn hcs_templates() -> CloudTemplates {
    CloudTemplates {
        cluster: include_str!("../../../templates/hcs/cluster-template.yaml"),
        control_plane_machine: include_str!("../../../templates/hcs/control-plane-machine.yaml"),
        control_plane_kcp: include_str!("../../../templates/hcs/control-plane-kcp.yaml"),
        kube_vip: false,
        microos: Some((
            include_str!("../../../templates/hcs/cluster-template-microos.yaml"),
            include_str!("../../../templates/hcs/control-plane-machine-microos.yaml"),
        )),
        // The one control-plane Machine goes to the first zone.
        standalone_values: &[("CONTROL_PLANE_FAILURE_DOMAIN", "${HCS_AZ_1:=az1}")],
    }
}

fn vsphere_templates() -> CloudTemplates {
    CloudTemplates {
        cluster: include_str!("../../../templates/vsphere/cluster-template.yaml"),
        control_plane_machine: include_str!("../../../templates/vsphere/control-plane-machine.yaml"),
        control_plane_kcp: include_str!("../../../templates/vsphere/control-plane-kcp.yaml"),
        kube_vip: true,
        microos: Some((
            include_str!("../../../templates/vsphere/cluster-template-microos.yaml"),
            include_str!("../../../templates/vsphere/control-plane-machine-microos.yaml"),
        )),
        standalone_values: &[],
    }
}

/// Every package, in the order clusterctl.yaml lists them.
pub fn all() -> Vec<Package> {
    vec![
        Package {
            name: "capstan-kubeadm",
            kind: ProviderType::Bootstrap,
            manager_provider: "kubeadm",
            crds: capstan_kubeadm::api::crds(),
            rules: rbac::kubeadm(),
            options: {
                let mut o = common_options();
                o.push(opt("--bootstrap-token-ttl", "CAPSTAN_BOOTSTRAP_TOKEN_TTL", "15m"));
                o.push(opt(
                    "--kubeadmconfig-concurrency",
                    "CAPSTAN_KUBEADMCONFIG_CONCURRENCY",
                    "10",
                ));
                o
            },
            templates: None,
        },
        Package {
            name: "capstan-dcs",
            kind: ProviderType::Infrastructure,
            manager_provider: "dcs",
            crds: capstan_dcs::api::crds(),
            rules: rbac::dcs(),
            options: infrastructure_options(Some(("--dcsmachine-concurrency", "--dcscluster-concurrency"))),
            templates: Some(dcs_templates()),
        },
        Package {
            name: "capstan-hcs",
            kind: ProviderType::Infrastructure,
            manager_provider: "hcs",
            crds: capstan_hcs::api::crds(),
            rules: rbac::infrastructure("hcsclusters", "hcsmachines"),
            options: infrastructure_options(Some(("--hcsmachine-concurrency", "--hcscluster-concurrency"))),
            templates: Some(hcs_templates()),
        },
        Package {
            name: "capstan-vsphere",
            kind: ProviderType::Infrastructure,
            manager_provider: "vsphere",
            crds: capstan_vsphere::api::crds(),
            rules: rbac::infrastructure("vcenterclusters", "vcentermachines"),
            // vSphere has no concurrency flags of its own yet.
            options: infrastructure_options(None),
            templates: Some(vsphere_templates()),
        },
    ]
}
