//! Benchmark (reported figures, not pass/fail): many DCSMachines at once against the simulator
//! with realistic task latency, the manager running as a separate `capstan manager` process so
//! that its memory is measured alone. Build the binary first, then run:
//!
//! ```sh
//! cargo build --release -p capstan      # or a debug build; CAPSTAN_BIN names another
//! CAPSTAN_BENCH_MACHINES=1000 CAPSTAN_BENCH_IDLE_SECS=300 \
//!   cargo nextest run -p capstan-dcs --all-features --test bench --run-ignored only --no-capture
//! ```
//!
//! Prints `BENCH` lines: time to all provisioned against a single machine, the manager's peak
//! RSS, VRM calls per machine by operation, API server writes per machine, and for the idle
//! fleet afterwards the writes and VRM list calls over the idle window.

#![cfg(feature = "sim")]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_api::core::{Cluster, Machine};
use capstan_dcs::api::{DCSCluster, DCSMachine};
use capstan_dcs::sim::{SimConfig, SimHandle, Simulator};
use capstan_e2e::objects::{apiserver_writes, create, owner_ref};
use capstan_e2e::{ChildGuard, TestEnv};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// Resources whose writes count as the manager's (the test's own creates are subtracted).
const WRITTEN: &[&str] = &["dcsmachines", "dcsclusters", "events", "secrets"];

fn capstan_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CAPSTAN_BIN") {
        return PathBuf::from(p);
    }
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("capstan"))
        .find(|p| p.is_file())
        .expect("build the manager first: cargo build --release -p capstan (or set CAPSTAN_BIN)")
}

/// Peak resident set of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
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
    // Listing a thousand objects ten times a second would load the API server more than the
    // manager does: look less often the more there are (100 ms for one, 2 s for a thousand).
    let every = Duration::from_millis(100).max(Duration::from_millis(2) * n as u32);
    let deadline = Instant::now() + Duration::from_secs(1800);
    let done = poll_until(every, deadline, || async {
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

async fn cluster(client: &Client, sim: &SimHandle) {
    create::<Secret>(client, json!({"metadata": {"name": "creds"}, "stringData": {"endpoint": sim.url().to_string(), "authUser": "capstan", "authKey": "Sim-Passw0rd!"}})).await;
    let cluster: Cluster = create(client, json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "metadata": {"name": "bench"},
        "spec": {"infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DCSCluster", "name": "bench"}}
    })).await;
    create::<DCSCluster>(client, json!({
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
}

async fn poll_until<F, Fut>(every: Duration, deadline: Instant, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(every).await;
    }
    false
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly"]
async fn bench_machines() {
    let n: usize = std::env::var("CAPSTAN_BENCH_MACHINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let idle: u64 = std::env::var("CAPSTAN_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let env = TestEnv::start().await.unwrap();
    env.install_crds(&capstan_dcs::api::crds()).await.unwrap();
    let client = env.client().await.unwrap();
    // Default simulator latency (clone 2 s, boot 3 s); a DHCP range big enough for every VM.
    let sim = Simulator::start(SimConfig {
        dhcp_range: (Ipv4Addr::new(10, 100, 0, 10), Ipv4Addr::new(10, 100, 7, 250)),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    cluster(&client, &sim).await;

    let bin = capstan_bin();
    let mut cmd = Command::new(&bin);
    cmd.args(["manager", "--provider", "dcs", "--namespace", "default"])
        .args(["--health-probe-bind-address", "0", "--metrics-bind-address", "0"])
        .arg("--kubeconfig")
        .arg(env.kubeconfig_path())
        .env("RUST_LOG", "warn");
    // `CAPSTAN_BENCH_CONCURRENCY=50` runs the manager with `--dcsmachine-concurrency 50`.
    let concurrency = std::env::var("CAPSTAN_BENCH_CONCURRENCY").unwrap_or_else(|_| "10".into());
    cmd.args(["--dcsmachine-concurrency", &concurrency]);
    let manager = ChildGuard::spawn("capstan-manager", cmd, &env.dir().join("manager.log")).unwrap();
    let pid = manager.id();

    let single = provision(&client, 1, "single").await;
    let calls_before = sim.state().call_counts();
    let writes_before = apiserver_writes(&client, WRITTEN).await;
    let many = provision(&client, n, "many").await;
    // The clean-up (detach, image removal) runs right after provisioning: let it finish.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let calls = delta(&sim.state().call_counts(), &calls_before);
    // Minus what the test itself wrote: a Secret and a DCSMachine per machine.
    let writes = apiserver_writes(&client, WRITTEN).await - writes_before - 2 * n as u64;

    println!(
        "BENCH manager={} machines={n} dcsmachine_concurrency={concurrency}",
        bin.display()
    );
    println!("BENCH single_machine_wall_s={:.2}", single.as_secs_f64());
    println!(
        "BENCH all_machines_wall_s={:.2} ratio={:.2}",
        many.as_secs_f64(),
        many.as_secs_f64() / single.as_secs_f64()
    );
    println!("BENCH logins={}", sim.state().login_count());
    for (op, d) in &calls {
        println!("BENCH dcs_calls_per_machine op={op} {:.2}", *d as f64 / n as f64);
    }
    println!(
        "BENCH dcs_calls_per_machine total={:.2}",
        calls.values().sum::<u64>() as f64 / n as f64
    );
    println!(
        "BENCH apiserver_writes_per_machine {:.2} (resources {WRITTEN:?})",
        writes as f64 / n as f64
    );
    if idle > 0 {
        let calls_before = sim.state().call_counts();
        let writes_before = apiserver_writes(&client, WRITTEN).await;
        tokio::time::sleep(Duration::from_secs(idle)).await;
        let calls = delta(&sim.state().call_counts(), &calls_before);
        let writes = apiserver_writes(&client, WRITTEN).await - writes_before;
        println!("BENCH idle_secs={idle} apiserver_writes={writes}");
        println!(
            "BENCH idle_secs={idle} dcs_list_calls={}",
            calls
                .iter()
                .filter(|(k, _)| k.starts_with("list_"))
                .map(|(_, v)| v)
                .sum::<u64>()
        );
        println!("BENCH idle_secs={idle} dcs_calls={calls:?}");
    }
    println!("BENCH manager_peak_rss_mib={:.1}", peak_rss_mib(pid));
    drop(manager);
}
