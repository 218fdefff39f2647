//! What the standalone controllers share: their context, their error type, and the wrapper that
//! gives every reconcile a tracing span, metrics and per-object backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_runtime::backoff::{FailureBackoff, ObjectKey};
use capstan_runtime::metrics::Metrics;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span, warn};

use crate::external::ExternalError;
use capstan_runtime::workload::{WorkloadClients, WorkloadError};

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
    pub events: capstan_runtime::events::Events,
}

impl Ctx {
    pub fn new(client: kube::Client, metrics: Arc<Metrics>, timing: Timing) -> Self {
        Self {
            metrics,
            backoff: FailureBackoff::default(),
            timing,
            workload: WorkloadClients::default(),
            events: capstan_runtime::events::Events::new(client.clone(), crate::FIELD_MANAGER),
            client,
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
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeError",
            Error::External(_) => "ExternalRefError",
            Error::Workload(_) => "WorkloadClusterError",
        }
    }
}

impl Ctx {
    /// A Normal (or Warning) event on `obj`.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, warning: bool, reason: &str, note: String) {
        self.events.publish(&obj.object_ref(&()), warning, reason, note).await;
    }
}

/// Runs one reconcile inside a span, records it, and forgets the object's failures on success.
pub async fn observe<K, F>(controller: &'static str, obj: &K, ctx: &Ctx, fut: F) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>,
    F: std::future::Future<Output = Result<Action, Error>>,
{
    let key = ObjectKey::of(obj);
    let span = info_span!("reconcile", controller, object = %key);
    let started = Instant::now();
    let result = fut.instrument(span).await;
    ctx.metrics
        .observe_reconcile(controller, started.elapsed(), result.as_ref().err().map(Error::reason));
    if result.is_ok() {
        ctx.backoff.reset(&key);
    }
    result
}

/// Requeues a failed object with its own capped, jittered exponential backoff.
pub fn backoff<K: Resource<DynamicType = ()>>(controller: &'static str, obj: &K, err: &Error, ctx: &Ctx) -> Action {
    let key = ObjectKey::of(obj);
    let delay = ctx.backoff.next_delay(&key);
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

/// Kinds that belong to a Cluster by `spec.clusterName`.
pub trait ClusterScoped:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    fn cluster_name(&self) -> &str;
}

impl ClusterScoped for capstan_api::core::Machine {
    fn cluster_name(&self) -> &str {
        &self.spec.cluster_name
    }
}

impl ClusterScoped for capstan_api::core::MachineSet {
    fn cluster_name(&self) -> &str {
        &self.spec.cluster_name
    }
}

impl ClusterScoped for capstan_api::core::MachineDeployment {
    fn cluster_name(&self) -> &str {
        &self.spec.cluster_name
    }
}

/// Runs `controller` with `reconcile` until shutdown. Every object of the kind is also
/// reconciled when its Cluster changes (pausing, unpausing, infrastructure readiness).
pub async fn run<K, F, Fut>(
    ctx: &capstan_runtime::ProviderContext,
    state: Arc<Ctx>,
    name: &'static str,
    controller: kube::runtime::Controller<K>,
    reconcile: F,
) where
    K: ClusterScoped,
    F: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    use futures::StreamExt;
    let clusters: kube::Api<capstan_api::core::Cluster> = ctx.scope.api(ctx.client.clone());
    let store = controller.store();
    let shutdown = ctx.shutdown.clone();
    let reconcile = Arc::new(reconcile);
    controller
        .watches(
            clusters,
            ctx.scope.watcher_config(),
            move |c: capstan_api::core::Cluster| {
                let ns = c.namespace();
                let cluster = c.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|o| o.cluster_name() == cluster && o.namespace() == ns)
                    .map(|o| kube::runtime::reflector::ObjectRef::from_obj(&*o))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(
            move |o, c| {
                let fut = reconcile(o.clone(), c.clone());
                async move { observe(name, &*o, &c, fut).await }
            },
            move |o, err, c| backoff(name, &*o, err, &c),
            state,
        )
        .for_each(|_| async {})
        .await;
}

/// Server-side applies the fields of the status this core owns, only when they changed.
pub async fn apply_status<K, S>(api: &kube::Api<K>, obj: &K, before: &S, after: &S) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: PartialEq + serde::Serialize,
{
    if before == after {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": after,
    });
    api.patch_status(
        &obj.name_any(),
        &kube::api::PatchParams::apply(crate::FIELD_MANAGER).force(),
        &kube::api::Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The cluster-name label, the Cluster among the owners (only when nothing controls the object,
/// if `only_uncontrolled`), and `finalizer`, in one patch guarded by the resourceVersion. Returns
/// whether it patched.
pub async fn ensure_cluster_metadata<K: ClusterScoped>(
    api: &kube::Api<K>,
    obj: &K,
    cluster: &capstan_api::core::Cluster,
    only_uncontrolled: bool,
    finalizer: Option<&str>,
) -> Result<bool, kube::Error> {
    use capstan_api::contract::LABEL_CLUSTER_NAME;
    let mut meta = obj.meta().clone();
    let mut changed = false;
    let labels = meta.labels.get_or_insert_with(Default::default);
    if labels.get(LABEL_CLUSTER_NAME).map(String::as_str) != Some(obj.cluster_name()) {
        labels.insert(LABEL_CLUSTER_NAME.into(), obj.cluster_name().to_string());
        changed = true;
    }
    if (!only_uncontrolled || capstan_api::owner::controller_owner(&meta).is_none())
        && let Some(owner) = capstan_api::owner::owner_reference(cluster, false)
    {
        changed |= capstan_api::owner::ensure_owner_reference(&mut meta, owner);
    }
    if let Some(f) = finalizer {
        let finalizers = meta.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|x| x == f) {
            finalizers.push(f.into());
            changed = true;
        }
    }
    if !changed {
        return Ok(false);
    }
    patch_metadata(api, obj, &meta).await?;
    Ok(true)
}

/// Writes `meta`'s labels, owner references and finalizers over `obj`'s in one merge patch,
/// guarded by `obj`'s resourceVersion: a concurrent writer makes it fail and the reconcile retry
/// instead of being overwritten.
pub async fn patch_metadata<K>(
    api: &kube::Api<K>,
    obj: &K,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({"metadata": {
        "labels": meta.labels,
        "ownerReferences": meta.owner_references,
        "finalizers": meta.finalizers,
        "resourceVersion": obj.resource_version(),
    }});
    api.patch(
        &obj.name_any(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// A merge patch that makes `current` carry every entry of `desired` (others are left alone, or
/// removed when listed in `removed`). `None` when nothing changes.
pub fn map_patch(
    current: Option<&std::collections::BTreeMap<String, String>>,
    desired: &std::collections::BTreeMap<String, String>,
    removed: &[&String],
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut patch = serde_json::Map::new();
    for (k, v) in desired {
        if current.and_then(|c| c.get(k)) != Some(v) {
            patch.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
    }
    for k in removed {
        if current.is_some_and(|c| c.contains_key(*k)) && !desired.contains_key(*k) {
            patch.insert((*k).clone(), serde_json::Value::Null);
        }
    }
    Some(patch).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[test]
    fn map_patch_adds_changes_and_removes_only_what_it_must() {
        let current: BTreeMap<String, String> = [("a", "1"), ("b", "2"), ("keep", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let desired: BTreeMap<String, String> = [("a", "1"), ("b", "3"), ("c", "4")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let gone = "keep".to_string();
        let patch = super::map_patch(Some(&current), &desired, &[]).unwrap();
        assert_eq!(
            serde_json::Value::Object(patch),
            serde_json::json!({"b": "3", "c": "4"})
        );
        let patch = super::map_patch(Some(&current), &desired, &[&gone]).unwrap();
        assert_eq!(
            serde_json::Value::Object(patch),
            serde_json::json!({"b": "3", "c": "4", "keep": null})
        );
        assert!(super::map_patch(Some(&desired), &desired, &[]).is_none());
    }
}
