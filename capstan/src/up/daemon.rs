//! The long-lived half of `capstan up`: the local management plane (unless `--kubeconfig`), the
//! cloud's simulator with guest emulation, and the manager (`standalone`, `kubeadm`, and the
//! cloud's provider). It runs detached so `up` can return; `capstan down` stops it with SIGTERM.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use capstan_localplane::{LocalPlane, PlaneOptions};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::FIELD_MANAGER;
use super::cloud::{Cloud, Infrastructure};
use super::state::{Ready, StateDir};
use crate::manager::{ManagerArgs, parse_duration};
use crate::telemetry::LogFormat;
use capstan_localplane::install_crds;

#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    #[arg(long)]
    pub state_dir: PathBuf,
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub bootstrap_token_ttl: Duration,
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub guest_boot_delay: Duration,
    #[arg(long, value_enum, default_value = "dcs")]
    pub infrastructure: Infrastructure,
}

/// Set by tests to the pid of the test process: the background process then stops when that
/// process is gone, even if it died without running `capstan down` (killed on a timeout).
pub const WATCH_PID_ENV: &str = "CAPSTAN_UP_WATCH_PID";

fn stop_when_gone(pid: u32) {
    tokio::spawn(async move {
        while super::state::alive(pid) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tracing::warn!(pid, "the process that started us is gone; stopping");
        // SAFETY: signalling ourselves; the manager's handler turns it into a graceful stop.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    });
}

pub async fn run(args: DaemonArgs) -> anyhow::Result<()> {
    if let Some(pid) = std::env::var(WATCH_PID_ENV).ok().and_then(|p| p.parse().ok()) {
        stop_when_gone(pid);
    }
    let state = StateDir(args.state_dir.clone());
    let plane = match &args.kubeconfig {
        Some(_) => None,
        None => Some(
            LocalPlane::start_with(PlaneOptions {
                dir: Some(state.mgmt_dir()),
                ..Default::default()
            })
            .await
            .context("starting the local management plane")?,
        ),
    };
    let mgmt_kubeconfig = match (&plane, &args.kubeconfig) {
        (Some(p), _) => p.kubeconfig_path().to_path_buf(),
        (None, Some(k)) => k.clone(),
        (None, None) => unreachable!("either a local plane or --kubeconfig"),
    };
    let client = crate::manager::client(Some(&mgmt_kubeconfig)).await?;
    let created_crds = install_crds(&client, &crate::crds::all(true))
        .await
        .context("installing the CRDs")?;
    tracing::info!(created = created_crds.len(), "CRDs installed");

    let (cloud, credentials) = Cloud::start(args.infrastructure, &state.guests_dir(), args.guest_boot_delay).await?;
    let secret_name = args.infrastructure.credentials_secret();
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": secret_name, "namespace": args.namespace,
                     "labels": {"app.kubernetes.io/managed-by": "capstan-up"}},
        "stringData": credentials
    }))?;
    Api::<Secret>::namespaced(client.clone(), &args.namespace)
        .patch(
            secret_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .context("writing the simulator's credentials secret")?;
    let cloud = std::sync::Arc::new(cloud);

    // What each VM's console would show, for `up` to report failed boots by name.
    let consoles = {
        let cloud = cloud.clone();
        let path = state.consoles_path();
        tokio::spawn(async move {
            let mut last = BTreeMap::new();
            loop {
                let now = cloud.consoles();
                if now != last {
                    if let Err(e) = StateDir::write(&path, &now) {
                        tracing::warn!(error = %e, "cannot write the VM consoles file");
                    }
                    last = now;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    StateDir::write(
        &state.ready_path(),
        &Ready {
            pid: std::process::id(),
            mgmt_kubeconfig: mgmt_kubeconfig.clone(),
            local_plane: plane.is_some(),
            namespace: args.namespace.clone(),
            credentials_secret: secret_name.into(),
            sim_url: cloud.url(),
            sim_ca_pem: cloud.ca_pem(),
            infrastructure: args.infrastructure,
            template_vars: cloud.template_vars(secret_name),
            created_crds,
        },
    )?;
    tracing::info!(sim = %cloud.url(), "ready");

    // Next to a real Cluster API core (`--kubeconfig` of a CAPI management cluster), CAPI core
    // drives the Machines and the standalone core must stay out of its way.
    let mut providers = vec!["kubeadm".to_string(), args.infrastructure.provider().to_string()];
    match capstan_standalone::capi_core_namespace(&client).await? {
        Some(ns) => tracing::info!(namespace = %ns, "Cluster API core runs here; not starting the standalone core"),
        None => providers.insert(0, "standalone".into()),
    }
    // Returns on SIGTERM (its own signal handler), after in-flight reconciles finish.
    let result = crate::manager::run(ManagerArgs {
        concurrency: Default::default(),
        operation_timeout: capstan_lifecycle::DEFAULT_OPERATION_TIMEOUT,
        providers,
        leader_elect: false,
        leader_election_id: None,
        leader_election_namespace: None,
        leader_elect_lease_duration: Duration::from_secs(15),
        leader_elect_renew_grace: Duration::from_secs(5),
        health_probe_bind_address: "0".into(),
        metrics_bind_address: "0".into(),
        namespace: String::new(),
        watch_filter: String::new(),
        kubeconfig: Some(mgmt_kubeconfig),
        log_format: LogFormat::Text,
        graceful_shutdown_timeout: Duration::from_secs(5),
        bootstrap_token_ttl: args.bootstrap_token_ttl,
    })
    .await;
    consoles.abort();
    let _ = consoles.await;
    // The simulator owns the guests, and the guests own the workload clusters' processes.
    match std::sync::Arc::try_unwrap(cloud) {
        Ok(cloud) => cloud.shutdown().await,
        Err(_) => tracing::warn!("the simulator is still in use; it stops with the process"),
    }
    drop(plane);
    tracing::info!("stopped");
    result
}
