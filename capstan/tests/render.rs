//! `capstan render` as a command (README "See what a machine would run, offline"): the init
//! document of a control-plane Machine and the join of a worker, from YAML files, with the notes
//! saying what was generated for the preview; a worker's join pins the CA it was given.

use std::path::Path;
use std::process::Command;

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `capstan render --config C --cluster K --machine M [extra…]`: (success, stdout, stderr).
fn render(config: &Path, cluster: &Path, machine: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .arg("render")
        .arg("--config")
        .arg(config)
        .arg("--cluster")
        .arg(cluster)
        .arg("--machine")
        .arg(machine)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn render_prints_init_and_join_documents_offline() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "config.yaml",
        "apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\nkind: KubeadmConfig\nmetadata: {name: m, namespace: default}\nspec: {}\n",
    );
    let cluster = write(
        dir.path(),
        "cluster.yaml",
        "apiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\nmetadata: {name: c1, namespace: default}\nspec:\n  controlPlaneEndpoint: {host: 10.0.0.10, port: 6443}\n",
    );
    let machine = |name: &str, cp: bool| {
        let labels = if cp {
            "labels: {cluster.x-k8s.io/control-plane: \"\"}"
        } else {
            "labels: {}"
        };
        write(
            dir.path(),
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: cluster.x-k8s.io/v1beta2\nkind: Machine\nmetadata: {{name: {name}, namespace: default, {labels}}}\nspec:\n  clusterName: c1\n  version: v1.34.4\n  bootstrap: {{}}\n  infrastructureRef: {{apiGroup: infrastructure.cluster.x-k8s.io, kind: DCSMachine, name: {name}}}\n"
            ),
        )
    };
    let cp = machine("cp-0", true);
    let (ok, doc, notes) = render(&config, &cluster, &cp, &[]);
    assert!(ok, "{notes}");
    assert!(doc.starts_with("## template: jinja\n#cloud-config\n"), "{doc}");
    assert!(doc.contains("kubeadm init --config /run/kubeadm/kubeadm.yaml"), "{doc}");
    assert!(doc.contains("controlPlaneEndpoint: 10.0.0.10:6443"), "{doc}");
    assert!(
        notes.contains("note: generated a new c1-ca for this preview (not saved)"),
        "{notes}"
    );

    let worker = machine("md-0", false);
    let (ok, doc, notes) = render(&config, &cluster, &worker, &["--kind", "join-worker"]);
    assert!(ok, "{notes}");
    assert!(
        doc.contains("kubeadm join --config /run/kubeadm/kubeadm-join-config.yaml"),
        "{doc}"
    );
    assert!(
        doc.contains("caCertHashes:") && doc.contains("sha256:"),
        "the CA is pinned: {doc}"
    );
    assert!(!doc.contains("unsafeSkipCAVerification"), "{doc}");
    assert!(notes.contains("bootstrap token that exists in no cluster"), "{notes}");

    // A file that is not YAML is one clear error naming it.
    let bad = write(dir.path(), "bad.yaml", "{ not yaml");
    let (ok, _, err) = render(&bad, &cluster, &cp, &[]);
    assert!(!ok);
    assert!(err.contains("bad.yaml"), "{err}");
}
