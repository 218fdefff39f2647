//! `capstan up` / `capstan down` end to end, through the binary: a real management plane, the DCS
//! simulator with guest emulation (real workload API servers), the manager, and the cluster from
//! templates/dcs. Scales, rolls out a new worker template, deletes, and checks that nothing
//! outlives `down`; then the failure paths a user hits first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use capstan_api::core::{Machine, MachineDeployment, MachinePhase};
use capstan_e2e::{TestEnv, wait_for};
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::json;

const NS: &str = "default";

fn capstan(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .env_remove("RUST_LOG")
        // The background process stops with this test process, however it ends.
        .env("CAPSTAN_UP_WATCH_PID", std::process::id().to_string())
        .output()
        .unwrap();
    eprintln!(
        "capstan {args:?}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Processes whose command line mentions `needle` (a test's own state directory), so the
/// assertions never depend on what else runs on the machine.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

/// Kills the background process of a run when the test ends, however it ends (its etcd and API
/// servers die with it through PR_SET_PDEATHSIG). `capstan down` is the normal path; this is the
/// safety net for a failed assertion.
struct Reap(PathBuf);

impl Drop for Reap {
    fn drop(&mut self) {
        let Ok(bytes) = std::fs::read(self.0.join("ready.json")) else {
            return;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return;
        };
        if let Some(pid) = v["pid"].as_u64() {
            // SAFETY: kill(2) on the pid this test's `capstan up` started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

struct Ready {
    mgmt_kubeconfig: PathBuf,
    sim_url: String,
    sim_ca_pem: String,
    credentials_secret: String,
}

fn ready(state: &Path) -> Ready {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(state.join("ready.json")).unwrap()).unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_string();
    Ready {
        mgmt_kubeconfig: PathBuf::from(s("mgmt_kubeconfig")),
        sim_url: s("sim_url"),
        sim_ca_pem: s("sim_ca_pem"),
        credentials_secret: s("credentials_secret"),
    }
}

/// The cloud credentials Secret `up` wrote for the provider, decoded.
async fn credentials(mgmt: &Client, ready: &Ready) -> std::collections::BTreeMap<String, String> {
    let secret = Api::<Secret>::namespaced(mgmt.clone(), NS)
        .get(&ready.credentials_secret)
        .await
        .unwrap();
    let data = secret.data.unwrap_or_default();
    data.into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect()
}

/// The simulator's VMs (templates excluded), asked over its REST API like the provider does.
async fn dcs_vms(mgmt: &Client, ready: &Ready) -> Vec<capstan_dcs::client::Vm> {
    let creds = credentials(mgmt, ready).await;
    let get = |k: &str| creds[k].clone();
    let mut cfg = capstan_dcs::DcsConfig::new(ready.sim_url.parse().unwrap(), get("authUser"), get("authKey"));
    cfg.ca_bundle_pem = Some(ready.sim_ca_pem.as_bytes().to_vec());
    let client = capstan_dcs::DcsClient::new(cfg).unwrap();
    client
        .list_vms(&[])
        .await
        .unwrap()
        .into_iter()
        .filter(|v| !v.is_template)
        .collect()
}

async fn simulator_vms(mgmt: &Client, ready: &Ready) -> Vec<String> {
    dcs_vms(mgmt, ready).await.into_iter().map(|v| v.name).collect()
}

/// Issue 10 §1: no password, bootstrap token or private key the run created appears in any log
/// line of the manager and simulators, in `up`'s output, in any Event or in the status of any
/// Cluster API or provider object.
async fn assert_no_secret_leaks(mgmt: &Client, workload: &Client, ready: &Ready, state: &Path, stdout: &str) {
    let mut needles: Vec<(String, String)> = Vec::new();
    let secrets = Api::<Secret>::namespaced(mgmt.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    for s in &secrets.items {
        let data = s.data.clone().unwrap_or_default();
        if s.name_any() == ready.credentials_secret {
            needles.push((
                "VRM password".into(),
                String::from_utf8(data["authKey"].0.clone()).unwrap(),
            ));
        }
        if let Some(key) = data.get("tls.key") {
            // A line from the middle of the PEM body: a key printed in any form contains it.
            let pem = String::from_utf8_lossy(&key.0).to_string();
            let lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            needles.push((
                format!("private key of {}", s.name_any()),
                lines[lines.len() / 2].to_string(),
            ));
        }
    }
    let tokens = Api::<Secret>::namespaced(workload.clone(), "kube-system")
        .list(&ListParams::default())
        .await
        .unwrap();
    for t in tokens
        .items
        .iter()
        .filter(|t| t.type_.as_deref() == Some("bootstrap.kubernetes.io/token"))
    {
        let data = t.data.clone().unwrap_or_default();
        let secret = String::from_utf8(data["token-secret"].0.clone()).unwrap();
        needles.push((format!("bootstrap token {}", t.name_any()), secret));
    }
    assert!(
        needles.iter().any(|(what, _)| what.starts_with("bootstrap token")),
        "the run made tokens"
    );
    assert!(
        needles
            .iter()
            .filter(|(what, _)| what.starts_with("private key"))
            .count()
            >= 4,
        "{needles:?}"
    );

    let mut haystack = vec![("capstan up output".to_string(), stdout.to_string())];
    for f in ["daemon.log", "consoles.json"] {
        haystack.push((f.into(), std::fs::read_to_string(state.join(f)).unwrap_or_default()));
    }
    let events = Api::<k8s_openapi::api::events::v1::Event>::all(mgmt.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    haystack.push(("events".into(), serde_json::to_string(&events.items).unwrap()));
    let core = |kind: &str, plural: &str| {
        let gvk = GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta2", kind);
        Api::<DynamicObject>::namespaced_with(mgmt.clone(), NS, &ApiResource::from_gvk_with_plural(&gvk, plural))
    };
    let bootstrap = {
        let gvk = GroupVersionKind::gvk("bootstrap.cluster.x-k8s.io", "v1beta2", "KubeadmConfig");
        Api::<DynamicObject>::namespaced_with(
            mgmt.clone(),
            NS,
            &ApiResource::from_gvk_with_plural(&gvk, "kubeadmconfigs"),
        )
    };
    for (what, api) in [
        ("Cluster", core("Cluster", "clusters")),
        ("Machine", core("Machine", "machines")),
        ("MachineSet", core("MachineSet", "machinesets")),
        ("MachineDeployment", core("MachineDeployment", "machinedeployments")),
        ("DCSCluster", infra(mgmt, "DCSCluster")),
        ("DCSMachine", infra(mgmt, "DCSMachine")),
        ("KubeadmConfig", bootstrap),
    ] {
        let list = api.list(&ListParams::default()).await.unwrap();
        let statuses: Vec<_> = list.items.iter().map(|o| o.data["status"].clone()).collect();
        haystack.push((format!("{what} status"), serde_json::to_string(&statuses).unwrap()));
    }
    assert!(haystack[1].1.len() > 1000, "the daemon log has lines to search");
    for (what, needle) in &needles {
        assert!(needle.len() >= 8, "{what}: too short to search for");
        for (place, text) in &haystack {
            assert!(!text.contains(needle.as_str()), "{what} leaked into {place}");
        }
    }
}

async fn client_for(kubeconfig: &Path) -> Client {
    capstan_runtime::install_crypto_provider();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn infra(client: &Client, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("infrastructure.cluster.x-k8s.io", "v1beta1", kind);
    Api::namespaced_with(
        client.clone(),
        NS,
        &ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", kind.to_lowercase())),
    )
}

async fn machines(client: &Client, cluster: &str) -> Vec<Machine> {
    Api::<Machine>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels(&format!("cluster.x-k8s.io/cluster-name={cluster}")))
        .await
        .unwrap()
        .items
}

fn running(m: &Machine) -> bool {
    m.status
        .as_ref()
        .is_some_and(|s| s.phase == Some(MachinePhase::Running) && s.node_ref.is_some())
}

async fn nodes(workload: &Client) -> Vec<Node> {
    Api::<Node>::all(workload.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Every Machine Running with a Node whose providerID is its InfraMachine's (`<scheme>://…`).
async fn assert_nodes_match(mgmt: &Client, workload: &Client, cluster: &str, want: usize) {
    assert_nodes_match_on(mgmt, workload, cluster, want, "DCSMachine", "dcs://").await
}

async fn assert_nodes_match_on(
    mgmt: &Client,
    workload: &Client,
    cluster: &str,
    want: usize,
    machine_kind: &str,
    scheme: &str,
) {
    let ms = machines(mgmt, cluster).await;
    assert_eq!(ms.len(), want);
    let ns = nodes(workload).await;
    assert_eq!(
        ns.len(),
        want,
        "{:?}",
        ns.iter().map(|n| n.name_any()).collect::<Vec<_>>()
    );
    for m in &ms {
        assert!(running(m), "{} is not Running: {:?}", m.name_any(), m.status);
        let infra_obj = infra(mgmt, machine_kind)
            .get(&m.spec.infrastructure_ref.name)
            .await
            .unwrap();
        let infra_pid = infra_obj.data["spec"]["providerID"].as_str().unwrap().to_string();
        assert!(infra_pid.starts_with(scheme), "{infra_pid}");
        assert_eq!(m.spec.provider_id.as_deref(), Some(infra_pid.as_str()));
        let node_name = &m.status.as_ref().unwrap().node_ref.as_ref().unwrap().name;
        let node = ns.iter().find(|n| &n.name_any() == node_name).unwrap();
        assert_eq!(
            node.spec.as_ref().and_then(|s| s.provider_id.as_deref()),
            Some(infra_pid.as_str()),
            "Node {node_name}"
        );
        // As upstream's Machine controller does: the Node knows its Machine and the worker taint
        // the bootstrap provider registered it with is gone (schedulable).
        assert_eq!(
            node.annotations().get("cluster.x-k8s.io/machine"),
            Some(&m.name_any()),
            "Node {node_name}: {:?}",
            node.metadata.annotations
        );
        let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        assert!(
            !taints.iter().any(|t| t.key == "node.cluster.x-k8s.io/uninitialized"),
            "Node {node_name} is still uninitialized: {taints:?}"
        );
    }
}

async fn workers_settle(mgmt: &Client, workload: &Client, cluster: &str, want: usize, cpu: Option<i64>) -> bool {
    let ok = wait_for(Duration::from_secs(240), || async {
        let ms = machines(mgmt, cluster).await;
        let workers: Vec<&Machine> = ms.iter().filter(|m| !m.is_control_plane()).collect();
        if workers.len() != want || !workers.iter().all(|m| running(m)) {
            return false;
        }
        if let Some(cpu) = cpu {
            for w in &workers {
                let Ok(obj) = infra(mgmt, "DCSMachine").get(&w.spec.infrastructure_ref.name).await else {
                    return false;
                };
                if obj.data["spec"]["cpu"].as_i64() != Some(cpu) {
                    return false;
                }
            }
        }
        nodes(workload).await.len() == ms.len()
    })
    .await;
    if !ok {
        let ms = machines(mgmt, cluster).await;
        eprintln!(
            "machines: {:?}",
            ms.iter()
                .map(|m| (m.name_any(), m.status.as_ref().and_then(|s| s.phase.clone())))
                .collect::<Vec<_>>()
        );
        eprintln!(
            "nodes: {:?}",
            nodes(workload).await.iter().map(|n| n.name_any()).collect::<Vec<_>>()
        );
    }
    ok
}

/// Scales the cluster's MachineDeployment from 2 to 3 and waits for the sixth Node.
async fn scale_workers_to_three(mgmt: &Client, workload: &Client, cluster: &str) {
    let mds: Api<MachineDeployment> = Api::namespaced(mgmt.clone(), NS);
    mds.patch(
        &format!("{cluster}-md-0"),
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(180), || async {
            let ms = machines(mgmt, cluster).await;
            ms.len() == 6 && ms.iter().all(running) && nodes(workload).await.len() == 6
        })
        .await,
        "scale to 3 workers"
    );
}

/// `capstan up` of the 3+2 cluster `name` with `extra` flags: asserts that it came up and
/// returns the state it left.
fn up_five(state: &Path, name: &str, extra: &[&str]) -> Ready {
    let mut args = vec!["up"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--state-dir", path_str(state), "--name", name, "--timeout", "6m"]);
    let out = capstan(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("all 5 machines running, 5 nodes registered"),
        "{stdout}"
    );
    ready(state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_builds_a_cluster_that_scales_rolls_out_deletes_and_down_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _reap = Reap(state.clone());
    let started = Instant::now();
    let out = capstan(&[
        "up",
        "--state-dir",
        path_str(&state),
        "--name",
        "e2e",
        "--timeout",
        "6m",
    ]);
    assert!(out.status.success());
    eprintln!("capstan up took {:.1}s", started.elapsed().as_secs_f64());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let kubeconfig = state.join("e2e.kubeconfig");
    assert!(
        stdout.contains("all 5 machines running, 5 nodes registered"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("workload kubeconfig: {}", kubeconfig.display())),
        "{stdout}"
    );

    let ready = ready(&state);
    let mgmt = client_for(&ready.mgmt_kubeconfig).await;
    assert_eq!(simulator_vms(&mgmt, &ready).await.len(), 5);
    // The admin kubeconfig `up` printed is all a user needs (what `kubectl get nodes` uses).
    let workload = client_for(&kubeconfig).await;
    assert_nodes_match(&mgmt, &workload, "e2e", 5).await;
    let control_planes = nodes(&workload)
        .await
        .into_iter()
        .filter(|n| n.labels().contains_key("node-role.kubernetes.io/control-plane"))
        .count();
    assert_eq!(control_planes, 3);

    let mds: Api<MachineDeployment> = Api::namespaced(mgmt.clone(), NS);
    let scale = |n: i32| {
        let mds = mds.clone();
        async move {
            mds.patch(
                "e2e-md-0",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": n}})),
            )
            .await
            .unwrap();
        }
    };
    scale(4).await;
    assert!(workers_settle(&mgmt, &workload, "e2e", 4, None).await, "scale to 4");
    assert_nodes_match(&mgmt, &workload, "e2e", 7).await;
    scale(1).await;
    assert!(workers_settle(&mgmt, &workload, "e2e", 1, None).await, "scale to 1");
    assert_nodes_match(&mgmt, &workload, "e2e", 4).await;

    // A new worker template: the rollout replaces the worker with one from it.
    let templates = infra(&mgmt, "DCSMachineTemplate");
    let mut v2 = templates.get("e2e-md-0").await.unwrap();
    v2.metadata = kube::api::ObjectMeta {
        name: Some("e2e-md-0-v2".into()),
        namespace: Some(NS.into()),
        ..Default::default()
    };
    v2.data["spec"]["template"]["spec"]["cpu"] = json!(4);
    templates.create(&kube::api::PostParams::default(), &v2).await.unwrap();
    mds.patch(
        "e2e-md-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"infrastructureRef": {"name": "e2e-md-0-v2"}}}}})),
    )
    .await
    .unwrap();
    assert!(workers_settle(&mgmt, &workload, "e2e", 1, Some(4)).await, "rollout");
    assert_nodes_match(&mgmt, &workload, "e2e", 4).await;

    assert_no_secret_leaks(&mgmt, &workload, &ready, &state, &stdout).await;
    // Issue 10 §6: logs written to a file carry no terminal colour codes.
    let log = std::fs::read_to_string(state.join("daemon.log")).unwrap();
    assert!(log.contains(" INFO "), "the log has lines");
    assert!(!log.contains('\u{1b}'), "ANSI escape codes in daemon.log");

    // Deleting the Cluster removes every VM (their guest disks go with them), stops the workload
    // control plane and leaves no Secret the providers created.
    let guests = state.join("guests");
    assert!(!processes_mentioning(path_str(&guests.join("clusters"))).is_empty());
    Api::<capstan_api::core::Cluster>::namespaced(mgmt.clone(), NS)
        .delete("e2e", &DeleteParams::background())
        .await
        .unwrap();
    let clusters: Api<capstan_api::core::Cluster> = Api::namespaced(mgmt.clone(), NS);
    assert!(
        wait_for(Duration::from_secs(180), || async {
            matches!(clusters.get_opt("e2e").await, Ok(None))
        })
        .await,
        "cluster not deleted"
    );
    assert!(
        infra(&mgmt, "DCSMachine")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        wait_for(Duration::from_secs(30), || async {
            processes_mentioning(path_str(&guests.join("clusters"))).is_empty()
        })
        .await,
        "a workload control-plane process outlived its cluster"
    );
    let vm_disks = std::fs::read_dir(guests.join("vms")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(vm_disks, 0, "VM root directories left behind");
    let leftover: Vec<String> = Api::<Secret>::namespaced(mgmt.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.name_any())
        .filter(|n| n.starts_with("e2e"))
        .collect();
    assert!(leftover.is_empty(), "secrets left: {leftover:?}");

    assert!(!processes_mentioning(path_str(&state)).is_empty());
    let out = capstan(&["down", "--state-dir", path_str(&state)]);
    assert!(out.status.success());
    assert!(
        wait_for(Duration::from_secs(15), || async {
            processes_mentioning(path_str(&state)).is_empty()
        })
        .await,
        "processes outlived `capstan down`: {:?}",
        processes_mentioning(path_str(&state))
    );
    assert!(!state.exists());
}

fn templates_without_provider_id(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/dcs");
    let dst = dir.join("templates");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["cluster-template.yaml", "control-plane-machine.yaml"] {
        let text = std::fs::read_to_string(src.join(f)).unwrap();
        // Drop the kubelet flag and the (now empty) list that held it.
        let cut: Vec<&str> = text
            .lines()
            .filter(|l| {
                let t = l.trim();
                !(t.starts_with("kubeletExtraArgs:")
                    || t.starts_with("- name: provider-id")
                    || t.starts_with("value: \"{{ ds.meta_data.provider_id }}\""))
            })
            .collect();
        std::fs::write(dst.join(f), cut.join("\n")).unwrap();
    }
    dst
}

/// `capstan up` of one control-plane Machine from `templates` on an existing management cluster.
fn up_one_machine(kubeconfig: &Path, state: &Path, name: &str, templates: &Path, timeout: &str) -> Output {
    capstan(&[
        "up",
        "--kubeconfig",
        path_str(kubeconfig),
        "--state-dir",
        path_str(state),
        "--name",
        name,
        "--control-plane-machines",
        "1",
        "--worker-machines",
        "0",
        "--template-dir",
        path_str(templates),
        "--timeout",
        timeout,
    ])
}

/// Templates whose control-plane KubeadmConfig writes a file cloud-init cannot decode.
fn templates_with_a_broken_file(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/dcs");
    let dst = dir.join("broken");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::copy(src.join("cluster-template.yaml"), dst.join("cluster-template.yaml")).unwrap();
    let cp = std::fs::read_to_string(src.join("control-plane-machine.yaml"))
        .unwrap()
        .replacen(
            "spec:\n  initConfiguration:",
            "spec:\n  files:\n  - path: /etc/broken\n    encoding: gzip\n    content: \"this is not gzip\"\n  initConfiguration:",
            1,
        );
    assert!(cp.contains("/etc/broken"));
    std::fs::write(dst.join("control-plane-machine.yaml"), cp).unwrap();
    dst
}

/// With `--kubeconfig` (an existing management cluster): a template that forgets the kubelet's
/// provider-id leaves the Machine Provisioned, with a condition that says why; `down` then
/// removes the cluster, the secret and the CRDs `up` created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_provider_id_is_explained_and_down_cleans_a_foreign_management_cluster() {
    let env = TestEnv::start_bare().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _reap = Reap(state.clone());
    // First a boot that fails in cloud-init: `up` shows the VM console's reason by the Machine.
    let broken = templates_with_a_broken_file(dir.path());
    let out = up_one_machine(env.kubeconfig_path(), &state, "bf", &broken, "30s");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("boot failed: cloud-init: write_files entry for /etc/broken"),
        "{stdout}"
    );
    assert!(capstan(&["down", "--state-dir", path_str(&state)]).status.success());

    let templates = templates_without_provider_id(dir.path());
    let out = up_one_machine(env.kubeconfig_path(), &state, "np", &templates, "40s");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("registered without spec.providerID"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not all machines joined"), "{stderr}");

    let mgmt = env.client().await.unwrap();
    let ms = machines(&mgmt, "np").await;
    assert_eq!(ms.len(), 1);
    let status = ms[0].status.clone().unwrap();
    assert_eq!(status.phase, Some(MachinePhase::Provisioned));
    assert!(status.node_ref.is_none());
    let cond = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "NodeHealthy")
        .unwrap();
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason, "NodeProviderIDMissing");
    assert!(cond.message.contains("--provider-id"), "{}", cond.message);

    let out = capstan(&["down", "--state-dir", path_str(&state)]);
    assert!(out.status.success());
    let secrets: Vec<String> = Api::<Secret>::namespaced(mgmt.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.name_any())
        .collect();
    assert!(
        !secrets
            .iter()
            .any(|s| s.starts_with("np") || s.starts_with("capstan-up")),
        "{secrets:?}"
    );
    let crds =
        Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(mgmt)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
    assert!(
        crds.is_empty(),
        "{:?}",
        crds.iter().map(|c| c.name_any()).collect::<Vec<_>>()
    );
    assert!(processes_mentioning(path_str(&state)).is_empty());
}

/// Guests that boot after their bootstrap token's TTL still join: the bootstrap provider keeps
/// extending the token until the Machine has a Node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_older_than_its_ttl_at_boot_is_refreshed_and_the_join_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _reap = Reap(state.clone());
    let ttl = 6;
    let out = capstan(&[
        "up",
        "--state-dir",
        path_str(&state),
        "--name",
        "tt",
        "--control-plane-machines",
        "1",
        "--worker-machines",
        "1",
        "--bootstrap-token-ttl",
        &format!("{ttl}s"),
        "--guest-boot-delay",
        "15s",
        "--timeout",
        "4m",
    ]);
    let kubeconfig = state.join("tt.kubeconfig");
    let ok = out.status.success();
    let workload = if ok { Some(client_for(&kubeconfig).await) } else { None };
    let tokens = match &workload {
        Some(w) => {
            Api::<Secret>::namespaced(w.clone(), "kube-system")
                .list(&ListParams::default().fields("type=bootstrap.kubernetes.io/token"))
                .await
                .unwrap()
                .items
        }
        None => Vec::new(),
    };
    let down = capstan(&["down", "--state-dir", path_str(&state)]);
    assert!(ok, "up failed");
    assert!(down.status.success());
    // The worker booted 15s after power-on with a 6s token: its token must have been extended.
    let extended = tokens.iter().any(|s| {
        let created = serde_json::to_value(&s.metadata.creation_timestamp).unwrap();
        let created = chrono::DateTime::parse_from_rfc3339(created.as_str().unwrap()).unwrap();
        let exp = s
            .data
            .as_ref()
            .and_then(|d| d.get("expiration"))
            .map(|v| String::from_utf8_lossy(&v.0).to_string());
        let exp = exp.and_then(|e| chrono::DateTime::parse_from_rfc3339(&e).ok());
        exp.is_some_and(|e| (e - created).num_seconds() > ttl + 5)
    });
    assert!(extended, "no token was refreshed: {tokens:?}");
}

/// README: `up --kubernetes-version` and template variables from the environment (as with
/// clusterctl). The control plane runs the kube-apiserver of that version, the kubelet reports
/// it, and `DCS_CPU` from the environment reaches the DCSMachine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_takes_the_kubernetes_version_and_template_variables_from_the_environment() {
    let env = TestEnv::start_bare().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _reap = Reap(state.clone());
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args([
            "up",
            "--kubeconfig",
            path_str(env.kubeconfig_path()),
            "--state-dir",
            path_str(&state),
        ])
        .args([
            "--name",
            "v133",
            "--control-plane-machines",
            "1",
            "--worker-machines",
            "0",
        ])
        .args(["--kubernetes-version", "v1.33.13", "--timeout", "4m"])
        .env_remove("RUST_LOG")
        .env("CAPSTAN_UP_WATCH_PID", std::process::id().to_string())
        .env("DCS_CPU", "3")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mgmt = env.client().await.unwrap();
    let ms = machines(&mgmt, "v133").await;
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].spec.version.as_deref(), Some("v1.33.13"));
    let infra_obj = infra(&mgmt, "DCSMachine")
        .get(&ms[0].spec.infrastructure_ref.name)
        .await
        .unwrap();
    assert_eq!(infra_obj.data["spec"]["cpu"], json!(3), "DCS_CPU from the environment");
    let workload = client_for(&state.join("v133.kubeconfig")).await;
    assert_eq!(workload.apiserver_version().await.unwrap().git_version, "v1.33.13");
    let node = &nodes(&workload).await[0];
    assert_eq!(
        node.status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.kubelet_version.as_str()),
        Some("v1.33.13")
    );
    assert!(capstan(&["down", "--state-dir", path_str(&state)]).status.success());
}

/// The HCS client on the credentials `up` wrote, to ask the simulator what exists as the
/// provider would.
async fn hcs_client(mgmt: &Client, ready: &Ready) -> capstan_hcs::client::HcsClient {
    let creds = credentials(mgmt, ready).await;
    let get = |k: &str| creds[k].clone();
    let mut cfg = capstan_hcs::client::HcsConfig::new(
        get("externalGlobalDomain"),
        get("region"),
        get("projectID"),
        get("accessKey"),
        get("secretKey"),
    );
    for service in ["iam", "ecs", "vpc", "ims", "evs"] {
        cfg.endpoints
            .insert(service.into(), get(&format!("{service}Endpoint")).parse().unwrap());
    }
    cfg.ca_bundle_pem = Some(ready.sim_ca_pem.as_bytes().to_vec());
    capstan_hcs::client::HcsClient::new(cfg).unwrap()
}

/// Issue 14 §4: `capstan up --infrastructure hcs`: three control-plane machines in three zones
/// behind the simulated ELB and two workers, kubectl through the ELB's VIP, scale, and after
/// the Cluster's deletion no server, volume or load balancer is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_hcs_serves_the_cluster_through_the_elb_and_leaves_nothing_after_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _reap = Reap(state.clone());
    let ready = up_five(&state, "e2h", &["--infrastructure", "hcs"]);
    let mgmt = client_for(&ready.mgmt_kubeconfig).await;
    let hcs = hcs_client(&mgmt, &ready).await;

    // The endpoint is the ELB's VIP, and the kubeconfig reaches the API servers through it.
    let lbs = hcs.find_load_balancers("capstan-default-e2h-apiserver").await.unwrap();
    assert_eq!(lbs.len(), 1, "{lbs:?}");
    let kubeconfig = state.join("e2h.kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let server = kc.clusters[0].cluster.as_ref().unwrap().server.clone().unwrap();
    assert_eq!(server, format!("https://{}:6443", lbs[0].vip_address));
    let workload = client_for(&kubeconfig).await;
    assert_nodes_match_on(&mgmt, &workload, "e2h", 5, "HCSMachine", "hcs://").await;

    // Control planes spread over the three zones, each a member of the ELB's pool.
    let servers = hcs.find_servers_by_tag("capstan-cluster", "e2h").await.unwrap();
    assert_eq!(servers.len(), 5);
    let mut zones: Vec<String> = servers
        .iter()
        .filter(|s| s.name.contains("control-plane"))
        .filter_map(|s| s.availability_zone.clone())
        .collect();
    zones.sort();
    assert_eq!(zones, ["az1", "az2", "az3"]);
    let pool = &hcs.pools(&lbs[0].id).await.unwrap()[0];
    assert_eq!(hcs.members(&pool.id).await.unwrap().len(), 3);

    scale_workers_to_three(&mgmt, &workload, "e2h").await;

    Api::<capstan_api::core::Cluster>::namespaced(mgmt.clone(), NS)
        .delete("e2h", &DeleteParams::background())
        .await
        .unwrap();
    let clusters: Api<capstan_api::core::Cluster> = Api::namespaced(mgmt.clone(), NS);
    assert!(
        wait_for(Duration::from_secs(180), || async {
            matches!(clusters.get_opt("e2h").await, Ok(None))
        })
        .await,
        "cluster not deleted"
    );
    assert!(
        hcs.find_servers_by_tag("capstan-cluster", "e2h")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        hcs.find_load_balancers("capstan-default-e2h-apiserver")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(capstan(&["down", "--state-dir", path_str(&state)]).status.success());
    assert!(!state.exists());
}

/// Issue 16 §2/§5 for every Machine of `cluster`: its data secret says `format: ignition`, holds
/// an Ignition 3.4.0 config the real `ignition-validate` accepts, and its Node booted the MicroOS
/// image (the guest read the config the way MicroOS does on that cloud).
async fn assert_ignition_nodes(mgmt: &Client, workload: &Client, cluster: &str) {
    let secrets: Api<Secret> = Api::namespaced(mgmt.clone(), NS);
    let ns = nodes(workload).await;
    for m in machines(mgmt, cluster).await {
        let name = m.spec.bootstrap.data_secret_name.clone().unwrap();
        let data = secrets.get(&name).await.unwrap().data.unwrap();
        assert_eq!(data["format"].0, b"ignition", "{name}");
        let config: serde_json::Value = serde_json::from_slice(&data["value"].0).unwrap();
        assert_eq!(config["ignition"]["version"], "3.4.0", "{name}");
        capstan_e2e::ignition::assert_valid(&data["value"].0);
        let node_name = &m.status.as_ref().unwrap().node_ref.as_ref().unwrap().name;
        let node = ns.iter().find(|n| &n.name_any() == node_name).unwrap();
        let info = node.status.as_ref().and_then(|s| s.node_info.as_ref()).unwrap();
        assert_eq!(
            info.os_image, "openSUSE MicroOS (capstan guest emulation)",
            "{node_name}"
        );
    }
}

/// Issue 16 §5 on vSphere: the MicroOS nodes read their config from
/// `guestinfo.ignition.config.data` (Ignition's `vmware` platform), take their name and
/// providerID (`vsphere://<BIOS UUID>`) from the files the provider wrapped around it, and the
/// config is gone from every VM afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_microos_boots_every_node_from_guestinfo_on_vsphere() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _reap = Reap(state.clone());
    let ready = up_five(&state, "e2w", &["--infrastructure", "vsphere", "--os", "microos"]);
    let mgmt = client_for(&ready.mgmt_kubeconfig).await;
    let workload = client_for(&state.join("e2w.kubeconfig")).await;
    assert_nodes_match_on(&mgmt, &workload, "e2w", 5, "VCenterMachine", "vsphere://").await;
    assert_ignition_nodes(&mgmt, &workload, "e2w").await;
    let vc = vsphere_client(&mgmt, &ready).await;
    let names: Vec<String> = vc
        .vm_names_under("/DC0/vm")
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("e2w-"))
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    for name in &names {
        let vm = vc
            .find_by_inventory_path(&format!("/DC0/vm/{name}"))
            .await
            .unwrap()
            .unwrap();
        let cleared = wait_for(Duration::from_secs(60), || async {
            vc.vm_info(&vm)
                .await
                .unwrap()
                .extra_config_value(capstan_vsphere::bootstrap::IGNITION)
                .is_none()
        })
        .await;
        assert!(cleared, "{name} still holds its Ignition config");
    }
    assert!(capstan(&["down", "--state-dir", path_str(&state)]).status.success());
    assert!(!state.exists());
}

/// Issue 16 §5: `capstan up --os microos` on DCS: the 3+2 cluster boots MicroOS images from the
/// Ignition ISO (label `ignition`, `ignition/config.ign`), each node names itself and finds its
/// providerID in what the provider wrote into the config, and no ISO stays in a drive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_microos_boots_every_node_from_its_ignition_iso_on_dcs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _reap = Reap(state.clone());
    let ready = up_five(&state, "e2m", &["--os", "microos"]);
    let mgmt = client_for(&ready.mgmt_kubeconfig).await;
    let workload = client_for(&state.join("e2m.kubeconfig")).await;
    assert_nodes_match(&mgmt, &workload, "e2m", 5).await;
    assert_ignition_nodes(&mgmt, &workload, "e2m").await;

    // The ISO held join tokens and keys: once provisioned it is out of every drive.
    let vms = dcs_vms(&mgmt, &ready).await;
    assert_eq!(vms.len(), 5);
    assert!(
        wait_for(Duration::from_secs(60), || async {
            dcs_vms(&mgmt, &ready).await.iter().all(|v| !v.cdrom_loaded())
        })
        .await,
        "an Ignition ISO is still attached"
    );
    for vm in &vms {
        let infra_obj = infra(&mgmt, "DCSMachine").get(&vm.name).await.unwrap();
        let cleaned = infra_obj.data["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "BootstrapDataCleanedUp")
            .cloned();
        assert_eq!(
            cleaned.as_ref().map(|c| &c["status"]),
            Some(&json!("True")),
            "{}: {cleaned:?}",
            vm.name
        );
    }
    assert!(capstan(&["down", "--state-dir", path_str(&state)]).status.success());
    assert!(!state.exists());
}

/// Issue 16 §5 on HCS: the MicroOS nodes read their config from `user_data` (raw JSON, as
/// Ignition's `openstack` platform does) and take their providerID from afterburn's metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_microos_boots_every_node_from_user_data_on_hcs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _reap = Reap(state.clone());
    let ready = up_five(&state, "e2n", &["--infrastructure", "hcs", "--os", "microos"]);
    let mgmt = client_for(&ready.mgmt_kubeconfig).await;
    let workload = client_for(&state.join("e2n.kubeconfig")).await;
    assert_nodes_match_on(&mgmt, &workload, "e2n", 5, "HCSMachine", "hcs://").await;
    assert_ignition_nodes(&mgmt, &workload, "e2n").await;
    assert!(capstan(&["down", "--state-dir", path_str(&state)]).status.success());
    assert!(!state.exists());
}

/// A client for the vcsim `up` started, with the credentials and CA the provider got.
async fn vsphere_client(mgmt: &Client, ready: &Ready) -> capstan_vsphere::client::VsphereClient {
    let creds = credentials(mgmt, ready).await;
    let get = |k: &str| creds[k].clone();
    let mut cfg =
        capstan_vsphere::client::VsphereConfig::new(ready.sim_url.parse().unwrap(), get("username"), get("password"));
    cfg.tls = capstan_vsphere::client::TlsTrust::CaBundle(ready.sim_ca_pem.as_bytes().to_vec());
    capstan_vsphere::client::VsphereClient::new(cfg).unwrap()
}

/// Issue 15 §3: `capstan up --infrastructure vsphere` on the real vcsim: every VM cloned by the
/// provider boots its guestinfo user data through the bridge (VMware Tools' part), 3 control
/// planes + 2 workers register with `vsphere://<BIOS UUID>`, the user data is gone from every VM
/// afterwards, workers scale, and deleting the Cluster leaves no VM in vcsim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_vsphere_boots_guestinfo_through_vcsim_and_leaves_no_vm() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _reap = Reap(state.clone());
    let ready = up_five(&state, "e2v", &["--infrastructure", "vsphere"]);
    let mgmt = client_for(&ready.mgmt_kubeconfig).await;
    let workload = client_for(&state.join("e2v.kubeconfig")).await;
    assert_nodes_match_on(&mgmt, &workload, "e2v", 5, "VCenterMachine", "vsphere://").await;

    let vc = vsphere_client(&mgmt, &ready).await;
    let ours = |names: Vec<String>| names.into_iter().filter(|n| n.starts_with("e2v-")).collect::<Vec<_>>();
    let vms = ours(vc.vm_names_under("/DC0/vm").await.unwrap());
    assert_eq!(vms.len(), 5, "{vms:?}");
    for name in &vms {
        let vm = vc
            .find_by_inventory_path(&format!("/DC0/vm/{name}"))
            .await
            .unwrap()
            .unwrap();
        let info = vc.vm_info(&vm).await.unwrap();
        for key in capstan_vsphere::bootstrap::SECRET_KEYS {
            assert!(
                wait_for(Duration::from_secs(60), || async {
                    vc.vm_info(&vm).await.unwrap().extra_config_value(key).is_none()
                })
                .await,
                "{name}: {key} left in the VM's configuration"
            );
        }
        assert!(
            info.guest_ip.as_deref().is_some_and(|ip| ip.starts_with("127.")),
            "{info:?}"
        );
    }

    scale_workers_to_three(&mgmt, &workload, "e2v").await;

    let clusters: Api<capstan_api::core::Cluster> = Api::namespaced(mgmt.clone(), NS);
    clusters.delete("e2v", &DeleteParams::background()).await.unwrap();
    assert!(
        wait_for(Duration::from_secs(180), || async {
            matches!(clusters.get_opt("e2v").await, Ok(None))
        })
        .await,
        "cluster not deleted"
    );
    assert!(ours(vc.vm_names_under("/DC0/vm").await.unwrap()).is_empty());
    assert!(capstan(&["down", "--state-dir", path_str(&state)]).status.success());
    assert!(!state.exists());
}
