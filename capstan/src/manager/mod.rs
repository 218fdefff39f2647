//! `capstan manager`: one process that runs the controllers of the chosen providers, with leader
//! election, health and metrics endpoints, and graceful shutdown.

mod endpoints;
mod leader;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use capstan_runtime::metrics::Metrics;
use capstan_runtime::preflight::check_crds;
use capstan_runtime::{Concurrency, ProviderContext, Scope};
use kube::Client;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::registry;
use crate::telemetry::LogFormat;

#[derive(clap::Args, Debug)]
pub struct ManagerArgs {
    /// Providers to run (repeat or comma-separate): dcs, hcs, vsphere, kubeadm, standalone.
    #[arg(long = "provider", value_name = "NAME")]
    pub providers: Vec<String>,
    /// Only one manager of a deployment works at a time; the others wait on a Lease.
    #[arg(long)]
    pub leader_elect: bool,
    /// Name of the Lease; defaults to `capstan-<providers>`.
    #[arg(long)]
    pub leader_election_id: Option<String>,
    /// Namespace of the Lease; defaults to the pod's namespace, else `default`.
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    /// How long a lease stays valid without renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long before expiry the leader renews.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub leader_elect_renew_grace: Duration,
    /// Address of /healthz and /readyz (`:8081`, `127.0.0.1:8081`, or `0` to disable).
    #[arg(long, default_value = ":8081")]
    pub health_probe_bind_address: String,
    /// Address of /metrics (`127.0.0.1:8080`, `:8080`, or `0` to disable). Plain HTTP without
    /// authentication, so loopback by default: expose it on purpose (a Service, a sidecar proxy)
    /// rather than by accident.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub metrics_bind_address: String,
    /// Only reconcile objects in this namespace (all namespaces when empty).
    #[arg(long, default_value = "")]
    pub namespace: String,
    /// Only reconcile objects labelled `cluster.x-k8s.io/watch-filter=<value>`.
    #[arg(long, default_value = "")]
    pub watch_filter: String,
    /// Kubeconfig to use; in-cluster config or `$KUBECONFIG` otherwise.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// How long in-flight reconciles may take to finish after SIGTERM.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub graceful_shutdown_timeout: Duration,
    #[command(flatten)]
    pub concurrency: ConcurrencyArgs,
    /// How long a cloud operation (clone, start, delete task) may run before it is given up on,
    /// reported (`OperationTimedOut`) and the instance looked at afresh.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub operation_timeout: Duration,
    /// `--provider kubeadm`: lifetime of the bootstrap tokens created for joining machines
    /// (refreshed while the machine has not joined).
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub bootstrap_token_ttl: Duration,
}

/// `--<kind>-concurrency`, as CAPI's and CAPV's managers name them.
#[derive(clap::Args, Debug, Clone)]
pub struct ConcurrencyArgs {
    /// How many DCSMachines reconcile at once.
    #[arg(long, default_value_t = Concurrency::DEFAULT)]
    pub dcsmachine_concurrency: u16,
    /// How many DCSClusters reconcile at once.
    #[arg(long, default_value_t = Concurrency::DEFAULT)]
    pub dcscluster_concurrency: u16,
    /// How many HCSMachines reconcile at once.
    #[arg(long, default_value_t = Concurrency::DEFAULT)]
    pub hcsmachine_concurrency: u16,
    /// How many HCSClusters reconcile at once.
    #[arg(long, default_value_t = Concurrency::DEFAULT)]
    pub hcscluster_concurrency: u16,
    /// How many KubeadmConfigs reconcile at once.
    #[arg(long, default_value_t = Concurrency::DEFAULT)]
    pub kubeadmconfig_concurrency: u16,
    /// How many Clusters (standalone) reconcile at once.
    #[arg(long, default_value_t = Concurrency::DEFAULT)]
    pub cluster_concurrency: u16,
    /// How many Machines (standalone) reconcile at once.
    #[arg(long, default_value_t = Concurrency::DEFAULT)]
    pub machine_concurrency: u16,
    /// How many MachineSets (standalone) reconcile at once.
    #[arg(long, default_value_t = Concurrency::DEFAULT)]
    pub machineset_concurrency: u16,
    /// How many MachineDeployments (standalone) reconcile at once.
    #[arg(long, default_value_t = Concurrency::DEFAULT)]
    pub machinedeployment_concurrency: u16,
}

/// The flags' own defaults (for callers that build a manager without a command line).
impl Default for ConcurrencyArgs {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            concurrency: ConcurrencyArgs,
        }
        <Defaults as clap::Parser>::parse_from(["capstan"]).concurrency
    }
}

impl ConcurrencyArgs {
    fn to_concurrency(&self) -> Concurrency {
        let mut c = Concurrency::default();
        c.set("dcsmachine", self.dcsmachine_concurrency);
        c.set("dcscluster", self.dcscluster_concurrency);
        c.set("hcsmachine", self.hcsmachine_concurrency);
        c.set("hcscluster", self.hcscluster_concurrency);
        c.set("kubeadmconfig", self.kubeadmconfig_concurrency);
        c.set("cluster", self.cluster_concurrency);
        c.set("machine", self.machine_concurrency);
        c.set("machineset", self.machineset_concurrency);
        c.set("machinedeployment", self.machinedeployment_concurrency);
        c
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 15s, 500ms, 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// `:8081` → `0.0.0.0:8081`; `0` → disabled.
fn parse_bind(addr: &str) -> anyhow::Result<Option<SocketAddr>> {
    if addr == "0" || addr.is_empty() {
        return Ok(None);
    }
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    full.parse()
        .map(Some)
        .with_context(|| format!("invalid bind address {addr:?}"))
}

pub async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no Kubernetes configuration found (pass --kubeconfig)")?,
    };
    Ok(Client::try_from(config)?)
}

fn pod_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

pub async fn run(args: ManagerArgs) -> anyhow::Result<()> {
    let settings = registry::Settings {
        bootstrap_token_ttl: args.bootstrap_token_ttl,
        operation_timeout: args.operation_timeout,
    };
    let providers = registry::select(&args.providers, &settings)?;
    let names: Vec<&str> = providers.iter().map(|p| p.name()).collect();
    let client = client(args.kubeconfig.as_ref()).await?;
    for p in &providers {
        check_crds(&client, &p.required_crds()).await?;
    }

    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let shutdown = CancellationToken::new();
    let health = parse_bind(&args.health_probe_bind_address)?;
    let metrics_addr = parse_bind(&args.metrics_bind_address)?;
    endpoints::serve(health, metrics_addr, metrics.clone(), ready.clone(), shutdown.clone()).await?;
    spawn_signal_handler(shutdown.clone());

    let scope = Scope {
        namespace: Some(args.namespace.clone()).filter(|n| !n.is_empty()),
        watch_filter: Some(args.watch_filter.clone()).filter(|f| !f.is_empty()),
    };
    info!(providers = ?names, namespace = ?scope.namespace, watch_filter = ?scope.watch_filter, "starting manager");

    let lease = if args.leader_elect {
        let id = args
            .leader_election_id
            .clone()
            .unwrap_or_else(|| format!("capstan-{}", names.join("-")));
        let ns = args.leader_election_namespace.clone().unwrap_or_else(pod_namespace);
        ready.store(true, Ordering::SeqCst);
        match leader::acquire(
            client.clone(),
            &id,
            &ns,
            args.leader_elect_lease_duration,
            args.leader_elect_renew_grace,
            &shutdown,
        )
        .await?
        {
            Some(lease) => Some(lease),
            None => {
                info!("shut down before becoming leader");
                return Ok(());
            }
        }
    } else {
        ready.store(true, Ordering::SeqCst);
        None
    };
    metrics.leader.set(1);

    // Controllers stop on SIGTERM or when leadership is lost; the latter is an error exit so the
    // pod restarts and queues for the lease again, as controller-runtime does.
    let controllers = CancellationToken::new();
    let lost = Arc::new(AtomicBool::new(false));
    {
        let controllers = controllers.clone();
        let shutdown = shutdown.clone();
        let lost = lost.clone();
        let mut leadership = lease.as_ref().map(|l| l.watch());
        tokio::spawn(async move {
            let leadership_lost = async {
                match leadership.as_mut() {
                    Some(rx) => {
                        while rx.changed().await.is_ok() {
                            if !*rx.borrow() {
                                return;
                            }
                        }
                        // The lease task ended: we cannot renew any more.
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = leadership_lost => { lost.store(true, Ordering::SeqCst); }
            }
            controllers.cancel();
        });
    }

    let mut tasks = tokio::task::JoinSet::new();
    for p in &providers {
        let ctx = ProviderContext {
            client: client.clone(),
            scope: scope.clone(),
            metrics: metrics.clone(),
            concurrency: args.concurrency.to_concurrency(),
            shutdown: controllers.clone(),
        };
        let name = p.name();
        let fut = p.run(ctx);
        tasks.spawn(async move { (name, fut.await) });
    }
    let mut failed = None;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok((name, Ok(())))) => info!(provider = name, "controllers stopped"),
                Some(Ok((name, Err(e)))) => {
                    error!(provider = name, error = %e, "controllers failed");
                    failed.get_or_insert_with(|| format!("provider {name} failed: {e}"));
                    controllers.cancel();
                }
                Some(Err(e)) => {
                    failed.get_or_insert_with(|| format!("controller task panicked: {e}"));
                    controllers.cancel();
                }
            },
            _ = async { controllers.cancelled().await; tokio::time::sleep(args.graceful_shutdown_timeout).await } => {
                warn!("in-flight reconciles did not finish within the graceful shutdown timeout");
                tasks.abort_all();
                break;
            }
        }
    }
    metrics.leader.set(0);
    if let Some(lease) = lease {
        lease.release().await;
    }
    if lost.load(Ordering::SeqCst) {
        anyhow::bail!("leader election lost");
    }
    if let Some(f) = failed {
        anyhow::bail!(f);
    }
    info!("manager stopped");
    Ok(())
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received, shutting down"),
            _ = int.recv() => info!("SIGINT received, shutting down"),
        }
        shutdown.cancel();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_binds() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_bind(":8081").unwrap(), Some("0.0.0.0:8081".parse().unwrap()));
        assert_eq!(parse_bind("127.0.0.1:9").unwrap(), Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(parse_bind("0").unwrap(), None);
        assert!(parse_bind("nonsense").is_err());
    }

    /// Issue 10 §6: unauthenticated metrics are served on loopback unless asked otherwise.
    #[test]
    fn metrics_listen_on_loopback_by_default() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            manager: ManagerArgs,
        }
        let cli = <Cli as clap::Parser>::try_parse_from(["capstan", "--provider", "dcs"]).unwrap();
        let addr = parse_bind(&cli.manager.metrics_bind_address).unwrap().unwrap();
        assert!(addr.ip().is_loopback(), "{addr}");
    }
}
