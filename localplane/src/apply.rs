//! Server-side apply of multi-document YAML, as `kubectl apply --server-side` would do (with
//! `--dry-run=server` when the params say so): `capstan up` applies its cluster with it, the
//! tests apply what `clusterctl generate cluster` rendered.

use anyhow::Context;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use kube::{Client, ResourceExt};

/// Applies every document with `params` (`PatchParams::apply(manager)`); returns `kind/name` of
/// each.
pub async fn apply_yaml(
    client: &Client,
    yaml: &str,
    default_ns: &str,
    params: &PatchParams,
) -> anyhow::Result<Vec<String>> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).context("parsing the generated YAML")?;
    let mut applied = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let obj: DynamicObject = serde_json::from_value(doc).context("not a Kubernetes object")?;
        let types = obj.types.clone().context("object without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let (ar, caps) = pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("the server does not serve {}/{}", types.api_version, types.kind))?;
        let name = obj.name_any();
        let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
            Api::namespaced_with(client.clone(), obj.namespace().as_deref().unwrap_or(default_ns), &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        api.patch(&name, params, &Patch::Apply(&obj))
            .await
            .with_context(|| format!("applying {} {name}", types.kind))?;
        applied.push(format!("{}/{name}", types.kind));
    }
    Ok(applied)
}
