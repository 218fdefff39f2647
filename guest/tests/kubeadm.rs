//! kubeadm init and join as the emulated guests run them, from real CABPK bootstrap data on real
//! NoCloud ISOs, against the real workload API servers `kubeadm init` starts: nodes registered
//! with their providerIDs, token discovery and TLS bootstrap with the tokens the Capstan bootstrap
//! controller creates, and the ways a join fails.
//!
//! Every Full-mode test starts one workload cluster (etcd + kube-apiserver, 5-10 s); the cases
//! that need a cluster share it within their test.

use std::path::Path;
use std::time::{Duration, Instant};

use capstan_api::core::{Cluster, Machine};
use capstan_guest::{Datasource, GuestOptions, GuestStatus, Guests, Mode, VmInfo};
use capstan_iso::{BootstrapVolume, NoCloudSeed};
use capstan_kubeadm::api::{EncryptionAlgorithm, KubeadmConfig};
use capstan_kubeadm::controller::token::{generate_token, token_secret, token_secret_name};
use capstan_kubeadm::offline;
use capstan_kubeadm::pki::{self, KeyPair};
use capstan_kubeadm::render::DocumentKind;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// The API server taints new Nodes with it; the node lifecycle controller removes it once Ready.
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// How long a boot that starts a control plane may take on a busy machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// The failure cases retry discovery/TLS bootstrap this long before giving up.
const SHORT_JOIN_TIMEOUT: Duration = Duration::from_secs(5);
const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

// ---------------------------------------------------------------------------------------------
// Bootstrap data, as the Capstan kubeadm bootstrap provider renders it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Init,
    Worker,
    ControlPlaneJoin,
}

/// What a cluster template typically sets: the node is named after the VM's hostname and the
/// kubelet gets the providerID from the NoCloud meta-data, both only known to cloud-init.
fn node_registration() -> Value {
    json!({
        "name": "{{ ds.meta_data.local_hostname }}",
        "kubeletExtraArgs": [{"name": "provider-id", "value": "{{ ds.meta_data.provider_id }}"}]
    })
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// One CA set for the whole cluster, in kubeadm's PKI layout, as the `<cluster>-ca`,
/// `-etcd`, `-proxy` and `-sa` Secrets would hold it: every document rendered from this
/// directory carries the same shared certificates.
fn pki_dir(dir: &Path) -> KeyPair {
    let write = |kp: &KeyPair, cert: &str, key: &str| {
        if let Some(parent) = dir.join(cert).parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(dir.join(cert), &kp.cert).unwrap();
        std::fs::write(dir.join(key), &kp.key).unwrap();
    };
    let ca = pki::new_ca(EncryptionAlgorithm::EcdsaP256, 10).unwrap();
    write(&ca, "ca.crt", "ca.key");
    let etcd = pki::new_ca(EncryptionAlgorithm::EcdsaP256, 10).unwrap();
    write(&etcd, "etcd/ca.crt", "etcd/ca.key");
    let proxy = pki::new_ca(EncryptionAlgorithm::EcdsaP256, 10).unwrap();
    write(&proxy, "front-proxy-ca.crt", "front-proxy-ca.key");
    let sa = pki::new_service_account_key_pair(EncryptionAlgorithm::Rsa2048).unwrap();
    write(&sa, "sa.pub", "sa.key");
    ca
}

/// The document CABPK would produce for a Machine of `role` in a Cluster whose
/// controlPlaneEndpoint is `host:port`; `spec` is merged into the KubeadmConfig's spec.
fn render_as(pki: &Path, host: &str, port: u16, role: Role, spec: Value, kind: Option<DocumentKind>) -> String {
    let mut full = json!({
        "initConfiguration": {"nodeRegistration": node_registration()},
        "joinConfiguration": {"nodeRegistration": node_registration()},
    });
    merge(&mut full, spec);
    let config: KubeadmConfig = serde_json::from_value(json!({
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfig",
        "metadata": {"name": "m", "namespace": "default"},
        "spec": full
    }))
    .unwrap();
    let mut cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": "w1", "namespace": "default"},
        "spec": {"controlPlaneEndpoint": {"host": host, "port": port}}
    }))
    .unwrap();
    if role != Role::Init {
        cluster.status = serde_json::from_value(json!({"conditions": [{"type": "ControlPlaneInitialized",
            "status": "True", "reason": "Initialized", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}))
        .unwrap();
    }
    let labels = if role == Role::Worker {
        json!({})
    } else {
        json!({"cluster.x-k8s.io/control-plane": ""})
    };
    let machine: Machine = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
        "metadata": {"name": "m", "namespace": "default", "labels": labels},
        "spec": {"clusterName": "w1", "version": "v1.34.4", "bootstrap": {},
                 "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DcsMachine", "name": "m"}}
    }))
    .unwrap();
    let rendered = offline::render(&config, &cluster, &machine, Some(pki), kind).unwrap();
    let expected = kind.unwrap_or(match role {
        Role::Init => DocumentKind::InitControlPlane,
        Role::Worker => DocumentKind::JoinWorker,
        Role::ControlPlaneJoin => DocumentKind::JoinControlPlane,
    });
    assert_eq!(rendered.kind, expected);
    rendered.document
}

fn render(pki: &Path, port: u16, role: Role, spec: Value) -> String {
    render_as(pki, "127.0.0.1", port, role, spec, None)
}

/// A join through token discovery with `token`; CABPK fills in caCertHashes from the CA and the
/// API server endpoint from the Cluster.
fn token_join(token: &str) -> Value {
    json!({"joinConfiguration": {"discovery": {"bootstrapToken": {"token": token}}}})
}

fn vm(n: u32, name: &str) -> VmInfo {
    VmInfo {
        id: format!("vm-{n:04}"),
        uuid: format!("42100000-0000-0000-0000-{n:012}"),
        name: name.into(),
        ips: vec![format!("10.0.0.{}", 10 + n)],
        os: capstan_guest::GuestOs::Ubuntu,
    }
}

fn provider_id(vm: &VmInfo) -> String {
    format!("dcs://{}", vm.uuid)
}

/// The VM's NoCloud ISO, as the DCS provider builds it.
fn iso(vm: &VmInfo, user_data: &str) -> Vec<u8> {
    NoCloudSeed {
        instance_id: vm.id.clone(),
        hostname: vm.name.clone(),
        user_data: user_data.as_bytes().to_vec(),
        network_config: None,
        provider_id: Some(provider_id(vm)),
    }
    .to_iso()
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Guests and workload clusters.

/// State on /dev/shm when there is one: etcd fsyncs every write.
fn state_dir() -> tempfile::TempDir {
    let base = if Path::new("/dev/shm").is_dir() {
        Path::new("/dev/shm")
    } else {
        Path::new("/tmp")
    };
    tempfile::Builder::new()
        .prefix("capstan-guest-test-")
        .tempdir_in(base)
        .unwrap()
}

fn guests(state: &Path, mode: Mode, join_timeout: Duration) -> Guests {
    Guests::new(GuestOptions {
        state_dir: state.to_path_buf(),
        mode,
        boot_delay: Duration::ZERO,
        join_timeout,
        endpoint: capstan_guest::EndpointMode::Vip,
    })
}

/// Waits for the boot to end (anything but `Booting`).
async fn settled(g: &Guests, id: &str, timeout: Duration) -> GuestStatus {
    let deadline = Instant::now() + timeout;
    loop {
        match g.status(id) {
            Some(GuestStatus::Booting) if Instant::now() < deadline => {}
            Some(GuestStatus::Booting) => panic!("{id} still booting after {timeout:?}; log: {:#?}", g.log(id)),
            Some(s) => return s,
            None => panic!("{id} is unknown"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for the boot to succeed; returns the Node the VM registered.
async fn running(g: &Guests, id: &str) -> String {
    match settled(g, id, BOOT_TIMEOUT).await {
        GuestStatus::Running { node: Some(node) } => node,
        other => panic!("{id}: {other:?}; log: {:#?}", g.log(id)),
    }
}

/// Waits for the boot to fail; returns the reason.
async fn failed(g: &Guests, id: &str) -> String {
    match settled(g, id, BOOT_TIMEOUT).await {
        GuestStatus::Failed { reason } => reason,
        other => panic!("{id} was expected to fail: {other:?}; log: {:#?}", g.log(id)),
    }
}

fn admin(g: &Guests, endpoint: &str) -> kube::Client {
    g.cluster(endpoint)
        .unwrap_or_else(|| panic!("no cluster at {endpoint}"))
        .admin()
        .expect("a Full-mode cluster has an admin client")
        .clone()
}

async fn node(admin: &kube::Client, name: &str) -> Node {
    Api::<Node>::all(admin.clone()).get(name).await.unwrap()
}

fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn has_label(n: &Node, key: &str) -> bool {
    n.metadata.labels.as_ref().is_some_and(|l| l.contains_key(key))
}

fn node_provider_id(n: &Node) -> Option<String> {
    n.spec.as_ref().and_then(|s| s.provider_id.clone())
}

async fn node_names(admin: &kube::Client) -> Vec<String> {
    let mut names: Vec<String> = Api::<Node>::all(admin.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    names.sort();
    names
}

async fn cluster_info(admin: &kube::Client) -> std::collections::BTreeMap<String, String> {
    Api::<ConfigMap>::namespaced(admin.clone(), "kube-public")
        .get("cluster-info")
        .await
        .unwrap()
        .data
        .unwrap_or_default()
}

/// Waits until the bootstrap signer has (or, with `signed == false`, no longer has) a
/// `jws-kubeconfig-<id>` in cluster-info.
async fn wait_signed(admin: &kube::Client, token: &str, signed: bool) {
    let key = format!("jws-kubeconfig-{}", token.split_once('.').unwrap().0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster_info(admin).await.contains_key(&key) != signed {
        assert!(
            Instant::now() < deadline,
            "cluster-info: {key} present != {signed} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A token as the Capstan bootstrap controller creates it (`kube-system/bootstrap-token-<id>`).
async fn create_token(admin: &kube::Client) -> String {
    let token = generate_token().unwrap();
    Api::<Secret>::namespaced(admin.clone(), "kube-system")
        .create(&PostParams::default(), &token_secret(&token, TOKEN_TTL))
        .await
        .unwrap();
    token
}

fn token_id(token: &str) -> &str {
    token.split_once('.').unwrap().0
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Starts the workload cluster: the init VM (`vm-0001`, `cp-1`) boots to Running.
async fn init_cluster(g: &Guests, pki: &Path, port: u16) -> (VmInfo, String) {
    let cp = vm(1, "cp-1");
    let started = Instant::now();
    g.power_on(
        cp.clone(),
        Datasource::Cdrom(iso(&cp, &render(pki, port, Role::Init, json!({})))),
    );
    let node = running(g, &cp.id).await;
    eprintln!("kubeadm init took {:?}", started.elapsed());
    (cp, node)
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_then_joins() {
    let state = state_dir();
    let pki = tempfile::tempdir().unwrap();
    let ca = pki_dir(pki.path());
    let port = capstan_localplane::free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let g = guests(state.path(), Mode::Full, Duration::from_secs(60));

    let (cp, cp_node) = init_cluster(&g, pki.path(), port).await;
    assert_eq!(cp_node, "cp-1");
    let admin = admin(&g, &endpoint);
    let n = node(&admin, &cp_node).await;
    assert_eq!(node_provider_id(&n).as_deref(), Some(provider_id(&cp).as_str()));
    assert!(is_ready(&n), "{:?}", n.status);
    assert!(has_label(&n, CONTROL_PLANE_LABEL), "{:?}", n.metadata.labels);
    let taints = n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    assert!(
        taints
            .iter()
            .any(|t| t.key == CONTROL_PLANE_LABEL && t.effect == "NoSchedule"),
        "{taints:?}"
    );
    assert!(!taints.iter().any(|t| t.key == NOT_READY_TAINT), "{taints:?}");
    let kubeadm_config = Api::<ConfigMap>::namespaced(admin.clone(), "kube-system")
        .get("kubeadm-config")
        .await
        .unwrap();
    let cluster_configuration = &kubeadm_config.data.unwrap()["ClusterConfiguration"];
    assert!(cluster_configuration.contains(&endpoint), "{cluster_configuration}");
    let info = cluster_info(&admin).await;
    assert!(
        info["kubeconfig"].contains(&format!("server: https://{endpoint}")),
        "{info:?}"
    );
    assert!(
        !info.keys().any(|k| k.starts_with("jws-kubeconfig-")),
        "no tokens yet: {info:?}"
    );
    // The server really serves with the cluster CA the bootstrap data carried.
    assert_eq!(g.cluster(&endpoint).unwrap().ca.cert_pem, ca.cert);

    // The bootstrap controller creates a token in the workload cluster; the signer signs
    // cluster-info for it.
    let token = create_token(&admin).await;
    wait_signed(&admin, &token, true).await;

    let worker = vm(2, "worker-1");
    let cp2 = vm(3, "cp-2");
    let worker_doc = render(pki.path(), port, Role::Worker, token_join(&token));
    assert!(
        worker_doc.contains(&pki::ca_cert_hashes(&ca.cert).unwrap()[0]),
        "{worker_doc}"
    );
    let cp2_doc = render(
        pki.path(),
        port,
        Role::ControlPlaneJoin,
        json!({"joinConfiguration": {"discovery": {"bootstrapToken": {"token": token}}, "controlPlane": {}}}),
    );
    let started = Instant::now();
    g.power_on(worker.clone(), Datasource::Cdrom(iso(&worker, &worker_doc)));
    g.power_on(cp2.clone(), Datasource::Cdrom(iso(&cp2, &cp2_doc)));
    let worker_node = running(&g, &worker.id).await;
    let cp2_node = running(&g, &cp2.id).await;
    eprintln!("two joins took {:?}", started.elapsed());
    assert_eq!((worker_node.as_str(), cp2_node.as_str()), ("worker-1", "cp-2"));

    let n = node(&admin, &worker_node).await;
    assert_eq!(node_provider_id(&n).as_deref(), Some(provider_id(&worker).as_str()));
    assert!(is_ready(&n), "{:?}", n.status);
    assert!(!has_label(&n, CONTROL_PLANE_LABEL), "{:?}", n.metadata.labels);
    // The kubelet registers with the taints of its nodeRegistration (`--register-with-taints`):
    // the bootstrap provider's uninitialized taint stays until Cluster API core removes it.
    let taints = n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    assert_eq!(
        taints
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect::<Vec<_>>(),
        [("node.cluster.x-k8s.io/uninitialized", "NoSchedule")],
        "{taints:?}"
    );

    let n = node(&admin, &cp2_node).await;
    assert_eq!(node_provider_id(&n).as_deref(), Some(provider_id(&cp2).as_str()));
    assert!(is_ready(&n), "{:?}", n.status);
    assert!(has_label(&n, CONTROL_PLANE_LABEL), "{:?}", n.metadata.labels);

    assert_eq!(node_names(&admin).await, ["cp-1", "cp-2", "worker-1"]);
    let clusters = g.clusters();
    assert_eq!(clusters.len(), 1);
    let mut recorded: Vec<(String, Option<String>, bool, String)> = clusters[0]
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.provider_id.clone(), n.control_plane, n.vm_id.clone()))
        .collect();
    recorded.sort();
    assert_eq!(
        recorded,
        [
            ("cp-1".to_string(), Some(provider_id(&cp)), true, cp.id.clone()),
            ("cp-2".to_string(), Some(provider_id(&cp2)), true, cp2.id.clone()),
            (
                "worker-1".to_string(),
                Some(provider_id(&worker)),
                false,
                worker.id.clone()
            ),
        ]
    );
    assert!(clusters[0].apiserver_pid.is_some_and(pid_alive));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_failures() {
    let state = state_dir();
    let pki = tempfile::tempdir().unwrap();
    let ca = pki_dir(pki.path());
    let port = capstan_localplane::free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let g = guests(state.path(), Mode::Full, SHORT_JOIN_TIMEOUT);
    let _ = init_cluster(&g, pki.path(), port).await;
    let admin = admin(&g, &endpoint);
    let secrets = Api::<Secret>::namespaced(admin.clone(), "kube-system");

    // A valid token, for the cases that fail after discovery.
    let valid = create_token(&admin).await;
    // A token that was valid long enough for the signer to sign cluster-info for it, then
    // expired: the signer drops its signature, and the API server no longer authenticates it.
    let expired = create_token(&admin).await;
    wait_signed(&admin, &valid, true).await;
    wait_signed(&admin, &expired, true).await;
    let past = rfc3339(chrono::Utc::now() - chrono::Duration::hours(1));
    secrets
        .patch(
            &token_secret_name(token_id(&expired)),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"expiration": ByteString(past.into_bytes())}})),
        )
        .await
        .unwrap();
    wait_signed(&admin, &expired, false).await;
    // A token in the right format that the cluster has never heard of.
    let unknown = generate_token().unwrap();
    // Another cluster's CA.
    let other_ca = pki::new_ca(EncryptionAlgorithm::EcdsaP256, 10).unwrap();
    let other_hash = pki::ca_cert_hashes(&other_ca.cert).unwrap()[0].clone();
    let our_hash = pki::ca_cert_hashes(&ca.cert).unwrap()[0].clone();

    // File discovery (`discovery.file` + `tlsBootstrapToken`) needs no signature, so the API
    // server's verdict on the token itself shows: kubeadm's TLS bootstrap.
    let discovery_conf = cluster_info(&admin).await["kubeconfig"].clone();
    let file_join = |token: &str| {
        json!({
            "files": [{"path": "/etc/kubernetes/discovery.conf", "content": discovery_conf, "permissions": "0600"}],
            "joinConfiguration": {"discovery": {
                "file": {"kubeConfigPath": "/etc/kubernetes/discovery.conf"},
                "tlsBootstrapToken": token
            }}
        })
    };

    let cases: Vec<(VmInfo, String)> = vec![
        (
            vm(2, "unknown-token"),
            render(pki.path(), port, Role::Worker, token_join(&unknown)),
        ),
        (
            vm(3, "wrong-ca"),
            render(
                pki.path(),
                port,
                Role::Worker,
                json!({"joinConfiguration": {"discovery": {"bootstrapToken": {"token": valid, "caCertHashes": [other_hash]}}}}),
            ),
        ),
        (
            vm(4, "expired-token"),
            render(pki.path(), port, Role::Worker, token_join(&expired)),
        ),
        (
            vm(5, "expired-tls-bootstrap"),
            render(pki.path(), port, Role::Worker, file_join(&expired)),
        ),
        // The control for the case above: the same join with a valid token succeeds.
        (
            vm(6, "file-discovery"),
            render(pki.path(), port, Role::Worker, file_join(&valid)),
        ),
        // A control-plane JoinConfiguration in a document that carries only the cluster CA, as a
        // worker's would: kubeadm refuses before it touches the node.
        (
            vm(7, "cp-no-certs"),
            render_as(
                pki.path(),
                "127.0.0.1",
                port,
                Role::ControlPlaneJoin,
                json!({"joinConfiguration": {"discovery": {"bootstrapToken": {"token": valid}}, "controlPlane": {}}}),
                Some(DocumentKind::JoinWorker),
            ),
        ),
    ];
    let started = Instant::now();
    for (v, doc) in &cases {
        g.power_on(v.clone(), Datasource::Cdrom(iso(v, doc)));
    }

    let reason = failed(&g, "vm-0002").await;
    assert!(reason.starts_with("kubeadm join: discovery: "), "{reason}");
    assert!(
        reason.contains(&format!(
            "there is no JWS signed token in the cluster-info ConfigMap for token ID \"{}\"",
            token_id(&unknown)
        )),
        "{reason}"
    );

    let reason = failed(&g, "vm-0003").await;
    assert!(reason.starts_with("kubeadm join: discovery: "), "{reason}");
    assert!(
        reason.contains(&format!("none of the public keys \"{our_hash}\" are pinned")),
        "{reason}"
    );

    let reason = failed(&g, "vm-0004").await;
    assert!(reason.contains("there is no JWS signed token"), "{reason}");
    assert!(reason.contains(&format!("\"{}\"", token_id(&expired))), "{reason}");

    let reason = failed(&g, "vm-0005").await;
    assert!(reason.starts_with("kubeadm join: TLS bootstrap: "), "{reason}");
    assert!(
        reason.contains(&format!("rejected bootstrap token \"{}\"", token_id(&expired))),
        "{reason}"
    );

    assert_eq!(running(&g, "vm-0006").await, "file-discovery");

    let reason = failed(&g, "vm-0007").await;
    assert!(reason.starts_with("kubeadm join: "), "{reason}");
    assert!(reason.contains("missing shared certificates"), "{reason}");
    // A worker's document carries no CA file at all (workers learn the CA from discovery).
    for f in [
        "ca.crt",
        "ca.key",
        "sa.key",
        "sa.pub",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "etcd/ca.crt",
        "etcd/ca.key",
    ] {
        assert!(reason.contains(f), "{f} not in {reason}");
    }
    eprintln!("failure cases took {:?}", started.elapsed());

    // Only the init node and the control case registered; failed VMs joined no cluster.
    assert_eq!(node_names(&admin).await, ["cp-1", "file-discovery"]);
    let recorded: Vec<String> = g.clusters()[0].nodes.iter().map(|n| n.name.clone()).collect();
    assert_eq!(recorded, ["cp-1", "file-discovery"]);
    for id in ["vm-0002", "vm-0003", "vm-0004", "vm-0005", "vm-0007"] {
        assert!(
            g.log(id).iter().any(|l| l.starts_with("boot failed: kubeadm join: ")),
            "{id}: {:?}",
            g.log(id)
        );
    }
}

/// Boots that fail before any control plane exists leave none behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_failures_without_a_cluster() {
    let state = state_dir();
    let pki = tempfile::tempdir().unwrap();
    pki_dir(pki.path());
    let g = guests(state.path(), Mode::Full, SHORT_JOIN_TIMEOUT);

    // (e) The init document without its `#cloud-config` line.
    let port = capstan_localplane::free_port();
    let doc = render(pki.path(), port, Role::Init, json!({}));
    assert!(doc.contains("\n#cloud-config\n"), "{doc}");
    let broken = doc.replacen("#cloud-config\n", "", 1);
    let v = vm(1, "no-cloud-config");
    g.power_on(v.clone(), Datasource::Cdrom(iso(&v, &broken)));
    let reason = failed(&g, &v.id).await;
    assert!(reason.starts_with("cloud-init: "), "{reason}");
    assert!(reason.contains("#cloud-config"), "{reason}");
    assert!(
        !g.log(&v.id).iter().any(|l| l.contains("kubeadm")),
        "{:?}",
        g.log(&v.id)
    );
    assert!(g.clusters().is_empty());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port}"
    );

    // No ISO in the drive at all.
    let v = vm(2, "no-iso");
    g.power_on(v.clone(), Datasource::None);
    let reason = failed(&g, &v.id).await;
    assert!(reason.contains("no bootstrap volume"), "{reason}");

    // (f) A controlPlaneEndpoint the simulator cannot serve.
    let v = vm(3, "not-loopback");
    g.power_on(
        v.clone(),
        Datasource::Cdrom(iso(
            &v,
            &render_as(pki.path(), "10.0.0.1", 6443, Role::Init, json!({}), None),
        )),
    );
    let reason = failed(&g, &v.id).await;
    assert!(reason.starts_with("kubeadm init: control-plane endpoint: "), "{reason}");
    assert!(reason.contains("10.0.0.1:6443"), "{reason}");
    assert!(reason.contains("127.0.0.1"), "says what to use instead: {reason}");
    assert!(g.clusters().is_empty());
    assert!(!state.path().join("clusters").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_stops_the_control_plane() {
    let state = state_dir();
    let pki = tempfile::tempdir().unwrap();
    pki_dir(pki.path());
    let port = capstan_localplane::free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let g = guests(state.path(), Mode::Full, Duration::from_secs(60));
    let (cp, _) = init_cluster(&g, pki.path(), port).await;
    let token = {
        let admin = admin(&g, &endpoint);
        let token = create_token(&admin).await;
        wait_signed(&admin, &token, true).await;
        token
    };
    let worker = vm(2, "worker-1");
    g.power_on(
        worker.clone(),
        Datasource::Cdrom(iso(
            &worker,
            &render(pki.path(), port, Role::Worker, token_join(&token)),
        )),
    );
    running(&g, &worker.id).await;

    let clusters = g.clusters();
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0].nodes.len(), 2);
    let pid = clusters[0].apiserver_pid.expect("Full mode runs an API server");
    assert!(pid_alive(pid));
    let cluster_dirs: Vec<_> = std::fs::read_dir(state.path().join("clusters")).unwrap().collect();
    assert_eq!(cluster_dirs.len(), 1);

    // The worker goes: the control plane stays, without its node.
    g.destroy(&worker.id);
    assert_eq!(g.status(&worker.id), None);
    assert!(!state.path().join("vms").join(&worker.id).exists());
    let clusters = g.clusters();
    assert_eq!(clusters.len(), 1);
    assert_eq!(
        clusters[0].nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["cp-1"]
    );
    assert!(pid_alive(pid));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    // The last VM goes: so does the control plane, its processes and its data.
    g.destroy(&cp.id);
    assert!(g.clusters().is_empty());
    assert!(g.cluster(&endpoint).is_none());
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) {
        assert!(Instant::now() < deadline, "kube-apiserver {pid} outlived its cluster");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert_eq!(std::fs::read_dir(state.path().join("clusters")).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_only_mode() {
    let state = state_dir();
    let pki = tempfile::tempdir().unwrap();
    pki_dir(pki.path());
    let port = capstan_localplane::free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let g = guests(state.path(), Mode::NodesOnly, SHORT_JOIN_TIMEOUT);
    let (cp, cp_node) = init_cluster(&g, pki.path(), port).await;
    assert_eq!(cp_node, "cp-1");
    // No API server: the tokens CABPK would create exist nowhere, and joins need none.
    let worker = vm(2, "worker-1");
    let cp2 = vm(3, "cp-2");
    g.power_on(
        worker.clone(),
        Datasource::Cdrom(iso(&worker, &render(pki.path(), port, Role::Worker, json!({})))),
    );
    g.power_on(
        cp2.clone(),
        Datasource::Cdrom(iso(&cp2, &render(pki.path(), port, Role::ControlPlaneJoin, json!({})))),
    );
    assert_eq!(running(&g, &worker.id).await, "worker-1");
    assert_eq!(running(&g, &cp2.id).await, "cp-2");

    let clusters = g.clusters();
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0].endpoint, endpoint);
    assert_eq!(clusters[0].apiserver_pid, None);
    let mut nodes: Vec<(String, Option<String>, bool)> = clusters[0]
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.provider_id.clone(), n.control_plane))
        .collect();
    nodes.sort();
    assert_eq!(
        nodes,
        [
            ("cp-1".to_string(), Some(provider_id(&cp)), true),
            ("cp-2".to_string(), Some(provider_id(&cp2)), true),
            ("worker-1".to_string(), Some(provider_id(&worker)), false),
        ]
    );
    let cluster = g.cluster(&endpoint).unwrap();
    assert!(cluster.admin().is_none());
    assert!(!cluster.has_apiserver());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!state.path().join("clusters").exists());
}

/// A power cycle of a booted VM does not run cloud-init (nor kubeadm) again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_does_not_rerun_cloud_init() {
    let state = state_dir();
    let pki = tempfile::tempdir().unwrap();
    pki_dir(pki.path());
    let port = capstan_localplane::free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let g = guests(state.path(), Mode::Full, SHORT_JOIN_TIMEOUT);
    let (cp, cp_node) = init_cluster(&g, pki.path(), port).await;
    let admin = admin(&g, &endpoint);
    let log = g.log(&cp.id);
    let pid = g.clusters()[0].apiserver_pid;

    g.power_off(&cp.id);
    assert_eq!(g.status(&cp.id), Some(GuestStatus::Off));
    // The control plane is the VM's: while it is off, the cluster still exists.
    assert_eq!(g.clusters().len(), 1);
    g.power_on(
        cp.clone(),
        Datasource::Cdrom(iso(&cp, &render(pki.path(), port, Role::Init, json!({})))),
    );
    assert_eq!(
        g.status(&cp.id),
        Some(GuestStatus::Running {
            node: Some(cp_node.clone())
        })
    );
    // Give a wrongly started boot time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(g.status(&cp.id), Some(GuestStatus::Running { node: Some(cp_node) }));
    assert_eq!(g.log(&cp.id), log, "cloud-init ran again");
    let clusters = g.clusters();
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0].nodes.len(), 1);
    assert_eq!(clusters[0].apiserver_pid, pid, "same control plane");
    assert_eq!(node_names(&admin).await, ["cp-1"]);
}

/// Issue 11: a simulated control plane runs the kube-apiserver of its Machine's Kubernetes
/// version (one binary per minor, built by hack/testenv.sh from hack/peers); a version the test
/// bed has not built fails the boot with a reason that says how to add it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_runs_the_machines_kubernetes_version() {
    let state = state_dir();
    let pki = tempfile::tempdir().unwrap();
    pki_dir(pki.path());
    let g = guests(state.path(), Mode::Full, SHORT_JOIN_TIMEOUT);

    let port = capstan_localplane::free_port();
    let doc = render(pki.path(), port, Role::Init, json!({})).replace("v1.34.4", "v1.33.13");
    assert!(doc.contains("kubernetesVersion: v1.33.13"), "{doc}");
    let cp = vm(1, "cp-133");
    g.power_on(cp.clone(), Datasource::Cdrom(iso(&cp, &doc)));
    running(&g, &cp.id).await;
    let version = admin(&g, &format!("127.0.0.1:{port}"))
        .apiserver_version()
        .await
        .unwrap();
    assert_eq!(version.git_version, "v1.33.13");

    let port = capstan_localplane::free_port();
    let doc = render(pki.path(), port, Role::Init, json!({})).replace("v1.34.4", "v1.30.1");
    let old = vm(2, "cp-130");
    g.power_on(old.clone(), Datasource::Cdrom(iso(&old, &doc)));
    let reason = failed(&g, &old.id).await;
    assert!(reason.contains("no kube-apiserver for Kubernetes v1.30"), "{reason}");
    assert!(reason.contains("hack/peers/gen-kube-apiserver.sh"), "{reason}");
}
