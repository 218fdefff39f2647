//! The vSphere kinds: `VCenterCluster`, `VCenterClusterTemplate`, `VCenterMachine`,
//! `VCenterMachineTemplate` (`infrastructure.cluster.x-k8s.io/v1beta1`, implementing the CAPI
//! v1beta2 contract). Named apart from CAPV's `VSphere*` kinds so that both providers can live in
//! one management cluster; the fields follow CAPV's where CAPV has them. Status types belong to
//! the lifecycle core.

use capstan_api::core::{ApiEndpoint, ObjectMetaTemplate};
pub use capstan_lifecycle::spec::SecretRef;
use capstan_lifecycle::{InfraClusterSpec, InfraClusterStatus, InfraMachineSpec, InfraMachineStatus};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A vCenter and the datacenter a cluster's machines are created in.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "VCenterCluster",
    namespaced,
    status = "InfraClusterStatus",
    category = "cluster-api",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"}"#,
    printcolumn = r#"{"name":"Server","type":"string","jsonPath":".spec.server"}"#,
    printcolumn = r#"{"name":"Provisioned","type":"boolean","jsonPath":".status.initialization.provisioned"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".spec.controlPlaneEndpoint.host"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct VCenterClusterSpec {
    /// The vCenter, `https://<host>[:port]` (`/sdk` is added when no path is given). No user
    /// information in the URL: credentials come from the Secret.
    #[schemars(length(min = 9, max = 512), regex(pattern = r"^https://[^/@\s]+(/[^\s]*)?$"))]
    pub server: String,
    /// The datacenter, by name or inventory path (`DC0`, `/DC0`).
    #[schemars(length(min = 1, max = 255))]
    pub datacenter: String,
    /// Secret in the same namespace with keys `username` and `password`.
    pub credentials_secret_ref: SecretRef,
    /// How vCenter's certificate is trusted. Unset: the system roots. An empty thumbprint never
    /// means "do not verify" (CAPV's trap): skipping verification takes `insecureSkipVerify: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<VCenterTls>,
    /// The API server endpoint: a VIP (kube-vip) or an external load balancer; vSphere offers none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<ApiEndpoint>,
    /// Zones machines spread over, reported as `status.failureDomains`: each overrides the
    /// datacenter, compute cluster, datastore and networks of the machines placed in it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub failure_domains: Vec<VCenterFailureDomain>,
}

/// TLS trust for vCenter: a CA bundle, a pinned SHA-256 thumbprint of its certificate, or
/// (explicitly) none. At most one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.caBundle) ? 1 : 0) + (has(self.thumbprint) ? 1 : 0) + (has(self.insecureSkipVerify) && self.insecureSkipVerify ? 1 : 0) <= 1",
    "message": "set at most one of caBundle, thumbprint and insecureSkipVerify: true"
}]))]
pub struct VCenterTls {
    /// PEM bundle of the CAs that sign vCenter's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536))]
    pub ca_bundle: Option<String>,
    /// SHA-256 fingerprint of vCenter's certificate (`AB:CD:…`, 32 bytes, colons optional):
    /// exactly that certificate is accepted. SHA-1 thumbprints are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{64}$"))]
    pub thumbprint: Option<String>,
    /// Do not verify vCenter's certificate at all. Only for labs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VCenterFailureDomain {
    /// The failure domain's name, as Machines name it in `spec.failureDomain`.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// The datacenter; the cluster's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub datacenter: Option<String>,
    /// The compute cluster (its `Resources` pool is where machines run), by name.
    #[schemars(length(min = 1, max = 255))]
    pub compute_cluster: String,
    /// The datastore machines' disks go to; the machine's (or the template's) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub datastore: Option<String>,
    /// Port groups replacing the machines' `network.devices[i].networkName`, by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), inner(length(min = 1, max = 255)))]
    pub networks: Vec<String>,
    /// Whether control-plane machines may be placed here (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<bool>,
}

impl InfraClusterSpec for VCenterClusterSpec {
    fn credentials_secret(&self) -> &str {
        &self.credentials_secret_ref.name
    }
    fn control_plane_endpoint(&self) -> Option<&ApiEndpoint> {
        self.control_plane_endpoint.as_ref()
    }
}

/// A virtual machine cloned from a template.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "VCenterMachine",
    namespaced,
    status = "InfraMachineStatus",
    category = "cluster-api",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.instanceState"}"#,
    printcolumn = r#"{"name":"Provisioned","type":"boolean","jsonPath":".status.initialization.provisioned"}"#,
    printcolumn = r#"{"name":"ProviderID","type":"string","jsonPath":".spec.providerID"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.diskGiB) || !has(self.cloneMode) || self.cloneMode != 'linkedClone'",
        "message": "diskGiB cannot be used with cloneMode linkedClone: a linked clone keeps the template's disk; use fullClone to grow it"
    },
    {
        "rule": "!has(self.snapshot) || (has(self.cloneMode) && self.cloneMode == 'linkedClone')",
        "message": "snapshot is only used by cloneMode linkedClone"
    },
    {
        "rule": "!has(self.guestSoftPowerOffTimeout) || (has(self.powerOffMode) && self.powerOffMode == 'trySoft')",
        "message": "guestSoftPowerOffTimeout is only used by powerOffMode trySoft"
    }
]))]
pub struct VCenterMachineSpec {
    /// `vsphere://<BIOS UUID>`, set by the provider; what the vSphere cloud-controller-manager
    /// writes on the Node.
    #[serde(default, rename = "providerID", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub provider_id: Option<String>,
    /// The VM or template to clone: a name in the datacenter's VM folder, an inventory path
    /// (`/DC0/vm/templates/ubuntu`), or its instance UUID.
    #[schemars(length(min = 1, max = 512))]
    pub template: String,
    /// `fullClone` (default: independent disks, `diskGiB` honoured) or `linkedClone` (child
    /// disks on a snapshot of the template: fast, small, the template's disk size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_mode: Option<CloneMode>,
    /// The template snapshot a linked clone grows from, by name; the current one when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub snapshot: Option<String>,
    #[serde(rename = "numCPUs")]
    #[schemars(range(min = 1, max = 768))]
    pub num_cpus: i32,
    #[serde(rename = "memoryMiB")]
    #[schemars(range(min = 256, max = 25165824))]
    pub memory_mib: i64,
    /// Grows the first disk to this size (full clones only); the template's size when unset.
    #[serde(default, rename = "diskGiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub disk_gib: Option<i32>,
    pub network: NetworkSpec,
    /// The VM folder, by name under the datacenter's `vm` folder or as an inventory path; the
    /// datacenter's VM folder when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub folder: Option<String>,
    /// The resource pool, by path under the datacenter's `host` folder
    /// (`DC0_C0/Resources/pool`) or as an inventory path; the failure domain's compute cluster,
    /// else the template's pool, when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub resource_pool: Option<String>,
    /// The datastore, by name or inventory path; the failure domain's, else the template's, when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub datastore: Option<String>,
    /// How the VM is named (its name is also the guest's hostname and the Node name). Unset:
    /// the VCenterMachine's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naming: Option<Naming>,
    /// How the VM is powered off before it is destroyed (default `hard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_off_mode: Option<PowerOffMode>,
    /// With `trySoft`: how long the guest gets to shut down before the power is cut
    /// (`90s`, `5m`, `1h30m`; default `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s))+$"))]
    pub guest_soft_power_off_timeout: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CloneMode {
    #[default]
    FullClone,
    LinkedClone,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PowerOffMode {
    /// Power off at once (the node is going away).
    #[default]
    Hard,
    /// Ask VMware Tools for a guest shutdown and wait for it, however long it takes.
    Soft,
    /// A guest shutdown, then power off once `guestSoftPowerOffTimeout` has passed (or at once
    /// when the guest has no running Tools).
    TrySoft,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Naming {
    /// The VM name: text (lower-case letters, digits, `-`, `.`) around `{{ .machine.name }}`,
    /// optionally with `{{ .cluster.name }}`, e.g. `{{ .cluster.name }}-{{ .machine.name }}`.
    /// The result must be a valid host name of at most 63 characters.
    #[schemars(
        length(min = 1, max = 256),
        regex(
            pattern = r"^([a-z0-9.-]|\{\{ *\.(machine|cluster)\.name *\}\})*\{\{ *\.machine\.name *\}\}([a-z0-9.-]|\{\{ *\.(machine|cluster)\.name *\}\})*$"
        )
    )]
    pub template: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// The VM's NICs, in order; they replace the template's.
    #[schemars(length(min = 1, max = 10))]
    pub devices: Vec<NetworkDevice>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.dhcp4) && self.dhcp4) || (has(self.dhcp6) && self.dhcp6) || has(self.ipAddrs) || has(self.addressesFromPools)",
        "message": "a device needs an address: dhcp4, dhcp6, ipAddrs or addressesFromPools"
    },
    {
        "rule": "!has(self.gateway4) || has(self.ipAddrs) || has(self.addressesFromPools)",
        "message": "gateway4 goes with static addresses (ipAddrs or addressesFromPools)"
    }
]))]
pub struct NetworkDevice {
    /// The port group (standard or distributed), by name or inventory path.
    #[schemars(length(min = 1, max = 255))]
    pub network_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp4: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp6: Option<bool>,
    /// Static addresses in CIDR notation (`10.0.0.5/24`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(regex(pattern = r"^[0-9a-fA-F:.]+/[0-9]{1,3}$")))]
    pub ip_addrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$"))]
    pub gateway4: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(min = 2, max = 45)))]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(min = 1, max = 253)))]
    pub search_domains: Vec<String>,
    /// Addresses from IP pools through the Cluster API IPAM contract: one `IPAddressClaim` per
    /// pool (named `<machine>-<n>`, counting over all devices), bound before the VM powers on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub addresses_from_pools: Vec<PoolRef>,
}

/// An IP pool of any IPAM provider (e.g. `ipam.cluster.x-k8s.io` `InClusterIPPool`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolRef {
    #[schemars(length(min = 1, max = 253))]
    pub api_group: String,
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

impl PoolRef {
    pub fn to_claim_ref(&self) -> capstan_api::core::ContractVersionedObjectReference {
        capstan_api::core::ContractVersionedObjectReference::new(&self.api_group, &self.kind, &self.name)
    }
}

impl InfraMachineSpec for VCenterMachineSpec {
    fn provider_id(&self) -> Option<&str> {
        self.provider_id.as_deref()
    }
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "VCenterMachineTemplate",
    namespaced,
    category = "cluster-api",
    printcolumn = r#"{"name":"Template","type":"string","jsonPath":".spec.template.spec.template"}"#,
    printcolumn = r#"{"name":"CPUs","type":"integer","jsonPath":".spec.template.spec.numCPUs"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct VCenterMachineTemplateSpec {
    pub template: VCenterMachineTemplateResource,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct VCenterMachineTemplateResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMetaTemplate>,
    pub spec: VCenterMachineSpec,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "VCenterClusterTemplate",
    namespaced,
    category = "cluster-api",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct VCenterClusterTemplateSpec {
    pub template: VCenterClusterTemplateResource,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct VCenterClusterTemplateResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMetaTemplate>,
    pub spec: VCenterClusterSpec,
}

/// Every vSphere CRD, labelled for the contract and the clusterctl provider.
pub fn crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use capstan_api::crd::{finalize, with_contract_label, with_provider_label};
    use kube::CustomResourceExt;
    [
        VCenterCluster::crd(),
        VCenterClusterTemplate::crd(),
        VCenterMachine::crd(),
        VCenterMachineTemplate::crd(),
    ]
    .into_iter()
    .map(|crd| {
        finalize(with_provider_label(
            with_contract_label(crd),
            "infrastructure-capstan-vsphere",
        ))
    })
    .collect()
}
