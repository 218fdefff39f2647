//! Benchmark (reported figures, not pass/fail): many DCSMachines at once against the simulator
//! with realistic task latency. Run with
//! `cargo nextest run -p capstan-dcs --all-features --test bench --run-ignored only --no-capture`.

#![cfg(feature = "sim")]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_api::core::{Cluster, Machine};
use capstan_dcs::api::{DCSCluster, DCSMachine};
use capstan_dcs::sim::{SimConfig, Simulator};
use capstan_e2e::objects::{apiserver_writes, create, owner_ref};
use capstan_e2e::{TestEnv, wait_for};
use capstan_runtime::metrics::Metrics;
use capstan_runtime::{Provider, ProviderContext, Scope};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Peak resident set of this process (the manager's controllers run in it), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

async fn provision(client: &Client, n: usize, prefix: &str) -> Duration {
    let start = Instant::now();
    // Created the way a MachineDeployment scale-up creates them: many at once, not one by one.
    futures::stream::iter(0..n)
        .map(|i| async move {
            let name = format!("{prefix}-{i}");
            create::<Secret>(client, json!({"metadata": {"name": format!("{name}-boot")}, "stringData": {"value": "#cloud-config\n", "format": "cloud-config"}})).await;
            let machine: Machine = create(client, json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": "bench"}},
                "spec": {"clusterName": "bench", "bootstrap": {"dataSecretName": format!("{name}-boot")},
                         "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DCSMachine", "name": name}}
            })).await;
            create::<DCSMachine>(client, json!({
                "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DCSMachine",
                "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": "bench"}, "ownerReferences": [owner_ref(&machine)]},
                "spec": {"template": "ubuntu-2204-tmpl", "cpu": 2, "memoryMiB": 4096, "nics": [{"dvSwitch": "ManagementDVS", "portGroup": "VLAN-329"}]}
            })).await;
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let api: Api<DCSMachine> = Api::namespaced(client.clone(), "default");
    let done = wait_for(Duration::from_secs(600), || async {
        let list = api
            .list(&ListParams::default().labels("cluster.x-k8s.io/cluster-name=bench"))
            .await
            .unwrap();
        list.items
            .iter()
            .filter(|m| {
                m.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(&format!("{prefix}-")))
            })
            .filter(|m| {
                m.status
                    .as_ref()
                    .and_then(|s| s.initialization.as_ref())
                    .and_then(|i| i.provisioned)
                    == Some(true)
            })
            .count()
            == n
    })
    .await;
    assert!(done, "{n} machines did not all provision");
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly"]
async fn bench_200_machines() {
    let n: usize = std::env::var("CAPSTAN_BENCH_MACHINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let env = TestEnv::start().await.unwrap();
    env.install_crds(&capstan_dcs::api::crds()).await.unwrap();
    let client = env.client().await.unwrap();
    // Default simulator latency (clone 2 s, boot 3 s); a DHCP range big enough for every VM (the
    // default hands out 100 addresses, and a VM without an address never counts as provisioned).
    let sim = Simulator::start(SimConfig {
        dhcp_range: (Ipv4Addr::new(10, 100, 0, 10), Ipv4Addr::new(10, 100, 7, 250)),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    create::<Secret>(&client, json!({"metadata": {"name": "creds"}, "stringData": {"endpoint": sim.url().to_string(), "authUser": "capstan", "authKey": "Sim-Passw0rd!"}})).await;
    let cluster: Cluster = create(&client, json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "metadata": {"name": "bench"},
        "spec": {"infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DCSCluster", "name": "bench"}}
    })).await;
    create::<DCSCluster>(&client, json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DCSCluster",
        "metadata": {"name": "bench", "ownerReferences": [owner_ref(&cluster)]},
        "spec": {"credentialsSecretRef": {"name": "creds"}, "controlPlaneEndpoint": {"host": "10.0.0.10", "port": 6443}, "tls": {"caBundle": sim.ca_pem()}}
    })).await;
    Api::<Cluster>::namespaced(client.clone(), "default")
        .patch_status(
            "bench",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"initialization": {"infrastructureProvisioned": true}}})),
        )
        .await
        .unwrap();

    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    let ctx = ProviderContext {
        client: client.clone(),
        scope: Scope {
            namespace: Some("default".into()),
            watch_filter: None,
        },
        metrics: metrics.clone(),
        concurrency: Default::default(),
        shutdown: shutdown.clone(),
    };
    // Default intervals: poll in-flight tasks every 2 s.
    tokio::spawn(capstan_dcs::lifecycle_provider().run(ctx));

    let single = provision(&client, 1, "single").await;
    let calls_before: BTreeMap<String, u64> = sim.state().call_counts();
    let writes_before = apiserver_writes(&client, &["dcsmachines"]).await;
    let many = provision(&client, n, "many").await;
    let calls_after = sim.state().call_counts();
    let writes = apiserver_writes(&client, &["dcsmachines"]).await - writes_before;

    println!("BENCH machines={n}");
    println!("BENCH single_machine_wall_s={:.2}", single.as_secs_f64());
    println!(
        "BENCH all_machines_wall_s={:.2} ratio={:.2}",
        many.as_secs_f64(),
        many.as_secs_f64() / single.as_secs_f64()
    );
    println!("BENCH peak_rss_mib={:.1}", peak_rss_mib());
    println!("BENCH logins={}", sim.state().login_count());
    for (op, after) in &calls_after {
        let d = after - calls_before.get(op).copied().unwrap_or(0);
        if d > 0 {
            println!("BENCH dcs_calls_per_machine op={op} {:.2}", d as f64 / n as f64);
        }
    }
    println!(
        "BENCH apiserver_writes_per_machine dcsmachines={:.2}",
        writes as f64 / n as f64
    );
    shutdown.cancel();
}
