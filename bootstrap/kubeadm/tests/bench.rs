//! Benchmark figure (reported, not pass/fail): time to generate a full cluster PKI (cluster CA,
//! etcd CA, front-proxy CA, service-account key) and render the control-plane init document.
//! Run with `cargo test -p capstan-kubeadm --test bench -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use capstan_api::core::Cluster;
use capstan_kubeadm::api::{EncryptionAlgorithm, KubeadmConfigSpec};
use capstan_kubeadm::document::{DocumentInput, render};
use capstan_kubeadm::pki::Certificates;
use capstan_kubeadm::render::DocumentKind;
use serde_json::json;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn one_run(alg: EncryptionAlgorithm, cluster: &Cluster, spec: &KubeadmConfigSpec) -> (Duration, Duration, usize) {
    let start = Instant::now();
    let mut certs = Certificates::for_initial_control_plane(&spec.cluster_configuration);
    certs.generate_missing(alg, 3650).unwrap();
    let pki = start.elapsed();
    let doc = render(DocumentInput {
        kind: DocumentKind::InitControlPlane,
        spec,
        cluster,
        kubernetes_version: "v1.31.2",
        certificates: &certs,
        files: Vec::new(),
        users: Vec::new(),
        additional_files: Vec::new(),
        ignition_version: None,
    })
    .unwrap();
    (pki, start.elapsed(), doc.len())
}

#[test]
#[ignore = "benchmark: run explicitly"]
fn pki_and_init_document() {
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"controlPlaneEndpoint": {"host": "10.0.0.1", "port": 6443},
                 "clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]}}}
    }))
    .unwrap();
    let spec = KubeadmConfigSpec::default();
    const RUNS: usize = 21;
    for alg in [EncryptionAlgorithm::Rsa2048, EncryptionAlgorithm::EcdsaP256] {
        let mut pki = Vec::new();
        let mut total = Vec::new();
        let mut size = 0;
        for _ in 0..RUNS {
            let (p, t, s) = one_run(alg, &cluster, &spec);
            pki.push(p);
            total.push(t);
            size = s;
        }
        let render_only: Vec<Duration> = total.iter().zip(&pki).map(|(t, p)| *t - *p).collect();
        println!(
            "{}: median over {RUNS} runs: PKI {:?}, render {:?}, PKI+render {:?} (document {size} bytes)",
            alg.as_str(),
            median(pki),
            median(render_only),
            median(total.clone())
        );
        assert!(size > 1000);
        assert!(median(total) < Duration::from_secs(30));
    }
}
