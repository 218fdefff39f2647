//! The standalone Cluster controller against a real kube-apiserver with the upstream CAPI CRDs and
//! a minimal InfraCluster kind that the test drives by hand, acting as an infrastructure provider.

use std::time::Duration;

use capstan_api::conditions;
use capstan_api::core::{Cluster, ClusterPhase, Machine};
use capstan_e2e::{TestEnv, wait_for};
use capstan_runtime::metrics::Metrics;
use capstan_runtime::{Provider, ProviderContext, Scope};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn infra_crd() -> CustomResourceDefinition {
    test_infra_crd("TestInfraCluster")
}

/// A contract-labelled kind `kind` (`TestInfraCluster`, `TestInfraMachine`) the test drives by hand.
fn test_infra_crd(kind: &str) -> CustomResourceDefinition {
    let plural = format!("{}s", kind.to_lowercase());
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{plural}.infrastructure.cluster.x-k8s.io"),
            "labels": {"cluster.x-k8s.io/v1beta2": "v1alpha1"}
        },
        "spec": {
            "group": "infrastructure.cluster.x-k8s.io",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}}
            }]
        }
    }))
    .unwrap()
}

type Running = tokio::task::JoinHandle<Result<(), capstan_runtime::BoxError>>;

/// An API server with the CAPI CRDs and the test's InfraCluster kind, and the standalone core.
async fn start() -> (TestEnv, kube::Client, CancellationToken, Running) {
    let env = TestEnv::start().await.unwrap();
    env.install_crds(&[infra_crd(), test_infra_crd("TestInfraMachine")])
        .await
        .unwrap();
    let client = env.client().await.unwrap();
    let shutdown = CancellationToken::new();
    let ctx = ProviderContext {
        client: client.clone(),
        scope: Scope {
            namespace: Some("default".into()),
            watch_filter: None,
        },
        metrics: std::sync::Arc::new(Metrics::new()),
        concurrency: Default::default(),
        shutdown: shutdown.clone(),
    };
    let running = tokio::spawn(capstan_standalone::Standalone::default().run(ctx));
    (env, client, shutdown, running)
}

async fn cluster(api: &Api<Cluster>) -> Cluster {
    api.get("c1").await.unwrap()
}

#[tokio::test]
async fn cluster_follows_its_infrastructure_and_deletes_in_order() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
    let (_env, client, shutdown, running) = start().await;

    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "default");
    let machines: Api<Machine> = Api::namespaced(client.clone(), "default");
    let gvk = GroupVersionKind::gvk("infrastructure.cluster.x-k8s.io", "v1alpha1", "TestInfraCluster");
    let infras: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "testinfraclusters"),
    );

    let c: Cluster = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": "c1", "namespace": "default"},
        "spec": {
            "clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]}},
            "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "TestInfraCluster", "name": "c1"}
        }
    }))
    .unwrap();
    clusters.create(&PostParams::default(), &c).await.unwrap();

    // No InfraCluster yet: the Cluster says so, with the finalizer already in place.
    assert!(
        wait_for(Duration::from_secs(20), || async {
            let c = cluster(&clusters).await;
            let st = c.status.clone().unwrap_or_default();
            c.metadata
                .finalizers
                .unwrap_or_default()
                .contains(&"cluster.cluster.x-k8s.io".to_string())
                && st.phase == Some(ClusterPhase::Provisioning)
                && conditions::get(&st.conditions, "InfrastructureReady")
                    .is_some_and(|c| c.reason == "InfrastructureDoesNotExist")
        })
        .await,
        "{:?}",
        cluster(&clusters).await.status
    );

    let infra: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "TestInfraCluster",
        "metadata": {"name": "c1", "namespace": "default"},
        "spec": {"controlPlaneEndpoint": {"host": "10.1.2.3", "port": 6443}}
    }))
    .unwrap();
    infras.create(&PostParams::default(), &infra).await.unwrap();
    // The controller adopts it: owner reference to the Cluster and the cluster-name label.
    let uid = cluster(&clusters).await.metadata.uid.unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || async {
            let i = infras.get("c1").await.unwrap();
            i.metadata
                .owner_references
                .unwrap_or_default()
                .iter()
                .any(|o| o.uid == uid && o.kind == "Cluster")
                && i.metadata
                    .labels
                    .unwrap_or_default()
                    .get("cluster.x-k8s.io/cluster-name")
                    .map(String::as_str)
                    == Some("c1")
        })
        .await
    );
    assert!(!cluster(&clusters).await.infrastructure_provisioned());

    // The "provider" reports it provisioned: endpoint and failure domains flow to the Cluster.
    infras
        .patch_status(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "initialization": {"provisioned": true},
                "failureDomains": [{"name": "az1", "controlPlane": true}, {"name": "az2"}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "Provisioned", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
            }})),
        )
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || async {
            let c = cluster(&clusters).await;
            c.infrastructure_provisioned()
                && c.status.as_ref().and_then(|s| s.phase.clone()) == Some(ClusterPhase::Provisioned)
        })
        .await,
        "{:?}",
        cluster(&clusters).await
    );
    let c = cluster(&clusters).await;
    let ep = c.spec.control_plane_endpoint.clone().unwrap();
    assert_eq!((ep.host.as_deref(), ep.port), (Some("10.1.2.3"), Some(6443)));
    let st = c.status.clone().unwrap();
    let fds: Vec<&str> = st
        .failure_domains
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(fds, ["az1", "az2"]);
    assert!(conditions::is_true(&st.conditions, "InfrastructureReady"));
    assert!(!c.control_plane_initialized());

    // A control-plane Machine with a node initializes the control plane.
    let m: Machine = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
        "metadata": {"name": "cp-0", "namespace": "default",
                     "labels": {"cluster.x-k8s.io/cluster-name": "c1", "cluster.x-k8s.io/control-plane": ""}},
        "spec": {"clusterName": "c1", "bootstrap": {"dataSecretName": "cp-0"},
                 "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "TestInfraMachine", "name": "cp-0"}}
    }))
    .unwrap();
    machines.create(&PostParams::default(), &m).await.unwrap();
    machines
        .patch_status(
            "cp-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"nodeRef": {"name": "node-0"}}})),
        )
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || async {
            cluster(&clusters).await.control_plane_initialized()
        })
        .await
    );
    assert!(conditions::is_true(
        &cluster(&clusters).await.status.unwrap().conditions,
        "ControlPlaneInitialized"
    ));

    // Paused: nothing the infrastructure does reaches the Cluster.
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
            conditions::is_true(&cluster(&clusters).await.status.unwrap().conditions, "Paused")
        })
        .await
    );
    infras
        .patch_status(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"failureDomains": [{"name": "az9"}]}})),
        )
        .await
        .unwrap();
    // Another Cluster event while paused must not copy the change either.
    clusters
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"poke": "1"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fds = cluster(&clusters).await.status.unwrap().failure_domains.unwrap();
    assert_eq!(fds.len(), 2, "paused cluster kept its failure domains: {fds:?}");
    clusters
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || async {
            cluster(&clusters)
                .await
                .status
                .unwrap()
                .failure_domains
                .unwrap()
                .iter()
                .any(|f| f.name == "az9")
        })
        .await
    );

    // Deletion: Machines first, then the InfraCluster, then the Cluster itself.
    clusters.delete("c1", &DeleteParams::default()).await.unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || async {
            machines.get_opt("cp-0").await.unwrap().is_none()
        })
        .await
    );
    assert!(
        wait_for(Duration::from_secs(30), || async {
            infras.get_opt("c1").await.unwrap().is_none()
        })
        .await
    );
    assert!(
        wait_for(Duration::from_secs(30), || async {
            clusters.get_opt("c1").await.unwrap().is_none()
        })
        .await
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("controllers stop on shutdown")
        .unwrap()
        .unwrap();
}

/// Issue 10 §3: a cluster CA Secret without `tls.key` used to fail every reconcile in backoff
/// with nothing on the Cluster; now a condition says what is wrong and the rest of the status is
/// still written.
#[tokio::test]
async fn an_unusable_cluster_ca_is_a_condition() {
    let (_env, client, shutdown, _running) = start().await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "c2-ca"},
                "stringData": {"tls.crt": "-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "default");
    let c: Cluster = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": "c2", "namespace": "default"},
        "spec": {"controlPlaneEndpoint": {"host": "10.0.0.9", "port": 6443}}
    }))
    .unwrap();
    clusters.create(&PostParams::default(), &c).await.unwrap();
    let says = |c: &Cluster| {
        conditions::get(
            &c.status.as_ref().and_then(|s| s.conditions.clone()),
            "KubeconfigAvailable",
        )
        .is_some_and(|k| {
            k.status == "False"
                && k.reason == "InvalidClusterCA"
                && k.message.contains("c2-ca lacks tls.crt or tls.key")
        })
    };
    assert!(
        wait_for(Duration::from_secs(20), || async {
            says(&clusters.get("c2").await.unwrap())
        })
        .await,
        "{:?}",
        clusters.get("c2").await.unwrap().status
    );
    let status = clusters.get("c2").await.unwrap().status.unwrap();
    assert_eq!(
        status.phase,
        Some(ClusterPhase::Provisioned),
        "the rest of the status is still written"
    );
    shutdown.cancel();
}

/// README: deleting a Machine deletes its Node in the workload cluster, except the last
/// control-plane Machine's (without a control-plane provider) and when the whole Cluster goes;
/// a Node that cannot be deleted holds the Machine for `spec.deletion.nodeDeletionTimeoutSeconds`
/// and is then given up on with a Warning Event.
#[tokio::test]
async fn machine_deletion_deletes_its_node_with_upstreams_exceptions() {
    use k8s_openapi::api::core::v1::{Node, Secret};
    let (_env, client, shutdown, _running) = start().await;
    let mut workload = TestEnv::start_bare().await.unwrap();
    let kubeconfig = std::fs::read_to_string(workload.kubeconfig_path()).unwrap();
    let post = |v: serde_json::Value| {
        let client = client.clone();
        async move {
            let gvk: GroupVersionKind = serde_json::from_value(json!({
                "group": v["apiVersion"].as_str().unwrap().split_once('/').map_or("", |(g, _)| g),
                "version": v["apiVersion"].as_str().unwrap().rsplit('/').next().unwrap(),
                "kind": v["kind"],
            }))
            .unwrap();
            let ar = ApiResource::from_gvk(&gvk);
            let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
            api.create(&PostParams::default(), &serde_json::from_value(v).unwrap())
                .await
                .unwrap();
        }
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    for cluster in ["c1", "c2"] {
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    json!({"metadata": {"name": format!("{cluster}-kubeconfig")}, "stringData": {"value": kubeconfig}}),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        post(json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "TestInfraCluster", "metadata": {"name": cluster}})).await;
        post(json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "metadata": {"name": cluster},
                    "spec": {"infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "TestInfraCluster", "name": cluster}}}))
        .await;
    }
    let nodes: Api<Node> = Api::all(workload.client().await.unwrap());
    let infra_ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "infrastructure.cluster.x-k8s.io",
        "v1alpha1",
        "TestInfraMachine",
    ));
    let infras: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &infra_ar);
    let machines: Api<Machine> = Api::namespaced(client.clone(), "default");
    // name, cluster, control plane, nodeDeletionTimeoutSeconds
    let fleet = [
        ("cp-0", "c1", true, None),
        ("w-0", "c1", false, None),
        ("w-1", "c1", false, Some(3)),
        ("w-9", "c2", false, None),
    ];
    for (name, cluster, cp, timeout) in fleet {
        let pid = format!("test://{name}");
        post(
            json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "TestInfraMachine",
                    "metadata": {"name": name}, "spec": {"providerID": pid}}),
        )
        .await;
        infras
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"initialization": {"provisioned": true}}})),
            )
            .await
            .unwrap();
        let mut labels = json!({"cluster.x-k8s.io/cluster-name": cluster});
        if cp {
            labels["cluster.x-k8s.io/control-plane"] = json!("");
        }
        let mut spec = json!({"clusterName": cluster, "bootstrap": {"dataSecretName": name},
                              "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "TestInfraMachine", "name": name}});
        if let Some(t) = timeout {
            spec["deletion"] = json!({"nodeDeletionTimeoutSeconds": t});
        }
        post(json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                    "metadata": {"name": name, "labels": labels}, "spec": spec}))
        .await;
        nodes
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"providerID": pid}})).unwrap(),
            )
            .await
            .unwrap();
    }
    let node_ref = |name: &'static str| {
        let machines = machines.clone();
        async move {
            machines
                .get(name)
                .await
                .unwrap()
                .status
                .and_then(|s| s.node_ref)
                .map(|r| r.name)
        }
    };
    for (name, ..) in fleet {
        assert!(
            wait_for(Duration::from_secs(30), || async {
                node_ref(name).await.as_deref() == Some(name)
            })
            .await,
            "{name} found its node"
        );
    }
    let gone = |name: &'static str| {
        let machines = machines.clone();
        async move { machines.get_opt(name).await.unwrap().is_none() }
    };

    // A worker: its Node goes with it.
    machines.delete("w-0", &DeleteParams::default()).await.unwrap();
    assert!(wait_for(Duration::from_secs(30), || gone("w-0")).await);
    assert!(
        nodes.get_opt("w-0").await.unwrap().is_none(),
        "the worker's node is deleted"
    );

    // The last control-plane Machine: its Node stays.
    machines.delete("cp-0", &DeleteParams::default()).await.unwrap();
    assert!(wait_for(Duration::from_secs(30), || gone("cp-0")).await);
    assert!(
        nodes.get_opt("cp-0").await.unwrap().is_some(),
        "the last control-plane node stays"
    );

    // The whole Cluster goes: its Machines go, their Nodes stay (the cluster is going anyway).
    Api::<Cluster>::namespaced(client.clone(), "default")
        .delete("c2", &DeleteParams::default())
        .await
        .unwrap();
    assert!(wait_for(Duration::from_secs(30), || gone("w-9")).await);
    assert!(
        nodes.get_opt("w-9").await.unwrap().is_some(),
        "a deleted cluster's nodes are left alone"
    );

    // The workload API server is down: the Machine waits out its 3 s, then goes with a Warning.
    workload.kill_apiserver();
    let asked = std::time::Instant::now();
    machines.delete("w-1", &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!gone("w-1").await, "held while the node deletion is retried");
    assert!(wait_for(Duration::from_secs(30), || gone("w-1")).await);
    assert!(
        asked.elapsed() >= Duration::from_secs(2),
        "gone after {:?}",
        asked.elapsed()
    );
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let warned = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| {
            e.reason.as_deref() == Some("FailedDeleteNode")
                && e.message
                    .as_deref()
                    .unwrap_or_default()
                    .contains("within the node deletion timeout")
        });
    assert!(warned, "a FailedDeleteNode Warning says why the node stays");
    shutdown.cancel();
}
