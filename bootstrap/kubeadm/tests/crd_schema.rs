//! Our generated CRDs against the upstream CABPK v1.14 CRDs (`shared/capi/crds-upstream`): every
//! property path upstream has must exist here with the same type, the same OpenAPI limits and
//! the same CEL rules, except for the differences listed (with the reason) in `INTENTIONAL`.

use std::collections::BTreeSet;

use capstan_e2e::shared_dir;
use serde_json::Value;

/// Upstream facets we do not reproduce, by kind, path and facet, with the reason.
const INTENTIONAL: &[(&str, &str, &str, &str)] = &[
    (
        "KubeadmConfigTemplate",
        "",
        "required",
        "kube-derive requires `spec`; a template without spec.template is invalid upstream too (template is required)",
    ),
    (
        "KubeadmConfig",
        ".spec",
        "minProperties",
        "upstream omits an empty spec (Go omitzero); kube-derive needs a spec to deserialise, so ours defaults a missing spec to {} on the server, which minProperties would then reject",
    ),
];

/// Facets compared between the two schemas.
const FACETS: &[&str] = &[
    "type",
    "format",
    "enum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minProperties",
    "required",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-int-or-string",
    // CEL rules: a drop-in must refuse what upstream refuses.
    "x-kubernetes-validations",
];

fn upstream(file: &str) -> Value {
    let path = shared_dir().join("capi/crds-upstream").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let crd: Value = serde_saphyr::from_str(&text).unwrap();
    version_schema(&crd)
}

fn version_schema(crd: &Value) -> Value {
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1beta2")
        .expect("v1beta2 version")["schema"]["openAPIV3Schema"]
        .clone()
}

fn ours(kind: &str) -> Value {
    let crd = capstan_kubeadm::api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    version_schema(&serde_json::to_value(crd).unwrap())
}

fn normalise(facet: &str, v: &Value) -> Value {
    match (facet, v) {
        // Order does not matter in these lists; `null` in an enum is how schemars says "optional".
        ("enum" | "required" | "x-kubernetes-list-map-keys", Value::Array(a)) => {
            let mut items: Vec<String> = a.iter().filter(|x| !x.is_null()).map(|x| x.to_string()).collect();
            items.sort();
            Value::from(items)
        }
        // Numbers compare by value whatever their JSON representation (1 vs 1.0).
        (_, Value::Number(n)) => Value::from(n.as_f64().unwrap()),
        _ => v.clone(),
    }
}

/// apiVersion, kind and metadata are implied by the API server for every kind.
fn implied(path: &str, name: &str) -> bool {
    path.is_empty() && matches!(name, "apiVersion" | "kind" | "metadata")
}

struct Walk<'a> {
    kind: &'a str,
    problems: Vec<String>,
    seen: BTreeSet<String>,
}

fn walk(path: &str, up: &Value, ours: &Value, w: &mut Walk) {
    w.seen.insert(path.to_string());
    for facet in FACETS {
        let a = up.get(*facet).map(|v| normalise(facet, v));
        let b = ours.get(*facet).map(|v| normalise(facet, v));
        if a != b
            && !INTENTIONAL
                .iter()
                .any(|(k, p, f, _)| *k == w.kind && *p == path && f == facet)
        {
            w.problems.push(format!("{path}: {facet}: upstream {a:?}, ours {b:?}"));
        }
    }
    let empty = serde_json::Map::new();
    let up_props = up.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let our_props = ours.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    for (name, child) in up_props {
        let p = format!("{path}.{name}");
        match our_props.get(name) {
            Some(o) => walk(&p, child, o, w),
            None if implied(path, name) => {}
            None => w.problems.push(format!("{p}: missing")),
        }
    }
    for name in our_props.keys() {
        if !up_props.contains_key(name) {
            w.problems.push(format!("{path}.{name}: not upstream"));
        }
    }
    if let Some(items) = up.get("items") {
        match ours.get("items") {
            Some(o) => walk(&format!("{path}[]"), items, o, w),
            None => w.problems.push(format!("{path}[]: items missing")),
        }
    }
    if let Some(Value::Object(_)) = up.get("additionalProperties") {
        match ours.get("additionalProperties") {
            Some(o) => walk(&format!("{path}{{}}"), &up["additionalProperties"], o, w),
            None => w.problems.push(format!("{path}{{}}: additionalProperties missing")),
        }
    }
}

fn compare(file: &str, kind: &str) -> usize {
    let mut w = Walk {
        kind,
        problems: Vec::new(),
        seen: BTreeSet::new(),
    };
    walk("", &upstream(file), &ours(kind), &mut w);
    let Walk { problems, seen, .. } = w;
    assert!(
        problems.is_empty(),
        "{kind} differs from upstream in {} places:\n{}",
        problems.len(),
        problems.join("\n")
    );
    seen.len()
}

#[test]
fn kubeadmconfig_schema_matches_upstream() {
    let paths = compare("bootstrap.cluster.x-k8s.io_kubeadmconfigs.yaml", "KubeadmConfig");
    // The walk really went through the whole tree (upstream v1.14 has 370-odd paths).
    assert!(paths > 350, "only {paths} paths compared");
}

#[test]
fn kubeadmconfigtemplate_schema_matches_upstream() {
    let paths = compare(
        "bootstrap.cluster.x-k8s.io_kubeadmconfigtemplates.yaml",
        "KubeadmConfigTemplate",
    );
    assert!(paths > 300, "only {paths} paths compared");
}

#[test]
fn crd_metadata_matches_upstream() {
    for crd in capstan_kubeadm::api::crds() {
        let labels = crd.metadata.labels.clone().unwrap();
        assert_eq!(labels["cluster.x-k8s.io/v1beta2"], "v1beta2");
        assert_eq!(crd.spec.group, "bootstrap.cluster.x-k8s.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["cluster-api".to_string()][..])
        );
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1beta2");
        let columns: Vec<_> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.as_str(), c.json_path.as_str()))
            .collect();
        if crd.spec.names.kind == "KubeadmConfig" {
            assert!(v.subresources.as_ref().unwrap().status.is_some());
            assert_eq!(
                columns,
                [
                    ("Cluster", ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"),
                    ("Paused", ".status.conditions[?(@.type==\"Paused\")].status"),
                    ("Data secret created", ".status.initialization.dataSecretCreated"),
                    ("Age", ".metadata.creationTimestamp"),
                ]
            );
        } else {
            assert_eq!(columns.len(), 3);
        }
    }
}
