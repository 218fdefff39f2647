//! Leader election on a `coordination.k8s.io` Lease.

use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A held lease; renewed in the background until released or lost.
pub struct Lease {
    state: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Lease {
    /// Follows the lock state: `false` means leadership was lost.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.state.clone()
    }

    /// Stops renewing and frees the lease so a standby takes over at once instead of waiting for
    /// it to expire.
    pub async fn release(self) {
        let Lease { state, task } = self;
        drop(state);
        match task.await {
            Ok(Ok(manager)) => {
                if let Err(e) = manager.release().await {
                    warn!(error = %e, "could not release the leader lease; it will expire");
                } else {
                    info!("leader lease released");
                }
            }
            Ok(Err(e)) => warn!(error = %e, "leader lease task failed"),
            Err(e) => warn!(error = %e, "leader lease task panicked"),
        }
    }
}

fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "capstan".to_string());
    format!("{host}_{}", std::process::id())
}

/// Waits until this process holds the lease `name` in `namespace`, or until `shutdown`
/// (then `None`).
pub async fn acquire(
    client: Client,
    name: &str,
    namespace: &str,
    duration: Duration,
    grace: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Lease>> {
    let identity = identity();
    let manager = LeaseManagerBuilder::new(client.clone(), name)
        .with_namespace(namespace)
        .with_identity(identity.clone())
        .with_duration(duration.as_secs().max(2))
        .with_grace(grace.as_secs().max(1))
        .build()
        .await
        .with_context(|| format!("cannot set up leader election on lease {namespace}/{name}"))?;
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = kube::Api::namespaced(client, namespace);
    let (mut state, mut task) = manager.watch().await;
    info!(lease = %format!("{namespace}/{name}"), %identity, "waiting for leadership");
    loop {
        if *state.borrow_and_update() {
            info!(%identity, "became leader");
            return Ok(Some(Lease { state, task }));
        }
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    let ended = task.await.context("leader election task panicked")?;
                    ended.context("leader election failed")?;
                    anyhow::bail!("leader election stopped unexpectedly");
                }
            }
            // The lease manager sleeps until the holder's lease would expire; a leader that
            // shut down cleanly released it long before. Look every second, and on a released
            // lease start the election again, which takes the free lease at once.
            _ = tokio::time::sleep(RELEASE_CHECK) => {
                if released(&leases, name).await {
                    drop(state);
                    let manager = task.await.context("leader election task panicked")?.context("leader election failed")?;
                    (state, task) = manager.watch().await;
                }
            }
            _ = shutdown.cancelled() => {
                drop(state);
                let _ = task.await;
                return Ok(None);
            }
        }
    }
}

/// How often a standby looks for a released lease.
const RELEASE_CHECK: Duration = Duration::from_secs(1);

/// Whether the lease exists and nobody holds it.
async fn released(leases: &kube::Api<k8s_openapi::api::coordination::v1::Lease>, name: &str) -> bool {
    matches!(
        leases.get_opt(name).await,
        Ok(Some(l)) if l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).is_none_or(str::is_empty)
    )
}
