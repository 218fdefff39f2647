//! CRD post-processing shared by every crate that defines kinds, and the CRDs of this crate.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::contract::{CONTRACT, CONTRACT_LABEL_PREFIX, LABEL_PROVIDER};

/// Labels a CRD as taking part in the Cluster API contract: `cluster.x-k8s.io/v1beta2: <versions>`
/// with every served version joined by `_`, the last one being what CAPI will use.
pub fn with_contract_label(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let versions: Vec<&str> = crd.spec.versions.iter().filter(|v| v.served).map(|v| v.name.as_str()).collect();
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
    [Cluster::crd(), Machine::crd(), MachineSet::crd(), MachineDeployment::crd()]
        .into_iter()
        .map(|crd| with_provider_label(crd, "cluster-api"))
        .collect()
}

/// Renders CRDs as one multi-document YAML stream, the way `kubectl apply -f` takes them.
pub fn to_yaml(crds: &[CustomResourceDefinition]) -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for crd in crds {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(crd)?);
    }
    Ok(out)
}
