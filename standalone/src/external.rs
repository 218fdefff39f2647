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
