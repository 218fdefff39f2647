//! The Cluster API contract's well-known names and the checks every controller makes with them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::core::Cluster;

/// Label on every object that belongs to a Cluster.
pub const LABEL_CLUSTER_NAME: &str = "cluster.x-k8s.io/cluster-name";
/// Label on control-plane Machines (and their configs).
pub const LABEL_CONTROL_PLANE: &str = "cluster.x-k8s.io/control-plane";
/// Label CAPI puts on every provider component: `<type>-<name>`.
pub const LABEL_PROVIDER: &str = "cluster.x-k8s.io/provider";
/// Label a controller started with `--watch-filter=VALUE` selects on.
pub const LABEL_WATCH_FILTER: &str = "cluster.x-k8s.io/watch-filter";
/// Label carrying the owning MachineDeployment's name.
pub const LABEL_DEPLOYMENT_NAME: &str = "cluster.x-k8s.io/deployment-name";
/// Label carrying the owning MachineSet's name.
pub const LABEL_SET_NAME: &str = "cluster.x-k8s.io/set-name";
/// Label MachineDeployments use to tell their MachineSets' templates apart.
pub const LABEL_MACHINE_TEMPLATE_HASH: &str = "machine-template-hash";
/// Prefix of a CRD's contract label, e.g. `cluster.x-k8s.io/v1beta2: v1beta1`.
pub const CONTRACT_LABEL_PREFIX: &str = "cluster.x-k8s.io/";
/// The contract Capstan implements.
pub const CONTRACT: &str = "v1beta2";

/// Annotation that pauses reconciliation of a single object.
pub const ANNOTATION_PAUSED: &str = "cluster.x-k8s.io/paused";
/// Annotation marking infrastructure managed by someone else: providers leave it alone.
pub const ANNOTATION_MANAGED_BY: &str = "cluster.x-k8s.io/managed-by";
/// Annotation that marks a Machine to be deleted first when its set scales down.
pub const ANNOTATION_DELETE_MACHINE: &str = "cluster.x-k8s.io/delete-machine";
/// Annotation excluding a Machine from remediation.
pub const ANNOTATION_SKIP_REMEDIATION: &str = "cluster.x-k8s.io/skip-remediation";
/// Annotations recording which template an object was cloned from.
pub const ANNOTATION_CLONED_FROM_NAME: &str = "cluster.x-k8s.io/cloned-from-name";
pub const ANNOTATION_CLONED_FROM_GROUP_KIND: &str = "cluster.x-k8s.io/cloned-from-groupkind";

/// Label clusterctl puts on every component it installs; `move` finds CRDs by it.
pub const LABEL_CLUSTERCTL: &str = "clusterctl.cluster.x-k8s.io";
/// Move an object that is outside every Cluster's owner chain.
pub const LABEL_MOVE: &str = "clusterctl.cluster.x-k8s.io/move";
/// Move an object together with everything it owns.
pub const LABEL_MOVE_HIERARCHY: &str = "clusterctl.cluster.x-k8s.io/move-hierarchy";
/// Annotation that holds `clusterctl move` back while a provider finishes work.
pub const ANNOTATION_BLOCK_MOVE: &str = "clusterctl.cluster.x-k8s.io/block-move";

/// True when the Cluster is paused (`spec.paused`) or the object carries the paused annotation,
/// whatever its value, as CAPI's `annotations.IsPaused` decides.
pub fn is_paused(cluster: Option<&Cluster>, object: &ObjectMeta) -> bool {
    cluster.is_some_and(Cluster::is_paused) || has_annotation(object, ANNOTATION_PAUSED)
}

/// True when the object is managed by something other than Capstan (`cluster.x-k8s.io/managed-by`).
pub fn is_externally_managed(object: &ObjectMeta) -> bool {
    has_annotation(object, ANNOTATION_MANAGED_BY)
}

fn has_annotation(object: &ObjectMeta, key: &str) -> bool {
    object.annotations.as_ref().is_some_and(|a| a.contains_key(key))
}

/// The cluster an object belongs to, from its `cluster.x-k8s.io/cluster-name` label.
pub fn cluster_name(object: &ObjectMeta) -> Option<&str> {
    object
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_CLUSTER_NAME))
        .map(String::as_str)
        .filter(|n| !n.is_empty())
}

/// The label selector a controller started with `--watch-filter` lists with.
pub fn watch_filter_selector(filter: Option<&str>) -> Option<String> {
    filter
        .filter(|f| !f.is_empty())
        .map(|f| format!("{LABEL_WATCH_FILTER}={f}"))
}

/// The CRD name CAPI derives for a kind instead of looking it up:
/// `pluralize(lowercase(kind)) + "." + group` (`contract.CalculateCRDName`).
pub fn crd_name(group: &str, kind: &str) -> String {
    format!("{}.{group}", pluralize(&kind.to_lowercase()))
}

/// The version CAPI uses for a contract-versioned reference: the last of the `_`-separated
/// versions in the CRD's `cluster.x-k8s.io/<contract>` label.
pub fn contract_version<'a>(
    crd_labels: &'a std::collections::BTreeMap<String, String>,
    contract: &str,
) -> Option<&'a str> {
    crd_labels
        .get(&format!("{CONTRACT_LABEL_PREFIX}{contract}"))
        .and_then(|v| v.split('_').next_back())
        .filter(|v| !v.is_empty())
}

/// English plural of a lower-case word following the rules of the `flect` library CAPI uses, for
/// the endings Kubernetes kinds have in practice.
pub fn pluralize(word: &str) -> String {
    // flect keeps a table of irregular and invariant words; these are the ones that occur as the
    // last word of Kubernetes kinds.
    const INVARIANT: &[&str] = &[
        "data",
        "metadata",
        "information",
        "equipment",
        "series",
        "species",
        "news",
    ];
    const IRREGULAR: &[(&str, &str)] = &[
        ("person", "people"),
        ("child", "children"),
        ("policy", "policies"),
        ("index", "indices"),
        ("matrix", "matrices"),
        ("vertex", "vertices"),
        ("status", "statuses"),
        ("alias", "aliases"),
        ("quiz", "quizzes"),
        ("ox", "oxen"),
        ("mouse", "mice"),
        ("analysis", "analyses"),
        ("basis", "bases"),
        ("crisis", "crises"),
    ];
    for w in INVARIANT {
        if word.ends_with(w) {
            return word.to_string();
        }
    }
    for (singular, plural) in IRREGULAR {
        if let Some(stem) = word.strip_suffix(singular) {
            return format!("{stem}{plural}");
        }
    }
    let is_vowel = |c: char| "aeiou".contains(c);
    if let Some(stem) = word.strip_suffix('y')
        && stem.chars().last().is_some_and(|c| !is_vowel(c))
    {
        return format!("{stem}ies");
    }
    if ["s", "x", "z", "ch", "sh"].iter().any(|s| word.ends_with(s)) {
        return format!("{word}es");
    }
    format!("{word}s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn crd_names_match_capi() {
        assert_eq!(crd_name("cluster.x-k8s.io", "Cluster"), "clusters.cluster.x-k8s.io");
        assert_eq!(
            crd_name("ipam.cluster.x-k8s.io", "IPAddress"),
            "ipaddresses.ipam.cluster.x-k8s.io"
        );
        assert_eq!(
            crd_name("infrastructure.cluster.x-k8s.io", "DCSIPHostnamePool"),
            "dcsiphostnamepools.infrastructure.cluster.x-k8s.io"
        );
        assert_eq!(crd_name("x.io", "NetworkPolicy"), "networkpolicies.x.io");
        assert_eq!(crd_name("x.io", "Gateway"), "gateways.x.io");
        assert_eq!(crd_name("x.io", "MachineHealthCheck"), "machinehealthchecks.x.io");
        assert_eq!(crd_name("x.io", "Mesh"), "meshes.x.io");
        assert_eq!(crd_name("x.io", "ClusterData"), "clusterdata.x.io");
    }

    /// Every upstream CRD's name is what `crd_name` computes from its group and kind.
    #[test]
    fn crd_names_match_upstream_files() {
        // The `shared/` folder beside the repository, or `$CAPSTAN_SHARED` (as the e2e harness).
        let shared = std::env::var("CAPSTAN_SHARED")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared").to_string());
        let dir = format!("{shared}/capi/crds-upstream");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("shared/capi/crds-upstream is beside the repository") {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
                serde_saphyr::from_str(&text).unwrap();
            let name = crd.metadata.name.clone().unwrap();
            assert_eq!(crd_name(&crd.spec.group, &crd.spec.names.kind), name);
            seen += 1;
        }
        assert!(seen >= 10, "only {seen} CRDs found");
    }

    #[test]
    fn pause_from_cluster_or_annotation() {
        let mut cluster = Cluster::new("c", Default::default());
        let mut meta = ObjectMeta::default();
        assert!(!is_paused(Some(&cluster), &meta));
        assert!(!is_paused(None, &meta));
        cluster.spec.paused = Some(true);
        assert!(is_paused(Some(&cluster), &meta));
        cluster.spec.paused = Some(false);
        meta.annotations = Some(BTreeMap::from([(ANNOTATION_PAUSED.to_string(), String::new())]));
        assert!(is_paused(Some(&cluster), &meta));
        assert!(is_paused(None, &meta));
    }

    #[test]
    fn managed_by_and_cluster_name() {
        let mut meta = ObjectMeta::default();
        assert!(!is_externally_managed(&meta));
        assert_eq!(cluster_name(&meta), None);
        meta.annotations = Some(BTreeMap::from([(
            ANNOTATION_MANAGED_BY.to_string(),
            "other".to_string(),
        )]));
        meta.labels = Some(BTreeMap::from([(LABEL_CLUSTER_NAME.to_string(), "c1".to_string())]));
        assert!(is_externally_managed(&meta));
        assert_eq!(cluster_name(&meta), Some("c1"));
    }

    #[test]
    fn contract_version_takes_the_last() {
        let labels = BTreeMap::from([
            ("cluster.x-k8s.io/v1beta1".to_string(), "v1alpha4_v1beta1".to_string()),
            ("cluster.x-k8s.io/v1beta2".to_string(), "v1beta1_v1beta2".to_string()),
        ]);
        assert_eq!(contract_version(&labels, "v1beta2"), Some("v1beta2"));
        assert_eq!(contract_version(&labels, "v1beta1"), Some("v1beta1"));
        assert_eq!(contract_version(&labels, "v1alpha3"), None);
    }

    #[test]
    fn watch_filter() {
        assert_eq!(watch_filter_selector(None), None);
        assert_eq!(watch_filter_selector(Some("")), None);
        assert_eq!(
            watch_filter_selector(Some("a")).as_deref(),
            Some("cluster.x-k8s.io/watch-filter=a")
        );
    }
}
