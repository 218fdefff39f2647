//! What the standalone controllers share: their context, their error type, and the wrapper that
//! gives every reconcile a tracing span, metrics and per-object backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_runtime::backoff::FailureBackoff;
use capstan_runtime::metrics::Metrics;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span, warn};

use crate::external::ExternalError;
use crate::workload::{WorkloadClients, WorkloadError};

/// Timing knobs of the standalone core.
#[derive(Clone, Debug)]
pub struct Timing {
    /// How often an object waiting on something this core does not watch (provider kinds,
    /// workload-cluster Nodes) is looked at again.
    pub wait: Duration,
    /// How often a settled object is reconciled anyway.
    pub resync: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(5),
            resync: Duration::from_secs(300),
        }
    }
}

pub struct Ctx {
    pub client: kube::Client,
    pub metrics: Arc<Metrics>,
    pub backoff: FailureBackoff,
    pub timing: Timing,
    pub workload: WorkloadClients,
}

impl Ctx {
    pub fn new(client: kube::Client, metrics: Arc<Metrics>, timing: Timing) -> Self {
        Self {
            client,
            metrics,
            backoff: FailureBackoff::default(),
            timing,
            workload: WorkloadClients::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    External(#[from] ExternalError),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("{0}")]
    Pki(String),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeError",
            Error::External(_) => "ExternalRefError",
            Error::Workload(_) => "WorkloadClusterError",
            Error::Pki(_) => "CertificateError",
        }
    }
}

impl From<openssl::error::ErrorStack> for Error {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Error::Pki(e.to_string())
    }
}

pub fn key<K: Resource>(o: &K) -> String {
    format!(
        "{}/{}",
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default()
    )
}

/// Runs one reconcile inside a span, records it, and forgets the object's failures on success.
pub async fn observe<K, F>(controller: &'static str, obj: &K, ctx: &Ctx, fut: F) -> Result<Action, Error>
where
    K: Resource,
    F: std::future::Future<Output = Result<Action, Error>>,
{
    let key = key(obj);
    let span = info_span!("reconcile", controller, object = %key);
    let started = Instant::now();
    let result = fut.instrument(span).await;
    ctx.metrics
        .observe_reconcile(controller, started.elapsed(), result.as_ref().err().map(Error::reason));
    if result.is_ok() {
        ctx.backoff.reset(&format!("{controller}/{key}"));
    }
    result
}

/// Requeues a failed object with its own capped, jittered exponential backoff.
pub fn backoff<K: Resource>(controller: &'static str, obj: &K, err: &Error, ctx: &Ctx) -> Action {
    let key = key(obj);
    let delay = ctx.backoff.next_delay(&format!("{controller}/{key}"));
    warn!(controller, object = %key, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Deletes `name` through `api`; already gone is success.
pub async fn delete_ignoring_missing<K>(api: &kube::Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &kube::api::DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `obj` is controlled by the object with `uid`.
pub fn controlled_by<K: Resource>(obj: &K, uid: &str) -> bool {
    obj.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}
