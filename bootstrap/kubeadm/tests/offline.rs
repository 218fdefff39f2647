//! `capstan render`'s library half: documents from YAML objects and a PKI directory, no API server.

use capstan_api::core::{Cluster, Machine};
use capstan_kubeadm::api::{EncryptionAlgorithm, KubeadmConfig};
use capstan_kubeadm::offline::{OfflineError, render};
use capstan_kubeadm::pki;
use capstan_kubeadm::render::DocumentKind;
use serde_json::json;

fn objects(cp: bool, spec: serde_json::Value, initialized: bool) -> (KubeadmConfig, Cluster, Machine) {
    let config: KubeadmConfig = serde_json::from_value(json!({
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfig",
        "metadata": {"name": "m", "namespace": "default"}, "spec": spec
    }))
    .unwrap();
    let mut cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": "c1", "namespace": "default"},
        "spec": {"controlPlaneEndpoint": {"host": "10.0.0.1", "port": 6443}}
    }))
    .unwrap();
    if initialized {
        cluster.status = serde_json::from_value(
            json!({"conditions": [{"type": "ControlPlaneInitialized", "status": "True",
            "reason": "Initialized", "message": "x", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}),
        )
        .unwrap();
    }
    let labels = if cp {
        json!({"cluster.x-k8s.io/control-plane": ""})
    } else {
        json!({})
    };
    let machine: Machine = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
        "metadata": {"name": "m", "namespace": "default", "labels": labels},
        "spec": {"clusterName": "c1", "version": "v1.30.1", "bootstrap": {},
                 "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "X", "name": "m"}}
    }))
    .unwrap();
    (config, cluster, machine)
}

#[test]
fn kinds_follow_machine_and_cluster() {
    let (c, cl, m) = objects(true, json!({}), false);
    let r = render(&c, &cl, &m, None, None).unwrap();
    assert_eq!(r.kind, DocumentKind::InitControlPlane);
    assert!(r.document.contains("kubeadm init"));
    assert_eq!(r.notes.len(), 4, "four CAs/keys generated: {:?}", r.notes);
    let (c, cl, m) = objects(true, json!({}), true);
    assert_eq!(
        render(&c, &cl, &m, None, None).unwrap().kind,
        DocumentKind::JoinControlPlane
    );
    let (c, cl, m) = objects(false, json!({}), false);
    let r = render(&c, &cl, &m, None, None).unwrap();
    assert_eq!(r.kind, DocumentKind::JoinWorker);
    assert!(r.notes.iter().any(|n| n.contains("bootstrap token")));
}

#[test]
fn uses_the_pki_directory_and_refuses_secret_references() {
    let dir = std::env::temp_dir().join(format!("capstan-kubeadm-offline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = pki::new_ca(EncryptionAlgorithm::Rsa2048, 10).unwrap();
    std::fs::write(dir.join("ca.crt"), &ca.cert).unwrap();
    std::fs::write(dir.join("ca.key"), &ca.key).unwrap();
    let (c, cl, m) = objects(
        false,
        json!({"joinConfiguration": {"discovery": {"bootstrapToken": {"token": "abcdef.0123456789abcdef"}}}}),
        true,
    );
    let r = render(&c, &cl, &m, Some(&dir), None).unwrap();
    let hash = &pki::ca_cert_hashes(&ca.cert).unwrap()[0];
    assert!(r.document.contains(hash.as_str()));
    assert!(r.document.contains("token: abcdef.0123456789abcdef"));
    assert!(!r.notes.iter().any(|n| n.contains("c1-ca ")), "{:?}", r.notes);

    let (c, cl, m) = objects(
        false,
        json!({"files": [{"path": "/x", "contentFrom": {"secret": {"name": "s", "key": "k"}}}]}),
        true,
    );
    match render(&c, &cl, &m, Some(&dir), None) {
        Err(OfflineError::Input(msg)) => assert!(msg.contains("secret s/k"), "{msg}"),
        other => panic!("expected an input error, got {:?}", other.map(|r| r.kind)),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ignition_documents_render() {
    let (c, cl, m) = objects(false, json!({"format": "ignition"}), true);
    let r = render(&c, &cl, &m, None, None).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&r.document).unwrap();
    assert_eq!(doc["ignition"]["version"], "3.4.0");
    assert_eq!(doc["systemd"]["units"][0]["name"], "kubeadm.service");
    let (mut c, cl, m) = objects(false, json!({"format": "ignition"}), true);
    c.metadata.annotations = Some([("bootstrap.capstan.dev/ignition-version".to_string(), "9".to_string())].into());
    match render(&c, &cl, &m, None, None) {
        Err(OfflineError::Render(e)) => assert!(e.to_string().contains("ignition-version"), "{e}"),
        other => panic!("expected a render error, got {:?}", other.map(|r| r.kind)),
    }
}
