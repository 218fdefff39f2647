//! Creating a provider object from its `…Template`, as CAPI core's `external.CreateFromTemplate`
//! does: `spec.template.spec` becomes the spec, the kind loses its `Template` suffix, the name is
//! the Machine's, and the result records what it was cloned from.

use std::collections::BTreeMap;

use capstan_api::contract::{ANNOTATION_CLONED_FROM_GROUP_KIND, ANNOTATION_CLONED_FROM_NAME, LABEL_CLUSTER_NAME};
use capstan_api::core::ContractVersionedObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use serde_json::Value;

use crate::external::{self, ExternalError};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{kind} {name} does not exist")]
    Missing { kind: String, name: String },
    #[error("{kind} {name} has no spec.template")]
    NoTemplate { kind: String, name: String },
    #[error("{kind} is not a template kind (its name must end in `Template`)")]
    NotATemplate { kind: String },
    #[error(transparent)]
    External(#[from] ExternalError),
}

#[derive(Clone)]
pub struct CloneInput<'a> {
    pub namespace: &'a str,
    pub template: &'a ContractVersionedObjectReference,
    pub name: &'a str,
    pub cluster_name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
    pub owner: OwnerReference,
}

/// The kind a template kind stamps out.
pub fn cloned_kind(template_kind: &str) -> Option<&str> {
    template_kind.strip_suffix("Template").filter(|k| !k.is_empty())
}

/// The object `input` would create, and where it goes.
pub async fn render(client: &Client, input: &CloneInput<'_>) -> Result<(ApiResource, DynamicObject), TemplateError> {
    let t = input.template;
    let kind = cloned_kind(&t.kind)
        .ok_or_else(|| TemplateError::NotATemplate { kind: t.kind.clone() })?
        .to_string();
    let (_, template) = external::get(client, input.namespace, t).await?;
    let template = template.ok_or_else(|| TemplateError::Missing {
        kind: t.kind.clone(),
        name: t.name.clone(),
    })?;
    let tmpl = &template.data["spec"]["template"];
    if !tmpl.is_object() {
        return Err(TemplateError::NoTemplate {
            kind: t.kind.clone(),
            name: t.name.clone(),
        });
    }
    let mut labels: BTreeMap<String, String> =
        serde_json::from_value(tmpl["metadata"]["labels"].clone()).unwrap_or_default();
    labels.extend(input.labels.clone());
    labels.insert(LABEL_CLUSTER_NAME.into(), input.cluster_name.into());
    let mut annotations: BTreeMap<String, String> =
        serde_json::from_value(tmpl["metadata"]["annotations"].clone()).unwrap_or_default();
    annotations.extend(input.annotations.clone());
    annotations.insert(ANNOTATION_CLONED_FROM_NAME.into(), t.name.clone());
    annotations.insert(
        ANNOTATION_CLONED_FROM_GROUP_KIND.into(),
        format!("{}.{}", t.kind, t.api_group),
    );

    // The clone's own CRD says which version to write (its contract label), as for any reference.
    let ar = external::resolve(
        client,
        &ContractVersionedObjectReference::new(t.api_group.clone(), kind.clone(), input.name),
    )
    .await?;
    let mut obj = DynamicObject::new(input.name, &ar).within(input.namespace);
    obj.metadata.labels = Some(labels);
    obj.metadata.annotations = Some(annotations);
    obj.metadata.owner_references = Some(vec![input.owner.clone()]);
    obj.data = serde_json::json!({ "spec": tmpl.get("spec").cloned().unwrap_or(Value::Object(Default::default())) });
    Ok((ar, obj))
}

/// Creates the clone; an existing object of that name (a retry after a crash) is taken as is.
pub async fn create(client: &Client, input: &CloneInput<'_>) -> Result<ContractVersionedObjectReference, CreateError> {
    let (ar, obj) = render(client, input).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), input.namespace, &ar);
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(ContractVersionedObjectReference::new(
        input.template.api_group.clone(),
        ar.kind,
        input.name,
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

#[cfg(test)]
mod tests {
    #[test]
    fn template_suffix_is_dropped() {
        assert_eq!(super::cloned_kind("DCSMachineTemplate"), Some("DCSMachine"));
        assert_eq!(super::cloned_kind("KubeadmConfigTemplate"), Some("KubeadmConfig"));
        assert_eq!(super::cloned_kind("Template"), None);
        assert_eq!(super::cloned_kind("DCSMachine"), None);
    }
}
