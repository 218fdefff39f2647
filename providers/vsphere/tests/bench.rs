//! Benchmark (reported figures, not pass/fail): many VCenterMachines at once against vcsim, the
//! manager running as its own `capstan manager --provider vsphere` process so that its memory is
//! measured alone, the test playing VMware Tools (it reports each powered-on VM's address).
//! Then, on the same vcsim, the physical limit: a plain govmomi loop that clones and powers on
//! the same number of VMs with the same concurrency (`hack/peers/vcsim/clone-loop`; CAPV's
//! release for CAPI v1.14 is not served by the module proxy, so it cannot be the comparison).
//!
//! ```sh
//! cargo build --release -p capstan      # or a debug build; CAPSTAN_BIN names another
//! CAPSTAN_BENCH_MACHINES=100 \
//!   cargo nextest run -p capstan-vsphere --all-features --test bench --run-ignored only --no-capture
//! ```

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_e2e::bench::{capstan_bin, cpu_seconds, delta, peak_rss_mib, until_provisioned};
use capstan_e2e::objects::capi::{self, Placement};
use capstan_e2e::objects::create;
use capstan_e2e::{ChildGuard, TestEnv, Vcsim, VcsimOptions, free_port, vcsim_test_tls};
use capstan_vsphere::api::{VCenterCluster, VCenterMachine};
use capstan_vsphere::client::{ConfigSpec, OptionValue, PowerState, TlsTrust, VsphereClient, VsphereConfig};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const USER: &str = "capstan";
const PASSWORD: &str = "vc-Passw0rd";

/// VMware Tools for every powered-on VM named `<prefix>-*`: reports an address once.
async fn tools(vc: VsphereClient, prefix: String, stop: CancellationToken) {
    let mut reported = std::collections::HashSet::new();
    let folder = vc.find_by_inventory_path("/DC0/vm").await.unwrap().unwrap();
    while !stop.is_cancelled() {
        for vm in vc.vms_under(&folder).await.unwrap_or_default() {
            if reported.contains(&vm.value) {
                continue;
            }
            let Ok(info) = vc.vm_info(&vm).await else { continue };
            if !info.name.starts_with(&prefix) || info.power_state != PowerState::PoweredOn {
                continue;
            }
            let ip = format!("10.{}.{}.{}", 40, reported.len() / 250, reported.len() % 250 + 2);
            let spec = ConfigSpec {
                extra_config: vec![OptionValue::new("SET.guest.ipAddress", &ip)],
                ..ConfigSpec::default()
            };
            if let Ok(task) = vc.reconfigure_vm(&vm, &spec).await
                && vc.wait_for_task(&task, Duration::from_secs(30)).await.is_ok()
            {
                reported.insert(vm.value.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `capstan_cloud_api_calls_total` of the manager, by operation.
async fn calls(metrics: u16) -> BTreeMap<String, u64> {
    let text = reqwest::get(format!("http://127.0.0.1:{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.contains("cloud_api_calls_total{"))
        .filter_map(|l| {
            let op = l.split("operation=\"").nth(1)?.split('"').next()?.to_string();
            let value: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((op, value as u64))
        })
        .collect()
}

async fn machines(client: &Client, n: usize, prefix: &str) -> Duration {
    use futures::StreamExt;
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| async move {
            let name = format!("{prefix}-{i}");
            let owner = capi::machine(client, "bench", &name, "VCenterMachine", Placement::default(), "#cloud-config\n").await;
            create::<VCenterMachine>(
                client,
                json!({
                    "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "VCenterMachine",
                    "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": "bench"}, "ownerReferences": [owner]},
                    "spec": {"template": "DC0_H0_VM0", "cloneMode": "fullClone", "numCPUs": 2, "memoryMiB": 2048,
                             "network": {"devices": [{"networkName": "DC0_DVPG0", "dhcp4": true}]}}
                }),
            )
            .await;
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    until_provisioned(client, "VCenterMachine", "bench", prefix, n, start).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly"]
async fn bench_machines_against_a_govmomi_loop() {
    let n: usize = std::env::var("CAPSTAN_BENCH_MACHINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let concurrency = std::env::var("CAPSTAN_BENCH_CONCURRENCY").unwrap_or_else(|_| "10".into());
    let tls = vcsim_test_tls().unwrap();
    let vcsim = Vcsim::start_with(VcsimOptions {
        tls: Some(tls.clone()),
        credentials: Some((USER.into(), PASSWORD.into())),
    })
    .unwrap();
    let env = TestEnv::start().await.unwrap();
    env.install_crds(&capstan_vsphere::api::crds()).await.unwrap();
    let client = env.client().await.unwrap();
    let mut config = VsphereConfig::new(vcsim.server().parse().unwrap(), USER, PASSWORD.to_string());
    config.tls = TlsTrust::CaBundle(tls.ca_pem.clone().into_bytes());
    let vc = VsphereClient::new(config).unwrap();

    create::<Secret>(
        &client,
        json!({"metadata": {"name": "vc"}, "stringData": {"username": USER, "password": PASSWORD}}),
    )
    .await;
    let owner = capi::cluster(&client, "bench", "VCenterCluster", Some(("127.0.0.1", 6443))).await;
    create::<VCenterCluster>(
        &client,
        json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "VCenterCluster",
            "metadata": {"name": "bench", "labels": {"cluster.x-k8s.io/cluster-name": "bench"}, "ownerReferences": [owner]},
            "spec": {"server": vcsim.server(), "datacenter": "DC0", "credentialsSecretRef": {"name": "vc"},
                     "tls": {"caBundle": tls.ca_pem}, "controlPlaneEndpoint": {"host": "127.0.0.1", "port": 6443}}
        }),
    )
    .await;
    capi::mark_infrastructure_provisioned(&client, "bench").await;

    let metrics = free_port();
    let bin = capstan_bin();
    let mut cmd = Command::new(&bin);
    cmd.args(["manager", "--provider", "vsphere", "--namespace", "default"])
        .args(["--health-probe-bind-address", "0"])
        .arg(format!("--metrics-bind-address=127.0.0.1:{metrics}"))
        .arg("--kubeconfig")
        .arg(env.kubeconfig_path())
        .env("RUST_LOG", "warn");
    let manager = ChildGuard::spawn("capstan-manager", cmd, &env.dir().join("manager.log")).unwrap();
    let pid = manager.id();
    let stop = CancellationToken::new();
    let _tools = tokio::spawn(tools(vc.clone(), "bench-".into(), stop.clone()));

    let single = machines(&client, 1, "bench-single").await;
    let before = calls(metrics).await;
    let cpu_before = cpu_seconds(&pid.to_string());
    let many = machines(&client, n, "bench-many").await;
    let cpu = cpu_seconds(&pid.to_string()) - cpu_before;
    let after = calls(metrics).await;
    let per_op = delta(&after, &before);
    stop.cancel();

    println!("BENCH manager={} vcentermachines={n}", bin.display());
    println!("BENCH capstan single_machine_wall_s={:.2}", single.as_secs_f64());
    println!(
        "BENCH capstan all_machines_wall_s={:.2} machines_per_s={:.2}",
        many.as_secs_f64(),
        n as f64 / many.as_secs_f64()
    );
    println!(
        "BENCH capstan manager_cpu_s={cpu:.1} manager_peak_rss_mib={:.1}",
        peak_rss_mib(pid)
    );
    for (op, d) in &per_op {
        println!("BENCH capstan soap_calls_per_vm op={op} {:.2}", *d as f64 / n as f64);
    }
    println!(
        "BENCH capstan soap_calls_per_vm total={:.2} sessions_opened_in_the_whole_run={}",
        per_op.values().sum::<u64>() as f64 / n as f64,
        after.get("Login").copied().unwrap_or(0)
    );
    drop(manager);

    // The physical limit on the same vcsim: clone + power on, nothing else.
    let ca = env.dir().join("vcsim-ca.pem");
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    let mut url: reqwest::Url = vcsim.server().parse().unwrap();
    url.set_username(USER).unwrap();
    url.set_password(Some(PASSWORD)).unwrap();
    let out =
        Command::new(std::env::var("CAPSTAN_CLONE_LOOP").expect("CAPSTAN_CLONE_LOOP (hack/testenv.sh builds it)"))
            .args(["-url", url.as_str(), "-ca"])
            .arg(&ca)
            .args(["-n", &n.to_string(), "-concurrency", &concurrency, "-prefix", "loop"])
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    print!("{}", String::from_utf8_lossy(&out.stdout));
}
