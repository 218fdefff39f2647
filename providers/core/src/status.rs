//! Status of the infrastructure kinds. Every provider's InfraCluster and InfraMachine use these
//! types as their status, so the core owns status entirely and providers only define specs and
//! the typed record of the cloud resources they created for an object ([`CloudResources`]),
//! which the core keeps under `status.resources` and hands back on every pass.

use capstan_api::core::{Conditions, FailureDomain, MachineAddress, conditions_schema};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A provider's record of the cloud resources it created for one object (a load balancer's
/// listener and pool ids, a machine's pool membership). It is a cache of ids, not the truth: a
/// provider must find its resources again by name or tag when the record is lost (a crash
/// between a create and the status write, a moved cluster).
pub trait CloudResources:
    Serialize + DeserializeOwned + JsonSchema + Clone + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static
{
}

impl<T> CloudResources for T where
    T: Serialize
        + DeserializeOwned
        + JsonSchema
        + Clone
        + Default
        + PartialEq
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// For providers that create nothing beyond the instance.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NoResources {}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Initialization {
    /// The contract field CAPI core reads (v1beta2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "R: DeserializeOwned", serialize = "R: Serialize"))]
pub struct InfraClusterStatus<R: CloudResources = NoResources> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<Initialization>,
    /// Deprecated v1beta1 contract field, kept in step with `initialization.provisioned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_domains: Option<Vec<FailureDomain>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Conditions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The cloud resources the provider created for this object, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<R>,
}

/// What a cloud operation in flight is doing.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OperationKind {
    Create,
    Start,
    Delete,
    Cleanup,
}

/// A long-running cloud operation, kept in status so a restarted manager polls it instead of
/// starting it again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingOperation {
    pub kind: OperationKind,
    /// The cloud's handle for it (task URI, job id, task reference).
    #[schemars(length(min = 1, max = 1024))]
    pub id: String,
    pub started_at: Time,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "R: DeserializeOwned", serialize = "R: Serialize"))]
pub struct InfraMachineStatus<R: CloudResources = NoResources> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<Initialization>,
    /// Deprecated v1beta1 contract field, kept in step with `initialization.provisioned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<MachineAddress>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_domain: Option<String>,
    /// The cloud's id of the instance, once known.
    #[serde(default, rename = "instanceID", skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The instance's state as the cloud reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<PendingOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Conditions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The cloud resources the provider created for this object, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<R>,
}

/// Takes the provider's record out of a status for a pass to work on.
pub(crate) fn take_resources<R: CloudResources>(slot: &mut Option<R>) -> R {
    slot.take().unwrap_or_default()
}

/// Puts the record back; an empty one is not written.
pub(crate) fn put_resources<R: CloudResources>(slot: &mut Option<R>, resources: R) {
    *slot = (resources != R::default()).then_some(resources);
}
