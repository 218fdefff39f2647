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

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_api::core::{Cluster, Machine};
use capstan_dcs::api::{DCSCluster, DCSMachine};
use capstan_e2e::bench::{capstan_bin, cpu_seconds, delta, peak_rss_mib, until_provisioned};
use capstan_e2e::objects::{apiserver_requests, apiserver_writes, create, owner_ref};
use capstan_e2e::{ChildGuard, TestEnv};
use capstan_sim_dcs::{SimConfig, SimHandle, Simulator};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// Resources whose writes count as the manager's (the test's own creates are subtracted).
const WRITTEN: &[&str] = &["dcsmachines", "dcsclusters", "events", "secrets"];

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
    until_provisioned(client, "DCSMachine", "bench", prefix, n, start).await
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
    // Where the CPU goes on this machine: the manager, the API server, and this process (the
    // simulator and the test's own watch).
    let apiserver = env.apiserver_pid().to_string();
    let cpu = || [pid.to_string().as_str(), apiserver.as_str(), "self"].map(cpu_seconds);
    let cpu_before = cpu();
    let read = ["dcsmachines", "dcsclusters", "machines", "clusters", "secrets"];
    let gets = || async {
        let mut out = Vec::new();
        for r in read {
            out.push(apiserver_requests(&client, &[r], &["GET"]).await);
        }
        out
    };
    let gets_before = gets().await;
    let many = provision(&client, n, "many").await;
    let cpu_after = cpu();
    let gets_after = gets().await;
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
    println!(
        "BENCH cpu_s_while_provisioning manager={:.1} apiserver={:.1} simulator_and_test={:.1} (cores: {})",
        cpu_after[0] - cpu_before[0],
        cpu_after[1] - cpu_before[1],
        cpu_after[2] - cpu_before[2],
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (i, r) in read.iter().enumerate() {
        // The test's own provisioning loop reads nothing by GET (it watches).
        println!(
            "BENCH apiserver_gets_per_machine resource={r} {:.2}",
            (gets_after[i] - gets_before[i]) as f64 / n as f64
        );
    }
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
