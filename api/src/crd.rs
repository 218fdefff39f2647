//! CRD post-processing shared by every crate that defines kinds, and the CRDs of this crate.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

use crate::contract::{CONTRACT, CONTRACT_LABEL_PREFIX, LABEL_PROVIDER};

/// Makes a derived CRD acceptable to every API server Capstan supports (1.20 and later).
///
/// schemars renders `Option<enum>` as an enum that includes `null`; a 1.20 API server cannot
/// compare such a schema with itself and rejects a single-version CRD with "per-version schemas
/// may not all be set to identical values". `nullable: true` already says the same thing, so the
/// `null` entries go.
pub fn finalize(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            strip_null_enums(schema);
        }
    }
    crd
}

fn strip_null_enums(schema: &mut JSONSchemaProps) {
    if let Some(values) = schema.enum_.as_mut() {
        values.retain(|v| !v.0.is_null());
    }
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|p| p.values_mut())
        .chain(schema.items.iter_mut().filter_map(|i| match i {
            JSONSchemaPropsOrArray::Schema(s) => Some(s.as_mut()),
            JSONSchemaPropsOrArray::Schemas(_) => None,
        }))
        .chain(schema.additional_properties.iter_mut().filter_map(|a| match a {
            JSONSchemaPropsOrBool::Schema(s) => Some(s.as_mut()),
            JSONSchemaPropsOrBool::Bool(_) => None,
        }));
    for child in children {
        strip_null_enums(child);
    }
    for list in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of]
        .into_iter()
        .flatten()
    {
        for child in list {
            strip_null_enums(child);
        }
    }
}

/// Labels a CRD as taking part in the Cluster API contract: `cluster.x-k8s.io/v1beta2: <versions>`
/// with every served version joined by `_`, the last one being what CAPI will use.
pub fn with_contract_label(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let versions: Vec<&str> = crd
        .spec
        .versions
        .iter()
        .filter(|v| v.served)
        .map(|v| v.name.as_str())
        .collect();
    let value = versions.join("_");
    crd.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(format!("{CONTRACT_LABEL_PREFIX}{CONTRACT}"), value);
    crd
}

/// Labels a CRD with the clusterctl provider it belongs to (`cluster.x-k8s.io/provider`).
pub fn with_provider_label(mut crd: CustomResourceDefinition, provider: &str) -> CustomResourceDefinition {
    crd.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(LABEL_PROVIDER.to_string(), provider.to_string());
    crd
}

/// The Cluster API core kinds, generated from Capstan's own types. Fields Capstan does not model
/// are preserved, so objects stored through these CRDs survive a later hand-over to real CAPI.
/// Used only where CAPI core is not installed (standalone mode); never installed next to it.
pub fn capi_core() -> Vec<CustomResourceDefinition> {
    use crate::core::{Cluster, Machine, MachineDeployment, MachineSet};
    use crate::ipam::{IPAddress, IPAddressClaim};
    [
        Cluster::crd(),
        Machine::crd(),
        MachineSet::crd(),
        MachineDeployment::crd(),
        IPAddressClaim::crd(),
        IPAddress::crd(),
    ]
    .into_iter()
    .map(|crd| finalize(with_provider_label(crd, "cluster-api")))
    .collect()
}

/// Renders objects (CRDs, components) as one multi-document YAML stream, the way
/// `kubectl apply -f` takes them.
pub fn to_yaml<T: serde::Serialize>(objects: &[T]) -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(o)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_null_in_enums_and_provider_label() {
        for crd in capi_core() {
            let text = serde_json::to_string(&crd).unwrap();
            assert!(
                !text.contains(",null]"),
                "{:?} still has a null enum",
                crd.metadata.name
            );
            assert_eq!(crd.metadata.labels.unwrap()["cluster.x-k8s.io/provider"], "cluster-api");
        }
    }
}
