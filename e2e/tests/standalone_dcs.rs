//! The standalone CAPI core with the DCS provider and its simulator: a Cluster of three
//! control-plane Machines and a MachineDeployment of workers, scaled, rolled to a new template
//! (with a manager restart in the middle), paused and deleted, against real kube-apiservers (the
//! management cluster, and a workload cluster whose client CA is the cluster CA).
//!
//! Two small stand-ins run in the test: a bootstrap provider (`TestBootstrapConfig`, writes a
//! cloud-config secret) and a kubelet (registers a Ready Node with the Machine's providerID in the
//! workload cluster), until the kubeadm bootstrap provider and guest emulation take their place.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use capstan_api::conditions;
use capstan_api::core::{Cluster, Machine, MachineDeployment, MachineSet};
use capstan_dcs::api::DCSMachine;
use capstan_e2e::objects::{apiserver_writes, create};
use capstan_e2e::{TestEnv, wait_for};
use capstan_runtime::metrics::Metrics;
use capstan_runtime::{Provider, ProviderContext, Scope};
use capstan_sim_dcs::{Latency, SimConfig, SimKnobs, Simulator};
use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const NS: &str = "default";
const PASSWORD: &str = "Sim-Passw0rd!";
const BOOTSTRAP_GROUP: &str = "bootstrap.cluster.x-k8s.io";

fn bootstrap_crd(kind: &str) -> CustomResourceDefinition {
    let plural = format!("{}s", kind.to_lowercase());
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{BOOTSTRAP_GROUP}"), "labels": {"cluster.x-k8s.io/v1beta2": "v1alpha1"}},
        "spec": {
            "group": BOOTSTRAP_GROUP,
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "scope": "Namespaced",
            "versions": [{"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]
        }
    }))
    .unwrap()
}

fn bootstrap_api(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(BOOTSTRAP_GROUP, "v1alpha1", "TestBootstrapConfig");
    Api::namespaced_with(
        client.clone(),
        NS,
        &ApiResource::from_gvk_with_plural(&gvk, "testbootstrapconfigs"),
    )
}

/// The stand-in bootstrap provider: a data secret per config, cleaned up on deletion.
async fn bootstrap_provider(client: Client, stop: CancellationToken) {
    const FINALIZER: &str = "testbootstrapconfig.bootstrap.cluster.x-k8s.io";
    let configs = bootstrap_api(&client);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    while !stop.is_cancelled() {
        for c in configs
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let name = c.name_any();
            if c.metadata.deletion_timestamp.is_some() {
                let _ = secrets.delete(&name, &DeleteParams::default()).await;
                let _ = configs
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                    )
                    .await;
                continue;
            }
            if c.data["status"]["dataSecretName"].is_string() {
                continue;
            }
            let _ = configs
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": [FINALIZER]}})),
                )
                .await;
            let secret: Secret = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": c.metadata.labels},
                "type": "cluster.x-k8s.io/secret",
                "stringData": {"value": format!("#cloud-config\nhostname: {name}\n"), "format": "cloud-config"}
            }))
            .unwrap();
            let _ = secrets.create(&PostParams::default(), &secret).await;
            let _ = configs
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({"status": {"dataSecretName": name, "initialization": {"dataSecretCreated": true}}}),
                    ),
                )
                .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The stand-in kubelets: a Ready Node for every provisioned Machine.
async fn kubelets(mgmt: Client, workload: Client, stop: CancellationToken) {
    let machines: Api<Machine> = Api::namespaced(mgmt, NS);
    let nodes: Api<Node> = Api::all(workload);
    while !stop.is_cancelled() {
        for m in machines
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let (Some(pid), None) = (&m.spec.provider_id, &m.meta().deletion_timestamp) else {
                continue;
            };
            let name = m.name_any();
            if nodes.get_opt(&name).await.ok().flatten().is_some() {
                continue;
            }
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"providerID": pid},
            }))
            .unwrap();
            if nodes.create(&PostParams::default(), &node).await.is_ok() {
                let status = json!({"status": {
                    "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.1.0",
                                 "osImage": "Capstan Test OS", "containerRuntimeVersion": "containerd://2.0.0",
                                 "kubeletVersion": "v1.31.0", "kubeProxyVersion": "v1.31.0",
                                 "operatingSystem": "linux", "architecture": "amd64"},
                    "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
                let _ = nodes
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Managers {
    ctx: ProviderContext,
    standalone: Option<JoinHandle<Result<(), capstan_runtime::BoxError>>>,
    dcs: JoinHandle<Result<(), capstan_runtime::BoxError>>,
}

fn timing() -> capstan_standalone::Timing {
    capstan_standalone::Timing {
        wait: Duration::from_millis(500),
        resync: Duration::from_secs(30),
    }
}

impl Managers {
    fn start(ctx: ProviderContext) -> Self {
        let dcs = capstan_dcs::lifecycle_provider()
            .with_poll_interval(Duration::from_millis(200))
            .with_resync_interval(Duration::from_secs(30))
            .with_backoff(Duration::from_millis(100), Duration::from_secs(3));
        let dcs = tokio::spawn(dcs.run(ctx.clone()));
        let standalone = tokio::spawn(capstan_standalone::Standalone::with_timing(timing()).run(ctx.clone()));
        Self {
            ctx,
            standalone: Some(standalone),
            dcs,
        }
    }

    /// Kills the standalone core mid-flight (its futures are dropped, as in a crash) and starts it again.
    async fn restart_standalone(&mut self) {
        if let Some(t) = self.standalone.take() {
            t.abort();
            let _ = t.await;
        }
        self.standalone = Some(tokio::spawn(
            capstan_standalone::Standalone::with_timing(timing()).run(self.ctx.clone()),
        ));
    }
}

async fn create_dynamic(client: &Client, ar: &ApiResource, obj: Value) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, ar);
    api.create(&PostParams::default(), &serde_json::from_value(obj).unwrap())
        .await
        .unwrap();
}

fn worker_labels() -> Value {
    json!({"cluster.x-k8s.io/cluster-name": "c1", "cluster.x-k8s.io/deployment-name": "md-0"})
}

async fn workers(client: &Client) -> Vec<Machine> {
    Api::<Machine>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("cluster.x-k8s.io/deployment-name=md-0"))
        .await
        .unwrap()
        .items
}

fn ready(m: &Machine) -> bool {
    m.meta().deletion_timestamp.is_none()
        && m.status
            .as_ref()
            .is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))
}

/// Waits until the MachineDeployment has exactly `n` Machines, all Ready and on `template`.
async fn workers_settle(client: &Client, n: usize, template: &str) -> bool {
    let dcs: Api<DCSMachine> = Api::namespaced(client.clone(), NS);
    wait_for(Duration::from_secs(120), || async {
        let ws = workers(client).await;
        if ws.len() != n || !ws.iter().all(ready) {
            return false;
        }
        for w in &ws {
            let Some(infra) = dcs.get_opt(&w.spec.infrastructure_ref.name).await.unwrap() else {
                return false;
            };
            if infra
                .annotations()
                .get("cluster.x-k8s.io/cloned-from-name")
                .map(String::as_str)
                != Some(template)
            {
                return false;
            }
        }
        true
    })
    .await
}

/// Writes the API server has served to Cluster API and DCS kinds.
async fn capi_writes(client: &Client) -> u64 {
    apiserver_writes(
        client,
        &[
            "clusters",
            "machines",
            "machinesets",
            "machinedeployments",
            "dcsmachines",
            "dcsclusters",
        ],
    )
    .await
}

fn reconciles(metrics: &Metrics, controller: &str) -> f64 {
    metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("capstan_reconcile_total") && l.contains(&format!("controller=\"{controller}\"")))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Everything a test needs: both apiservers, the simulator, the controllers, the stand-ins, and a
/// Cluster with `control_planes` control-plane Machines and a MachineDeployment `md-0` of
/// `workers` (templates `worker-a` and `worker-b`).
struct World {
    _mgmt: TestEnv,
    _workload: TestEnv,
    client: Client,
    sim: capstan_sim_dcs::SimHandle,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    managers: Managers,
}

impl World {
    async fn start(control_planes: usize, workers: i32) -> World {
        capstan_runtime::install_crypto_provider();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,kube=warn")
            .with_test_writer()
            .try_init();
        let mgmt = TestEnv::start().await.unwrap();
        mgmt.install_crds(&capstan_dcs::api::crds()).await.unwrap();
        mgmt.install_crds(&[
            bootstrap_crd("TestBootstrapConfig"),
            bootstrap_crd("TestBootstrapConfigTemplate"),
        ])
        .await
        .unwrap();
        let workload = TestEnv::start_bare().await.unwrap();
        let client = mgmt.client().await.unwrap();
        let workload_client = workload.client().await.unwrap();
        let sim = Simulator::start(SimConfig {
            knobs: SimKnobs {
                latency: Latency::compressed(),
                ..SimKnobs::default()
            },
            ..SimConfig::default()
        })
        .await
        .unwrap();

        let stop = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let ctx = ProviderContext {
            client: client.clone(),
            scope: Scope {
                namespace: Some(NS.into()),
                watch_filter: None,
            },
            metrics: metrics.clone(),
            concurrency: Default::default(),
            shutdown: stop.clone(),
        };
        let managers = Managers::start(ctx);
        tokio::spawn(bootstrap_provider(client.clone(), stop.clone()));
        tokio::spawn(kubelets(client.clone(), workload_client.clone(), stop.clone()));

        // The cluster CA (normally generated by the bootstrap provider) is the workload apiserver's
        // client CA, so the admin kubeconfig the core writes really logs in.
        let port: u16 = workload.url().rsplit(':').next().unwrap().parse().unwrap();
        create::<Secret>(
            &client,
            json!({
                "metadata": {"name": "c1-ca", "labels": {"cluster.x-k8s.io/cluster-name": "c1"}},
                "type": "cluster.x-k8s.io/secret",
                "data": {"tls.crt": b64(workload.ca_pem()), "tls.key": b64(workload.ca_key_pem())}
            }),
        )
        .await;
        create::<Secret>(
            &client,
            json!({
                "metadata": {"name": "c1-creds"},
                "stringData": {"endpoint": sim.url().to_string(), "authUser": "capstan", "authKey": PASSWORD}
            }),
        )
        .await;
        let infra = |kind: &str| {
            ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("infrastructure.cluster.x-k8s.io", "v1beta1", kind),
                &format!("{}s", kind.to_lowercase()),
            )
        };
        let boot = |kind: &str| {
            ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(BOOTSTRAP_GROUP, "v1alpha1", kind),
                &format!("{}s", kind.to_lowercase()),
            )
        };
        create::<Cluster>(&client, json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "metadata": {"name": "c1"},
            "spec": {"clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]}},
                     "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DCSCluster", "name": "c1"}}
        }))
        .await;
        create_dynamic(&client, &infra("DCSCluster"), json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DCSCluster", "metadata": {"name": "c1"},
            "spec": {"credentialsSecretRef": {"name": "c1-creds"}, "controlPlaneEndpoint": {"host": "127.0.0.1", "port": port},
                     "tls": {"caBundle": sim.ca_pem()}}
        }))
        .await;
        let machine_spec = json!({"template": "ubuntu-2204-tmpl", "cpu": 2, "memoryMiB": 4096,
                                  "nics": [{"dvSwitch": "ManagementDVS", "portGroup": "VLAN-329"}]});
        for i in 0..control_planes {
            let name = format!("cp-{i}");
            create_dynamic(
                &client,
                &boot("TestBootstrapConfig"),
                json!({
                    "apiVersion": "bootstrap.cluster.x-k8s.io/v1alpha1", "kind": "TestBootstrapConfig",
                    "metadata": {"name": name}, "spec": {"role": "control-plane"}
                }),
            )
            .await;
            create_dynamic(
                &client,
                &infra("DCSMachine"),
                json!({
                    "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DCSMachine",
                    "metadata": {"name": name}, "spec": machine_spec
                }),
            )
            .await;
            create::<Machine>(&client, json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                "metadata": {"name": name, "labels": {"cluster.x-k8s.io/control-plane": ""}},
                "spec": {"clusterName": "c1", "version": "v1.31.0",
                         "bootstrap": {"configRef": {"apiGroup": BOOTSTRAP_GROUP, "kind": "TestBootstrapConfig", "name": name}},
                         "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DCSMachine", "name": name}}
            }))
            .await;
        }
        for t in ["worker-a", "worker-b"] {
            create_dynamic(
                &client,
                &infra("DCSMachineTemplate"),
                json!({
                    "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DCSMachineTemplate",
                    "metadata": {"name": t}, "spec": {"template": {"spec": machine_spec}}
                }),
            )
            .await;
        }
        create_dynamic(
            &client,
            &boot("TestBootstrapConfigTemplate"),
            json!({
                "apiVersion": "bootstrap.cluster.x-k8s.io/v1alpha1", "kind": "TestBootstrapConfigTemplate",
                "metadata": {"name": "worker"},
                "spec": {"template": {"metadata": {"labels": {"role": "worker"}}, "spec": {"role": "worker"}}}
            }),
        )
        .await;
        create::<MachineDeployment>(&client, json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineDeployment", "metadata": {"name": "md-0"},
            "spec": {
                "clusterName": "c1", "replicas": workers,
                "selector": {"matchLabels": worker_labels()},
                "rollout": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}},
                "template": {
                    "metadata": {"labels": worker_labels()},
                    "spec": {"clusterName": "c1", "version": "v1.31.0",
                             "bootstrap": {"configRef": {"apiGroup": BOOTSTRAP_GROUP, "kind": "TestBootstrapConfigTemplate", "name": "worker"}},
                             "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DCSMachineTemplate", "name": "worker-a"}}
                }
            }
        }))
        .await;
        World {
            _mgmt: mgmt,
            _workload: workload,
            client,
            sim,
            metrics,
            stop,
            managers,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_machines_and_a_deployment_scales_rolls_pauses_and_deletes() {
    let World {
        client,
        sim,
        metrics,
        stop,
        mut managers,
        // Bound, not `..`: dropping a TestEnv stops its apiserver.
        _mgmt: _mgmt_env,
        _workload: _workload_env,
    } = World::start(3, 2).await;
    // Everything comes up: 3 control-plane Machines and 2 workers Running with Ready Nodes.
    let machines: Api<Machine> = Api::namespaced(client.clone(), NS);
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NS);
    let deployments: Api<MachineDeployment> = Api::namespaced(client.clone(), NS);
    let sets: Api<MachineSet> = Api::namespaced(client.clone(), NS);
    let all_running = || async {
        let list = machines.list(&ListParams::default()).await.unwrap().items;
        list.len() == 5
            && list.iter().all(|m| {
                m.status.as_ref().and_then(|s| s.phase.as_ref()).map(|p| p.to_string()) == Some("Running".into())
                    && ready(m)
            })
    };
    assert!(
        wait_for(Duration::from_secs(120), all_running).await,
        "{:#?}",
        machines
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|m| (m.name_any(), m.status.clone()))
            .collect::<Vec<_>>()
    );
    let c = clusters.get("c1").await.unwrap();
    assert!(c.control_plane_initialized(), "{:?}", c.status);
    assert_eq!(
        c.status.as_ref().unwrap().phase.as_ref().unwrap().to_string(),
        "Provisioned"
    );
    // The kubeconfig the core wrote reaches the workload apiserver as kubernetes-admin.
    let kubeconfig = Api::<Secret>::namespaced(client.clone(), NS)
        .get("c1-kubeconfig")
        .await
        .unwrap();
    assert_eq!(kubeconfig.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
    let text = String::from_utf8(kubeconfig.data.unwrap()["value"].0.clone()).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let admin = Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        Api::<Node>::all(admin)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        5
    );

    // Upstream's shape of what a MachineSet stamps out.
    let w = &workers(&client).await[0];
    let set_name = w.labels()["cluster.x-k8s.io/set-name"].clone();
    let set = sets.get(&set_name).await.unwrap();
    assert!(set_name.starts_with("md-0-") && set.labels().contains_key("machine-template-hash"));
    assert_eq!(set.annotations()[capstan_standalone::ANNOTATION_REVISION], "1");
    let dcs: Api<DCSMachine> = Api::namespaced(client.clone(), NS);
    let infra_machine = dcs.get(&w.name_any()).await.unwrap();
    assert_eq!(
        infra_machine.annotations()["cluster.x-k8s.io/cloned-from-name"],
        "worker-a"
    );
    assert_eq!(
        infra_machine.annotations()["cluster.x-k8s.io/cloned-from-groupkind"],
        "DCSMachineTemplate.infrastructure.cluster.x-k8s.io"
    );
    let controller = infra_machine
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .unwrap();
    assert_eq!(
        (controller.kind.as_str(), controller.name.as_str()),
        ("Machine", w.name_any().as_str())
    );
    let config = bootstrap_api(&client).get(&w.name_any()).await.unwrap();
    assert_eq!(config.labels()["role"], "worker", "template labels carried over");
    assert_eq!(
        w.spec.bootstrap.data_secret_name.as_deref(),
        Some(w.name_any().as_str())
    );
    assert_eq!(w.spec.infrastructure_ref.kind, "DCSMachine");
    assert_eq!(
        w.status.as_ref().unwrap().unknown["nodeInfo"]["osImage"],
        "Capstan Test OS",
        "nodeInfo copied from the Node"
    );

    // Idle: no hot loops, nothing is written while nothing changes.
    let before = capi_writes(&client).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let idle_writes = capi_writes(&client).await - before;
    assert_eq!(idle_writes, 0, "an idle cluster is not written to");
    let machine_reconciles = reconciles(&metrics, "machine");
    println!("FIGURE reconciles_per_machine={:.1}", machine_reconciles / 5.0);

    // Scale up to 4, then down to 1.
    let scale = |n: i32| {
        let deployments = deployments.clone();
        async move {
            deployments
                .patch(
                    "md-0",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"replicas": n}})),
                )
                .await
                .unwrap();
        }
    };
    let writes_before = capi_writes(&client).await;
    scale(4).await;
    assert!(workers_settle(&client, 4, "worker-a").await, "scaled to 4");
    let writes_for_two = capi_writes(&client).await - writes_before;
    println!(
        "FIGURE capi_writes_per_machine_created={:.1}",
        writes_for_two as f64 / 2.0
    );
    scale(1).await;
    assert!(workers_settle(&client, 1, "worker-a").await, "scaled to 1");
    assert!(
        wait_for(Duration::from_secs(30), || async {
            sim.state().vms().iter().filter(|v| !v.is_template).count() == 4
        })
        .await,
        "VMs of removed workers are deleted"
    );
    // What happened is told in Events, with upstream's reasons.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NS);
    let reasons = || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|e| {
                e.reason
                    .map(|r| (e.regarding.and_then(|o| o.kind).unwrap_or_default(), r))
            })
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert!(
        wait_for(Duration::from_secs(20), || async {
            let r = reasons().await;
            [
                ("MachineDeployment", "SuccessfulCreate"),
                ("MachineSet", "SuccessfulCreate"),
                ("MachineSet", "SuccessfulDelete"),
                ("Machine", "SuccessfulSetNodeRef"),
                ("Machine", "SuccessfulDeleteNode"),
            ]
            .iter()
            .all(|(k, reason)| r.contains(&(k.to_string(), reason.to_string())))
        })
        .await,
        "{:?}",
        reasons().await
    );
    scale(3).await;
    assert!(workers_settle(&client, 3, "worker-a").await, "scaled to 3");

    // README: a clone left by a crash between creating it and creating its Machine (here: a
    // DCSMachine of the set, owned by it, with no Machine of its name) is deleted.
    let dcs: Api<DCSMachine> = Api::namespaced(client.clone(), NS);
    let sample = dcs
        .get(&workers(&client).await[0].spec.infrastructure_ref.name)
        .await
        .unwrap();
    let mut orphan = sample.clone();
    orphan.metadata = kube::api::ObjectMeta {
        name: Some("md-0-orphan-clone".into()),
        namespace: Some(NS.into()),
        labels: sample.metadata.labels.clone(),
        annotations: sample.metadata.annotations.clone(),
        owner_references: sample.metadata.owner_references.clone(),
        ..Default::default()
    };
    orphan.spec.provider_id = None;
    orphan.status = None;
    dcs.create(&PostParams::default(), &orphan).await.unwrap();
    // Any change to the set makes it reconcile (it also resyncs on its own).
    sets.patch(
        &sets.list(&ListParams::default()).await.unwrap().items[0].name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"poke": "orphan"}}})),
    )
    .await
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || async {
            dcs.get_opt("md-0-orphan-clone").await.unwrap().is_none()
        })
        .await,
        "the orphaned clone is deleted"
    );

    // Roll to a new template, restarting the core in the middle; sample all along.
    let min_ready = Arc::new(AtomicI32::new(i32::MAX));
    let max_live = Arc::new(AtomicI32::new(0));
    let sampling = CancellationToken::new();
    let sampler = {
        let (client, min_ready, max_live, sampling) =
            (client.clone(), min_ready.clone(), max_live.clone(), sampling.clone());
        // Event-driven: every change of a worker Machine is looked at (a timed sampler can
        // miss a short dip below the availability floor).
        tokio::spawn(async move {
            use futures::StreamExt;
            use kube::runtime::{WatchStreamExt, reflector, watcher};
            let api = Api::<Machine>::namespaced(client.clone(), NS);
            let (store, writer) = reflector::store();
            let config = watcher::Config::default().labels("cluster.x-k8s.io/deployment-name=md-0");
            let events = watcher(api, config).default_backoff().reflect(writer);
            futures::pin_mut!(events);
            let mut steps = Vec::new();
            loop {
                let ev = tokio::select! {
                    _ = sampling.cancelled() => break,
                    ev = events.next() => match ev { Some(ev) => ev, None => break },
                };
                // The store fills at the end of the initial list: no sample of a half-read one.
                if matches!(ev, Ok(watcher::Event::Init | watcher::Event::InitApply(_)) | Err(_)) {
                    continue;
                }
                let ws = store.state();
                let live = ws.iter().filter(|m| m.meta().deletion_timestamp.is_none()).count() as i32;
                let r = ws.iter().filter(|m| ready(m)).count() as i32;
                min_ready.fetch_min(r, Ordering::SeqCst);
                max_live.fetch_max(live, Ordering::SeqCst);
                if steps.last() != Some(&(live, r)) {
                    steps.push((live, r));
                }
            }
            steps
        })
    };
    deployments
        .patch(
            "md-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"infrastructureRef": {"name": "worker-b"}}}}})),
        )
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || async {
            sets.list(&ListParams::default()).await.unwrap().items.len() == 2
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    managers.restart_standalone().await;
    assert!(workers_settle(&client, 3, "worker-b").await, "rolled to worker-b");
    sampling.cancel();
    let steps = sampler.await.unwrap();
    println!("FIGURE rollout_steps (live, ready) = {steps:?}");
    assert!(
        min_ready.load(Ordering::SeqCst) >= 3,
        "never below replicas - maxUnavailable: {steps:?}"
    );
    assert!(
        max_live.load(Ordering::SeqCst) <= 4,
        "never above replicas + maxSurge: {steps:?}"
    );
    assert!(
        wait_for(Duration::from_secs(30), || async {
            let list = sets.list(&ListParams::default()).await.unwrap().items;
            list.len() == 1 && list[0].annotations()[capstan_standalone::ANNOTATION_REVISION] == "2"
        })
        .await,
        "the old MachineSet is removed once empty"
    );
    assert_eq!(
        sim.state().vms().iter().filter(|v| !v.is_template).count(),
        6,
        "no extra VMs"
    );

    // Paused: a scale request changes nothing until the Cluster is unpaused.
    clusters
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await
        .unwrap();
    // The deployment has seen the pause before the scale request comes.
    assert!(
        wait_for(Duration::from_secs(30), || async {
            deployments
                .get("md-0")
                .await
                .unwrap()
                .status
                .is_some_and(|s| conditions::is_true(&s.conditions, "Paused"))
        })
        .await
    );
    scale(2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        workers(&client)
            .await
            .iter()
            .filter(|m| m.meta().deletion_timestamp.is_none())
            .count(),
        3
    );
    let set = sets.list(&ListParams::default()).await.unwrap().items.remove(0);
    assert_eq!(set.spec.replicas, Some(3), "the paused MachineSet was not touched");
    clusters
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await
        .unwrap();
    assert!(workers_settle(&client, 2, "worker-b").await, "scaled after unpausing");

    // Deletion removes everything: Machines, sets, deployment, provider objects, secrets, VMs.
    clusters.delete("c1", &DeleteParams::default()).await.unwrap();
    assert!(
        wait_for(Duration::from_secs(120), || async {
            clusters.get_opt("c1").await.unwrap().is_none()
        })
        .await,
        "{:?}",
        clusters.get_opt("c1").await.unwrap().map(|c| c.status)
    );
    assert!(machines.list(&ListParams::default()).await.unwrap().items.is_empty());
    assert!(sets.list(&ListParams::default()).await.unwrap().items.is_empty());
    assert!(deployments.list(&ListParams::default()).await.unwrap().items.is_empty());
    assert!(
        dcs.list(&ListParams::default()).await.unwrap().items.is_empty(),
        "no DCSMachine left"
    );
    assert!(
        wait_for(Duration::from_secs(20), || async {
            bootstrap_api(&client)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
        })
        .await
    );
    let left: Vec<String> = Api::<Secret>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| s.name_any())
        .filter(|n| n != "c1-creds" && n != "c1-ca")
        .collect();
    assert!(left.is_empty(), "secrets left behind: {left:?}");
    assert_eq!(
        sim.state().vms().iter().filter(|v| !v.is_template).count(),
        0,
        "no VM left"
    );

    stop.cancel();
    let _ = managers.dcs.await;
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Benchmark (reported figures, not pass/fail): a MachineDeployment of N workers (default 50,
/// `CAPSTAN_BENCH_MACHINES`) brought up, then left idle. Run with
/// `cargo nextest run -p capstan-e2e --all-features --test standalone_dcs --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly"]
async fn bench_idle_cluster() {
    let n: i32 = std::env::var("CAPSTAN_BENCH_MACHINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let started = std::time::Instant::now();
    let w = World::start(1, n).await;
    let machines: Api<Machine> = Api::namespaced(w.client.clone(), NS);
    let total = n as usize + 1;
    assert!(
        wait_for(Duration::from_secs(600), || async {
            let list = machines.list(&ListParams::default()).await.unwrap().items;
            list.len() == total && list.iter().all(ready)
        })
        .await,
        "all machines Ready"
    );
    let up = started.elapsed();
    let writes = capi_writes(&w.client).await;
    let all_reconciles: f64 = ["cluster", "machine", "machineset", "machinedeployment"]
        .iter()
        .map(|c| reconciles(&w.metrics, c))
        .sum();
    let machine_reconciles = reconciles(&w.metrics, "machine");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let idle = capi_writes(&w.client).await - writes;
    let idle_reconciles = reconciles(&w.metrics, "machine") - machine_reconciles;
    println!("BENCH machines={total}");
    println!("BENCH all_ready_wall_s={:.1}", up.as_secs_f64());
    println!(
        "BENCH capi_and_infra_writes_per_machine={:.1}",
        writes as f64 / total as f64
    );
    println!(
        "BENCH standalone_reconciles_per_machine={:.1}",
        all_reconciles / total as f64
    );
    println!(
        "BENCH machine_reconciles_per_machine={:.1}",
        machine_reconciles / total as f64
    );
    println!("BENCH idle_30s_writes={idle} idle_30s_machine_reconciles={idle_reconciles}");
    w.stop.cancel();
}

/// How many live workers use each DCSMachineTemplate.
async fn workers_by_template(client: &Client) -> BTreeMap<String, usize> {
    let dcs: Api<DCSMachine> = Api::namespaced(client.clone(), NS);
    let mut count = BTreeMap::new();
    for w in workers(client)
        .await
        .iter()
        .filter(|m| m.meta().deletion_timestamp.is_none())
    {
        if let Some(infra) = dcs.get_opt(&w.spec.infrastructure_ref.name).await.unwrap()
            && let Some(t) = infra.annotations().get("cluster.x-k8s.io/cloned-from-name")
        {
            *count.entry(t.clone()).or_insert(0) += 1;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_delete_waits_for_the_user_and_a_paused_deployment_starts_no_rollout() {
    // Kept whole: dropping a part (an apiserver, the simulator) would stop it.
    let w = World::start(0, 2).await;
    let client = w.client.clone();
    let deployments: Api<MachineDeployment> = Api::namespaced(client.clone(), NS);
    let sets: Api<MachineSet> = Api::namespaced(client.clone(), NS);
    let machines: Api<Machine> = Api::namespaced(client.clone(), NS);
    deployments
        .patch(
            "md-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rollout": {"strategy": {"type": "OnDelete", "rollingUpdate": null}}}})),
        )
        .await
        .unwrap();
    assert!(workers_settle(&client, 2, "worker-a").await);

    // Paused: a template change starts nothing.
    deployments
        .patch(
            "md-0",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"paused": true, "template": {"spec": {"infrastructureRef": {"name": "worker-b"}}}}}),
            ),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sets.list(&ListParams::default()).await.unwrap().items.len(),
        1,
        "no new MachineSet while paused"
    );

    // Unpaused, OnDelete: the new MachineSet exists but no Machine is replaced by itself.
    deployments
        .patch(
            "md-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || async {
            sets.list(&ListParams::default()).await.unwrap().items.len() == 2
        })
        .await
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        workers_by_template(&client).await,
        BTreeMap::from([("worker-a".to_string(), 2)])
    );

    // The user deletes old Machines one by one; each is replaced from the new template.
    for (i, victim) in workers(&client).await.iter().map(|m| m.name_any()).enumerate() {
        machines.delete(&victim, &DeleteParams::default()).await.unwrap();
        let expected = if i == 0 {
            BTreeMap::from([("worker-a".to_string(), 1), ("worker-b".to_string(), 1)])
        } else {
            BTreeMap::from([("worker-b".to_string(), 2)])
        };
        assert!(
            wait_for(Duration::from_secs(60), || async {
                workers_by_template(&client).await == expected
            })
            .await,
            "after deleting {victim}: {:?}",
            workers_by_template(&client).await
        );
    }
    assert!(workers_settle(&client, 2, "worker-b").await);
    assert!(
        wait_for(Duration::from_secs(30), || async {
            sets.list(&ListParams::default()).await.unwrap().items.len() == 1
        })
        .await,
        "the emptied old MachineSet goes"
    );

    // `rollout.after`: once that time has passed, Machines made before it are replaced, once.
    let after = k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(3);
    let after_text = after.round(k8s_openapi::jiff::Unit::Second).unwrap().to_string();
    let after = after_text.parse::<k8s_openapi::jiff::Timestamp>().unwrap();
    deployments
        .patch(
            "md-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rollout": {"after": after_text,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}})),
        )
        .await
        .unwrap();
    let before: Vec<String> = workers(&client).await.iter().map(|m| m.name_any()).collect();
    assert!(
        wait_for(Duration::from_secs(90), || async {
            let ws = workers(&client).await;
            ws.len() == 2
                && ws.iter().all(|m| {
                    ready(m)
                        && !before.contains(&m.name_any())
                        && m.meta().creation_timestamp.as_ref().is_some_and(|t| t.0 >= after)
                })
        })
        .await,
        "rolled after {after}"
    );
    let rolled: Vec<String> = workers(&client).await.iter().map(|m| m.name_any()).collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled: Vec<String> = workers(&client).await.iter().map(|m| m.name_any()).collect();
    assert_eq!(settled, rolled, "rolled once, not again");

    // New template labels and annotations reach the Machines in place, without a rollout.
    deployments
        .patch(
            "md-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {
                "labels": {"tier": "gold"}, "annotations": {"example.com/owner": "team-a"}}}}})),
        )
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || async {
            let ws = workers(&client).await;
            ws.len() == 2
                && ws.iter().all(|m| {
                    m.labels().get("tier").map(String::as_str) == Some("gold")
                        && m.annotations().get("example.com/owner").map(String::as_str) == Some("team-a")
                })
        })
        .await,
        "labels propagated"
    );
    let names: Vec<String> = workers(&client).await.iter().map(|m| m.name_any()).collect();
    assert_eq!(names, rolled, "no rollout for metadata");
    assert_eq!(sets.list(&ListParams::default()).await.unwrap().items.len(), 1);
    w.stop.cancel();
}
