//! Benchmark (reported figures, not pass/fail): many HCSMachines at once against the HCS
//! simulator with its default latencies (server visible after 1 s, built after 5 s), the
//! manager running as a separate `capstan manager --provider hcs` process so that its memory is
//! measured alone. Build the binary first, then run:
//!
//! ```sh
//! cargo build --release -p capstan      # or a debug build; CAPSTAN_BIN names another
//! CAPSTAN_BENCH_MACHINES=200 \
//!   cargo nextest run -p capstan-hcs --all-features --test bench --run-ignored only --no-capture
//! ```
//!
//! Prints `BENCH` lines: time to all provisioned against a single machine, the manager's peak
//! RSS and CPU, HCS calls per machine by operation, API server writes per machine.

use std::process::Command;
use std::time::Instant;

use capstan_e2e::bench::{capstan_bin, cpu_seconds, delta, peak_rss_mib, until_provisioned};
use capstan_e2e::objects::capi::{self, Placement};
use capstan_e2e::objects::{apiserver_writes, create};
use capstan_e2e::{ChildGuard, TestEnv};
use capstan_hcs::api::{HCSCluster, HCSMachine};
use capstan_sim_hcs::{SimConfig, SimHandle, Simulator};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use serde_json::json;

/// Resources whose writes count as the manager's (the test's own creates are subtracted).
const WRITTEN: &[&str] = &["hcsmachines", "hcsclusters", "events", "secrets"];

async fn provision(client: &Client, n: usize, prefix: &str) -> std::time::Duration {
    let start = Instant::now();
    // Created the way a MachineDeployment scale-up creates them: many at once.
    futures::stream::iter(0..n)
        .map(|i| async move {
            let name = format!("{prefix}-{i}");
            let owner = capi::machine(client, "bench", &name, "HCSMachine", Placement::default(), "#cloud-config\n").await;
            create::<HCSMachine>(
                client,
                json!({
                    "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "HCSMachine",
                    "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": "bench"}, "ownerReferences": [owner]},
                    "spec": {"imageName": "capstan-ubuntu-22.04", "flavorName": "s6.large.2"}
                }),
            )
            .await;
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    until_provisioned(client, "HCSMachine", "bench", prefix, n, start).await
}

async fn cluster(client: &Client, sim: &SimHandle, config: &SimConfig) {
    let url = sim.url().as_str();
    create::<Secret>(
        client,
        json!({"metadata": {"name": "creds"}, "stringData": {
            "accessKey": config.access_key, "secretKey": config.secret_key, "projectID": config.project_id,
            "region": config.region, "externalGlobalDomain": "sim.invalid",
            "iamEndpoint": url, "ecsEndpoint": url, "vpcEndpoint": url, "imsEndpoint": url, "evsEndpoint": url}}),
    )
    .await;
    let owner = capi::cluster(client, "bench", "HCSCluster", Some(("127.0.0.1", 6443))).await;
    create::<HCSCluster>(
        client,
        json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "HCSCluster",
            "metadata": {"name": "bench", "ownerReferences": [owner]},
            "spec": {"credentialsSecretRef": {"name": "creds"}, "controlPlaneEndpoint": {"host": "127.0.0.1", "port": 6443},
                     "network": {"subnets": [{"id": config.subnets[0].id}]}, "tls": {"caBundle": sim.ca_pem()}}
        }),
    )
    .await;
    capi::mark_infrastructure_provisioned(client, "bench").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly"]
async fn bench_machines() {
    let n: usize = std::env::var("CAPSTAN_BENCH_MACHINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let env = TestEnv::start().await.unwrap();
    env.install_crds(&capstan_hcs::api::crds()).await.unwrap();
    let client = env.client().await.unwrap();
    let config = SimConfig::default();
    let sim = Simulator::start(config.clone()).await.unwrap();
    cluster(&client, &sim, &config).await;

    let bin = capstan_bin();
    let mut cmd = Command::new(&bin);
    let concurrency = std::env::var("CAPSTAN_BENCH_CONCURRENCY").unwrap_or_else(|_| "10".into());
    cmd.args(["manager", "--provider", "hcs", "--namespace", "default"])
        .args(["--health-probe-bind-address", "0", "--metrics-bind-address", "0"])
        .args(["--hcsmachine-concurrency", &concurrency])
        .arg("--kubeconfig")
        .arg(env.kubeconfig_path())
        .env("RUST_LOG", "warn");
    let manager = ChildGuard::spawn("capstan-manager", cmd, &env.dir().join("manager.log")).unwrap();
    let pid = manager.id();

    let single = provision(&client, 1, "single").await;
    let calls_before = sim.state().call_counts();
    let writes_before = apiserver_writes(&client, WRITTEN).await;
    let apiserver = env.apiserver_pid().to_string();
    let cpu = || [pid.to_string().as_str(), apiserver.as_str(), "self"].map(cpu_seconds);
    let cpu_before = cpu();
    let many = provision(&client, n, "many").await;
    let cpu_after = cpu();
    let calls = delta(&sim.state().call_counts(), &calls_before);
    // Minus what the test itself wrote: a Secret and an HCSMachine per machine.
    let writes = apiserver_writes(&client, WRITTEN).await - writes_before - 2 * n as u64;

    println!(
        "BENCH manager={} machines={n} hcsmachine_concurrency={concurrency}",
        bin.display()
    );
    println!("BENCH single_machine_wall_s={:.2}", single.as_secs_f64());
    println!(
        "BENCH all_machines_wall_s={:.2} ratio={:.2}",
        many.as_secs_f64(),
        many.as_secs_f64() / single.as_secs_f64()
    );
    println!(
        "BENCH cpu_s_while_provisioning manager={:.1} apiserver={:.1} simulator_and_test={:.1}",
        cpu_after[0] - cpu_before[0],
        cpu_after[1] - cpu_before[1],
        cpu_after[2] - cpu_before[2],
    );
    for (op, d) in &calls {
        println!("BENCH hcs_calls_per_machine op={op} {:.2}", *d as f64 / n as f64);
    }
    println!(
        "BENCH hcs_calls_per_machine total={:.2}",
        calls.values().sum::<u64>() as f64 / n as f64
    );
    println!(
        "BENCH apiserver_writes_per_machine {:.2} (resources {WRITTEN:?})",
        writes as f64 / n as f64
    );
    println!("BENCH manager_peak_rss_mib={:.1}", peak_rss_mib(pid));
    drop(manager);
}
