//! Objects referenced by a contract-versioned reference (`{apiGroup, kind, name}`): the version
//! comes from the referenced CRD's contract label, as CAPI resolves it.

use capstan_api::contract::{CONTRACT, contract_version, crd_name};
use capstan_api::core::ContractVersionedObjectReference;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};

#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error("CRD {0} is not installed")]
    CrdMissing(String),
    #[error(
        "CRD {crd} has no {CONTRACT} contract label (cluster.x-k8s.io/{CONTRACT}); its provider does not implement the contract"
    )]
    NoContractLabel { crd: String },
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// The `ApiResource` for a reference, with the version the CRD's contract label names.
pub async fn resolve(client: &Client, r: &ContractVersionedObjectReference) -> Result<ApiResource, ExternalError> {
    let name = crd_name(&r.api_group, &r.kind);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds
        .get_opt(&name)
        .await?
        .ok_or_else(|| ExternalError::CrdMissing(name.clone()))?;
    let labels = crd.metadata.labels.unwrap_or_default();
    let version = contract_version(&labels, CONTRACT).ok_or(ExternalError::NoContractLabel { crd: name })?;
    let gvk = GroupVersionKind::gvk(&r.api_group, version, &r.kind);
    Ok(ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural))
}

/// The referenced object in `namespace`, if it exists.
pub async fn get(
    client: &Client,
    namespace: &str,
    r: &ContractVersionedObjectReference,
) -> Result<(ApiResource, Option<DynamicObject>), ExternalError> {
    let ar = resolve(client, r).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    let obj = api.get_opt(&r.name).await?;
    Ok((ar, obj))
}

/// `status.initialization.provisioned` (contract v1beta2), falling back to `status.ready` (v1beta1).
pub fn provisioned(obj: &DynamicObject) -> bool {
    let status = &obj.data["status"];
    status["initialization"]["provisioned"]
        .as_bool()
        .or_else(|| status["ready"].as_bool())
        .unwrap_or(false)
}

/// Puts `owner` among `obj`'s owner references and the cluster-name label on it, in one patch
/// guarded by the object's resourceVersion. Returns whether anything was written.
pub async fn adopt(
    client: &Client,
    ar: &ApiResource,
    obj: &DynamicObject,
    owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    cluster_name: &str,
) -> Result<bool, kube::Error> {
    use capstan_api::contract::LABEL_CLUSTER_NAME;
    use kube::ResourceExt;
    let mut meta = obj.metadata.clone();
    let owner_changed = capstan_api::owner::ensure_owner_reference(&mut meta, owner);
    let labelled = obj.labels().get(LABEL_CLUSTER_NAME).map(String::as_str) == Some(cluster_name);
    if !owner_changed && labelled {
        return Ok(false);
    }
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(LABEL_CLUSTER_NAME.into(), cluster_name.into());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &obj.namespace().unwrap_or_default(), ar);
    crate::controller::patch_metadata(&api, obj, &meta).await?;
    Ok(true)
}

/// A `Ready` condition of a provider object, as (status, reason, message).
pub fn ready_condition(obj: &DynamicObject) -> Option<(capstan_api::conditions::Status, String, String)> {
    use capstan_api::conditions::Status;
    let c = obj.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    let status = Status::parse(c["status"].as_str().unwrap_or_default());
    Some((
        status,
        c["reason"].as_str().unwrap_or("NoReasonReported").to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    ))
}
