//! The Cluster API IPAM contract kinds (`ipam.cluster.x-k8s.io/v1beta2`), client side.
//!
//! An infrastructure provider that needs a static address creates an [`IPAddressClaim`] naming a
//! pool (any kind: an upstream IPAM provider's `InClusterIPPool`, or Capstan's own pools); the IPAM
//! provider serving that pool kind creates an [`IPAddress`] and points the claim's
//! `status.addressRef` at it. Allocations are objects, so `clusterctl move` carries them with the
//! cluster (it never carries status).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Unknown;
use crate::core::ContractVersionedObjectReference;

/// The API group of the IPAM kinds.
pub const GROUP: &str = "ipam.cluster.x-k8s.io";
/// The version Capstan reads and writes.
pub const VERSION: &str = "v1beta2";
/// The claim's condition an IPAM provider sets (`True` once an address is bound).
pub const CONDITION_READY: &str = "Ready";

/// Asks the IPAM provider of `poolRef` for one address.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ipam.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "IPAddressClaim",
    namespaced,
    status = "IPAddressClaimStatus",
    category = "cluster-api",
    printcolumn = r#"{"name":"Pool Name","type":"string","jsonPath":".spec.poolRef.name"}"#,
    printcolumn = r#"{"name":"Pool Kind","type":"string","jsonPath":".spec.poolRef.kind"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct IPAddressClaimSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub cluster_name: Option<String>,
    pub pool_ref: ContractVersionedObjectReference,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct IPAddressClaimStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_ref: Option<LocalRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// A name in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// One address handed out by a pool, bound to one claim.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ipam.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "IPAddress",
    namespaced,
    category = "cluster-api",
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.address"}"#,
    printcolumn = r#"{"name":"Pool Name","type":"string","jsonPath":".spec.poolRef.name"}"#,
    printcolumn = r#"{"name":"Pool Kind","type":"string","jsonPath":".spec.poolRef.kind"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct IPAddressSpec {
    pub claim_ref: LocalRef,
    pub pool_ref: ContractVersionedObjectReference,
    #[schemars(length(min = 1, max = 39))]
    pub address: String,
    #[schemars(range(min = 0, max = 128))]
    pub prefix: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 39))]
    pub gateway: Option<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}
