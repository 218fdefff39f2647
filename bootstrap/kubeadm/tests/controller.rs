//! The KubeadmConfig controller against a real kube-apiserver with the upstream CAPI CRDs (ours
//! for KubeadmConfig). No CAPI core runs: the test sets Cluster and Machine status itself. The
//! "workload cluster" is the same API server, reached through `<cluster>-kubeconfig`.

use std::time::Duration;

use capstan_api::conditions;
use capstan_api::core::{Cluster, Machine};
use capstan_e2e::{TestEnv, TestEnvOptions, capi_crds_dir, load_crds_from_dir, wait_for};
use capstan_kubeadm::KubeadmBootstrapProvider;
use capstan_kubeadm::api::KubeadmConfig;
use capstan_runtime::metrics::Metrics;
use capstan_runtime::{Provider, ProviderContext, Scope};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(60);

struct Fixture {
    client: Client,
    machines: Api<Machine>,
    configs: Api<KubeadmConfig>,
    clusters: Api<Cluster>,
    secrets: Api<Secret>,
}

impl Fixture {
    async fn cluster(&self, name: &str, extra_spec: Value) {
        let mut spec = json!({
            "controlPlaneEndpoint": {"host": "10.0.0.1", "port": 6443},
            "clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]}, "services": {"cidrBlocks": ["10.96.0.0/12"]}, "serviceDomain": "cluster.local"}
        });
        json_merge(&mut spec, extra_spec);
        let c: Cluster = serde_json::from_value(json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": name, "namespace": NS}, "spec": spec
        }))
        .unwrap();
        self.clusters.create(&PostParams::default(), &c).await.unwrap();
    }

    async fn cluster_status(&self, name: &str, status: Value) {
        self.clusters
            .patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status})))
            .await
            .unwrap();
    }

    async fn infra_ready(&self, name: &str) {
        self.cluster_status(name, json!({"initialization": {"infrastructureProvisioned": true}}))
            .await;
    }

    async fn cp_initialized(&self, name: &str) {
        self.cluster_status(
            name,
            json!({"conditions": [{"type": "ControlPlaneInitialized", "status": "True", "reason": "Initialized",
                   "message": "initialized by the test", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}),
        )
        .await;
    }

    /// A Machine and its KubeadmConfig, the config owned by the Machine (as CAPI core sets it).
    // A test fixture builder: spelling every knob out reads better than a builder type here.
    #[allow(clippy::too_many_arguments)]
    async fn machine_with_config(
        &self,
        name: &str,
        cluster: &str,
        control_plane: bool,
        version: &str,
        spec: Value,
        extra_meta: Value,
        data_secret_name: Option<&str>,
    ) -> Machine {
        let mut labels = json!({"cluster.x-k8s.io/cluster-name": cluster});
        if control_plane {
            labels["cluster.x-k8s.io/control-plane"] = json!("");
        }
        let m: Machine = serde_json::from_value(json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {
                "clusterName": cluster, "version": version,
                "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "KubeadmConfig", "name": name},
                              "dataSecretName": data_secret_name},
                "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "TestMachine", "name": name}
            }
        }))
        .unwrap();
        let m = self.machines.create(&PostParams::default(), &m).await.unwrap();
        let mut meta = json!({
            "name": name, "namespace": NS, "labels": labels,
            "ownerReferences": [{"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine", "name": name,
                                 "uid": m.metadata.uid, "controller": true, "blockOwnerDeletion": true}]
        });
        json_merge(&mut meta, extra_meta);
        let c: KubeadmConfig = serde_json::from_value(json!({
            "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfig",
            "metadata": meta, "spec": spec
        }))
        .unwrap();
        self.configs.create(&PostParams::default(), &c).await.unwrap();
        m
    }

    async fn wait_config(&self, name: &str, what: &str, pred: impl Fn(&KubeadmConfig) -> bool) -> KubeadmConfig {
        let ok = wait_for(WAIT, || async {
            self.configs.get(name).await.map(|c| pred(&c)).unwrap_or(false)
        })
        .await;
        let c = self.configs.get(name).await.unwrap();
        assert!(ok, "{name}: {what}; status: {:#?}", c.status);
        c
    }

    async fn data(&self, name: &str) -> String {
        let s = self.secrets.get(name).await.unwrap();
        assert_eq!(s.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
        let data = s.data.unwrap();
        assert_eq!(data["format"].0, b"cloud-config");
        let owner = s.metadata.owner_references.unwrap();
        assert_eq!(owner[0].kind, "KubeadmConfig");
        assert_eq!(owner[0].controller, Some(true));
        String::from_utf8(data["value"].0.clone()).unwrap()
    }
}

fn json_merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                json_merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn condition<'a>(
    c: &'a KubeadmConfig,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions::get(&c.status.as_ref()?.conditions, type_)
}

fn message_contains(c: &KubeadmConfig, type_: &str, text: &str) -> bool {
    condition(c, type_).is_some_and(|c| c.status == "False" && c.message.contains(text))
}

async fn setup() -> (TestEnv, Fixture, CancellationToken) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("capstan_kubeadm=info")
        .with_test_writer()
        .try_init();
    let env = TestEnv::start_with(TestEnvOptions::default()).await.unwrap();
    // Upstream CAPI CRDs, but our KubeadmConfig/KubeadmConfigTemplate.
    let mut crds: Vec<_> = load_crds_from_dir(&capi_crds_dir())
        .unwrap()
        .into_iter()
        .filter(|c| c.spec.group != "bootstrap.cluster.x-k8s.io")
        .collect();
    crds.extend(capstan_kubeadm::api::crds());
    env.install_crds(&crds).await.unwrap();
    let client = env.client().await.unwrap();
    let fx = Fixture {
        client: client.clone(),
        machines: Api::namespaced(client.clone(), NS),
        configs: Api::namespaced(client.clone(), NS),
        clusters: Api::namespaced(client.clone(), NS),
        secrets: Api::namespaced(client.clone(), NS),
    };
    let shutdown = CancellationToken::new();
    let ctx = ProviderContext {
        client: client.clone(),
        scope: Scope {
            namespace: Some(NS.into()),
            watch_filter: None,
        },
        metrics: std::sync::Arc::new(Metrics::new()),
        concurrency: Default::default(),
        shutdown: shutdown.clone(),
    };
    tokio::spawn(KubeadmBootstrapProvider::default().run(ctx));
    (env, fx, shutdown)
}

/// `<cluster>-kubeconfig` pointing at the test API server itself, standing in for the workload cluster.
async fn workload_kubeconfig(env: &TestEnv, fx: &Fixture, cluster: &str) {
    let kubeconfig = std::fs::read(env.kubeconfig_path()).unwrap();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{cluster}-kubeconfig")),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        type_: Some("cluster.x-k8s.io/secret".into()),
        data: Some([("value".to_string(), ByteString(kubeconfig))].into()),
        ..Default::default()
    };
    fx.secrets.create(&PostParams::default(), &secret).await.unwrap();
}

#[tokio::test]
async fn init_join_adoption_lock_and_bad_input() {
    let (env, fx, shutdown) = setup().await;
    fx.cluster("c1", json!({})).await;
    workload_kubeconfig(&env, &fx, "c1").await;

    let cp_spec = json!({"clusterConfiguration": {"apiServer": {"certSANs": ["lb.example.com"]}},
                         "initConfiguration": {"nodeRegistration": {"name": "{{ ds.meta_data.local_hostname }}"}}});
    fx.machine_with_config("cp-0", "c1", true, "v1.30.2", cp_spec.clone(), json!({}), None)
        .await;
    fx.machine_with_config(
        "md-0",
        "c1",
        false,
        "v1.31.1",
        json!({"joinConfiguration": {"nodeRegistration": {"kubeletExtraArgs": [{"name": "cloud-provider", "value": "external"}]}}}),
        json!({}),
        None,
    )
    .await;
    // Bad inputs next to good ones.
    fx.machine_with_config(
        "md-bad-cp",
        "c1",
        false,
        "v1.31.1",
        json!({"joinConfiguration": {"controlPlane": {}}}),
        json!({}),
        None,
    )
    .await;
    fx.machine_with_config(
        "md-bad-file",
        "c1",
        false,
        "v1.31.1",
        json!({"files": [{"path": "/etc/x", "contentFrom": {"secret": {"name": "nope", "key": "k"}}}]}),
        json!({}),
        None,
    )
    .await;
    fx.machine_with_config("md-old", "c1", false, "v1.21.5", json!({}), json!({}), None)
        .await;

    // Infrastructure not provisioned yet.
    fx.wait_config("cp-0", "waits for infrastructure", |c| {
        message_contains(c, "DataSecretAvailable", "infrastructureReady")
    })
    .await;

    fx.infra_ready("c1").await;
    let cp0 = fx
        .wait_config("cp-0", "gets init data", KubeadmConfig::data_secret_created)
        .await;
    assert_eq!(cp0.status.as_ref().unwrap().data_secret_name.as_deref(), Some("cp-0"));
    for t in ["Ready", "DataSecretAvailable", "CertificatesAvailable"] {
        assert_eq!(condition(&cp0, t).unwrap().status, "True", "{t}");
    }
    assert_eq!(condition(&cp0, "Paused").unwrap().status, "False");
    let v1 = cp0
        .status
        .as_ref()
        .unwrap()
        .deprecated
        .as_ref()
        .unwrap()
        .v1beta1
        .as_ref()
        .unwrap();
    assert!(
        v1.conditions
            .as_ref()
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    let init = fx.data("cp-0").await;
    assert!(init.starts_with("## template: jinja\n#cloud-config\n"));
    assert!(init.contains("kubeadm init --config /run/kubeadm/kubeadm.yaml  && echo success"));
    assert!(init.contains("apiVersion: kubeadm.k8s.io/v1beta3"));
    assert!(init.contains("controlPlaneEndpoint: 10.0.0.1:6443"));
    assert!(init.contains("path: /etc/kubernetes/pki/sa.key"));
    // The CAs are stored once, owned by the initialising config.
    for suffix in ["ca", "etcd", "proxy", "sa"] {
        let s = fx.secrets.get(&format!("c1-{suffix}")).await.unwrap();
        assert_eq!(s.metadata.labels.unwrap()["cluster.x-k8s.io/cluster-name"], "c1");
        assert_eq!(s.metadata.owner_references.unwrap()[0].name, "cp-0");
    }
    let lock: Api<ConfigMap> = Api::namespaced(fx.client.clone(), NS);
    let held = lock.get("c1-lock").await.unwrap();
    assert!(held.data.unwrap()["lock-information"].contains("\"machineName\":\"cp-0\""));

    // A second control-plane Machine, created (as KCP does) once the first has its data.
    // KCP style: labels, a non-controller KubeadmControlPlane owner next to the Machine, the join marker.
    fx.machine_with_config(
        "cp-1",
        "c1",
        true,
        "v1.31.1",
        json!({"clusterConfiguration": {"apiServer": {"certSANs": ["lb.example.com"]}}, "joinConfiguration": {"controlPlane": {}}}),
        json!({"labels": {"cluster.x-k8s.io/control-plane-name": "kcp"}}),
        None,
    )
    .await;
    let kcp_owner = json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlane",
                           "name": "kcp", "uid": "0b2f3c1e-0000-4000-8000-000000000001"});
    let cp1 = fx.configs.get("cp-1").await.unwrap();
    let mut owners = serde_json::to_value(cp1.metadata.owner_references.unwrap()).unwrap();
    owners.as_array_mut().unwrap().push(kcp_owner);
    fx.configs
        .patch(
            "cp-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"ownerReferences": owners}})),
        )
        .await
        .unwrap();
    // Until the control plane is initialized nobody else gets data.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in ["cp-1", "md-0"] {
        let c = fx.configs.get(name).await.unwrap();
        assert!(!c.data_secret_created(), "{name} must wait");
        assert!(
            message_contains(&c, "DataSecretAvailable", "control plane to be initialized"),
            "{name}"
        );
    }

    fx.cp_initialized("c1").await;
    let cp1 = fx
        .wait_config("cp-1", "joins the control plane", KubeadmConfig::data_secret_created)
        .await;
    let join_cp = fx.data("cp-1").await;
    assert!(join_cp.contains("kubeadm join --config /run/kubeadm/kubeadm-join-config.yaml  && echo success"));
    assert!(join_cp.contains("apiVersion: kubeadm.k8s.io/v1beta4"));
    assert!(join_cp.contains("path: /etc/kubernetes/pki/ca.key"));
    assert!(!join_cp.contains("node.cluster.x-k8s.io/uninitialized"));
    let bt = &cp1.spec.join_configuration.discovery.bootstrap_token;
    assert_eq!(bt.api_server_endpoint, "10.0.0.1:6443");
    assert!(bt.ca_cert_hashes.as_ref().unwrap()[0].starts_with("sha256:"));
    assert_eq!(cp1.spec.join_configuration.control_plane, Some(Default::default()));
    // Only discovery and controlPlane were written back.
    assert_eq!(
        cp1.spec.cluster_configuration.api_server.cert_sans,
        Some(vec!["lb.example.com".to_string()])
    );

    let md0 = fx
        .wait_config("md-0", "joins as a worker", KubeadmConfig::data_secret_created)
        .await;
    let join_worker = fx.data("md-0").await;
    assert!(join_worker.contains("      ---\n      apiVersion: kubeadm.k8s.io/v1beta4"));
    assert!(join_worker.contains("key: node.cluster.x-k8s.io/uninitialized"));
    assert!(!join_worker.contains("/etc/kubernetes/pki/ca.key"));
    let token = md0.spec.join_configuration.discovery.bootstrap_token.token.clone();
    assert!(join_worker.contains(&token));
    assert!(
        md0.spec.join_configuration.node_registration.taints.is_none(),
        "taint only in the rendered copy"
    );
    let id = token.split('.').next().unwrap();
    let kube_system: Api<Secret> = Api::namespaced(fx.client.clone(), "kube-system");
    let ts = kube_system.get(&format!("bootstrap-token-{id}")).await.unwrap();
    assert_eq!(ts.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
    // Joining released the init lock.
    assert!(wait_for(WAIT, || async { lock.get_opt("c1-lock").await.unwrap().is_none() }).await);

    // Bad input: a message saying what to fix, everything else still served.
    fx.wait_config("md-bad-cp", "rejects controlPlane on a worker", |c| {
        message_contains(c, "DataSecretAvailable", "remove joinConfiguration.controlPlane")
    })
    .await;
    fx.wait_config("md-bad-file", "reports the missing secret", |c| {
        message_contains(
            c,
            "DataSecretAvailable",
            "Failed to prepare spec.files: secret nope does not exist",
        )
    })
    .await;
    fx.wait_config("md-old", "refuses Kubernetes < 1.22", |c| {
        message_contains(c, "DataSecretAvailable", "v1.22 or later")
    })
    .await;

    // Data is never regenerated: the secret stays byte for byte after a spec change.
    fx.configs
        .patch(
            "md-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"verbosity": 9}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fx.data("md-0").await, join_worker);

    // Adoption (pivot / clusterctl move): the Machine already names its data secret.
    fx.machine_with_config(
        "moved",
        "c1",
        false,
        "v1.31.1",
        json!({}),
        json!({}),
        Some("moved-data"),
    )
    .await;
    let adopted = fx
        .wait_config("moved", "adopts existing data", KubeadmConfig::data_secret_created)
        .await;
    assert_eq!(adopted.status.unwrap().data_secret_name.as_deref(), Some("moved-data"));
    assert!(
        fx.secrets.get_opt("moved").await.unwrap().is_none(),
        "nothing generated"
    );

    shutdown.cancel();
}

#[tokio::test]
async fn stale_lock_of_deleted_machine_is_released_and_pause_is_honoured() {
    let (_env, fx, shutdown) = setup().await;
    fx.cluster("c2", json!({})).await;
    fx.infra_ready("c2").await;
    // A lock left behind by a Machine that no longer exists (CAPI#5814).
    fx.machine_with_config("ghost", "c2", true, "v1.30.0", json!({}), json!({}), None)
        .await;
    let ghost_cfg = fx
        .wait_config("ghost", "takes the lock", KubeadmConfig::data_secret_created)
        .await;
    assert!(ghost_cfg.data_secret_created());
    let locks: Api<ConfigMap> = Api::namespaced(fx.client.clone(), NS);
    assert!(locks.get("c2-lock").await.unwrap().data.unwrap()["lock-information"].contains("ghost"));
    fx.machines.delete("ghost", &DeleteParams::default()).await.unwrap();

    fx.machine_with_config("survivor", "c2", true, "v1.30.0", json!({}), json!({}), None)
        .await;
    fx.wait_config(
        "survivor",
        "takes over the stale lock",
        KubeadmConfig::data_secret_created,
    )
    .await;
    assert!(locks.get("c2-lock").await.unwrap().data.unwrap()["lock-information"].contains("survivor"));
    assert!(fx.data("survivor").await.contains("kubeadm init"));

    // Paused cluster: Paused condition, nothing generated.
    fx.cluster("c3", json!({"paused": true})).await;
    fx.infra_ready("c3").await;
    fx.machine_with_config("p-0", "c3", true, "v1.30.0", json!({}), json!({}), None)
        .await;
    let p = fx
        .wait_config("p-0", "reports Paused", |c| {
            condition(c, "Paused").is_some_and(|p| p.status == "True")
        })
        .await;
    assert!(!p.data_secret_created());
    assert!(fx.secrets.get_opt("p-0").await.unwrap().is_none());
    assert_eq!(p.name_any(), "p-0");
    shutdown.cancel();
}

/// Issue 10 §2: a stale init lock is taken over with uid + resourceVersion preconditions, so
/// however many reconciles of two control-plane configs race for it, exactly one machine wins.
/// (Before, a reconcile that had read the stale lock deleted the winner's fresh lock.)
#[tokio::test]
async fn concurrent_takeover_of_a_stale_lock_has_exactly_one_winner() {
    use capstan_kubeadm::controller::lock;
    let env = TestEnv::start_with(TestEnvOptions::default()).await.unwrap();
    let crds: Vec<_> = load_crds_from_dir(&capi_crds_dir())
        .unwrap()
        .into_iter()
        .filter(|c| c.spec.names.kind == "Cluster" || c.spec.names.kind == "Machine")
        .collect();
    env.install_crds(&crds).await.unwrap();
    let client = env.client().await.unwrap();
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NS);
    let machines: Api<Machine> = Api::namespaced(client.clone(), NS);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": "race", "namespace": NS},
        "spec": {"controlPlaneEndpoint": {"host": "10.0.0.1", "port": 6443}}
    }))
    .unwrap();
    let cluster = clusters.create(&PostParams::default(), &cluster).await.unwrap();
    let mut contenders = Vec::new();
    for name in ["cp-a", "cp-b"] {
        let m: Machine = serde_json::from_value(json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"clusterName": "race", "bootstrap": {"dataSecretName": "x"},
                     "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "TestMachine", "name": name}}
        }))
        .unwrap();
        contenders.push(machines.create(&PostParams::default(), &m).await.unwrap());
    }
    for round in 0..10 {
        // The lock of a Machine that no longer exists.
        let stale: ConfigMap = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "race-lock", "namespace": NS},
            "data": {"lock-information": "{\"machineName\":\"ghost\"}"}
        }))
        .unwrap();
        let _ = cms.delete("race-lock", &DeleteParams::default()).await;
        assert!(wait_for(WAIT, || async { cms.get_opt("race-lock").await.unwrap().is_none() }).await);
        cms.create(&PostParams::default(), &stale).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let client = client.clone();
                let cluster = cluster.clone();
                let machine = contenders[i % 2].clone();
                tokio::spawn(async move {
                    let won = lock::lock(&client, &cluster, &machine).await.unwrap();
                    won.then(|| machine.name_any())
                })
            })
            .collect();
        let mut winners = std::collections::BTreeSet::new();
        for t in tasks {
            if let Some(w) = t.await.unwrap() {
                winners.insert(w);
            }
        }
        let holder = cms.get("race-lock").await.unwrap().data.unwrap()["lock-information"].clone();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: winners {winners:?}, lock now {holder}"
        );
        let winner = winners.into_iter().next().unwrap();
        assert!(
            holder.contains(&winner),
            "round {round}: {winner} won but the lock says {holder}"
        );
    }
}

/// Issue 10 §1: a worker whose cluster CA cannot be hashed gets no data and a condition saying
/// why; CA pinning is never switched off (`unsafeSkipCAVerification`) behind the user's back.
#[tokio::test]
async fn unhashable_cluster_ca_is_a_condition_not_an_unpinned_join() {
    let (env, fx, shutdown) = setup().await;
    fx.cluster("c5", json!({})).await;
    workload_kubeconfig(&env, &fx, "c5").await;
    let bad_ca = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("c5-ca".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(
            [
                ("tls.crt".to_string(), ByteString(b"not a certificate".to_vec())),
                ("tls.key".to_string(), ByteString(b"not a key".to_vec())),
            ]
            .into(),
        ),
        ..Default::default()
    };
    fx.secrets.create(&PostParams::default(), &bad_ca).await.unwrap();
    fx.infra_ready("c5").await;
    fx.cp_initialized("c5").await;
    fx.machine_with_config("w-0", "c5", false, "v1.31.1", json!({}), json!({}), None)
        .await;
    let c = fx
        .wait_config("w-0", "reports the CA problem", |c| {
            condition(c, "DataSecretAvailable")
                .is_some_and(|d| d.status == "False" && d.reason == "DiscoveryError" && d.message.contains("CA"))
        })
        .await;
    assert!(!c.data_secret_created());
    assert_ne!(
        c.spec
            .join_configuration
            .discovery
            .bootstrap_token
            .unsafe_skip_ca_verification,
        Some(true)
    );
    assert!(fx.secrets.get_opt("w-0").await.unwrap().is_none());
    shutdown.cancel();
}

/// README: the cluster PKI is generated only when the Cluster has no `controlPlaneRef`; under a
/// control-plane provider (KCP generates it) the config waits for the Secrets and creates none.
#[tokio::test]
async fn pki_is_left_to_the_control_plane_provider_when_there_is_one() {
    let (env, fx, shutdown) = setup().await;
    fx.cluster(
        "c6",
        json!({"controlPlaneRef": {"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": "c6"}}),
    )
    .await;
    workload_kubeconfig(&env, &fx, "c6").await;
    fx.infra_ready("c6").await;
    fx.machine_with_config("c6-cp", "c6", true, "v1.34.4", json!({}), json!({}), None)
        .await;
    fx.wait_config("c6-cp", "reports the missing certificates", |c| {
        condition(c, "CertificatesAvailable").is_some_and(|x| x.status != "True")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for suffix in ["ca", "etcd", "proxy", "sa"] {
        assert!(
            fx.secrets.get_opt(&format!("c6-{suffix}")).await.unwrap().is_none(),
            "c6-{suffix} was generated although KCP owns the PKI"
        );
    }
    assert!(!fx.configs.get("c6-cp").await.unwrap().data_secret_created());
    shutdown.cancel();
}
