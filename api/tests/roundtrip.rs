//! Objects written by upstream CAPI (with fields Capstan does not model) survive being read
//! through Capstan's types and written back, against a real kube-apiserver with the upstream CRDs.

use capstan_api::core::{Cluster, Machine, MachineDeployment, MachineSet};
use capstan_e2e::TestEnv;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const CLUSTER: &str = r#"
apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata:
  name: rt
  namespace: default
  labels: {team: a}
  annotations: {note: keep}
spec:
  paused: false
  availabilityGates:
  - conditionType: MyGate
    polarity: Negative
  clusterNetwork:
    apiServerPort: 6443
    pods: {cidrBlocks: ["192.168.0.0/16"]}
    services: {cidrBlocks: ["10.128.0.0/12"]}
    serviceDomain: cluster.local
  controlPlaneEndpoint: {host: 10.0.0.10, port: 6443}
  controlPlaneRef: {apiGroup: controlplane.cluster.x-k8s.io, kind: KubeadmControlPlane, name: rt-cp}
  infrastructureRef: {apiGroup: infrastructure.cluster.x-k8s.io, kind: DCSCluster, name: rt}
  topology:
    classRef: {name: my-class}
    version: v1.31.0
    variables:
    - name: v1
      value: {nested: [1, 2, {deep: true}]}
    workers:
      machineDeployments:
      - class: default-worker
        name: md-0
        replicas: 2
"#;

const CLUSTER_STATUS: &str = r#"
status:
  initialization: {infrastructureProvisioned: true, controlPlaneInitialized: false}
  phase: Provisioned
  observedGeneration: 1
  failureDomains:
  - name: fd1
    controlPlane: true
    attributes: {zone: a}
  conditions:
  - type: Ready
    status: "False"
    reason: NotReady
    message: waiting
    lastTransitionTime: "2026-01-01T00:00:00Z"
    observedGeneration: 1
  controlPlane: {desiredReplicas: 3, replicas: 1, readyReplicas: 1, availableReplicas: 1, upToDateReplicas: 1}
  workers: {desiredReplicas: 2, replicas: 0}
  deprecated:
    v1beta1:
      failureReason: SomeReason
      failureMessage: some message
      conditions:
      - type: Ready
        status: "False"
        severity: Info
        lastTransitionTime: "2026-01-01T00:00:00Z"
"#;

const MACHINE_SPEC: &str = r#"
  clusterName: rt
  bootstrap:
    configRef: {apiGroup: bootstrap.cluster.x-k8s.io, kind: KubeadmConfig, name: m-boot}
    dataSecretName: m-boot
  infrastructureRef: {apiGroup: infrastructure.cluster.x-k8s.io, kind: DCSMachine, name: m-infra}
  version: v1.31.0
  providerID: dcs://0f5c8a1e-0000-4000-8000-000000000001
  failureDomain: fd1
  minReadySeconds: 5
  readinessGates:
  - conditionType: Custom
  taints:
  - key: dedicated
    value: infra
    effect: NoSchedule
    propagation: Always
  deletion:
    nodeDrainTimeoutSeconds: 30
    nodeDeletionTimeoutSeconds: 10
"#;

const MACHINE_STATUS: &str = r#"
status:
  initialization: {infrastructureProvisioned: true, bootstrapDataSecretCreated: true}
  nodeRef: {name: node-1}
  addresses:
  - {type: InternalIP, address: 10.0.0.21}
  - {type: Hostname, address: m1}
  failureDomain: fd1
  phase: Running
  lastUpdated: "2026-01-01T00:00:00Z"
  observedGeneration: 2
  certificatesExpiryDate: "2027-01-01T00:00:00Z"
  nodeInfo: {architecture: amd64, operatingSystem: linux, kubeletVersion: v1.31.0, machineID: abc, bootID: b, kernelVersion: "6", osImage: x, containerRuntimeVersion: c, kubeProxyVersion: v, systemUUID: s}
  deletion: {nodeDrainStartTime: "2026-01-01T00:00:00Z"}
  conditions:
  - {type: Ready, status: "True", reason: Ready, message: all good, lastTransitionTime: "2026-01-01T00:00:00Z"}
"#;

fn set_spec(kind: &str, name: &str) -> String {
    format!(
        r#"
apiVersion: cluster.x-k8s.io/v1beta2
kind: {kind}
metadata:
  name: {name}
  namespace: default
spec:
  clusterName: rt
  replicas: 3
  machineNaming: {{template: "{{{{ .machineSet.name }}}}-{{{{ .random }}}}"}}
  deletion: {{order: Oldest}}
  selector:
    matchLabels: {{pool: a}}
    matchExpressions:
    - {{key: tier, operator: In, values: [blue, green]}}
  template:
    metadata:
      labels: {{pool: a, tier: blue}}
      annotations: {{k: v}}
    spec:
{machine}
"#,
        machine = MACHINE_SPEC
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

const SET_STATUS: &str = r#"
status:
  selector: pool=a
  replicas: 3
  readyReplicas: 2
  availableReplicas: 2
  upToDateReplicas: 3
  observedGeneration: 1
  versions: [{version: v1.31.0, replicas: 3}]
  conditions:
  - {type: Available, status: "True", reason: Available, message: all good, lastTransitionTime: "2026-01-01T00:00:00Z"}
"#;

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("test YAML parses")
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// Creates `object` (with `status`) untyped, reads it through `K`, writes spec and status back
/// through `K` with full PUTs, and checks that spec, status, labels and annotations are unchanged.
async fn roundtrip<K>(client: &Client, object: Value, status: Value, check: impl Fn(&K))
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let gvk = GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta2", &K::kind(&()));
    let ar = ApiResource::from_gvk_with_plural(&gvk, &K::plural(&()));
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    let created = dynamic
        .create(&PostParams::default(), &serde_json::from_value(object).unwrap())
        .await
        .unwrap();
    let mut with_status = serde_json::to_value(&created).unwrap();
    with_status["status"] = status["status"].clone();
    dynamic
        .replace_status(
            &name,
            &PostParams::default(),
            &serde_json::from_value(with_status).unwrap(),
        )
        .await
        .unwrap();
    let before = serde_json::to_value(dynamic.get(&name).await.unwrap()).unwrap();
    assert_eq!(
        before["status"], status["status"],
        "the API server kept the status as written"
    );

    let typed: Api<K> = Api::namespaced(client.clone(), "default");
    let obj = typed.get(&name).await.unwrap();
    check(&obj);
    typed.replace(&name, &PostParams::default(), &obj).await.unwrap();
    let obj = typed.get(&name).await.unwrap();
    typed.replace_status(&name, &PostParams::default(), &obj).await.unwrap();

    let after = serde_json::to_value(dynamic.get(&name).await.unwrap()).unwrap();
    for field in ["spec", "status"] {
        assert_eq!(
            before[field],
            after[field],
            "{} {field} changed in the round trip",
            K::kind(&())
        );
    }
    for field in ["labels", "annotations"] {
        assert_eq!(before["metadata"][field], after["metadata"][field]);
    }
}

#[tokio::test]
async fn core_kinds_survive_a_round_trip_through_capstan_types() {
    let env = TestEnv::start().await.expect("test environment");
    let client = env.client().await.unwrap();

    roundtrip::<Cluster>(&client, yaml(CLUSTER), yaml(CLUSTER_STATUS), |c| {
        assert_eq!(c.spec.infrastructure_ref.as_ref().unwrap().kind, "DCSCluster");
        assert_eq!(c.spec.control_plane_endpoint.as_ref().unwrap().port, Some(6443));
        assert_eq!(
            c.spec.cluster_network.as_ref().unwrap().service_domain.as_deref(),
            Some("cluster.local")
        );
        assert!(c.spec.unknown.contains_key("topology"), "unmodelled fields are kept");
        assert!(c.infrastructure_provisioned());
        assert!(!c.control_plane_initialized());
        assert!(!c.is_paused());
        assert_eq!(
            c.status.as_ref().unwrap().failure_domains.as_ref().unwrap()[0].name,
            "fd1"
        );
    })
    .await;

    let machine = merge(
        yaml(
            "apiVersion: cluster.x-k8s.io/v1beta2\nkind: Machine\nmetadata:\n  name: m1\n  namespace: default\n  labels: {cluster.x-k8s.io/control-plane: ''}\n",
        ),
        yaml(&format!("spec:\n{MACHINE_SPEC}")),
    );
    roundtrip::<Machine>(&client, machine, yaml(MACHINE_STATUS), |m| {
        assert_eq!(m.spec.cluster_name, "rt");
        assert_eq!(m.data_secret_name(), Some("m-boot"));
        assert_eq!(
            m.spec.provider_id.as_deref(),
            Some("dcs://0f5c8a1e-0000-4000-8000-000000000001")
        );
        assert!(m.is_control_plane());
        let st = m.status.as_ref().unwrap();
        assert_eq!(st.node_ref.as_ref().unwrap().name, "node-1");
        assert_eq!(st.addresses.as_ref().unwrap()[0].address, "10.0.0.21");
        assert!(st.unknown.contains_key("nodeInfo"));
    })
    .await;

    roundtrip::<MachineSet>(&client, yaml(&set_spec("MachineSet", "ms1")), yaml(SET_STATUS), |ms| {
        assert_eq!(ms.spec.replicas, Some(3));
        assert_eq!(
            ms.spec.template.spec.bootstrap.config_ref.as_ref().unwrap().name,
            "m-boot"
        );
        assert!(ms.spec.unknown.contains_key("machineNaming"));
    })
    .await;

    let mut md = yaml(&set_spec("MachineDeployment", "md1"));
    md["spec"]["paused"] = json!(true);
    md["spec"]["rollout"] = json!({"after": "2026-02-01T00:00:00Z", "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}});
    md["spec"]["remediation"] = json!({"maxInFlight": 1});
    let mut md_status = yaml(SET_STATUS);
    md_status["status"]["phase"] = json!("Running");
    roundtrip::<MachineDeployment>(&client, md, md_status, |md| {
        let strategy = md.spec.rollout.as_ref().unwrap().strategy.as_ref().unwrap();
        let ru = strategy.rolling_update.as_ref().unwrap();
        assert_eq!(
            ru.max_surge,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                "25%".into()
            ))
        );
        assert_eq!(
            ru.max_unavailable,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0))
        );
        assert_eq!(md.spec.paused, Some(true));
        assert!(md.spec.rollout.as_ref().unwrap().after.is_some());
        assert!(md.spec.unknown.contains_key("remediation"), "unmodelled fields survive");
    })
    .await;
}

/// Controllers write only what they own: a server-side apply of one status field through a
/// Capstan field manager leaves every other field as it was.
#[tokio::test]
async fn owned_field_patches_leave_the_rest_alone() {
    let env = TestEnv::start().await.expect("test environment");
    let client = env.client().await.unwrap();
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "default");
    let created: Cluster = serde_json::from_value(yaml(CLUSTER)).unwrap();
    clusters.create(&PostParams::default(), &created).await.unwrap();
    let mut with_status = clusters.get("rt").await.unwrap();
    with_status.status = Some(serde_json::from_value(yaml(CLUSTER_STATUS)["status"].clone()).unwrap());
    clusters
        .replace_status("rt", &PostParams::default(), &with_status)
        .await
        .unwrap();
    let before = clusters.get("rt").await.unwrap();

    let patch = json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "Cluster",
        "status": {"initialization": {"controlPlaneInitialized": true}},
    });
    clusters
        .patch_status("rt", &PatchParams::apply("capstan-test").force(), &Patch::Apply(&patch))
        .await
        .unwrap();
    let after = clusters.get("rt").await.unwrap();
    assert!(after.control_plane_initialized());
    assert!(
        after.infrastructure_provisioned(),
        "the other initialization flag is untouched"
    );
    let (b, a) = (before.status.unwrap(), after.status.unwrap());
    assert_eq!(b.conditions, a.conditions);
    assert_eq!(b.failure_domains, a.failure_domains);
    assert_eq!(b.unknown, a.unknown, "unmodelled status fields are untouched");
    assert_eq!(before.spec, after.spec);
}
