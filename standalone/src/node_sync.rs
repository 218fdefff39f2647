//! What upstream's Machine controller writes onto a Machine's Node once it has found it
//! (`machine_controller_noderef.go`): the Machine's identity as annotations, the labels of the
//! domains CAPI manages, and the removal of the `node.cluster.x-k8s.io/uninitialized` taint the
//! bootstrap provider registers workers with. Without the last step a worker stays unschedulable.

use std::collections::BTreeMap;

use capstan_api::core::Machine;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The taint the bootstrap provider registers workers with, removed here once synced.
pub use capstan_kubeadm::document::UNINITIALIZED_TAINT;

pub const ANNOTATION_CLUSTER_NAME: &str = "cluster.x-k8s.io/cluster-name";
pub const ANNOTATION_CLUSTER_NAMESPACE: &str = "cluster.x-k8s.io/cluster-namespace";
pub const ANNOTATION_MACHINE: &str = "cluster.x-k8s.io/machine";
pub const ANNOTATION_OWNER_KIND: &str = "cluster.x-k8s.io/owner-kind";
pub const ANNOTATION_OWNER_NAME: &str = "cluster.x-k8s.io/owner-name";
/// The label keys last synced from the Machine, so that one removed there is removed here too.
pub const ANNOTATION_LABELS_FROM_MACHINE: &str = "cluster.x-k8s.io/labels-from-machine";

/// Label domains upstream syncs from Machine to Node (exact domain or any subdomain of the
/// `*.`-prefixed ones).
fn synced_label(key: &str) -> bool {
    let Some((domain, _)) = key.split_once('/') else {
        return false;
    };
    matches!(
        domain,
        "node-role.kubernetes.io" | "node-restriction.kubernetes.io" | "node.cluster.x-k8s.io"
    ) || domain.ends_with(".node-restriction.kubernetes.io")
        || domain.ends_with(".node.cluster.x-k8s.io")
}

/// The patch that brings `node` in line with `machine`, or `None` when it already is.
pub fn node_patch(machine: &Machine, node: &Node) -> Option<serde_json::Value> {
    let mut annotations = BTreeMap::from([
        (ANNOTATION_CLUSTER_NAME.to_string(), machine.spec.cluster_name.clone()),
        (
            ANNOTATION_CLUSTER_NAMESPACE.to_string(),
            machine.namespace().unwrap_or_default(),
        ),
        (ANNOTATION_MACHINE.to_string(), machine.name_any()),
    ]);
    if let Some(owner) = machine.owner_references().iter().find(|o| o.controller == Some(true)) {
        annotations.insert(ANNOTATION_OWNER_KIND.into(), owner.kind.clone());
        annotations.insert(ANNOTATION_OWNER_NAME.into(), owner.name.clone());
    }
    let wanted: BTreeMap<String, String> = machine
        .labels()
        .iter()
        .filter(|(k, _)| synced_label(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let keys: Vec<&str> = wanted.keys().map(String::as_str).collect();
    annotations.insert(ANNOTATION_LABELS_FROM_MACHINE.into(), keys.join(","));

    let current_labels = node.labels();
    let current_annotations = node.annotations();
    let mut labels = serde_json::Map::new();
    for (k, v) in &wanted {
        if current_labels.get(k) != Some(v) {
            labels.insert(k.clone(), v.clone().into());
        }
    }
    // Labels synced before and since removed from the Machine go from the Node too.
    for k in current_annotations
        .get(ANNOTATION_LABELS_FROM_MACHINE)
        .map(|s| s.split(',').filter(|k| !k.is_empty()).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !wanted.contains_key(k) && current_labels.contains_key(k) {
            labels.insert(k.to_string(), serde_json::Value::Null);
        }
    }
    let mut changed_annotations = serde_json::Map::new();
    for (k, v) in &annotations {
        if current_annotations.get(k) != Some(v) {
            changed_annotations.insert(k.clone(), v.clone().into());
        }
    }
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let untaint = taints.iter().any(|t| t.key == UNINITIALIZED_TAINT);
    if labels.is_empty() && changed_annotations.is_empty() && !untaint {
        return None;
    }
    let mut patch = json!({"metadata": {
        // The taint list is replaced as a whole: only if nobody changed the Node meanwhile.
        "resourceVersion": node.resource_version(),
        "labels": labels,
        "annotations": changed_annotations,
    }});
    if untaint {
        let kept: Vec<_> = taints.into_iter().filter(|t| t.key != UNINITIALIZED_TAINT).collect();
        patch["spec"] = json!({"taints": kept});
    }
    Some(patch)
}

/// Applies [`node_patch`]; a conflict (the Node changed under us) is retried on the next pass.
pub async fn sync(client: &Client, machine: &Machine, node: &Node) -> Result<bool, kube::Error> {
    let Some(patch) = node_patch(machine, node) else {
        return Ok(false);
    };
    Api::<Node>::all(client.clone())
        .patch(&node.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        serde_json::from_value(json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
            "metadata": {"name": "md-0-abc", "namespace": "ns1",
                         "labels": {"node-role.kubernetes.io/worker": "", "team": "a", "x.node.cluster.x-k8s.io/pool": "gpu"},
                         "ownerReferences": [{"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineSet", "name": "md-0", "uid": "u", "controller": true}]},
            "spec": {"clusterName": "c1", "bootstrap": {}, "infrastructureRef": {"apiGroup": "x", "kind": "K", "name": "n"}}
        }))
        .unwrap()
    }

    #[test]
    fn syncs_capi_domains_annotations_and_removes_the_uninitialized_taint() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "w", "resourceVersion": "7", "labels": {"kubernetes.io/hostname": "w"}},
            "spec": {"taints": [{"key": UNINITIALIZED_TAINT, "effect": "NoSchedule"}, {"key": "other", "effect": "NoExecute"}]}
        }))
        .unwrap();
        let p = node_patch(&machine(), &node).unwrap();
        assert_eq!(p["metadata"]["resourceVersion"], "7");
        assert_eq!(
            p["metadata"]["labels"],
            json!({"node-role.kubernetes.io/worker": "", "x.node.cluster.x-k8s.io/pool": "gpu"})
        );
        assert_eq!(p["metadata"]["annotations"][ANNOTATION_MACHINE], "md-0-abc");
        assert_eq!(p["metadata"]["annotations"][ANNOTATION_OWNER_KIND], "MachineSet");
        assert_eq!(p["spec"]["taints"], json!([{"key": "other", "effect": "NoExecute"}]));
    }

    #[test]
    fn an_up_to_date_node_needs_no_patch() {
        let m = machine();
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "w", "labels": {"node-role.kubernetes.io/worker": "", "x.node.cluster.x-k8s.io/pool": "gpu"},
                         "annotations": {ANNOTATION_CLUSTER_NAME: "c1", ANNOTATION_CLUSTER_NAMESPACE: "ns1", ANNOTATION_MACHINE: "md-0-abc",
                                         ANNOTATION_OWNER_KIND: "MachineSet", ANNOTATION_OWNER_NAME: "md-0",
                                         ANNOTATION_LABELS_FROM_MACHINE: "node-role.kubernetes.io/worker,x.node.cluster.x-k8s.io/pool"}}
        }))
        .unwrap();
        assert_eq!(node_patch(&m, &node), None);
    }
}
