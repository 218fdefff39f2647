//! The DCS provider end to end: a real kube-apiserver with the upstream CAPI CRDs, the VRM
//! simulator over real HTTPS, and the test acting as CAPI core (it creates Cluster, Machine and
//! the bootstrap secret, sets owner references and copies the infrastructure flag).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use capstan_api::conditions;
use capstan_api::core::{Cluster, Machine};
use capstan_api::ipam::{IPAddress, IPAddressClaim};
use capstan_dcs::api::{DCSCluster, DCSIPHostnamePool, DCSMachine};
use capstan_e2e::objects::owner_ref;
use capstan_e2e::{TestEnv, wait_for};
use capstan_runtime::metrics::Metrics;
use capstan_runtime::{Provider, ProviderContext, Scope};
use capstan_sim_dcs::{Latency, SimConfig, SimHandle, SimKnobs, Simulator};
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "Sim-Passw0rd!";

fn fast() -> SimConfig {
    SimConfig {
        knobs: SimKnobs {
            latency: Latency::compressed(),
            ..SimKnobs::default()
        },
        ..SimConfig::default()
    }
}

struct World {
    env: TestEnv,
    client: Client,
    /// Shared with a second management cluster in the move test.
    sim: Arc<SimHandle>,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    manager: Option<tokio::task::JoinHandle<Result<(), capstan_runtime::BoxError>>>,
    /// `None`: the core's default (30 minutes).
    operation_timeout: Option<Duration>,
}

impl World {
    async fn start() -> Self {
        Self::start_with(fast()).await
    }

    async fn start_with(config: SimConfig) -> Self {
        let sim = Arc::new(Simulator::start(config).await.unwrap());
        let mut w = Self::management_cluster(sim).await;
        w.start_manager();
        w
    }

    /// Another management cluster (its own API server) in front of the same simulated site,
    /// with no manager running yet.
    async fn management_cluster(sim: Arc<SimHandle>) -> Self {
        let env = TestEnv::start().await.unwrap();
        env.install_crds(&capstan_dcs::api::crds()).await.unwrap();
        let client = env.client().await.unwrap();
        World {
            env,
            client,
            sim,
            shutdown: CancellationToken::new(),
            metrics: Arc::new(Metrics::new()),
            manager: None,
            operation_timeout: None,
        }
    }

    /// Stops the manager as a crash would.
    async fn stop_manager(&mut self) {
        if let Some(task) = self.manager.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Restarts the manager with another operation timeout.
    async fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = Some(timeout);
        self.crash_and_restart().await;
        self
    }

    /// Runs the provider's controllers, as a manager process would.
    fn start_manager(&mut self) {
        let ctx = ProviderContext {
            client: self.client.clone(),
            scope: Scope {
                namespace: Some("default".into()),
                watch_filter: None,
            },
            metrics: self.metrics.clone(),
            concurrency: Default::default(),
            shutdown: self.shutdown.clone(),
        };
        let mut provider = capstan_dcs::lifecycle_provider()
            .with_poll_interval(Duration::from_millis(200))
            .with_resync_interval(Duration::from_secs(2))
            .with_backoff(Duration::from_millis(100), Duration::from_secs(3));
        if let Some(t) = self.operation_timeout {
            provider = provider.with_operation_timeout(t);
        }
        self.manager = Some(tokio::spawn(provider.run(ctx)));
    }

    /// Kills the manager wherever it is (its futures are dropped mid-flight, as in a crash) and
    /// starts a new one.
    async fn crash_and_restart(&mut self) {
        self.stop_manager().await;
        self.start_manager();
    }

    /// Pauses or unpauses the Cluster, as `clusterctl move` does around the copy.
    async fn pause(&self, cluster: &str, paused: bool) {
        Api::<Cluster>::namespaced(self.client.clone(), "default")
            .patch(
                cluster,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"paused": paused}})),
            )
            .await
            .unwrap();
    }

    /// A machine that takes its address from the pool `pool`.
    async fn pool_machine(&self, cluster: &str, name: &str, pool: Value) {
        // Without bootstrap data until the pool reference is in: nothing is cloned before.
        self.machine_with(cluster, name, "ubuntu-2204-tmpl", None, false).await;
        Api::<DCSMachine>::namespaced(self.client.clone(), "default")
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"ipHostnamePoolRef": pool, "placement": {"host": "cnahost-01"}}})),
            )
            .await
            .unwrap();
        Api::<Machine>::namespaced(self.client.clone(), "default")
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"bootstrap": {"dataSecretName": format!("{name}-boot")}}})),
            )
            .await
            .unwrap();
    }

    /// The first address a machine reports, once it is provisioned.
    async fn provisioned_address(&self, name: &str) -> Option<String> {
        let m = self.dcs_machine(name).await?;
        provisioned(&m).then_some(())?;
        m.status?.addresses?.first().map(|a| a.address.clone())
    }

    async fn create<K>(&self, obj: Value) -> K
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        capstan_e2e::objects::create(&self.client, obj).await
    }

    /// A cluster the way CAPI core leaves it: Cluster → DCSCluster (owned), credentials secret.
    async fn cluster(&self, name: &str, password: &str) {
        self.cluster_at(name, self.sim.url().as_ref(), password).await
    }

    /// [`World::cluster`] with the credentials Secret's `endpoint` value given.
    async fn cluster_at(&self, name: &str, endpoint: &str, password: &str) {
        self.create::<Secret>(json!({
            "metadata": {"name": format!("{name}-creds")},
            "stringData": {"endpoint": endpoint, "authUser": "capstan", "authKey": password}
        }))
        .await;
        let cluster: Cluster = self
            .create(json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
                "metadata": {"name": name},
                "spec": {
                    "controlPlaneEndpoint": {"host": "10.0.0.10", "port": 6443},
                    "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DCSCluster", "name": name}
                }
            }))
            .await;
        self.create::<DCSCluster>(json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DCSCluster",
            "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": name},
                         "ownerReferences": [owner_ref(&cluster)]},
            "spec": {
                "credentialsSecretRef": {"name": format!("{name}-creds")},
                "controlPlaneEndpoint": {"host": "10.0.0.10", "port": 6443},
                "tls": {"caBundle": self.sim.ca_pem()}
            }
        }))
        .await;
    }

    /// Copies DCSCluster provisioned into the Cluster, as core does.
    async fn mark_infrastructure_provisioned(&self, name: &str) {
        let clusters: Api<Cluster> = Api::namespaced(self.client.clone(), "default");
        clusters
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"initialization": {"infrastructureProvisioned": true}}})),
            )
            .await
            .unwrap();
    }

    /// Machine + bootstrap secret + DCSMachine owned by the Machine.
    async fn machine(&self, cluster: &str, name: &str, template: &str, ip: Option<&str>) -> DCSMachine {
        self.machine_with(cluster, name, template, ip, true).await
    }

    /// [`World::machine`]; without `data` the Machine has no `dataSecretName` yet (the secret exists).
    async fn machine_with(
        &self,
        cluster: &str,
        name: &str,
        template: &str,
        ip: Option<&str>,
        data: bool,
    ) -> DCSMachine {
        self.create::<Secret>(json!({
            "metadata": {"name": format!("{name}-boot"), "labels": {"cluster.x-k8s.io/cluster-name": cluster}},
            "type": "cluster.x-k8s.io/secret",
            "stringData": {"value": format!("#cloud-config\nhostname: {name}\n"), "format": "cloud-config"}
        }))
        .await;
        let machine: Machine = self
            .create(json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": cluster}},
                "spec": {
                    "clusterName": cluster,
                    "bootstrap": if data { json!({"dataSecretName": format!("{name}-boot")}) } else { json!({}) },
                    "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DCSMachine", "name": name}
                }
            }))
            .await;
        let mut nic = json!({"dvSwitch": "ManagementDVS", "portGroup": "VLAN-329"});
        if let Some(ip) = ip {
            nic["ipv4"] = json!({"address": ip, "prefixLength": 24, "gateway": "10.20.0.1"});
        }
        self.create(json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DCSMachine",
            "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": cluster},
                         "ownerReferences": [owner_ref(&machine)]},
            "spec": {"template": template, "cpu": 2, "memoryMiB": 4096, "nics": [nic]}
        }))
        .await
    }

    async fn dcs_machine(&self, name: &str) -> Option<DCSMachine> {
        Api::<DCSMachine>::namespaced(self.client.clone(), "default")
            .get_opt(name)
            .await
            .unwrap()
    }

    async fn dcs_cluster(&self, name: &str) -> DCSCluster {
        Api::<DCSCluster>::namespaced(self.client.clone(), "default")
            .get(name)
            .await
            .unwrap()
    }

    /// The first Event with `reason`, if any.
    async fn event(&self, reason: &str) -> Option<Event> {
        self.event_saying(reason, "").await
    }

    /// The first Event with `reason` whose message contains `text`.
    async fn event_saying(&self, reason: &str, text: &str) -> Option<Event> {
        Api::<Event>::namespaced(self.client.clone(), "default")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(reason) && e.message.as_deref().unwrap_or_default().contains(text))
    }

    /// Waits until the simulator's VM `id` is in `status`.
    async fn vm_reaches(&self, id: &str, status: &str) -> bool {
        wait_for(Duration::from_secs(60), || async {
            self.sim.state().vms().iter().any(|v| v.id == id && v.status == status)
        })
        .await
    }

    async fn machine_reason(&self, name: &str) -> Option<String> {
        self.machine_condition(name).await.map(|c| c.reason)
    }

    async fn machine_condition(&self, name: &str) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        let m = self.dcs_machine(name).await?;
        conditions::get(&m.status?.conditions, "InstanceProvisioned").cloned()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn provisioned(m: &DCSMachine) -> bool {
    m.status
        .as_ref()
        .and_then(|s| s.initialization.as_ref())
        .and_then(|i| i.provisioned)
        .unwrap_or(false)
}

#[tokio::test]
async fn machine_provisions_deletes_and_reports_out_of_band_deletion() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
    let w = World::start().await;
    w.cluster("c1", PASSWORD).await;
    assert!(
        wait_for(Duration::from_secs(30), || async {
            w.dcs_cluster("c1")
                .await
                .status
                .and_then(|s| s.initialization)
                .and_then(|i| i.provisioned)
                == Some(true)
        })
        .await,
        "{:?}",
        w.dcs_cluster("c1").await.status
    );
    let m1 = w.machine("c1", "m1", "ubuntu-2204-tmpl", Some("10.20.0.21")).await;
    // The cluster infrastructure flag is not set yet: the machine waits, no VM is made.
    assert!(
        wait_for(Duration::from_secs(20), || async {
            w.machine_reason("m1").await.as_deref() == Some("WaitingForClusterInfrastructure")
        })
        .await
    );
    assert!(w.sim.state().vm_by_name("m1").is_none());
    w.mark_infrastructure_provisioned("c1").await;

    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.dcs_machine("m1").await.is_some_and(|m| provisioned(&m))
        })
        .await,
        "{:?}",
        w.dcs_machine("m1").await.map(|m| m.status)
    );
    let m = w.dcs_machine("m1").await.unwrap();
    let vm = w.sim.state().vm_by_name("m1").expect("the VM exists");
    assert_eq!(
        vm.external_uuid.as_deref(),
        m1.metadata.uid.as_deref(),
        "the VM carries the DCSMachine's UID"
    );
    assert_eq!(
        m.spec.provider_id.as_deref(),
        Some(format!("dcs://{}", vm.uuid).as_str())
    );
    let st = m.status.clone().unwrap();
    assert_eq!(st.ready, Some(true));
    let addrs: Vec<&str> = st.addresses.iter().flatten().map(|a| a.address.as_str()).collect();
    assert!(addrs.contains(&"10.20.0.21"), "{addrs:?}");
    assert_eq!(vm.status, "running");
    // The bootstrap ISO was attached before boot and is taken away once provisioned (the
    // detach is the last operation the machine has in flight).
    assert!(
        wait_for(Duration::from_secs(10), || async {
            w.sim.state().vm_by_name("m1").unwrap().cdrom.is_none()
                && w.dcs_machine("m1")
                    .await
                    .and_then(|m| m.status)
                    .is_some_and(|s| s.operation.is_none())
        })
        .await
    );
    assert_eq!(
        w.sim.state().call_count("upload_iso"),
        1,
        "{:?}",
        w.sim.state().call_counts()
    );
    assert_eq!(w.sim.state().login_count(), 1, "one session for everything");
    let metrics = w.metrics.encode();
    assert!(
        metrics.contains(r#"capstan_cloud_api_calls_total{provider="dcs",operation="clone_vm"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"capstan_reconcile_total{controller="dcsmachine"}"#),
        "{metrics}"
    );

    // Paused: no cloud calls at all.
    let clusters: Api<Cluster> = Api::namespaced(w.client.clone(), "default");
    clusters
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || async {
            w.dcs_machine("m1")
                .await
                .and_then(|m| m.status)
                .is_some_and(|s| conditions::is_true(&s.conditions, "Paused"))
        })
        .await
    );
    // Reconciles already under way when the pause landed may still finish their calls: wait
    // until the count stands still for a second, then watch a window with nothing in it.
    let calls = || w.sim.state().call_counts().values().sum::<u64>();
    let mut last = calls();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = calls();
        if now == last {
            break;
        }
        last = now;
    }
    let before: u64 = w.sim.state().call_counts().values().sum();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after: u64 = w.sim.state().call_counts().values().sum();
    assert_eq!(before, after, "no VRM calls while paused");
    clusters
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await
        .unwrap();

    // Deleted behind our back: reported, not silently recreated.
    let vm_uri = format!(
        "/service/sites/3F7B07E2/vms/{}",
        w.sim.state().vm_by_name("m1").unwrap().id
    );
    delete_vm_out_of_band(&w, &vm_uri).await;
    assert!(
        wait_for(Duration::from_secs(30), || async {
            w.machine_reason("m1").await.as_deref() == Some("InstanceNotFound")
        })
        .await,
        "{:?}",
        w.dcs_machine("m1").await.map(|m| m.status)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(w.sim.state().vm_by_name("m1").is_none(), "not recreated");

    // A second machine: delete removes the VM, then the finalizer.
    w.machine("c1", "m2", "ubuntu-2204-tmpl", None).await;
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.dcs_machine("m2").await.is_some_and(|m| provisioned(&m))
        })
        .await
    );
    let dhcp = w.dcs_machine("m2").await.unwrap().status.unwrap().addresses.unwrap();
    assert!(
        dhcp.iter().any(|a| a.address.starts_with("192.168.50.")),
        "DHCP address: {dhcp:?}"
    );
    Api::<DCSMachine>::namespaced(w.client.clone(), "default")
        .delete("m2", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || async {
            w.dcs_machine("m2").await.is_none()
        })
        .await
    );
    assert!(w.sim.state().vm_by_name("m2").is_none(), "the VM is gone");
}

#[tokio::test]
async fn pool_addresses_are_handed_out_once_and_given_back() {
    let w = World::start_with(fast()).await;
    w.cluster("c1", PASSWORD).await;
    w.create::<DCSIPHostnamePool>(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DCSIPHostnamePool",
        "metadata": {"name": "nodes"},
        "spec": {"entries": [
            {"address": "10.30.0.11", "prefixLength": 24, "gateway": "10.30.0.1", "hostname": "node-a"},
            {"address": "10.30.0.12", "prefixLength": 24, "gateway": "10.30.0.1", "hostname": "node-b"}
        ]}
    }))
    .await;
    let api: Api<DCSMachine> = Api::namespaced(w.client.clone(), "default");
    for name in ["p0", "p1", "p2"] {
        w.pool_machine("c1", name, json!({"name": "nodes"})).await;
    }
    // Only now may machines be created, all of them with the pool reference.
    w.mark_infrastructure_provisioned("c1").await;
    // Two entries, three machines: two provision with pool addresses, one waits and says why.
    let address = |m: &DCSMachine| {
        m.status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.first())
            .map(|a| a.address.clone())
    };
    assert!(
        wait_for(Duration::from_secs(60), || async {
            let mut done = 0;
            let mut exhausted = 0;
            for name in ["p0", "p1", "p2"] {
                let m = w.dcs_machine(name).await.unwrap();
                done += provisioned(&m) as usize;
                exhausted += w.machine_condition(name).await.is_some_and(|c| {
                    c.reason == "WaitingForIPAllocation" && c.message.contains("has no free entry (2 of 2 allocated)")
                }) as usize;
            }
            done == 2 && exhausted == 1
        })
        .await
    );
    let mut holders = BTreeMap::new();
    for name in ["p0", "p1", "p2"] {
        let m = w.dcs_machine(name).await.unwrap();
        if let Some(a) = address(&m).filter(|_| provisioned(&m)) {
            let vm = w.sim.state().vm_by_name(name).unwrap();
            let expected_host = if a == "10.30.0.11" { "node-a" } else { "node-b" };
            assert_eq!(
                vm.hostname.as_deref(),
                Some(expected_host),
                "hostname from the pool entry"
            );
            holders.insert(a, name);
        }
    }
    assert_eq!(
        holders.keys().cloned().collect::<Vec<_>>(),
        ["10.30.0.11", "10.30.0.12"]
    );
    let waiting = ["p0", "p1", "p2"]
        .into_iter()
        .find(|n| !holders.values().any(|h| h == n))
        .unwrap();
    assert!(w.sim.state().vm_by_name(waiting).is_none(), "no VM without an address");

    // Deleting a holder gives its entry to the waiting machine.
    let freed = holders["10.30.0.12"];
    api.delete(freed, &DeleteParams::default()).await.unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || async {
            let m = w.dcs_machine(waiting).await.unwrap();
            provisioned(&m) && address(&m).as_deref() == Some("10.30.0.12")
        })
        .await,
        "{:?}",
        w.dcs_machine(waiting).await.map(|m| m.status)
    );
    for name in ["p0", "p1", "p2"] {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    let pools: Api<DCSIPHostnamePool> = Api::namespaced(w.client.clone(), "default");
    let claims: Api<IPAddressClaim> = Api::namespaced(w.client.clone(), "default");
    let addresses: Api<IPAddress> = Api::namespaced(w.client.clone(), "default");
    assert!(
        wait_for(Duration::from_secs(60), || async {
            api.list(&ListParams::default()).await.unwrap().items.is_empty()
                && claims.list(&ListParams::default()).await.unwrap().items.is_empty()
                && addresses.list(&ListParams::default()).await.unwrap().items.is_empty()
                && pools
                    .get("nodes")
                    .await
                    .unwrap()
                    .status
                    .unwrap_or_default()
                    .allocated_count
                    == Some(0)
        })
        .await,
        "every entry is given back"
    );
}

/// A small deterministic PRNG, so a failing trial can be replayed.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 33
}

fn vms_for(w: &World, uid: &str) -> usize {
    w.sim
        .state()
        .vms()
        .iter()
        .filter(|v| !v.is_template && v.external_uuid.as_deref() == Some(uid))
        .count()
}

#[tokio::test]
async fn crashes_at_random_points_never_duplicate_or_leak_vms() {
    let mut w = World::start().await;
    w.cluster("c1", PASSWORD).await;
    assert!(
        wait_for(Duration::from_secs(30), || async {
            w.dcs_cluster("c1").await.status.and_then(|s| s.ready) == Some(true)
        })
        .await
    );
    w.mark_infrastructure_provisioned("c1").await;
    let mut seed = 0x00c0_ffee_u64;
    let trials = 20;
    let mut uids = Vec::new();
    for i in 0..trials {
        let m = w.machine("c1", &format!("crash-{i}"), "ubuntu-2204-tmpl", None).await;
        uids.push(m.metadata.uid.unwrap());
        // Somewhere in find → clone → attach → start → running.
        tokio::time::sleep(Duration::from_millis(lcg(&mut seed) % 1500)).await;
        w.crash_and_restart().await;
    }
    assert!(
        wait_for(Duration::from_secs(120), || async {
            let mut all = true;
            for i in 0..trials {
                all &= w
                    .dcs_machine(&format!("crash-{i}"))
                    .await
                    .is_some_and(|m| provisioned(&m));
            }
            all
        })
        .await,
        "every machine provisions despite the crashes"
    );
    for uid in &uids {
        assert_eq!(vms_for(&w, uid), 1, "exactly one VM for machine {uid}");
    }
    assert_eq!(w.sim.state().vms().iter().filter(|v| !v.is_template).count(), trials);

    // Delete everything while crashing some more: nothing may be left behind.
    let api: Api<DCSMachine> = Api::namespaced(w.client.clone(), "default");
    for i in 0..trials {
        api.delete(&format!("crash-{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(lcg(&mut seed) % 1000)).await;
        w.crash_and_restart().await;
    }
    assert!(
        wait_for(Duration::from_secs(120), || async {
            api.list(&ListParams::default()).await.unwrap().items.is_empty()
        })
        .await,
        "every DCSMachine goes"
    );
    let left: Vec<String> = w
        .sim
        .state()
        .vms()
        .into_iter()
        .filter(|v| !v.is_template)
        .map(|v| v.name)
        .collect();
    assert!(left.is_empty(), "orphaned VMs: {left:?}");
}

#[tokio::test]
async fn injected_errors_and_the_task_limit_are_ridden_out() {
    let mut config = fast();
    config.knobs.error_rate = 0.2;
    config.knobs.max_concurrent_tasks = Some(1);
    let w = World::start_with(config).await;
    w.cluster("c1", PASSWORD).await;
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.dcs_cluster("c1").await.status.and_then(|s| s.ready) == Some(true)
        })
        .await
    );
    w.mark_infrastructure_provisioned("c1").await;
    for i in 0..4 {
        w.machine("c1", &format!("flaky-{i}"), "ubuntu-2204-tmpl", None).await;
    }
    assert!(
        wait_for(Duration::from_secs(90), || async {
            let mut all = true;
            for i in 0..4 {
                all &= w
                    .dcs_machine(&format!("flaky-{i}"))
                    .await
                    .is_some_and(|m| provisioned(&m));
            }
            all
        })
        .await,
        "all machines provision through 5xx answers and the concurrent-task limit"
    );
    assert_eq!(
        w.sim.state().vms().iter().filter(|v| !v.is_template).count(),
        4,
        "no duplicates"
    );
    let metrics = w.metrics.encode();
    assert!(
        metrics.contains(r#"class="retryable""#),
        "errors were injected and classified retryable:\n{metrics}"
    );
}

async fn delete_vm_out_of_band(w: &World, vm_uri: &str) {
    use capstan_dcs::{DcsClient, DcsConfig};
    let mut config = DcsConfig::new(w.sim.url().clone(), "capstan", PASSWORD);
    config.ca_bundle_pem = Some(w.sim.ca_pem().as_bytes().to_vec());
    let client = DcsClient::new(config).unwrap();
    client
        .power_off(vm_uri, Duration::from_secs(5), Duration::from_millis(100))
        .await
        .unwrap();
    let task = client.delete_vm(vm_uri).await.unwrap();
    client
        .wait_task(&task, Duration::from_millis(100), Duration::from_secs(10))
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_credentials_and_unknown_template_are_conditions_and_secrets_stay_secret() {
    let w = World::start().await;
    let wrong = "Not-The-Passw0rd-42";
    w.cluster("bad", wrong).await;
    assert!(
        wait_for(Duration::from_secs(30), || async {
            conditions::get(
                &w.dcs_cluster("bad").await.status.unwrap_or_default().conditions,
                "Ready",
            )
            .is_some_and(|c| c.reason == "AuthenticationFailed")
        })
        .await,
        "{:?}",
        w.dcs_cluster("bad").await.status
    );

    w.cluster("good", PASSWORD).await;
    assert!(
        wait_for(Duration::from_secs(30), || async {
            w.dcs_cluster("good").await.status.and_then(|s| s.ready) == Some(true)
        })
        .await
    );
    w.mark_infrastructure_provisioned("good").await;
    w.machine("good", "nope", "no-such-template", None).await;
    assert!(
        wait_for(Duration::from_secs(30), || async {
            w.machine_reason("nope").await.as_deref() == Some("TemplateNotFound")
        })
        .await,
        "{:?}",
        w.dcs_machine("nope").await.map(|m| m.status)
    );
    assert!(w.sim.state().vms().iter().all(|v| v.is_template), "no VM was created");

    // Issue 10 §1: the endpoint value of the Secret is never echoed, whether it is no URL at
    // all or a URL with credentials in it.
    let leaky_url = "https://capstan:Leaky-Pa55@vrm.example:7443";
    let not_a_url = "Leaky-Value-7 is no URL";
    w.cluster_at("userinfo", leaky_url, PASSWORD).await;
    w.cluster_at("garbage", not_a_url, PASSWORD).await;
    for (name, says) in [("userinfo", "carries credentials"), ("garbage", "is not a URL")] {
        assert!(
            wait_for(Duration::from_secs(30), || async {
                conditions::get(
                    &w.dcs_cluster(name).await.status.unwrap_or_default().conditions,
                    "Ready",
                )
                .is_some_and(|c| c.status == "False" && c.message.contains(says))
            })
            .await,
            "{name}: {:?}",
            w.dcs_cluster(name).await.status
        );
    }

    // Neither password nor endpoint value appears in any status or event.
    let everything = format!(
        "{:?} {:?} {:?} {:?} {:?}",
        w.dcs_cluster("userinfo").await.status,
        w.dcs_cluster("garbage").await.status,
        w.dcs_cluster("bad").await.status,
        w.dcs_machine("nope").await.map(|m| m.status),
        Api::<Event>::namespaced(w.client.clone(), "default")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    );
    for secret in [wrong, PASSWORD, "Leaky-Pa55", "Leaky-Value-7"] {
        assert!(!everything.contains(secret), "{secret:?} leaked into status or events");
    }
    let _ = BTreeMap::<String, String>::new();
    let _ = w.env.url();
    let _ = w.dcs_cluster("bad").await.name_any();
}

/// Issue 10 §3: a Machine phase that a newer Cluster API writes (here added to the Machine CRD's
/// enum, as a new release would) used to fail typed decoding and wedge the Machine watch of every
/// controller: a DCSMachine waiting for its Machine's bootstrap data was never woken. Now the odd
/// value is kept as is and everything goes on.
#[tokio::test]
async fn a_machine_phase_from_a_newer_cluster_api_stops_nothing() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let w = World::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(w.client.clone());
    let mut crd = crds.get("machines.cluster.x-k8s.io").await.unwrap();
    for v in &mut crd.spec.versions {
        let status = &mut v
            .schema
            .as_mut()
            .unwrap()
            .open_api_v3_schema
            .as_mut()
            .unwrap()
            .properties
            .as_mut()
            .unwrap()
            .get_mut("status")
            .unwrap();
        let phase = status.properties.as_mut().unwrap().get_mut("phase").unwrap();
        phase
            .enum_
            .as_mut()
            .unwrap()
            .push(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON(json!("Hibernating")));
    }
    crds.replace("machines.cluster.x-k8s.io", &Default::default(), &crd)
        .await
        .unwrap();

    w.cluster("c1", PASSWORD).await;
    w.mark_infrastructure_provisioned("c1").await;
    w.machine("c1", "odd", "ubuntu-2204-tmpl", None).await;
    w.machine_with("c1", "even", "ubuntu-2204-tmpl", None, false).await;
    let machines: Api<Machine> = Api::namespaced(w.client.clone(), "default");
    // The CRD change takes a moment to reach the validating schema.
    assert!(
        wait_for(Duration::from_secs(30), || async {
            machines
                .patch_status(
                    "odd",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"phase": "Hibernating"}})),
                )
                .await
                .is_ok()
        })
        .await
    );
    // The other Machine gains its data only now: its DCSMachine hears of it through the watch.
    machines
        .patch(
            "even",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"bootstrap": {"dataSecretName": "even-boot"}}})),
        )
        .await
        .unwrap();
    for name in ["even", "odd"] {
        assert!(
            wait_for(Duration::from_secs(60), || async {
                w.dcs_machine(name).await.as_ref().is_some_and(provisioned)
            })
            .await,
            "{name}: {:?}",
            w.dcs_machine(name).await.map(|m| m.status)
        );
    }
    let odd = machines.get("odd").await.unwrap();
    assert_eq!(
        odd.status.and_then(|s| s.phase),
        Some(capstan_api::core::MachinePhase::Other("Hibernating".into())),
        "kept as written"
    );
}

/// Issue 10 §3: an InfraMachine whose owner Machine is already gone still deletes its VM (the
/// Cluster is found through its cluster-name label) instead of hanging on its finalizer.
#[tokio::test]
async fn a_machine_deleted_before_its_infra_machine_still_frees_the_vm() {
    let w = World::start().await;
    w.cluster("c1", PASSWORD).await;
    w.mark_infrastructure_provisioned("c1").await;
    let m = w.machine("c1", "lonely", "ubuntu-2204-tmpl", None).await;
    let uid = m.metadata.uid.clone().unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.dcs_machine("lonely").await.as_ref().is_some_and(provisioned)
        })
        .await
    );
    assert_eq!(vms_for(&w, &uid), 1);
    let machines: Api<Machine> = Api::namespaced(w.client.clone(), "default");
    machines.delete("lonely", &DeleteParams::default()).await.unwrap();
    let dcs_machines: Api<DCSMachine> = Api::namespaced(w.client.clone(), "default");
    dcs_machines.delete("lonely", &DeleteParams::default()).await.unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.dcs_machine("lonely").await.is_none()
        })
        .await,
        "{:?}",
        w.dcs_machine("lonely").await.map(|m| m.status)
    );
    assert_eq!(vms_for(&w, &uid), 0, "the VM went with it");
}

/// Issue 10 §1: the bootstrap ISO (join token, and on control planes the cluster's private keys)
/// does not outlive provisioning. A detach that fails once is retried until done; the uploaded
/// image is deleted from VRM storage; a VM stopped and started again boots without it.
#[tokio::test]
async fn bootstrap_iso_is_detached_and_deleted_even_after_a_failure_and_never_comes_back() {
    let w = World::start().await;
    w.sim.state().update_knobs(|k| {
        k.fail_next.insert("detach_cdrom".into(), 1);
    });
    w.cluster("c1", PASSWORD).await;
    w.mark_infrastructure_provisioned("c1").await;
    let m = w.machine("c1", "iso", "ubuntu-2204-tmpl", None).await;
    let uid = m.metadata.uid.clone().unwrap();
    let cleaned = |m: &DCSMachine| {
        conditions::is_true(
            &m.status.as_ref().and_then(|s| s.conditions.clone()),
            "BootstrapDataCleanedUp",
        )
    };
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.dcs_machine("iso")
                .await
                .as_ref()
                .is_some_and(|m| provisioned(m) && cleaned(m))
        })
        .await,
        "{:?}",
        w.dcs_machine("iso").await.map(|m| m.status)
    );
    assert!(
        w.sim.state().call_count("detach_cdrom") >= 2,
        "the failed detach was retried"
    );
    let vm = w
        .sim
        .state()
        .vms()
        .into_iter()
        .find(|v| v.external_uuid.as_deref() == Some(&uid))
        .unwrap();
    assert_eq!(vm.cdrom, None, "nothing in the drive");
    assert!(
        !w.sim.state().uploaded_images().iter().any(|(id, _)| *id == vm.id),
        "no uploaded image left for a provisioned machine: {:?}",
        w.sim.state().uploaded_images()
    );
    assert!(
        w.event("CleanupFailed").await.is_some(),
        "the failed attempt was reported"
    );

    // Stopped by hand, started by the core again: no second upload, nothing attached.
    let uploads_before = w.sim.state().call_count("apply_upload");
    let mut cfg = capstan_dcs::DcsConfig::new(w.sim.url().clone(), "capstan", PASSWORD);
    cfg.ca_bundle_pem = Some(w.sim.ca_pem().as_bytes().to_vec());
    let client = capstan_dcs::DcsClient::new(cfg).unwrap();
    client
        .stop_vm(&vm.id, capstan_dcs::client::StopMode::Force)
        .await
        .unwrap();
    assert!(w.vm_reaches(&vm.id, "stopped").await);
    assert!(
        w.vm_reaches(&vm.id, "running").await,
        "the core starts the stopped VM again"
    );
    let vm = w.sim.state().vms().into_iter().find(|v| v.id == vm.id).unwrap();
    assert_eq!(vm.cdrom, None, "the restarted VM has no bootstrap volume");
    assert_eq!(
        w.sim.state().call_count("apply_upload"),
        uploads_before,
        "nothing uploaded again"
    );
}

/// Issue 10 §2: the credentials Secret carries an owner reference to its DCSCluster and the
/// clusterctl move label, so `clusterctl move` takes it along with the cluster.
#[tokio::test]
async fn credentials_secret_moves_with_its_cluster() {
    let w = World::start().await;
    w.cluster("c1", PASSWORD).await;
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), "default");
    let dcs_cluster = w.dcs_cluster("c1").await;
    assert!(
        wait_for(Duration::from_secs(30), || async {
            let s = secrets.get("c1-creds").await.unwrap();
            let owned = s.metadata.owner_references.unwrap_or_default().iter().any(|o| {
                o.kind == "DCSCluster"
                    && Some(&o.uid) == dcs_cluster.metadata.uid.as_ref()
                    && o.controller != Some(true)
            });
            owned
                && s.metadata
                    .labels
                    .unwrap_or_default()
                    .contains_key("clusterctl.cluster.x-k8s.io/move")
        })
        .await,
        "{:?}",
        secrets.get("c1-creds").await.unwrap().metadata
    );
}

/// Issue 10 §2: a cloud task that never finishes used to keep the machine Provisioning for ever
/// (`startedAt` was never read). Past the operation timeout it is reported and given up on.
#[tokio::test]
async fn a_hung_clone_times_out_with_a_condition_and_an_event() {
    let mut config = fast();
    config.knobs.latency.clone = Duration::from_secs(3600);
    let w = World::start_with(config)
        .await
        .with_operation_timeout(Duration::from_secs(2))
        .await;
    w.cluster("c1", PASSWORD).await;
    w.mark_infrastructure_provisioned("c1").await;
    w.machine("c1", "hung", "ubuntu-2204-tmpl", None).await;
    // The condition says so until the next look at the instance; the Event stays.
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.event("OperationTimedOut").await.is_some()
        })
        .await,
        "{:?}",
        w.dcs_machine("hung").await.map(|m| m.status)
    );
    let note = w.event("OperationTimedOut").await.unwrap().message.unwrap_or_default();
    assert!(
        note.contains("Create operation") && note.contains("did not finish within 2s"),
        "{note}"
    );
    let m = w.dcs_machine("hung").await.unwrap();
    // Given up on, not forgotten: one VM only, found again by its identity.
    assert_eq!(vms_for(&w, m.metadata.uid.as_deref().unwrap()), 1);
}

/// Issue 10 §5: on VRM a failed clone leaves a broken VM with our identity behind. The core
/// deletes an instance that broke before it ever ran and creates it again; nothing leaks.
#[tokio::test]
async fn a_failed_clone_is_cleaned_up_and_created_again() {
    let w = World::start().await;
    w.sim.state().update_knobs(|k| k.task_failure_rate = 1.0);
    w.cluster("c1", PASSWORD).await;
    w.mark_infrastructure_provisioned("c1").await;
    let m = w.machine("c1", "phoenix", "ubuntu-2204-tmpl", None).await;
    let uid = m.metadata.uid.clone().unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.event_saying("DeletingBrokenInstance", "before it ever ran")
                .await
                .is_some()
        })
        .await,
        "{:?}",
        w.dcs_machine("phoenix").await.map(|m| m.status)
    );
    w.sim.state().update_knobs(|k| k.task_failure_rate = 0.0);
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.dcs_machine("phoenix").await.as_ref().is_some_and(provisioned)
        })
        .await,
        "{:?}",
        w.dcs_machine("phoenix").await.map(|m| m.status)
    );
    assert_eq!(vms_for(&w, &uid), 1, "the broken VM went, one good one is left");
    assert!(w.sim.state().vms().iter().all(|v| v.status != "unknown"));
}

/// Issue 10 §5: VRM forgets finished tasks; a task that is no longer known leaves the decision
/// to the instance's state, and machines still provision.
#[tokio::test]
async fn forgotten_tasks_leave_the_decision_to_the_instance_state() {
    let mut config = fast();
    config.knobs.task_retention = Duration::ZERO;
    let w = World::start_with(config).await;
    w.cluster("c1", PASSWORD).await;
    w.mark_infrastructure_provisioned("c1").await;
    w.machine("c1", "amnesia", "ubuntu-2204-tmpl", None).await;
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.dcs_machine("amnesia").await.as_ref().is_some_and(provisioned)
        })
        .await,
        "{:?}",
        w.dcs_machine("amnesia").await.map(|m| m.status)
    );
    assert!(w.sim.state().call_count("get_task") > 0);
}

/// README "The DCS provider": `insecureSkipVerify` (only when set), `userType` and `site` from the
/// credentials Secret, `systemDiskGiB`, `dataDisks` and `placement.cluster` reach the VRM.
#[tokio::test]
async fn credentials_options_disks_and_placement_reach_the_vrm() {
    let w = World::start().await;
    w.create::<Secret>(json!({
        "metadata": {"name": "opts-creds"},
        "stringData": {"endpoint": w.sim.url().to_string(), "authUser": "capstan", "authKey": PASSWORD,
                       "userType": "domain", "site": "3F7B07E2"}
    }))
    .await;
    let cluster: Cluster = w
        .create(json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "metadata": {"name": "opts"},
            "spec": {"controlPlaneEndpoint": {"host": "10.0.0.10", "port": 6443},
                     "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DCSCluster", "name": "opts"}}
        }))
        .await;
    // No CA bundle: without insecureSkipVerify the simulator's certificate would be refused.
    w.create::<DCSCluster>(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DCSCluster",
        "metadata": {"name": "opts", "labels": {"cluster.x-k8s.io/cluster-name": "opts"}, "ownerReferences": [owner_ref(&cluster)]},
        "spec": {"credentialsSecretRef": {"name": "opts-creds"}, "controlPlaneEndpoint": {"host": "10.0.0.10", "port": 6443},
                 "tls": {"insecureSkipVerify": true}}
    }))
    .await;
    w.mark_infrastructure_provisioned("opts").await;
    w.create::<Secret>(json!({
        "metadata": {"name": "disky-boot", "labels": {"cluster.x-k8s.io/cluster-name": "opts"}},
        "type": "cluster.x-k8s.io/secret",
        "stringData": {"value": "#cloud-config\n", "format": "cloud-config"}
    }))
    .await;
    let machine: Machine = w
        .create(json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
            "metadata": {"name": "disky", "labels": {"cluster.x-k8s.io/cluster-name": "opts"}},
            "spec": {"clusterName": "opts", "bootstrap": {"dataSecretName": "disky-boot"},
                     "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DCSMachine", "name": "disky"}}
        }))
        .await;
    w.create::<DCSMachine>(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DCSMachine",
        "metadata": {"name": "disky", "labels": {"cluster.x-k8s.io/cluster-name": "opts"}, "ownerReferences": [owner_ref(&machine)]},
        "spec": {"template": "ubuntu-2204-tmpl", "cpu": 2, "memoryMiB": 4096, "systemDiskGiB": 60,
                 "dataDisks": [{"sizeGiB": 100, "datastore": "ds1"}], "placement": {"cluster": "cluster-sim"},
                 "nics": [{"dvSwitch": "ManagementDVS", "portGroup": "VLAN-329"}]}
    }))
    .await;
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.dcs_machine("disky").await.as_ref().is_some_and(provisioned)
        })
        .await,
        "{:?}",
        w.dcs_machine("disky").await.map(|m| m.status)
    );
    let vm = w.sim.state().vm_by_name("disky").unwrap();
    let sizes: Vec<(u32, u64)> = vm.disks.iter().map(|(seq, gb, _)| (*seq, *gb)).collect();
    assert_eq!(sizes, [(1, 60), (2, 100)], "{:?}", vm.disks);
    assert!(
        vm.location.contains(":clusters:"),
        "placed on the named cluster: {}",
        vm.location
    );
    assert!(
        w.sim
            .state()
            .logins()
            .iter()
            .any(|l| l.user_type.as_deref() == Some("1")),
        "userType domain sent as X-Auth-UserType 1: {:?}",
        w.sim.state().logins()
    );

    // The same Secret without insecureSkipVerify and without a CA bundle: verification is on and
    // the simulator's certificate (from its own throwaway CA) is refused.
    let strict: Cluster = w
        .create(json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "metadata": {"name": "strict"},
            "spec": {"infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DCSCluster", "name": "strict"}}
        }))
        .await;
    w.create::<DCSCluster>(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DCSCluster",
        "metadata": {"name": "strict", "ownerReferences": [owner_ref(&strict)]},
        "spec": {"credentialsSecretRef": {"name": "opts-creds"}, "controlPlaneEndpoint": {"host": "10.0.0.10", "port": 6443}}
    }))
    .await;
    assert!(
        wait_for(Duration::from_secs(30), || async {
            conditions::get(
                &w.dcs_cluster("strict").await.status.unwrap_or_default().conditions,
                "Ready",
            )
            .is_some_and(|c| c.status == "False" && c.message.contains("transport error"))
        })
        .await,
        "{:?}",
        w.dcs_cluster("strict").await.status
    );
}

/// README: the DCSMachine conditions say what it waits for or what went wrong —
/// `WaitingForBootstrapData`, `InstanceProvisioning`, and `DeletionFailed` when the cloud cannot
/// be reached to delete the VM (the finalizer stays until it can).
#[tokio::test]
async fn conditions_say_what_a_machine_waits_for() {
    let w = World::start().await;
    w.cluster("c1", PASSWORD).await;
    w.mark_infrastructure_provisioned("c1").await;
    w.machine_with("c1", "slow", "ubuntu-2204-tmpl", None, false).await;
    assert!(
        wait_for(Duration::from_secs(30), || async {
            w.machine_reason("slow").await.as_deref() == Some("WaitingForBootstrapData")
        })
        .await,
        "{:?}",
        w.dcs_machine("slow").await.map(|m| m.status)
    );
    w.sim
        .state()
        .update_knobs(|k| k.latency.clone = Duration::from_secs(20));
    let machines: Api<Machine> = Api::namespaced(w.client.clone(), "default");
    machines
        .patch(
            "slow",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"bootstrap": {"dataSecretName": "slow-boot"}}})),
        )
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || async {
            w.machine_reason("slow").await.as_deref() == Some("InstanceProvisioning")
        })
        .await,
        "{:?}",
        w.dcs_machine("slow").await.map(|m| m.status)
    );
    w.sim
        .state()
        .update_knobs(|k| k.latency.clone = fast().knobs.latency.clone);

    // Without its credentials the VM cannot be deleted: the finalizer stays and says why.
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), "default");
    let creds = secrets.get("c1-creds").await.unwrap();
    secrets.delete("c1-creds", &DeleteParams::default()).await.unwrap();
    Api::<DCSMachine>::namespaced(w.client.clone(), "default")
        .delete("slow", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || async {
            w.dcs_machine("slow")
                .await
                .and_then(|m| m.status)
                .and_then(|s| conditions::get(&s.conditions, "Ready").cloned())
                .is_some_and(|c| c.reason == "DeletionFailed" && c.message.contains("c1-creds"))
        })
        .await,
        "{:?}",
        w.dcs_machine("slow").await.map(|m| m.status)
    );
    // Back with its credentials, the deletion completes.
    let mut restored = creds.clone();
    restored.metadata = kube::api::ObjectMeta {
        name: Some("c1-creds".into()),
        ..Default::default()
    };
    secrets.create(&Default::default(), &restored).await.unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.dcs_machine("slow").await.is_none()
        })
        .await,
        "{:?}",
        w.dcs_machine("slow").await.map(|m| m.status)
    );
}

/// The pool `nodes` with `n` entries 10.30.0.11, .12, … (hostnames node-0, node-1, …).
async fn pool(w: &World, n: usize) {
    let entries: Vec<Value> = (0..n)
        .map(|i| {
            json!({"address": format!("10.30.0.{}", 11 + i), "prefixLength": 24, "gateway": "10.30.0.1",
                   "dns": ["10.30.0.2"], "hostname": format!("node-{i}")})
        })
        .collect();
    w.create::<DCSIPHostnamePool>(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DCSIPHostnamePool",
        "metadata": {"name": "nodes"}, "spec": {"entries": entries}
    }))
    .await;
}

/// Issue 10 §2: IP allocations are objects (`IPAddressClaim` → `IPAddress`), so `clusterctl
/// move`, which carries metadata and spec but never status, takes them along. A manager on the
/// target management cluster hands out no address twice, and finds every VM again although the
/// moved DCSMachines have new UIDs (the identity stamped on their VMs): `spec.providerID` names
/// them.
#[tokio::test]
async fn ip_allocations_and_vms_survive_a_move_to_another_management_cluster() {
    let mut source = World::start().await;
    source.cluster("c1", PASSWORD).await;
    pool(&source, 3).await;
    for name in ["p0", "p1"] {
        source.pool_machine("c1", name, json!({"name": "nodes"})).await;
    }
    source.mark_infrastructure_provisioned("c1").await;
    let mut before = BTreeMap::new();
    for name in ["p0", "p1"] {
        assert!(
            wait_for(Duration::from_secs(60), || async {
                source.provisioned_address(name).await.is_some()
            })
            .await
        );
        before.insert(name, source.provisioned_address(name).await.unwrap());
    }
    assert_eq!(
        before.values().collect::<std::collections::BTreeSet<_>>().len(),
        2,
        "{before:?}"
    );

    // clusterctl move: pause, stop the source's controllers, copy owners first, unpause there.
    source.pause("c1", true).await;
    source.stop_manager().await;
    let mut target = World::management_cluster(source.sim.clone()).await;
    let (from, to) = (&source.client, &target.client);
    let mut uids = BTreeMap::new();
    use capstan_e2e::objects::copy_for_move;
    copy_for_move::<Cluster>(from, to, &mut uids).await;
    copy_for_move::<DCSCluster>(from, to, &mut uids).await;
    copy_for_move::<Secret>(from, to, &mut uids).await;
    copy_for_move::<Machine>(from, to, &mut uids).await;
    assert_eq!(copy_for_move::<DCSMachine>(from, to, &mut uids).await, 2);
    copy_for_move::<DCSIPHostnamePool>(from, to, &mut uids).await;
    assert_eq!(copy_for_move::<IPAddressClaim>(from, to, &mut uids).await, 2);
    assert_eq!(copy_for_move::<IPAddress>(from, to, &mut uids).await, 2);
    target.pause("c1", false).await;
    // Status did not move: CAPI core on the target says again that the infrastructure is up.
    target.mark_infrastructure_provisioned("c1").await;
    target.start_manager();

    target.pool_machine("c1", "p2", json!({"name": "nodes"})).await;
    assert!(
        wait_for(Duration::from_secs(90), || async {
            let mut all = true;
            for name in ["p0", "p1", "p2"] {
                all &= target.provisioned_address(name).await.is_some();
            }
            all
        })
        .await,
        "every machine provisioned on the target"
    );
    for (name, address) in &before {
        assert_eq!(
            target.provisioned_address(name).await.as_ref(),
            Some(address),
            "{name} keeps its address"
        );
    }
    let new = target.provisioned_address("p2").await.unwrap();
    assert!(
        !before.values().any(|a| *a == new),
        "p2 got {new}, already held: {before:?}"
    );
    let mut names: Vec<String> = target
        .sim
        .state()
        .vms()
        .into_iter()
        .filter(|v| !v.is_template)
        .map(|v| v.name)
        .collect();
    names.sort();
    assert_eq!(names, ["p0", "p1", "p2"], "no VM created twice");
    let hostname = target.sim.state().vm_by_name("p2").unwrap().hostname;
    let index: usize = new.rsplit('.').next().unwrap().parse::<usize>().unwrap() - 11;
    assert_eq!(
        hostname,
        Some(format!("node-{index}")),
        "hostname from the pool entry's IPAddress"
    );
}

/// The DCS provider speaks the IPAM contract, not just to its own pools: a pool kind of another
/// IPAM provider (here the test plays that provider, as the in-cluster provider would) gets a
/// claim, and the address it binds is the VM's.
#[tokio::test]
async fn any_ipam_providers_pool_can_address_a_machine() {
    let w = World::start().await;
    w.cluster("c1", PASSWORD).await;
    w.pool_machine(
        "c1",
        "f0",
        json!({"apiGroup": "ipam.cluster.x-k8s.io", "kind": "InClusterIPPool", "name": "lab"}),
    )
    .await;
    w.mark_infrastructure_provisioned("c1").await;
    let claims: Api<IPAddressClaim> = Api::namespaced(w.client.clone(), "default");
    assert!(
        wait_for(Duration::from_secs(30), || async {
            claims.get_opt("f0-0").await.unwrap().is_some()
        })
        .await
    );
    let claim = claims.get("f0-0").await.unwrap();
    assert_eq!(claim.spec.pool_ref.kind, "InClusterIPPool");
    assert_eq!(claim.spec.cluster_name.as_deref(), Some("c1"));
    assert_eq!(claim.labels()["cluster.x-k8s.io/cluster-name"], "c1");
    assert!(
        claim
            .finalizers()
            .contains(&"ipam.capstan.dev/ip-claim-protection".to_string())
    );
    assert_eq!(
        claim.owner_references()[0].uid,
        w.dcs_machine("f0").await.unwrap().uid().unwrap()
    );
    assert_eq!(w.machine_reason("f0").await.as_deref(), Some("WaitingForIPAllocation"));
    assert!(
        w.sim.state().vm_by_name("f0").is_none(),
        "no VM before the address is bound"
    );

    // The foreign IPAM provider answers.
    w.create::<IPAddress>(json!({
        "apiVersion": "ipam.cluster.x-k8s.io/v1beta2", "kind": "IPAddress",
        "metadata": {"name": "f0-0"},
        "spec": {"address": "172.16.4.20", "prefix": 22, "gateway": "172.16.4.1",
                 "claimRef": {"name": "f0-0"},
                 "poolRef": {"apiGroup": "ipam.cluster.x-k8s.io", "kind": "InClusterIPPool", "name": "lab"}}
    }))
    .await;
    claims
        .patch_status(
            "f0-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"addressRef": {"name": "f0-0"}}})),
        )
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.provisioned_address("f0").await.as_deref() == Some("172.16.4.20")
        })
        .await
    );
    let vm = w.sim.state().vm_by_name("f0").unwrap();
    assert_eq!(vm.static_ips, [Some("172.16.4.20".to_string())]);
    assert_eq!(
        vm.hostname.as_deref(),
        Some("f0"),
        "no hostname from a foreign pool: the machine's name"
    );

    // Deleting the machine gives the claim back (finalizer dropped, claim deleted).
    Api::<DCSMachine>::namespaced(w.client.clone(), "default")
        .delete("f0", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || async {
            claims.get_opt("f0-0").await.unwrap().is_none()
        })
        .await
    );
}
