//! The manager binary against a real kube-apiserver: provider selection and preflight errors,
//! leader election with hand-over, health and metrics endpoints, graceful shutdown.

use std::process::Command;
use std::time::Duration;

use capstan_api::core::{Cluster, ClusterSpec};
use capstan_e2e::{ChildGuard, TestEnv, free_port, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

fn manager_cmd(kubeconfig: &std::path::Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capstan"));
    cmd.arg("manager").arg("--kubeconfig").arg(kubeconfig).args(extra);
    cmd.env("RUST_LOG", "info");
    cmd
}

/// Runs the manager to completion and returns (success, stderr).
fn run_to_exit(kubeconfig: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let out = manager_cmd(kubeconfig, extra).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_one_line_error(stderr: &str, needles: &[&str]) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "{:?} does not mention {n:?}", lines[0]);
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn unknown_provider_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("nothing");
    let (ok, stderr) = run_to_exit(&kubeconfig, &["--provider", "openstack"]);
    assert!(!ok);
    assert_one_line_error(&stderr, &["unknown provider \"openstack\"", "standalone"]);
    let (ok, stderr) = run_to_exit(&kubeconfig, &[]);
    assert!(!ok);
    assert_one_line_error(&stderr, &["no provider given"]);
}

#[tokio::test]
async fn missing_crd_is_a_one_line_error_naming_what_to_install() {
    let env = TestEnv::start_bare().await.unwrap();
    let (ok, stderr) = run_to_exit(
        env.kubeconfig_path(),
        &[
            "--provider",
            "standalone",
            "--health-probe-bind-address",
            "0",
            "--metrics-bind-address",
            "0",
        ],
    );
    assert!(!ok);
    assert_one_line_error(
        &stderr,
        &[
            "CRD clusters.cluster.x-k8s.io",
            "not installed",
            "capstan crds --with-capi-core",
        ],
    );
}

#[tokio::test]
async fn standalone_refuses_to_run_next_to_capi_core() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client, "default");
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "controller-leader-election-capi"},
        "spec": {"holderIdentity": "capi-controller-manager"}
    }))
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let (ok, stderr) = run_to_exit(
        env.kubeconfig_path(),
        &[
            "--provider",
            "standalone",
            "--health-probe-bind-address",
            "0",
            "--metrics-bind-address",
            "0",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("Cluster API core is running"), "{stderr}");
}

struct Manager {
    proc: ChildGuard,
    health: u16,
    metrics: u16,
}

impl Manager {
    fn start(env: &TestEnv, n: usize) -> Self {
        let health = free_port();
        let metrics = free_port();
        let cmd = manager_cmd(
            env.kubeconfig_path(),
            &[
                "--provider",
                "standalone",
                "--leader-elect",
                "--leader-election-namespace",
                "default",
                // Renewed every 3 s with 7 s to spare: a loaded machine never loses the lease
                // by a late renewal; a killed leader is replaced within the 30 s the test waits.
                "--leader-elect-lease-duration",
                "10s",
                "--leader-elect-renew-grace",
                "7s",
                "--health-probe-bind-address",
                &format!("127.0.0.1:{health}"),
                "--metrics-bind-address",
                &format!("127.0.0.1:{metrics}"),
                "--log-format",
                "json",
                // In-flight reconciles get 4 s after SIGTERM, so the exit is bounded below the
                // test's 10 s even on a loaded machine.
                "--graceful-shutdown-timeout",
                "4s",
            ],
        );
        let proc = ChildGuard::spawn(
            &format!("manager-{n}"),
            cmd,
            &env.dir().join(format!("manager-{n}.log")),
        )
        .unwrap();
        Manager { proc, health, metrics }
    }

    async fn get(port: u16, path: &str) -> Option<(u16, String)> {
        let resp = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await.ok()?;
        let code = resp.status().as_u16();
        Some((code, resp.text().await.ok()?))
    }

    async fn is_leader(&self) -> bool {
        Self::get(self.metrics, "/metrics")
            .await
            .is_some_and(|(_, body)| body.lines().any(|l| l == "capstan_leader 1"))
    }

    async fn healthy(&self) -> bool {
        matches!(Self::get(self.health, "/healthz").await, Some((200, b)) if b == "ok")
            && matches!(Self::get(self.health, "/readyz").await, Some((200, b)) if b == "ok")
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt("capstan-standalone").await.ok()??.spec?.holder_identity
}

#[tokio::test]
async fn one_leader_handover_on_kill_and_clean_sigterm() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client, "default");
    let mut a = Manager::start(&env, 1);
    let mut b = Manager::start(&env, 2);

    assert!(
        wait_for(Duration::from_secs(30), || async {
            a.healthy().await && b.healthy().await
        })
        .await,
        "endpoints up"
    );
    assert!(
        wait_for(Duration::from_secs(30), || async {
            a.is_leader().await || b.is_leader().await
        })
        .await,
        "someone leads:\n{}\n{}",
        a.proc.log_tail(20),
        b.proc.log_tail(20)
    );
    // Give a second contender time to (wrongly) grab the lease too.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (a_leads, b_leads) = (a.is_leader().await, b.is_leader().await);
    assert!(a_leads ^ b_leads, "exactly one leads (a: {a_leads}, b: {b_leads})");
    let first = holder(&leases).await.expect("the lease has a holder");
    // Only the leader reconciles.
    let clusters: Api<Cluster> = Api::namespaced(env.client().await.unwrap(), "default");
    clusters
        .create(
            &PostParams::default(),
            &Cluster::new(
                "lead-test",
                ClusterSpec {
                    paused: Some(false),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
    let (lead_port, standby_port) = if a_leads {
        (a.metrics, b.metrics)
    } else {
        (b.metrics, a.metrics)
    };
    let reconciled = |port| async move {
        Manager::get(port, "/metrics")
            .await
            .is_some_and(|(_, m)| m.contains(r#"capstan_reconcile_total{controller="cluster"}"#))
    };
    assert!(
        wait_for(Duration::from_secs(20), || reconciled(lead_port)).await,
        "the leader reconciles"
    );
    assert!(!reconciled(standby_port).await, "the standby does not reconcile");

    // Kill the leader without letting it release the lease: the standby takes over on expiry.
    let (leader, standby) = if a_leads { (&mut a, &mut b) } else { (&mut b, &mut a) };
    leader.proc.signal(libc::SIGKILL);
    leader.proc.wait_timeout(Duration::from_secs(5)).expect("killed");
    assert!(
        wait_for(Duration::from_secs(30), || async { standby.is_leader().await }).await,
        "standby takes over:\n{}",
        standby.proc.log_tail(30)
    );
    let second = holder(&leases).await.unwrap();
    assert_ne!(first, second, "the lease changed hands");

    // A new standby waits behind the new leader ...
    let mut c = Manager::start(&env, 3);
    assert!(
        wait_for(Duration::from_secs(30), || c.healthy()).await,
        "third manager up"
    );
    assert!(!c.is_leader().await);

    // SIGTERM: stop controllers, release the lease, exit 0 within a few seconds.
    standby.proc.signal(libc::SIGTERM);
    let status = standby
        .proc
        .wait_timeout(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(
        status.success(),
        "exit status {status:?}:\n{}",
        standby.proc.log_tail(30)
    );
    let released = holder(&leases).await;
    assert!(
        released.as_deref().is_none_or(str::is_empty) || released.as_deref() != Some(second.as_str()),
        "lease released: {released:?}"
    );
    // ... and takes over at once, long before the 10 s lease would have expired.
    assert!(
        wait_for(Duration::from_secs(6), || c.is_leader()).await,
        "standby takes over after SIGTERM:\n{}",
        c.proc.log_tail(30)
    );
    // `--log-format json`: every line the managers logged is one JSON object with a level.
    c.proc.signal(libc::SIGTERM);
    c.proc
        .wait_timeout(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    for m in [&a, &b, &c] {
        let log = m.proc.log_tail(10_000);
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty());
        for line in lines {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            assert!(v["level"].is_string(), "{line}");
        }
    }
}

/// README "Running against an existing management cluster": without `--kubeconfig` the manager
/// uses `$KUBECONFIG`, else `~/.kube/config` (it reaches the API server either way: the missing
/// CRD is reported), and says so in one line when there is no configuration at all.
#[tokio::test]
async fn kubeconfig_comes_from_the_flag_the_environment_or_the_home_directory() {
    let env = TestEnv::start_bare().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let run = |kubeconfig_env: Option<&std::path::Path>, home: &std::path::Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_capstan"));
        cmd.args([
            "manager",
            "--provider",
            "standalone",
            "--health-probe-bind-address",
            "0",
            "--metrics-bind-address",
            "0",
        ])
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", home);
        if let Some(k) = kubeconfig_env {
            cmd.env("KUBECONFIG", k);
        }
        let out = cmd.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let reached = ["CRD clusters.cluster.x-k8s.io", "not installed"];

    let (ok, stderr) = run(Some(env.kubeconfig_path()), home.path());
    assert!(!ok);
    assert_one_line_error(&stderr, &reached);

    std::fs::create_dir_all(home.path().join(".kube")).unwrap();
    std::fs::copy(env.kubeconfig_path(), home.path().join(".kube/config")).unwrap();
    let (ok, stderr) = run(None, home.path());
    assert!(!ok);
    assert_one_line_error(&stderr, &reached);

    let empty = tempfile::tempdir().unwrap();
    let (ok, stderr) = run(None, empty.path());
    assert!(!ok);
    assert!(!stderr.contains("CRD clusters"), "nothing to reach: {stderr}");
    assert_eq!(stderr.lines().filter(|l| !l.trim().is_empty()).count(), 1, "{stderr}");
}

/// README flags `--namespace` and `--watch-filter`: the manager reconciles only objects in that
/// namespace carrying `cluster.x-k8s.io/watch-filter=<value>`; everything else stays untouched.
#[tokio::test]
async fn namespace_and_watch_filter_limit_what_is_reconciled() {
    use k8s_openapi::api::core::v1::Namespace;
    let env = TestEnv::start().await.unwrap();
    let client = env.client().await.unwrap();
    for ns in ["team-a", "team-b"] {
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .unwrap();
    }
    let cluster = |ns: &str, name: &str, filter: Option<&str>| {
        let mut labels = serde_json::Map::new();
        if let Some(f) = filter {
            labels.insert("cluster.x-k8s.io/watch-filter".into(), f.into());
        }
        let c: Cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"controlPlaneEndpoint": {"host": "10.0.0.1", "port": 6443}}
        }))
        .unwrap();
        (Api::<Cluster>::namespaced(client.clone(), ns), c)
    };
    let cases = [
        ("team-a", "mine", Some("ours"), true),
        ("team-a", "unlabelled", None, false),
        ("team-a", "theirs", Some("other"), false),
        ("team-b", "elsewhere", Some("ours"), false),
    ];
    for (ns, name, filter, _) in cases {
        let (api, c) = cluster(ns, name, filter);
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    let cmd = manager_cmd(
        env.kubeconfig_path(),
        &[
            "--provider",
            "standalone",
            "--namespace",
            "team-a",
            "--watch-filter",
            "ours",
            "--health-probe-bind-address",
            "0",
            "--metrics-bind-address",
            "0",
        ],
    );
    let proc = ChildGuard::spawn("manager-scoped", cmd, &env.dir().join("manager-scoped.log")).unwrap();
    let reconciled = |ns: &'static str, name: &'static str| {
        let api = Api::<Cluster>::namespaced(client.clone(), ns);
        async move { api.get(name).await.unwrap().status.is_some_and(|s| s.phase.is_some()) }
    };
    assert!(
        wait_for(Duration::from_secs(30), || reconciled("team-a", "mine")).await,
        "the Cluster in scope is reconciled:\n{}",
        proc.log_tail(20)
    );
    // Give the manager time to (wrongly) reach the others too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (ns, name, _, in_scope) in cases {
        assert_eq!(reconciled(ns, name).await, in_scope, "{ns}/{name}");
        let c = Api::<Cluster>::namespaced(client.clone(), ns).get(name).await.unwrap();
        assert_eq!(
            !c.metadata.finalizers.unwrap_or_default().is_empty(),
            in_scope,
            "{ns}/{name} finalizer"
        );
    }
}
