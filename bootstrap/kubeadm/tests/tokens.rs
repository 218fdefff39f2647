//! Bootstrap tokens in a real workload API server: a second kube-apiserver that trusts the
//! generated cluster CA for client certificates and has bootstrap-token authentication on. The
//! controller reaches it only through `<cluster>-kubeconfig` (an admin kubeconfig built by
//! `admin_kubeconfig`), creates `kube-system/bootstrap-token-<id>`, refreshes it while the
//! Machine has no node, and the token authenticates.

use std::time::Duration;

use capstan_api::core::Machine;
use capstan_e2e::{TestEnv, TestEnvOptions, capi_crds_dir, load_crds_from_dir, wait_for};
use capstan_kubeadm::KubeadmBootstrapProvider;
use capstan_kubeadm::api::{EncryptionAlgorithm, KubeadmConfig};
use capstan_kubeadm::controller::Options;
use capstan_kubeadm::kubeconfig::{admin_kubeconfig, kubeconfig_secret};
use capstan_kubeadm::pki::{self, Certificates, Purpose};
use capstan_runtime::metrics::Metrics;
use capstan_runtime::{Provider, ProviderContext, Scope};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NS: &str = "default";
const TTL: Duration = Duration::from_secs(30);

fn secret_str(s: &Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

async fn bearer_client(url: &str, ca_pem: &[u8], token: &str) -> kube::Client {
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: w\n  cluster:\n    server: {url}\n    certificate-authority-data: {}\nusers:\n- name: w\n  user:\n    token: {token}\ncontexts:\n- name: w\n  context:\n    cluster: w\n    user: w\ncurrent-context: w\n",
        openssl::base64::encode_block(ca_pem).replace('\n', "")
    );
    let config =
        kube::Config::from_custom_kubeconfig(Kubeconfig::from_yaml(&yaml).unwrap(), &KubeConfigOptions::default())
            .await
            .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn token_is_created_refreshed_and_authenticates() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("capstan_kubeadm=info")
        .with_test_writer()
        .try_init();
    capstan_runtime::install_crypto_provider();

    // The cluster PKI as the first control plane would have it.
    let mut certs = Certificates::for_initial_control_plane(&Default::default());
    certs.generate_missing(EncryptionAlgorithm::Rsa2048, 3650).unwrap();
    let ca = certs.get(Purpose::ClusterCa).unwrap().key_pair.clone().unwrap();

    // Workload API server: client certificates must chain to the cluster CA; bootstrap tokens on.
    let ca_dir = std::env::temp_dir().join(format!("capstan-kubeadm-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&ca_dir).unwrap();
    let ca_file = ca_dir.join("cluster-ca.crt");
    std::fs::write(&ca_file, &ca.cert).unwrap();
    let workload = TestEnv::start_with(TestEnvOptions {
        capi_crds: false,
        // A later --client-ca-file overrides the harness's own test CA.
        extra_args: vec![
            "--client-ca-file".into(),
            ca_file.to_str().unwrap().into(),
            "--enable-bootstrap-token-auth".into(),
        ],
    })
    .await
    .unwrap();

    // Management API server with the CAPI CRDs and ours.
    let mgmt = TestEnv::start_with(TestEnvOptions::default()).await.unwrap();
    let mut crds: Vec<_> = load_crds_from_dir(&capi_crds_dir())
        .unwrap()
        .into_iter()
        .filter(|c| c.spec.group != "bootstrap.cluster.x-k8s.io")
        .collect();
    crds.extend(capstan_kubeadm::api::crds());
    mgmt.install_crds(&crds).await.unwrap();
    let client = mgmt.client().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    for cert in &certs.0 {
        secrets
            .create(&PostParams::default(), &cert.to_secret("w1", NS, None).unwrap())
            .await
            .unwrap();
    }
    // The admin kubeconfig authenticates with a client certificate from the cluster CA; the
    // harness's server certificate is signed by the harness CA, so trust that one for TLS.
    let admin = admin_kubeconfig("w1", workload.url(), &ca.cert, &ca.key).unwrap();
    let admin = admin.replace(
        &openssl::base64::encode_block(&ca.cert).replace('\n', ""),
        &openssl::base64::encode_block(workload.ca_pem()).replace('\n', ""),
    );
    secrets
        .create(&PostParams::default(), &kubeconfig_secret("w1", NS, &admin, None))
        .await
        .unwrap();

    let clusters: Api<capstan_api::core::Cluster> = Api::namespaced(client.clone(), NS);
    clusters
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
                "metadata": {"name": "w1", "namespace": NS},
                "spec": {"controlPlaneEndpoint": {"host": "192.0.2.10", "port": 6443}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    clusters
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "initialization": {"infrastructureProvisioned": true},
                "conditions": [{"type": "ControlPlaneInitialized", "status": "True", "reason": "Initialized",
                                "message": "initialized by the test", "lastTransitionTime": "2024-01-01T00:00:00Z"}]
            }})),
        )
        .await
        .unwrap();
    let machines: Api<Machine> = Api::namespaced(client.clone(), NS);
    let m = machines
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                "metadata": {"name": "worker", "namespace": NS, "labels": {"cluster.x-k8s.io/cluster-name": "w1"}},
                "spec": {"clusterName": "w1", "version": "v1.31.0",
                         "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "KubeadmConfig", "name": "worker"}},
                         "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "TestMachine", "name": "worker"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let configs: Api<KubeadmConfig> = Api::namespaced(client.clone(), NS);
    configs
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfig",
                "metadata": {"name": "worker", "namespace": NS, "labels": {"cluster.x-k8s.io/cluster-name": "w1"},
                             "ownerReferences": [{"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine", "name": "worker",
                                                  "uid": m.metadata.uid, "controller": true}]},
                "spec": {}
            }))
            .unwrap(),
        )
        .await
        .unwrap();

    let shutdown = CancellationToken::new();
    let provider = KubeadmBootstrapProvider {
        options: Options { token_ttl: TTL },
    };
    tokio::spawn(provider.run(ProviderContext {
        client: client.clone(),
        scope: Scope {
            namespace: Some(NS.into()),
            watch_filter: None,
        },
        metrics: std::sync::Arc::new(Metrics::new()),
        concurrency: Default::default(),
        shutdown: shutdown.clone(),
    }));

    assert!(
        wait_for(Duration::from_secs(60), || async {
            configs.get("worker").await.unwrap().data_secret_created()
        })
        .await,
        "{:#?}",
        configs.get("worker").await.unwrap().status
    );
    let config = configs.get("worker").await.unwrap();
    let bt = &config.spec.join_configuration.discovery.bootstrap_token;
    // Discovery defaults: endpoint from the Cluster, hash of the CA's SubjectPublicKeyInfo.
    assert_eq!(bt.api_server_endpoint, "192.0.2.10:6443");
    assert_eq!(
        bt.ca_cert_hashes.clone().unwrap(),
        pki::ca_cert_hashes(&ca.cert).unwrap()
    );
    let (id, secret_part) = bt.token.split_once('.').unwrap();
    assert!(id.len() == 6 && secret_part.len() == 16);
    assert!(
        bt.token
            .chars()
            .all(|c| c == '.' || c.is_ascii_lowercase() || c.is_ascii_digit())
    );

    // The token Secret in the workload cluster, exactly as upstream writes it.
    let wclient = workload.client().await.unwrap();
    let kube_system: Api<Secret> = Api::namespaced(wclient.clone(), "kube-system");
    let ts = kube_system.get(&format!("bootstrap-token-{id}")).await.unwrap();
    assert_eq!(ts.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
    assert_eq!(secret_str(&ts, "token-id"), id);
    assert_eq!(secret_str(&ts, "token-secret"), secret_part);
    assert_eq!(secret_str(&ts, "usage-bootstrap-signing"), "true");
    assert_eq!(secret_str(&ts, "usage-bootstrap-authentication"), "true");
    assert_eq!(
        secret_str(&ts, "auth-extra-groups"),
        "system:bootstrappers:kubeadm:default-node-token"
    );
    assert_eq!(
        secret_str(&ts, "description"),
        "token generated by cluster-api-bootstrap-provider-kubeadm"
    );
    let first_expiration = chrono::DateTime::parse_from_rfc3339(&secret_str(&ts, "expiration")).unwrap();
    // Measured from the Secret's own creation, not from now: however slow the machine, the
    // lifetime written is the TTL (30 s here; timestamps have second precision).
    let created = ts.metadata.creation_timestamp.as_ref().unwrap().0;
    let created = chrono::DateTime::parse_from_rfc3339(&created.to_string()).unwrap();
    let lifetime = first_expiration.signed_duration_since(created).num_seconds();
    assert!(lifetime >= 29, "expires {lifetime}s after creation");
    // A refresh may have extended it, but never beyond one TTL from now.
    let ahead = first_expiration.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!(ahead <= 31, "expires in {ahead}s");
    assert!(secret_str(&ts, "expiration").ends_with('Z'), "RFC 3339 UTC");

    // It authenticates: the server knows who we are (403 names the bootstrap user); a wrong
    // secret is not authenticated at all (401).
    let as_token = bearer_client(workload.url(), workload.ca_pem(), &bt.token).await;
    match Api::<Secret>::namespaced(as_token, "kube-system")
        .list(&Default::default())
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(s.message.contains(&format!("system:bootstrap:{id}")), "{}", s.message);
        }
        other => panic!("expected 403, got {other:?}"),
    }
    let wrong = bearer_client(workload.url(), workload.ca_pem(), &format!("{id}.0000000000000000")).await;
    match Api::<Secret>::namespaced(wrong, "kube-system")
        .list(&Default::default())
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 401, "{s:?}"),
        other => panic!("expected 401, got {other:?}"),
    }

    // Refreshed while the Machine has no node: with a 30 s TTL the controller checks every 10 s
    // and extends once less than 25 s remain.
    let name = format!("bootstrap-token-{id}");
    let refreshed = wait_for(Duration::from_secs(40), || async {
        let s = kube_system.get(&name).await.unwrap();
        chrono::DateTime::parse_from_rfc3339(&secret_str(&s, "expiration")).unwrap() > first_expiration
    })
    .await;
    assert!(refreshed, "token expiration was not extended");

    // Once the node exists the token is left to expire.
    machines
        .patch_status(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"nodeRef": {"name": "worker-node"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = secret_str(&kube_system.get(&name).await.unwrap(), "expiration");
    tokio::time::sleep(TTL / 3 + Duration::from_secs(3)).await;
    assert_eq!(
        secret_str(&kube_system.get(&name).await.unwrap(), "expiration"),
        settled
    );

    shutdown.cancel();
    let _ = std::fs::remove_dir_all(&ca_dir);
}
