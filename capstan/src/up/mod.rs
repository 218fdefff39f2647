//! `capstan up` / `capstan down`: a whole cluster on one machine. `up` prepares the local
//! management plane (building it on first use), starts the cloud's simulator (DCS or HCS) with
//! guest emulation and the manager in the background, generates the cluster from
//! `templates/<cloud>` with clusterctl-style variables, applies it and follows every Machine
//! until all Nodes have joined.

mod cloud;
pub mod daemon;
mod envsubst;
mod progress;
mod state;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use capstan_api::core::{Cluster, Machine};
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};

use crate::manager::parse_duration;
use state::{Applied, Ready, StateDir, alive, last_lines};

pub use cloud::{Infrastructure, NodeOs};
/// Who `capstan up` applies objects as (server-side apply field manager).
pub const FIELD_MANAGER: &str = "capstan-up";

const TESTENV_SCRIPT: &str = include_str!("../../../hack/testenv.sh");
/// The wrapper module of the default kube-apiserver: all `testenv.sh plane` builds.
const DEFAULT_APISERVER_MODULE: [(&str, &str); 2] = [
    (
        "go.mod",
        include_str!("../../../hack/peers/kube-apiserver-v1.34/go.mod"),
    ),
    (
        "go.sum",
        include_str!("../../../hack/peers/kube-apiserver-v1.34/go.sum"),
    ),
];

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Name of the workload cluster.
    #[arg(long, default_value = "capstan")]
    pub name: String,
    /// Namespace of the cluster's objects.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[arg(long, default_value_t = 3)]
    pub control_plane_machines: u32,
    #[arg(long, default_value_t = 2)]
    pub worker_machines: u32,
    #[arg(long, default_value = "v1.34.4")]
    pub kubernetes_version: String,
    /// Use this management cluster instead of starting a local one.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Where state, logs and kubeconfigs go.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The simulated cloud: `dcs` (an endpoint VIP the guests serve) or `hcs` (a managed ELB in
    /// front of the control plane, machines across three availability zones).
    #[arg(long, value_enum, default_value = "dcs")]
    pub infrastructure: Infrastructure,
    /// The nodes' operating system: `ubuntu` (cloud-init) or `microos` (Ignition), i.e. which
    /// flavor of the built-in templates (`cluster-template-microos.yaml`) and images is used.
    #[arg(long, value_enum, default_value = "ubuntu")]
    pub os: NodeOs,
    /// Directory with cluster-template.yaml and control-plane-machine.yaml (default: the
    /// templates built into this binary, from the repository's templates/<infrastructure>).
    #[arg(long)]
    pub template_dir: Option<PathBuf>,
    /// Give up waiting for the nodes after this long.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Lifetime of bootstrap tokens (refreshed until the machine joins).
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub bootstrap_token_ttl: Duration,
    /// Simulated time from power-on until cloud-init runs.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub guest_boot_delay: Duration,
}

#[derive(clap::Args, Debug)]
pub struct DownArgs {
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Give up waiting for the cluster's deletion after this long (then stop everything anyway).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

fn state_dir(arg: &Option<PathBuf>) -> StateDir {
    StateDir(arg.clone().unwrap_or_else(StateDir::default_path))
}

/// The etcd and kube-apiserver binaries; builds them with the repository's script (embedded)
/// when they are missing, showing its progress. Returns environment to pass on.
fn prepare_binaries() -> anyhow::Result<Vec<(String, String)>> {
    if capstan_localplane::binaries().is_ok() {
        return Ok(Vec::new());
    }
    eprintln!(
        "capstan up: preparing the local management plane (first run only: installs etcd, builds kube-apiserver from its Go module, about 8 minutes)"
    );
    let dir = tempfile::tempdir()?;
    let module = dir.path().join("hack/peers/kube-apiserver-v1.34");
    std::fs::create_dir_all(&module)?;
    std::fs::write(dir.path().join("hack/testenv.sh"), TESTENV_SCRIPT)?;
    for (name, text) in DEFAULT_APISERVER_MODULE {
        std::fs::write(module.join(name), text)?;
    }
    // The script prints one progress line per step and keeps the build output in a log file
    // under the cache, whose path it prints if a step fails.
    let out = Command::new("bash")
        .arg(dir.path().join("hack/testenv.sh"))
        .arg("plane")
        .stderr(Stdio::inherit())
        .output()
        .context("running the environment script")?;
    if !out.status.success() {
        anyhow::bail!("preparing the local management plane failed (see above)");
    }
    let env: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches(['"', '\'']).to_string()))
        .collect();
    for (k, v) in &env {
        // SAFETY: single-threaded at this point (no runtime started yet).
        unsafe { std::env::set_var(k, v) };
    }
    capstan_localplane::binaries()?;
    Ok(env)
}

fn spawn_daemon(args: &UpArgs, state: &StateDir) -> anyhow::Result<u32> {
    let log = std::fs::File::create(state.log_path())?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("up-daemon")
        .arg("--state-dir")
        .arg(&state.0)
        .arg("--namespace")
        .arg(&args.namespace)
        .arg("--bootstrap-token-ttl")
        .arg(format!("{}ms", args.bootstrap_token_ttl.as_millis()))
        .arg("--guest-boot-delay")
        .arg(format!("{}ms", args.guest_boot_delay.as_millis()))
        .arg("--infrastructure")
        .arg(args.infrastructure.provider());
    if let Some(k) = &args.kubeconfig {
        cmd.arg("--kubeconfig").arg(k);
    }
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    // SAFETY: setsid is async-signal-safe; the daemon leaves our session so it outlives us.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    Ok(cmd.spawn().context("starting the background process")?.id())
}

async fn wait_ready(state: &StateDir, pid: u32) -> anyhow::Result<Ready> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(r) = StateDir::read::<Ready>(&state.ready_path())
            && r.pid == pid
        {
            return Ok(r);
        }
        if !alive(pid) || Instant::now() > deadline {
            anyhow::bail!(
                "the background process did not start; last lines of {}:\n{}",
                state.log_path().display(),
                last_lines(&state.log_path(), 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// clusterctl reads variables from the environment; flags and what `up` started come on top.
fn render(args: &UpArgs, ready: &Ready, port: u16) -> anyhow::Result<String> {
    let (cluster_t, cp_t) = match &args.template_dir {
        Some(d) => (
            std::fs::read_to_string(d.join("cluster-template.yaml"))?,
            std::fs::read_to_string(d.join("control-plane-machine.yaml"))?,
        ),
        None => {
            let (cluster, cp) = args.infrastructure.templates(args.os);
            (cluster.to_string(), cp.to_string())
        }
    };
    let mut vars: BTreeMap<String, String> = std::env::vars().collect();
    vars.extend([
        ("CLUSTER_NAME".to_string(), args.name.clone()),
        ("NAMESPACE".into(), args.namespace.clone()),
        ("KUBERNETES_VERSION".into(), args.kubernetes_version.clone()),
        ("WORKER_MACHINE_COUNT".into(), args.worker_machines.to_string()),
        (
            "CONTROL_PLANE_MACHINE_COUNT".into(),
            args.control_plane_machines.to_string(),
        ),
        ("CONTROL_PLANE_ENDPOINT_HOST".into(), "127.0.0.1".into()),
        ("CONTROL_PLANE_ENDPOINT_PORT".into(), port.to_string()),
    ]);
    vars.extend(ready.template_vars.clone());
    let mut out = envsubst::substitute(&cluster_t, &vars)?;
    for i in 0..args.control_plane_machines {
        vars.insert("CONTROL_PLANE_MACHINE_INDEX".into(), i.to_string());
        if let Some(zone) = args.infrastructure.control_plane_failure_domain(i) {
            vars.insert("CONTROL_PLANE_FAILURE_DOMAIN".into(), zone);
        }
        out.push_str("\n---\n");
        out.push_str(&envsubst::substitute(&cp_t, &vars)?);
    }
    Ok(out)
}

async fn machines(client: &Client, ns: &str, cluster: &str) -> anyhow::Result<Vec<Machine>> {
    let lp = ListParams::default().labels(&format!("cluster.x-k8s.io/cluster-name={cluster}"));
    let mut items = Api::<Machine>::namespaced(client.clone(), ns).list(&lp).await?.items;
    items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(items)
}

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let state = state_dir(&args.state_dir);
    if let Some(r) = StateDir::read::<Ready>(&state.ready_path())
        && alive(r.pid)
    {
        anyhow::bail!(
            "already up (background process {}, state in {}); run `capstan down` first",
            r.pid,
            state.0.display()
        );
    }
    let _ = std::fs::remove_dir_all(&state.0);
    std::fs::create_dir_all(&state.0)?;
    if args.kubeconfig.is_none() {
        prepare_binaries()?;
    }
    let pid = spawn_daemon(&args, &state)?;
    let ready = wait_ready(&state, pid).await?;
    println!(
        "management plane ready in {:.1}s (kubeconfig {})",
        start.elapsed().as_secs_f64(),
        ready.mgmt_kubeconfig.display()
    );
    let client = crate::manager::client(Some(&ready.mgmt_kubeconfig)).await?;
    let port = free_port()?;
    let yaml = render(&args, &ready, port)?;
    let generated = state.0.join(format!("{}.yaml", args.name));
    std::fs::write(&generated, &yaml)?;
    let workload_kubeconfig = state.0.join(format!("{}.kubeconfig", args.name));
    StateDir::write(
        &state.applied_path(),
        &Applied {
            cluster_name: args.name.clone(),
            namespace: args.namespace.clone(),
            workload_kubeconfig: workload_kubeconfig.clone(),
        },
    )?;
    let applied_at = Instant::now();
    let objects = capstan_localplane::apply_yaml(
        &client,
        &yaml,
        &args.namespace,
        &kube::api::PatchParams::apply(FIELD_MANAGER).force(),
    )
    .await?;
    println!("applied {} objects from {}", objects.len(), generated.display());

    let want = (args.control_plane_machines + args.worker_machines) as usize;
    let mut progress = progress::Progress::default();
    let deadline = Instant::now() + args.timeout;
    loop {
        let ms = machines(&client, &args.namespace, &args.name).await?;
        let consoles: BTreeMap<String, String> = StateDir::read(&state.consoles_path()).unwrap_or_default();
        progress.show(start, &ms, &consoles);
        let done = ms.len() == want
            && ms.iter().all(|m| {
                m.status
                    .as_ref()
                    .is_some_and(|s| s.phase == Some(capstan_api::core::MachinePhase::Running) && s.node_ref.is_some())
            });
        if done {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "not all machines joined within {:?}; see {} and `kubectl --kubeconfig {} get machines -o yaml`; `capstan down{}` removes it all",
                args.timeout,
                state.log_path().display(),
                ready.mgmt_kubeconfig.display(),
                args.state_dir
                    .as_ref()
                    .map(|d| format!(" --state-dir {}", d.display()))
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let secret = Api::<Secret>::namespaced(client.clone(), &args.namespace)
        .get(&format!("{}-kubeconfig", args.name))
        .await?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get("value"))
        .context("the kubeconfig secret has no value")?;
    std::fs::write(&workload_kubeconfig, &value.0)?;
    let workload = crate::manager::client(Some(&workload_kubeconfig)).await?;
    let nodes = Api::<Node>::all(workload)
        .list(&ListParams::default())
        .await?
        .items
        .len();
    println!(
        "all {want} machines running, {nodes} nodes registered ({:.1}s after apply)",
        applied_at.elapsed().as_secs_f64()
    );
    println!("cluster {} is up in {:.1}s", args.name, start.elapsed().as_secs_f64());
    println!("workload kubeconfig: {}", workload_kubeconfig.display());
    println!("  kubectl --kubeconfig {} get nodes", workload_kubeconfig.display());
    println!(
        "tear down with: capstan down{}",
        match &args.state_dir {
            Some(d) => format!(" --state-dir {}", d.display()),
            None => String::new(),
        }
    );
    Ok(())
}

pub async fn down(args: DownArgs) -> anyhow::Result<()> {
    let state = state_dir(&args.state_dir);
    let Some(ready) = StateDir::read::<Ready>(&state.ready_path()) else {
        let _ = std::fs::remove_dir_all(&state.0);
        println!("nothing is up ({} has no state)", state.0.display());
        return Ok(());
    };
    if alive(ready.pid) {
        let client = crate::manager::client(Some(&ready.mgmt_kubeconfig)).await?;
        if let Some(applied) = StateDir::read::<Applied>(&state.applied_path()) {
            let clusters = Api::<Cluster>::namespaced(client.clone(), &applied.namespace);
            let _ = clusters
                .delete(&applied.cluster_name, &DeleteParams::background())
                .await;
            println!("deleting cluster {} ...", applied.cluster_name);
            let deadline = Instant::now() + args.timeout;
            while clusters.get_opt(&applied.cluster_name).await?.is_some() {
                if Instant::now() > deadline {
                    eprintln!(
                        "cluster {} still exists after {:?}; stopping anyway",
                        applied.cluster_name, args.timeout
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let _ = Api::<Secret>::namespaced(client.clone(), &ready.namespace)
            .delete(&ready.credentials_secret, &DeleteParams::default())
            .await;
        if !ready.local_plane {
            let crds: Api<
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
            > = Api::all(client.clone());
            for name in &ready.created_crds {
                let _ = crds.delete(name, &DeleteParams::default()).await;
            }
        }
        // SAFETY: plain kill(2) on the pid we started.
        unsafe { libc::kill(ready.pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(ready.pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if alive(ready.pid) {
            // SAFETY: as above.
            unsafe { libc::kill(ready.pid as i32, libc::SIGKILL) };
        }
    }
    std::fs::remove_dir_all(&state.0).with_context(|| format!("removing {}", state.0.display()))?;
    println!("down: everything `capstan up` created is gone");
    Ok(())
}
