//! The HCS kinds: `HCSCluster`, `HCSClusterTemplate`, `HCSMachine`, `HCSMachineTemplate`
//! (`infrastructure.cluster.x-k8s.io/v1beta1`, implementing the CAPI v1beta2 contract), shaped
//! after ACP's HCS provider where its fields are known: the credentials Secret's keys, machines
//! named by `imageName`/`flavorName`/`availabilityZone`, the cluster's subnets. Status types
//! belong to the lifecycle core; what the provider records of the cloud resources it created
//! (the load balancer's ids, a machine's pool membership) is typed here.

use std::collections::BTreeMap;

use capstan_api::core::{ApiEndpoint, ObjectMetaTemplate};
pub use capstan_lifecycle::spec::{SecretRef, TlsConfig};
use capstan_lifecycle::{InfraClusterSpec, InfraClusterStatus, InfraMachineSpec, InfraMachineStatus};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Huawei Cloud Stack project (resource space) in one region a cluster's machines run in.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "HCSCluster",
    namespaced,
    status = "HCSClusterStatus",
    category = "cluster-api",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"}"#,
    printcolumn = r#"{"name":"Provisioned","type":"boolean","jsonPath":".status.initialization.provisioned"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".spec.controlPlaneEndpoint.host"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.controlPlaneLoadBalancer) || has(self.controlPlaneEndpoint)",
    "message": "set controlPlaneLoadBalancer (Capstan creates an ELB) or controlPlaneEndpoint (your own load balancer or VIP)"
}]))]
pub struct HCSClusterSpec {
    /// Secret in the same namespace with keys `accessKey`, `secretKey` (or, for an IAM user's
    /// Keystone token instead, `username`, `password`, `domainName`), `projectID`, `region`,
    /// `externalGlobalDomain`, and optionally `schema` (`https`) and endpoint overrides
    /// `<service>Endpoint` (`iamEndpoint`, `ecsEndpoint`, `vpcEndpoint`, `imsEndpoint`,
    /// `evsEndpoint`: full base URLs).
    pub credentials_secret_ref: SecretRef,
    /// The API server endpoint. Set it for a load balancer of your own; with
    /// `controlPlaneLoadBalancer` Capstan fills it in from the ELB's VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<ApiEndpoint>,
    /// A dedicated ELB that Capstan creates and manages for the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_load_balancer: Option<LoadBalancerSpec>,
    pub network: NetworkSpec,
    /// The availability zones machines spread over: `status.failureDomains`, each
    /// control-plane capable. Empty: HCS places machines where it likes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub availability_zones: Vec<AvailabilityZone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    /// A fixed VIP in the subnet; allocated by HCS when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 7, max = 45))]
    pub vip_address: Option<String>,
    /// Zones the ELB is deployed in; the cluster's first availability zone when unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub availability_zones: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// The subnets machines get their addresses from, by VPC subnet id. The first is the
    /// default for machines and hosts the control-plane ELB's VIP.
    #[schemars(length(min = 1, max = 16))]
    pub subnets: Vec<SubnetRef>,
    /// Security groups every machine joins (the VPC's default when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub security_groups: Vec<IdRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubnetRef {
    /// The VPC subnet id (the one ECS NICs take, not the neutron subnet id).
    #[schemars(length(min = 1, max = 64))]
    pub id: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdRef {
    #[schemars(length(min = 1, max = 64))]
    pub id: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityZone {
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// Whether control-plane machines may be placed here (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<bool>,
}

impl InfraClusterSpec for HCSClusterSpec {
    fn credentials_secret(&self) -> &str {
        &self.credentials_secret_ref.name
    }
    fn control_plane_endpoint(&self) -> Option<&ApiEndpoint> {
        self.control_plane_endpoint.as_ref()
    }
}

/// The ids of the control-plane load balancer Capstan built. A cache: each is found again by
/// name when lost.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HCSClusterResources {
    #[serde(default, rename = "loadBalancerID", skip_serializing_if = "Option::is_none")]
    pub load_balancer_id: Option<String>,
    #[serde(default, rename = "listenerID", skip_serializing_if = "Option::is_none")]
    pub listener_id: Option<String>,
    #[serde(default, rename = "poolID", skip_serializing_if = "Option::is_none")]
    pub pool_id: Option<String>,
    #[serde(default, rename = "healthMonitorID", skip_serializing_if = "Option::is_none")]
    pub health_monitor_id: Option<String>,
    /// The neutron subnet id members are registered with.
    #[serde(default, rename = "memberSubnetID", skip_serializing_if = "Option::is_none")]
    pub member_subnet_id: Option<String>,
}

pub type HCSClusterStatus = InfraClusterStatus<HCSClusterResources>;

/// An ECS server.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "HCSMachine",
    namespaced,
    status = "HCSMachineStatus",
    category = "cluster-api",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.instanceState"}"#,
    printcolumn = r#"{"name":"Provisioned","type":"boolean","jsonPath":".status.initialization.provisioned"}"#,
    printcolumn = r#"{"name":"ProviderID","type":"string","jsonPath":".spec.providerID"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HCSMachineSpec {
    /// `hcs://<server id>`, set by the provider.
    #[serde(default, rename = "providerID", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub provider_id: Option<String>,
    /// The IMS image, by name.
    #[schemars(length(min = 1, max = 255))]
    pub image_name: String,
    /// The ECS flavor, by name (e.g. `s6.xlarge.2`).
    #[schemars(length(min = 1, max = 128))]
    pub flavor_name: String,
    /// Pins the machine to a zone; otherwise the Machine's failure domain, else HCS's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_volume: Option<VolumeSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 23))]
    pub data_volumes: Vec<VolumeSpec>,
    /// The subnet of the machine's NIC; the cluster's first subnet when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<SubnetRef>,
    /// Security groups in addition to the cluster's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub security_groups: Vec<IdRef>,
    /// An ECS server group (e.g. anti-affinity for control-plane machines), by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub server_group_id: Option<String>,
    /// Extra ECS tags (Capstan adds its own `capstan-*` tags).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSpec {
    /// EVS disk type: `SATA`, `SAS`, `SSD`, `GPSSD`.
    #[serde(rename = "type")]
    #[schemars(regex(pattern = "^(SATA|SAS|SSD|GPSSD)$"))]
    pub volume_type: String,
    #[serde(rename = "sizeGiB")]
    #[schemars(range(min = 1, max = 32768))]
    pub size_gib: u32,
}

impl InfraMachineSpec for HCSMachineSpec {
    fn provider_id(&self) -> Option<&str> {
        self.provider_id.as_deref()
    }
}

/// What the provider attached a machine to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HCSMachineResources {
    /// The control-plane ELB pool member of this machine.
    #[serde(default, rename = "loadBalancerMemberID", skip_serializing_if = "Option::is_none")]
    pub load_balancer_member_id: Option<String>,
}

pub type HCSMachineStatus = InfraMachineStatus<HCSMachineResources>;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "HCSMachineTemplate",
    namespaced,
    category = "cluster-api",
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".spec.template.spec.imageName"}"#,
    printcolumn = r#"{"name":"Flavor","type":"string","jsonPath":".spec.template.spec.flavorName"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct HCSMachineTemplateSpec {
    pub template: HCSMachineTemplateResource,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct HCSMachineTemplateResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMetaTemplate>,
    pub spec: HCSMachineSpec,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "HCSClusterTemplate",
    namespaced,
    category = "cluster-api",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct HCSClusterTemplateSpec {
    pub template: HCSClusterTemplateResource,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct HCSClusterTemplateResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMetaTemplate>,
    pub spec: HCSClusterSpec,
}

/// Every HCS CRD, labelled for the contract and the clusterctl provider.
pub fn crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use capstan_api::crd::{finalize, with_contract_label, with_provider_label};
    use kube::CustomResourceExt;
    [
        HCSCluster::crd(),
        HCSClusterTemplate::crd(),
        HCSMachine::crd(),
        HCSMachineTemplate::crd(),
    ]
    .into_iter()
    .map(|crd| {
        finalize(with_provider_label(
            with_contract_label(crd),
            "infrastructure-capstan-hcs",
        ))
    })
    .collect()
}
