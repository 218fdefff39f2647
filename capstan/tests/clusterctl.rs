//! Issue 13 §2: Capstan installed the way users install it. `capstan release` writes a clusterctl
//! repository; the real `clusterctl init` installs upstream core and KubeadmControlPlane (from
//! the CAPI module's own config trees) with Capstan kubeadm and Capstan DCS into a 1.34 API
//! server; the upstream managers run as processes and Capstan's managers run **as the
//! ServiceAccounts their components created** (TokenRequest tokens, no system:masters), so a
//! missing permission fails the test. Then `clusterctl generate cluster` renders both flavors:
//! the KCP default is accepted by the API server's schemas and upstream webhooks (server-side dry
//! run), the standalone flavor is applied and its Machines run on the DCS simulator's booted
//! guests under upstream core, `clusterctl describe cluster` shows them, and deleting the Cluster
//! leaves no VM.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use capstan_api::core::{Cluster, Machine, MachinePhase};
use capstan_e2e::upstream::{Upstream, UpstreamCapi, WebhookPki, cert_manager_crds, wait_for_webhooks};
use capstan_e2e::{ChildGuard, TestEnv, free_port, wait_for};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::authorization::v1::SelfSubjectRulesReview;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const NS: &str = "default";
const VERSION: &str = "v0.1.0";
const CAPSTAN_NS: &str = "capstan-system";

fn capstan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// clusterctl against the management plane, offline (no version check, no GitHub).
fn clusterctl(capi: &UpstreamCapi, env: &TestEnv, home: &Path) -> Command {
    let mut cmd = Command::new(&capi.clusterctl);
    cmd.env("KUBECONFIG", env.kubeconfig_path())
        .env("CLUSTERCTL_DISABLE_VERSIONCHECK", "true")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"));
    cmd
}

/// The repository: Capstan's packages from `capstan release`, upstream core and KCP beside them.
fn repository(dir: &Path, capi: &UpstreamCapi, ports: (u16, u16), pki: &WebhookPki) -> PathBuf {
    let out = run(capstan().args(["release", "--output"]).arg(dir).args([
        "--version",
        VERSION,
        "--image",
        "registry.example.invalid/capstan:e2e",
    ]));
    let config = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let mut parsed: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let providers = parsed["providers"].as_array_mut().unwrap();
    providers.push(capi.write_provider(dir, Upstream::Core, ports.0, pki).unwrap());
    providers.push(
        capi.write_provider(dir, Upstream::KubeadmControlPlane, ports.1, pki)
            .unwrap(),
    );
    std::fs::write(&config, serde_saphyr::to_string(&parsed).unwrap()).unwrap();
    config
}

/// A kubeconfig that authenticates as `capstan-system/<account>` with a TokenRequest token.
async fn service_account_kubeconfig(env: &TestEnv, admin: &Client, account: &str, dir: &Path) -> PathBuf {
    let request: TokenRequest = serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).unwrap();
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), CAPSTAN_NS)
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let ca = openssl::base64::encode_block(env.ca_pem()).replace(['\n', '\r'], "");
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: mgmt\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
         users:\n- name: {account}\n  user:\n    token: {token}\ncontexts:\n- name: sa\n  context:\n    cluster: mgmt\n    user: {account}\n\
         current-context: sa\n",
        env.url()
    );
    let path = dir.join(format!("{account}.kubeconfig"));
    std::fs::write(&path, kubeconfig).unwrap();
    path
}

/// `capstan manager --provider <provider>` as its ServiceAccount, with leader election in
/// capstan-system as the components run it.
fn capstan_manager(provider: &str, kubeconfig: &Path, log: &Path) -> ChildGuard {
    let mut cmd = capstan();
    cmd.args(["manager", "--provider", provider, "--leader-elect"])
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--health-probe-bind-address=127.0.0.1:{}", free_port()))
        .arg(format!("--metrics-bind-address=127.0.0.1:{}", free_port()))
        .env("POD_NAMESPACE", CAPSTAN_NS)
        .env("RUST_LOG", "info");
    ChildGuard::spawn(&format!("capstan-{provider}"), cmd, log).unwrap()
}

/// What the ServiceAccount may do, as `kubectl auth can-i --list` prints it.
async fn rules_of(kubeconfig: &Path, namespace: &str) -> Vec<String> {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = Client::try_from(config).unwrap();
    let review: SelfSubjectRulesReview = serde_json::from_value(json!({"spec": {"namespace": namespace}})).unwrap();
    let answer = Api::<SelfSubjectRulesReview>::all(client)
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    let mut rules: Vec<String> = answer
        .status
        .unwrap()
        .resource_rules
        .into_iter()
        .map(|r| {
            format!(
                "{:<48} {:<16} {}",
                r.resources.unwrap_or_default().join(","),
                r.api_groups.unwrap_or_default().join(","),
                r.verbs.join(",")
            )
        })
        .collect();
    rules.sort();
    rules
}

fn running(m: &Machine) -> bool {
    m.status
        .as_ref()
        .is_some_and(|s| s.phase == Some(MachinePhase::Running) && s.node_ref.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusterctl_installs_capstan_beside_upstream_core_and_kcp_and_its_managers_run_as_their_service_accounts() {
    let capi = UpstreamCapi::from_env().unwrap();
    let env = TestEnv::start_bare().await.unwrap();
    let admin = env.client().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let pki = WebhookPki::generate().unwrap();
    let ports = (free_port(), free_port());
    let config = repository(&dir.path().join("repo"), &capi, ports, &pki);

    // clusterctl's cert-manager probe creates an Issuer and a Certificate; their kinds suffice.
    env.install_crds(&cert_manager_crds()).await.unwrap();
    let init = run(clusterctl(&capi, &env, &home)
        .arg("init")
        .arg("--config")
        .arg(&config)
        .args([
            "--core",
            "cluster-api",
            "--bootstrap",
            "capstan-kubeadm",
            "--control-plane",
            "kubeadm",
            "--infrastructure",
            "capstan-dcs",
        ]));
    eprintln!("{}", String::from_utf8_lossy(&init.stdout));

    let logs = dir.path();
    let _core = capi
        .start_manager(
            Upstream::Core,
            env.kubeconfig_path(),
            ports.0,
            &pki,
            &logs.join("core.log"),
        )
        .unwrap();
    let _kcp = capi
        .start_manager(
            Upstream::KubeadmControlPlane,
            env.kubeconfig_path(),
            ports.1,
            &pki,
            &logs.join("kcp.log"),
        )
        .unwrap();
    wait_for_webhooks(ports.0).await.unwrap();
    wait_for_webhooks(ports.1).await.unwrap();
    let dcs_sa = service_account_kubeconfig(&env, &admin, "capstan-dcs-manager", dir.path()).await;
    let kubeadm_sa = service_account_kubeconfig(&env, &admin, "capstan-kubeadm-manager", dir.path()).await;
    let _dcs = capstan_manager("dcs", &dcs_sa, &logs.join("capstan-dcs.log"));
    let _kubeadm = capstan_manager("kubeadm", &kubeadm_sa, &logs.join("capstan-kubeadm.log"));
    for (name, kubeconfig) in [
        ("capstan-dcs-manager", &dcs_sa),
        ("capstan-kubeadm-manager", &kubeadm_sa),
    ] {
        eprintln!("auth can-i --list as {CAPSTAN_NS}:{name} in {NS}:");
        for rule in rules_of(kubeconfig, NS).await {
            eprintln!("  {rule}");
        }
    }

    // The cloud: the DCS simulator whose VMs boot their bootstrap ISO for real.
    let guests_dir = tempfile::tempdir().unwrap();
    let password = "Clusterctl-Passw0rd!";
    let sim = capstan_sim_dcs::Simulator::start(capstan_sim_dcs::SimConfig {
        password: password.into(),
        knobs: capstan_sim_dcs::SimKnobs {
            latency: capstan_sim_dcs::Latency::compressed(),
            ..Default::default()
        },
        guests: Some(capstan_guest::Guests::new(capstan_guest::GuestOptions {
            endpoint: capstan_guest::EndpointMode::Vip,
            ..capstan_guest::GuestOptions::new(guests_dir.path())
        })),
        ..Default::default()
    })
    .await
    .unwrap();
    let credentials: Secret = serde_json::from_value(json!({
        "metadata": {"name": "dcs-credentials"},
        "stringData": {"endpoint": sim.url().to_string(), "authUser": "capstan", "authKey": password},
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &credentials)
        .await
        .unwrap();

    let endpoint_port = free_port().to_string();
    let generate = |flavor: Option<&str>, control_planes: &str| {
        let mut cmd = clusterctl(&capi, &env, &home);
        cmd.args(["generate", "cluster", "omega", "--infrastructure"])
            .arg(format!("capstan-dcs:{VERSION}"))
            .arg("--config")
            .arg(&config)
            .args(["--kubernetes-version", "v1.34.4", "--target-namespace", NS])
            .args([
                "--control-plane-machine-count",
                control_planes,
                "--worker-machine-count",
                "2",
            ])
            .env("DCS_CREDENTIALS_SECRET", "dcs-credentials")
            .env("DCS_CA_BUNDLE", sim.ca_pem().replace('\n', "\\n"))
            .env("CONTROL_PLANE_ENDPOINT_HOST", "127.0.0.1")
            .env("CONTROL_PLANE_ENDPOINT_PORT", &endpoint_port)
            .env("KUBE_VIP_IMAGE", "example.invalid/kube-vip:v0.8.9");
        if let Some(f) = flavor {
            cmd.args(["--flavor", f]);
        }
        String::from_utf8(run(&mut cmd).stdout).unwrap()
    };

    // The default flavor (KubeadmControlPlane + kube-vip) passes every schema and upstream webhook.
    let kcp_yaml = generate(None, "3");
    let dry_run = PatchParams {
        dry_run: true,
        ..PatchParams::apply("e2e").force()
    };
    let accepted = capstan_localplane::apply_yaml(&admin, &kcp_yaml, NS, &dry_run)
        .await
        .unwrap();
    assert!(
        accepted.iter().any(|o| o == "KubeadmControlPlane/omega-control-plane"),
        "{accepted:?}"
    );

    // The standalone flavor runs: upstream core, Capstan kubeadm and DCS as their ServiceAccounts.
    let yaml = generate(Some("standalone"), "1");
    capstan_localplane::apply_yaml(&admin, &yaml, NS, &PatchParams::apply("e2e").force())
        .await
        .unwrap();
    let machines: Api<Machine> = Api::namespaced(admin.clone(), NS);
    let up = wait_for(Duration::from_secs(300), || async {
        let ms = machines
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        ms.len() == 3 && ms.iter().all(running)
    })
    .await;
    if !up {
        for m in machines.list(&ListParams::default()).await.unwrap().items {
            eprintln!("{}: {:?}", m.name_any(), m.status);
        }
        for log in ["core.log", "capstan-dcs.log", "capstan-kubeadm.log"] {
            let text = std::fs::read_to_string(logs.join(log)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!("--- {log}\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        panic!("the standalone cluster did not come up under upstream core");
    }
    let describe = run(clusterctl(&capi, &env, &home).args(["describe", "cluster", "omega", "-n", NS]));
    let describe = String::from_utf8_lossy(&describe.stdout).into_owned();
    eprintln!("{describe}");
    for needle in [
        "Cluster default/omega",
        "DCSCluster default/omega",
        "MachineDeployment default/omega-md-0",
        "Machine default/omega-control-plane-0",
    ] {
        assert!(describe.contains(needle), "{needle} missing from:\n{describe}");
    }
    // The managers really ran as their accounts: nothing in their logs was forbidden.
    for log in ["capstan-dcs.log", "capstan-kubeadm.log"] {
        let text = std::fs::read_to_string(logs.join(log)).unwrap();
        assert!(!text.contains("forbidden"), "{log} was refused something:\n{text}");
    }

    Api::<Cluster>::namespaced(admin.clone(), NS)
        .delete("omega", &DeleteParams::default())
        .await
        .unwrap();
    let gone = wait_for(Duration::from_secs(180), || async {
        let vms = sim.state().vms().into_iter().filter(|v| !v.is_template).count();
        let machines_left = machines
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(1);
        vms == 0 && machines_left == 0
    })
    .await;
    assert!(
        gone,
        "VMs left: {:?}",
        sim.state().vms().iter().map(|v| &v.name).collect::<Vec<_>>()
    );
}
