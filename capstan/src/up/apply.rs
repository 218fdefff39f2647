//! Server-side apply of multi-document YAML and CRD installation, as `kubectl apply` would do.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use kube::{Client, ResourceExt};

pub const FIELD_MANAGER: &str = "capstan-up";

/// Applies every document; returns `kind/name` of each.
pub async fn apply_yaml(client: &Client, yaml: &str, default_ns: &str) -> anyhow::Result<Vec<String>> {
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
        api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj))
            .await
            .with_context(|| format!("applying {} {name}", types.kind))?;
        applied.push(format!("{}/{name}", types.kind));
    }
    Ok(applied)
}

/// Creates the CRDs that are missing and waits until all are served; returns the names created.
pub async fn install_crds(client: &Client, crds: &[CustomResourceDefinition]) -> anyhow::Result<Vec<String>> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut created = Vec::new();
    for crd in crds {
        let name = crd.name_any();
        if api.get_opt(&name).await?.is_none() {
            api.create(&PostParams::default(), crd)
                .await
                .with_context(|| format!("creating CRD {name}"))?;
            created.push(name);
        }
    }
    for crd in crds {
        let name = crd.name_any();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let established = api
                .get(&name)
                .await?
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("CRD {name} was not established within 60s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Discovery lags "Established" by a moment.
    for crd in crds {
        let version = crd
            .spec
            .versions
            .iter()
            .find(|v| v.storage)
            .map(|v| v.name.clone())
            .unwrap_or_default();
        let gvk = GroupVersionKind::gvk(&crd.spec.group, &version, &crd.spec.names.kind);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while pinned_kind(client, &gvk).await.is_err() {
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("{} is not served", crd.name_any());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(created)
}
