//! `capstan crds` output is accepted by a real kube-apiserver 1.34, and the schemas it carries
//! (OpenAPI constraints and CEL rules) reject invalid objects with a message naming the field.

use std::path::Path;
use std::process::Command;

use capstan_e2e::TestEnv;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Samples {
    valid: Value,
    invalid: Vec<Invalid>,
}

#[derive(Deserialize)]
struct Invalid {
    /// The field path the API server's message must name.
    field: String,
    /// What else the message must say (a CEL rule's message).
    #[serde(default)]
    says: Option<String>,
    object: Value,
}

fn generated_crds() -> Vec<CustomResourceDefinition> {
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["crds", "--with-capi-core"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "capstan crds failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_saphyr::from_multiple(&text).expect("capstan crds prints YAML CRDs")
}

#[test]
fn every_crd_has_status_and_contract_labels() {
    let crds = generated_crds();
    assert!(crds.len() >= 4);
    for crd in &crds {
        let name = crd.metadata.name.as_deref().unwrap();
        assert_eq!(
            name,
            capstan_api::contract::crd_name(&crd.spec.group, &crd.spec.names.kind)
        );
        for v in &crd.spec.versions {
            // Templates and IPAddress have no status, as upstream's; everything else reports
            // through one.
            let has_status = v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some();
            assert!(
                has_status || crd.spec.names.kind.ends_with("Template") || crd.spec.names.kind == "IPAddress",
                "{name} {} lacks status",
                v.name
            );
            assert!(
                v.additional_printer_columns.as_ref().is_some_and(|c| !c.is_empty()),
                "{name} lacks printer columns"
            );
        }
        let labels = crd.metadata.labels.clone().unwrap_or_default();
        // Infrastructure and bootstrap kinds take part in the contract; CAPI core kinds (the
        // `cluster-api` provider's, IPAM's among them) define it.
        if labels.get("cluster.x-k8s.io/provider").map(String::as_str) != Some("cluster-api") {
            let served: Vec<&str> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
            assert_eq!(
                labels.get("cluster.x-k8s.io/v1beta2").map(String::as_str),
                Some(served.join("_").as_str()),
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn generated_crds_install_and_validate() {
    let crds = generated_crds();
    let env = TestEnv::start_bare().await.expect("test environment");
    env.install_crds(&crds).await.expect("every generated CRD installs");
    let client = env.client().await.unwrap();
    let samples_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples");
    for crd in &crds {
        let kind = &crd.spec.names.kind;
        let file = samples_dir.join(format!("{}.yaml", kind.to_lowercase()));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|_| {
            panic!(
                "{kind} has no samples: add {} with a valid and invalid objects",
                file.display()
            )
        });
        let samples: Samples = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let version = crd.spec.versions.iter().find(|v| v.storage).unwrap().name.clone();
        let gvk = GroupVersionKind::gvk(&crd.spec.group, &version, kind);
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "default",
            &ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural),
        );

        let valid: DynamicObject = serde_json::from_value(samples.valid.clone()).unwrap();
        let created = api
            .create(&PostParams::default(), &valid)
            .await
            .unwrap_or_else(|e| panic!("valid {kind} rejected: {e}"));
        let stored = serde_json::to_value(&created).unwrap();
        assert_eq!(
            stored["spec"], samples.valid["spec"],
            "{kind}: the schema pruned or changed fields of a valid object"
        );

        assert!(!samples.invalid.is_empty(), "{kind} needs at least one invalid sample");
        for (i, bad) in samples.invalid.iter().enumerate() {
            let mut obj: DynamicObject = serde_json::from_value(bad.object.clone()).unwrap();
            obj.metadata.name = Some(format!("invalid-{i}"));
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => panic!("{kind}: invalid object #{i} ({}) was accepted", bad.field),
                Err(kube::Error::Api(status)) => {
                    assert_eq!(status.code, 422, "{kind} #{i}: {}", status.message);
                    assert!(
                        without_list_indices(&status.message).contains(&bad.field),
                        "{kind} #{i}: message {:?} does not name {}",
                        status.message,
                        bad.field
                    );
                    if let Some(says) = &bad.says {
                        assert!(
                            status.message.contains(says),
                            "{kind} #{i}: message {:?} does not say {says:?}",
                            status.message
                        );
                    }
                }
                Err(e) => panic!("{kind} #{i}: unexpected error {e}"),
            }
        }
    }
}

/// `spec.nics[0].ipv4.address` → `spec.nics.ipv4.address`: the samples name fields, not items.
fn without_list_indices(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) if close > 0 && after[..close].bytes().all(|b| b.is_ascii_digit()) => {
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
