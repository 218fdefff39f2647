//! Adding and removing one finalizer without clobbering the others: JSON patches guarded by the
//! object's resourceVersion, so a concurrent writer makes the patch fail (and the reconcile retry)
//! instead of being overwritten.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

fn patch_params(manager: &str) -> PatchParams {
    PatchParams {
        field_manager: Some(manager.to_string()),
        ..Default::default()
    }
}

/// Adds `finalizer` to `obj` unless present. Returns whether a patch was sent.
pub async fn add<K>(api: &Api<K>, obj: &K, finalizer: &str, manager: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if obj.finalizers().iter().any(|f| f == finalizer) {
        return Ok(false);
    }
    let ops = if obj.meta().finalizers.is_none() {
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": obj.resource_version()},
            {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": obj.resource_version()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
        ])
    };
    let patch: json_patch::Patch = serde_json::from_value(ops).expect("static patch shape");
    match api
        .patch(&obj.name_any(), &patch_params(manager), &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => changed_meanwhile(api, obj, e).await,
    }
}

/// A failed `test` op answers 422 like an invalid patch does. When the object's
/// resourceVersion moved, it was a concurrent write: the watch brings the new version, so report
/// the patch as sent (the caller waits for that event) instead of logging a failed reconcile.
async fn changed_meanwhile<K>(api: &Api<K>, obj: &K, err: kube::Error) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match &err {
        kube::Error::Api(s) if s.code == 422 => match api.get_opt(&obj.name_any()).await? {
            None => Ok(true),
            Some(now) if now.resource_version() != obj.resource_version() => Ok(true),
            Some(_) => Err(err),
        },
        _ => Err(err),
    }
}

/// Removes `finalizer` from `obj` if present. Returns whether a patch was sent.
pub async fn remove<K>(api: &Api<K>, obj: &K, finalizer: &str, manager: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(index) = obj.finalizers().iter().position(|f| f == finalizer) else {
        return Ok(false);
    };
    let ops = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": obj.resource_version()},
        {"op": "remove", "path": format!("/metadata/finalizers/{index}")},
    ]);
    let patch: json_patch::Patch = serde_json::from_value(ops).expect("static patch shape");
    match api
        .patch(&obj.name_any(), &patch_params(manager), &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => Ok(true),
        // Already gone: the finalizer was the last thing holding it.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
        Err(e) => changed_meanwhile(api, obj, e).await,
    }
}
