//! The HCS provider end to end: a real kube-apiserver with the upstream CAPI CRDs, the HCS
//! simulator over real HTTPS with AK/SK signatures checked, and the test acting as CAPI core.

use std::sync::Arc;
use std::time::Duration;

use capstan_api::conditions;
use capstan_e2e::manager::RunningProvider;
use capstan_e2e::objects::capi::{self, Placement};
use capstan_e2e::{TestEnv, wait_for};
use capstan_hcs::api::{HCSCluster, HCSMachine};
use capstan_sim_hcs::{Latency, SimConfig, SimHandle, SimKnobs, Simulator};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

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
    _env: TestEnv,
    client: Client,
    sim: Arc<SimHandle>,
    config: SimConfig,
    manager: RunningProvider,
}

impl World {
    async fn start(config: SimConfig) -> Self {
        let sim = Arc::new(Simulator::start(config.clone()).await.unwrap());
        let env = TestEnv::start().await.unwrap();
        env.install_crds(&capstan_hcs::api::crds()).await.unwrap();
        let client = env.client().await.unwrap();
        let provider = capstan_hcs::lifecycle_provider()
            .with_poll_interval(Duration::from_millis(200))
            .with_resync_interval(Duration::from_secs(2))
            .with_backoff(Duration::from_millis(100), Duration::from_secs(2));
        World {
            manager: RunningProvider::start(provider, client.clone()),
            _env: env,
            client,
            sim,
            config,
        }
    }

    /// Kills the manager wherever it is (its futures dropped mid-flight) and starts a new one.
    async fn crash_and_restart(&mut self) {
        self.manager.crash_and_restart().await;
    }

    /// Cluster → HCSCluster (owned) + credentials; `managed_lb` asks for an ELB, otherwise the
    /// endpoint is the user's.
    async fn cluster(&self, name: &str, managed_lb: bool, zones: &[&str]) {
        let c = &self.config;
        let url = self.sim.url().as_str();
        capstan_e2e::objects::create::<Secret>(
            &self.client,
            json!({
                "metadata": {"name": format!("{name}-hcs")},
                "stringData": {
                    "accessKey": c.access_key, "secretKey": c.secret_key, "projectID": c.project_id,
                    "region": c.region, "externalGlobalDomain": "sim.invalid",
                    "iamEndpoint": url, "ecsEndpoint": url, "vpcEndpoint": url, "imsEndpoint": url, "evsEndpoint": url
                }
            }),
        )
        .await;
        let endpoint = (!managed_lb).then_some(("127.0.0.1", 6443));
        let owner = capi::cluster(&self.client, name, "HCSCluster", endpoint).await;
        let mut spec = json!({
            "credentialsSecretRef": {"name": format!("{name}-hcs")},
            "network": {"subnets": [{"id": self.config.subnets[0].id}]},
            "availabilityZones": zones.iter().map(|z| json!({"name": z})).collect::<Vec<_>>(),
            "tls": {"caBundle": self.sim.ca_pem()}
        });
        if managed_lb {
            spec["controlPlaneLoadBalancer"] = json!({});
        } else {
            spec["controlPlaneEndpoint"] = json!({"host": "127.0.0.1", "port": 6443});
        }
        capstan_e2e::objects::create::<HCSCluster>(
            &self.client,
            json!({
                "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "HCSCluster",
                "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": name}, "ownerReferences": [owner]},
                "spec": spec
            }),
        )
        .await;
    }

    async fn machine(&self, cluster: &str, name: &str, placement: Placement<'_>, spec: Value) {
        let user_data = format!("#cloud-config\nhostname: {name}\n");
        let owner = capi::machine(&self.client, cluster, name, "HCSMachine", placement, &user_data).await;
        let mut full = json!({"imageName": "capstan-ubuntu-22.04", "flavorName": "s6.large.2"});
        merge(&mut full, spec);
        let mut labels = json!({"cluster.x-k8s.io/cluster-name": cluster});
        if placement.control_plane {
            labels["cluster.x-k8s.io/control-plane"] = json!("");
        }
        capstan_e2e::objects::create::<HCSMachine>(
            &self.client,
            json!({
                "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "HCSMachine",
                "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
                "spec": full
            }),
        )
        .await;
    }

    async fn hcs_machine(&self, name: &str) -> Option<HCSMachine> {
        Api::<HCSMachine>::namespaced(self.client.clone(), "default")
            .get_opt(name)
            .await
            .unwrap()
    }

    async fn hcs_cluster(&self, name: &str) -> Option<HCSCluster> {
        Api::<HCSCluster>::namespaced(self.client.clone(), "default")
            .get_opt(name)
            .await
            .unwrap()
    }

    async fn provisioned(&self, name: &str) -> bool {
        self.hcs_machine(name)
            .await
            .and_then(|m| m.status?.initialization?.provisioned)
            .unwrap_or(false)
    }

    async fn machine_condition(&self, name: &str, condition: &str) -> Option<(String, String)> {
        let m = self.hcs_machine(name).await?;
        conditions::get(&m.status?.conditions, condition).map(|c| (c.status.clone(), c.reason.clone()))
    }

    /// Waits until the cluster's infrastructure is provisioned and copies it into the Cluster.
    async fn cluster_provisioned(&self, name: &str) -> HCSCluster {
        assert!(
            wait_for(Duration::from_secs(60), || async {
                self.hcs_cluster(name)
                    .await
                    .and_then(|c| c.status?.initialization?.provisioned)
                    .unwrap_or(false)
            })
            .await,
            "HCSCluster {name} never provisioned: {:?}",
            self.hcs_cluster(name).await.and_then(|c| c.status)
        );
        capi::mark_infrastructure_provisioned(&self.client, name).await;
        self.hcs_cluster(name).await.unwrap()
    }

    async fn delete_machine(&self, name: &str) {
        Api::<HCSMachine>::namespaced(self.client.clone(), "default")
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    async fn gone(&self, name: &str) -> bool {
        wait_for(Duration::from_secs(60), || async {
            self.hcs_machine(name).await.is_none()
        })
        .await
    }

    fn servers_named(&self, name: &str) -> usize {
        self.sim.state().servers().iter().filter(|s| s.name == name).count()
    }

    /// The addresses of the control-plane pool's members.
    fn member_addresses(&self) -> Vec<String> {
        let mut a: Vec<String> = self
            .sim
            .state()
            .load_balancers()
            .iter()
            .flat_map(|lb| lb.pools.iter())
            .flat_map(|p| p.members.iter())
            .map(|m| m.address.clone())
            .collect();
        a.sort();
        a
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

fn control_plane(zone: &str) -> Placement<'_> {
    Placement {
        control_plane: true,
        failure_domain: Some(zone),
    }
}

#[tokio::test]
async fn control_plane_behind_a_managed_elb_across_zones_and_clean_teardown() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    let w = World::start(fast()).await;
    w.cluster("c1", true, &["az1", "az2", "az3"]).await;
    let cluster = w.cluster_provisioned("c1").await;

    // The endpoint is the ELB's VIP on the API server port; the zones are failure domains.
    let lbs = w.sim.state().load_balancers();
    assert_eq!(lbs.len(), 1, "{lbs:?}");
    let endpoint = cluster.spec.control_plane_endpoint.clone().unwrap();
    assert_eq!(endpoint.host.as_deref(), Some(lbs[0].vip_address.as_str()));
    assert_eq!(endpoint.port, Some(6443));
    let domains = cluster.status.as_ref().unwrap().failure_domains.clone().unwrap();
    assert_eq!(
        domains.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["az1", "az2", "az3"]
    );
    let resources = cluster.status.as_ref().unwrap().resources.clone().unwrap();
    assert_eq!(resources.load_balancer_id.as_deref(), Some(lbs[0].id.as_str()));
    assert!(
        resources.pool_id.is_some() && resources.health_monitor_id.is_some(),
        "{resources:?}"
    );

    w.machine("c1", "cp-1", control_plane("az1"), json!({})).await;
    w.machine("c1", "cp-2", control_plane("az2"), json!({})).await;
    w.machine(
        "c1",
        "worker-1",
        Placement::default(),
        json!({"tags": {"team": "platform"}}),
    )
    .await;
    for m in ["cp-1", "cp-2", "worker-1"] {
        assert!(
            wait_for(Duration::from_secs(60), || w.provisioned(m)).await,
            "{m} never provisioned: {:?}",
            w.hcs_machine(m).await.and_then(|m| m.status)
        );
    }
    let servers = w.sim.state().servers();
    let cp1 = servers.iter().find(|s| s.name == "cp-1").unwrap();
    assert_eq!(cp1.az, "az1");
    let machine = w.hcs_machine("cp-1").await.unwrap();
    assert_eq!(machine.spec.provider_id, Some(format!("hcs://{}", cp1.id)));
    assert_eq!(machine.status.as_ref().unwrap().failure_domain.as_deref(), Some("az1"));
    assert_eq!(
        cp1.tags.get("capstan-uid").map(String::as_str),
        machine.uid().as_deref()
    );
    let worker = servers.iter().find(|s| s.name == "worker-1").unwrap();
    assert_eq!(worker.tags.get("team").map(String::as_str), Some("platform"));
    // user_data cannot be taken back from ECS: the condition says so instead of lying.
    assert_eq!(
        w.machine_condition("cp-1", "BootstrapDataCleanedUp").await,
        Some(("False".into(), "BootstrapDataRetainedByCloud".into()))
    );

    // Only control-plane servers are members, each recorded on its machine.
    assert!(
        wait_for(Duration::from_secs(30), || async { w.member_addresses().len() == 2 }).await,
        "{:?}",
        w.member_addresses()
    );
    let mut cp_ips: Vec<String> = servers
        .iter()
        .filter(|s| s.name.starts_with("cp-"))
        .map(|s| s.ip.clone())
        .collect();
    cp_ips.sort();
    assert_eq!(w.member_addresses(), cp_ips);
    assert!(
        machine
            .status
            .unwrap()
            .resources
            .unwrap()
            .load_balancer_member_id
            .is_some()
    );
    assert_eq!(
        w.machine_condition("cp-1", "AttachmentsReady").await,
        Some(("True".into(), "Attached".into()))
    );

    // A control-plane machine leaves the pool, then its server goes.
    w.delete_machine("cp-1").await;
    assert!(w.gone("cp-1").await);
    assert_eq!(w.servers_named("cp-1"), 0);
    assert_eq!(
        w.member_addresses(),
        vec![servers.iter().find(|s| s.name == "cp-2").unwrap().ip.clone()]
    );

    for m in ["cp-2", "worker-1"] {
        w.delete_machine(m).await;
    }
    for m in ["cp-2", "worker-1"] {
        assert!(w.gone(m).await, "{m} not deleted");
    }
    Api::<HCSCluster>::namespaced(w.client.clone(), "default")
        .delete("c1", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || async {
            w.hcs_cluster("c1").await.is_none()
        })
        .await,
        "HCSCluster not deleted: {:?}",
        w.hcs_cluster("c1").await.and_then(|c| c.status)
    );
    let state = w.sim.state();
    assert!(state.servers().is_empty(), "{:?}", state.servers());
    assert!(state.volumes().is_empty(), "{:?}", state.volumes());
    assert!(state.load_balancers().is_empty(), "{:?}", state.load_balancers());
}

#[tokio::test]
async fn spec_and_cloud_errors_are_conditions_a_user_can_act_on() {
    let mut config = fast();
    config.knobs.quotas.instances = 1;
    let w = World::start(config).await;
    w.cluster("c2", false, &[]).await;
    w.cluster_provisioned("c2").await;

    w.machine(
        "c2",
        "bad-flavor",
        Placement::default(),
        json!({"flavorName": "no-such-flavor"}),
    )
    .await;
    w.machine(
        "c2",
        "bad-image",
        Placement::default(),
        json!({"imageName": "no-such-image"}),
    )
    .await;
    w.machine("c2", "ok", Placement::default(), json!({})).await;
    let reason = |name: &'static str, want: &'static str| {
        let w = &w;
        async move {
            wait_for(Duration::from_secs(30), || async {
                w.machine_condition(name, "InstanceProvisioned")
                    .await
                    .is_some_and(|(_, r)| r == want)
            })
            .await
        }
    };
    assert!(reason("bad-flavor", "FlavorNotFound").await);
    assert!(reason("bad-image", "ImageNotFound").await);
    assert!(wait_for(Duration::from_secs(60), || w.provisioned("ok")).await);
    // Created only once "ok" holds the single instance of quota: two valid machines
    // created together race for it, and either may be the one refused.
    w.machine("c2", "over-quota", Placement::default(), json!({})).await;
    assert!(reason("over-quota", "QuotaExceeded").await);
    assert_eq!(
        w.sim.state().servers().len(),
        1,
        "nothing is created for a refused spec"
    );

    // Bootstrap data over ECS's 32 KiB is refused before any call, never truncated.
    let big = format!(
        "#cloud-config\nwrite_files:\n- path: /big\n  content: {}\n",
        "x".repeat(40_000)
    );
    let owner = capi::machine(&w.client, "c2", "too-big", "HCSMachine", Placement::default(), &big).await;
    capstan_e2e::objects::create::<HCSMachine>(
        &w.client,
        json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "HCSMachine",
            "metadata": {"name": "too-big", "labels": {"cluster.x-k8s.io/cluster-name": "c2"}, "ownerReferences": [owner]},
            "spec": {"imageName": "capstan-ubuntu-22.04", "flavorName": "s6.large.2"}
        }),
    )
    .await;
    assert!(reason("too-big", "BootstrapDataTooLarge").await);
    assert_eq!(w.servers_named("too-big"), 0);
}

#[tokio::test]
async fn crashes_at_any_point_never_duplicate_a_server_or_leak_a_member() {
    let mut config = fast();
    // A new server is invisible to lists for a while, as on ECS.
    config.knobs.latency.list_delay = Duration::from_millis(800);
    let mut w = World::start(config).await;
    w.cluster("c3", true, &["az1"]).await;
    w.cluster_provisioned("c3").await;
    for i in 0..3 {
        w.machine("c3", &format!("cp-{i}"), control_plane("az1"), json!({}))
            .await;
    }
    let mut rng = fastrand::Rng::with_seed(14);
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(rng.u64(50..400))).await;
        w.crash_and_restart().await;
    }
    let all_provisioned = || async {
        for i in 0..3 {
            if !w.provisioned(&format!("cp-{i}")).await {
                return false;
            }
        }
        true
    };
    assert!(wait_for(Duration::from_secs(90), all_provisioned).await);
    for i in 0..3 {
        assert_eq!(w.servers_named(&format!("cp-{i}")), 1, "cp-{i} duplicated");
    }
    assert!(wait_for(Duration::from_secs(30), || async { w.member_addresses().len() == 3 }).await);
    for i in 0..3 {
        w.delete_machine(&format!("cp-{i}")).await;
    }
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(rng.u64(50..300))).await;
        w.crash_and_restart().await;
    }
    for i in 0..3 {
        assert!(w.gone(&format!("cp-{i}")).await);
    }
    assert!(w.sim.state().servers().is_empty());
    assert!(
        w.member_addresses().is_empty(),
        "leaked members: {:?}",
        w.member_addresses()
    );
}

#[tokio::test]
async fn injected_errors_and_throttling_converge() {
    let mut config = fast();
    config.knobs.error_rate = 0.1;
    config.knobs.throttle_rate = 0.1;
    let w = World::start(config).await;
    w.cluster("c4", true, &["az1", "az2"]).await;
    w.cluster_provisioned("c4").await;
    for i in 0..4 {
        let zone = if i % 2 == 0 { "az1" } else { "az2" };
        w.machine("c4", &format!("m-{i}"), control_plane(zone), json!({})).await;
    }
    for i in 0..4 {
        let name = format!("m-{i}");
        assert!(
            wait_for(Duration::from_secs(120), || w.provisioned(&name)).await,
            "{name}: {:?}",
            w.hcs_machine(&name).await.and_then(|m| m.status)
        );
        assert_eq!(w.servers_named(&name), 1);
    }
    assert!(w.sim.state().call_count("injected_error") > 0);
    assert!(w.sim.state().call_count("throttled") > 0);
}
