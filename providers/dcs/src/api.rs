//! The DCS kinds: `DCSCluster`, `DCSClusterTemplate`, `DCSMachine`, `DCSMachineTemplate`
//! (`infrastructure.cluster.x-k8s.io/v1beta1`, implementing the CAPI v1beta2 contract).
//! Status types belong to the lifecycle core.

use capstan_api::core::{ApiEndpoint, ObjectMetaTemplate};
pub use capstan_lifecycle::spec::{SecretRef, TlsConfig};
use capstan_lifecycle::{InfraClusterSpec, InfraClusterStatus, InfraMachineSpec, InfraMachineStatus};
use kube::{CustomResource, Resource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A DCS (FusionCompute VRM) site a cluster's machines are created in.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "DCSCluster",
    namespaced,
    status = "InfraClusterStatus",
    category = "cluster-api",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"}"#,
    printcolumn = r#"{"name":"Provisioned","type":"boolean","jsonPath":".status.initialization.provisioned"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".spec.controlPlaneEndpoint.host"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DCSClusterSpec {
    /// Secret in the same namespace with keys `endpoint` (`https://<vrm>:7443`), `authUser`,
    /// `authKey`, and optionally `userType` (`interconnect`|`domain`) and `site`.
    pub credentials_secret_ref: SecretRef,
    /// The API server endpoint (an external load balancer or VIP); DCS offers no load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<ApiEndpoint>,
    /// The VRM site id; discovered (the first site) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// How the password travels in `X-Auth-Key`: `Plain` (default) or `Sha256Hex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_encoding: Option<PasswordEncodingSpec>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PasswordEncodingSpec {
    Plain,
    Sha256Hex,
}

impl InfraClusterSpec for DCSClusterSpec {
    fn credentials_secret(&self) -> &str {
        &self.credentials_secret_ref.name
    }
    fn control_plane_endpoint(&self) -> Option<&ApiEndpoint> {
        self.control_plane_endpoint.as_ref()
    }
}

/// A VM cloned from a DCS template.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "DCSMachine",
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
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.ipHostnamePoolRef) || !has(self.nics[0].ipv4)",
    "message": "set either nics[0].ipv4 or ipHostnamePoolRef, not both"
}]))]
pub struct DCSMachineSpec {
    /// `dcs://<vm uuid>`, set by the provider.
    #[serde(default, rename = "providerID", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub provider_id: Option<String>,
    /// Name of the VM template to clone.
    #[schemars(length(min = 1, max = 256))]
    pub template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[schemars(range(min = 1, max = 256))]
    pub cpu: i32,
    #[serde(rename = "memoryMiB")]
    #[schemars(range(min = 256, max = 16777216))]
    pub memory_mib: i64,
    /// System disk size in GiB; 0 keeps the template's size.
    #[serde(default, rename = "systemDiskGiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65536))]
    pub system_disk_gib: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub data_disks: Option<Vec<DataDisk>>,
    #[schemars(length(min = 1, max = 12))]
    pub nics: Vec<Nic>,
    /// Takes the first NIC's address (and, from a `DCSIPHostnamePool`, the VM's hostname and DNS
    /// servers) from an IP pool through the Cluster API IPAM contract, instead of `nics[0].ipv4`
    /// (which must then be unset): an `IPAddressClaim` named `<machine>-0` that the pool's IPAM
    /// provider answers. Any IPAM provider's pool kind works (`apiGroup` + `kind`); the default is
    /// Capstan's own `DCSIPHostnamePool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_hostname_pool_ref: Option<PoolRef>,
    /// Where an Ignition bootstrap config goes on the bootstrap ISO (used only when the bootstrap
    /// data's format is `ignition`). The defaults are openSUSE MicroOS's: volume label `ignition`,
    /// file `ignition/config.ign`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignition: Option<IgnitionVolumeSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IgnitionVolumeSpec {
    /// ISO volume label. MicroOS's `ignition-setup-user` matches `ignition` exactly (lowercase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub volume_label: Option<String>,
    /// Path of the config on the volume, relative, `/`-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]*)(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
    )]
    pub config_path: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolRef {
    /// The pool kind's API group; `infrastructure.cluster.x-k8s.io` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub api_group: Option<String>,
    /// The pool kind; `DCSIPHostnamePool` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub kind: Option<String>,
    /// A pool in the machine's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

impl PoolRef {
    /// The reference an `IPAddressClaim` carries.
    pub fn to_claim_ref(&self) -> capstan_api::core::ContractVersionedObjectReference {
        capstan_api::core::ContractVersionedObjectReference::new(
            self.api_group
                .clone()
                .unwrap_or_else(|| DCSIPHostnamePool::group(&()).into_owned()),
            self.kind
                .clone()
                .unwrap_or_else(|| DCSIPHostnamePool::kind(&()).into_owned()),
            &self.name,
        )
    }
}

/// Fixed addresses (and optionally hostnames) handed to machines one entry each, for networks
/// without DHCP where every node must keep a known address.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "DCSIPHostnamePool",
    namespaced,
    status = "DCSIPHostnamePoolStatus",
    shortname = "dcsippool",
    category = "cluster-api",
    printcolumn = r#"{"name":"Allocated","type":"integer","jsonPath":".status.allocatedCount"}"#,
    printcolumn = r#"{"name":"Free","type":"integer","jsonPath":".status.freeCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DCSIPHostnamePoolSpec {
    #[schemars(length(min = 1, max = 4096))]
    pub entries: Vec<PoolEntry>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolEntry {
    #[serde(flatten)]
    pub address: StaticAddress,
    /// The VM's hostname; the DCSMachine's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"))]
    pub hostname: Option<String>,
}

/// Counts only: the allocation is the `IPAddress` objects whose `poolRef` names the pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DCSIPHostnamePoolStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_count: Option<i32>,
}

/// Where the VM goes, by name: a cluster or one host (not both); the template's cluster when
/// unset. VM folders are not supported: VRM's folder API is not publicly documented.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub host: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataDisk {
    #[serde(rename = "sizeGiB")]
    #[schemars(range(min = 1, max = 65536))]
    pub size_gib: i64,
    #[schemars(length(min = 1, max = 256))]
    pub datastore: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Nic {
    #[schemars(length(min = 1, max = 256))]
    pub dv_switch: String,
    #[schemars(length(min = 1, max = 256))]
    pub port_group: String,
    /// A static address; DHCP when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<StaticAddress>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticAddress {
    #[schemars(regex(pattern = r"^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$"))]
    pub address: String,
    #[schemars(range(min = 1, max = 32))]
    pub prefix_length: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$"))]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 3))]
    pub dns: Option<Vec<String>>,
}

impl InfraMachineSpec for DCSMachineSpec {
    fn provider_id(&self) -> Option<&str> {
        self.provider_id.as_deref()
    }
}

/// What MachineDeployments and MachineSets clone DCSMachines from.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "DCSMachineTemplate",
    namespaced,
    category = "cluster-api",
    printcolumn = r#"{"name":"Template","type":"string","jsonPath":".spec.template.spec.template"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DCSMachineTemplateSpec {
    pub template: DCSMachineTemplateResource,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DCSMachineTemplateResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMetaTemplate>,
    pub spec: DCSMachineSpec,
}

/// What ClusterClass clones DCSClusters from.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "DCSClusterTemplate",
    namespaced,
    category = "cluster-api",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DCSClusterTemplateSpec {
    pub template: DCSClusterTemplateResource,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DCSClusterTemplateResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMetaTemplate>,
    pub spec: DCSClusterSpec,
}

/// Every DCS CRD, labelled for the contract and the clusterctl provider.
pub fn crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use capstan_api::crd::{finalize, with_contract_label, with_provider_label};
    use kube::CustomResourceExt;
    [
        DCSCluster::crd(),
        DCSClusterTemplate::crd(),
        DCSMachine::crd(),
        DCSMachineTemplate::crd(),
        moved_with_its_namespace(DCSIPHostnamePool::crd()),
    ]
    .into_iter()
    .map(|crd| {
        finalize(with_provider_label(
            with_contract_label(crd),
            "infrastructure-capstan-dcs",
        ))
    })
    .collect()
}

/// Pools belong to no Cluster's owner chain (several clusters may draw from one), so their CRD
/// carries clusterctl's move label: `clusterctl move` then takes every pool of the namespace,
/// and the `IPAddress` objects that are its allocations follow their claims.
fn moved_with_its_namespace(
    mut crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    crd.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(capstan_api::contract::LABEL_MOVE.to_string(), String::new());
    crd
}
