//! Shared state of one provider's controllers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_api::core::{Cluster, Machine};
use capstan_runtime::backoff::FailureBackoff;
use capstan_runtime::events::Events;
use capstan_runtime::metrics::Metrics;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::credentials::{Credentials, CredentialsError};
use crate::provider::InfraProvider;

/// A cloud task that has not finished in this long is taken as hung (VRM's own clone timeout is
/// of this order).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub struct Ctx<P: InfraProvider> {
    pub provider: Arc<P>,
    pub client: kube::Client,
    /// Machines and Clusters as the watches last saw them (filled by the InfraMachine
    /// controller's own watches, so no extra connection): a reconcile reads its owner from here
    /// instead of a GET, and falls back to a GET for what the store does not hold (yet).
    pub machines: Store<Machine>,
    pub clusters: Store<Cluster>,
    /// The provider's InfraClusters, filled by the InfraCluster controller's watch.
    pub infra_clusters: Store<P::Cluster>,
    /// Credentials Secrets read in the last [`CREDENTIALS_TTL`], by namespace/name.
    credentials: Mutex<HashMap<(String, String), (Instant, Credentials)>>,
    pub metrics: Arc<Metrics>,
    pub backoff: FailureBackoff,
    pub events: Events,
    pub field_manager: String,
    /// How often in-flight operations are polled.
    pub poll_interval: Duration,
    /// How often a provisioned machine is checked against the cloud (out-of-band deletion).
    pub resync_interval: Duration,
    /// How long a cloud operation may run before the core gives up on it.
    pub operation_timeout: Duration,
}

/// How long a credentials Secret read is reused: every reconcile of every machine needs it, and a
/// rotated password taking effect within seconds is soon enough.
pub const CREDENTIALS_TTL: Duration = Duration::from_secs(10);

/// The stores a provider's reconciles read from.
pub struct Stores<P: InfraProvider> {
    pub machines: Store<Machine>,
    pub clusters: Store<Cluster>,
    pub infra_clusters: Store<P::Cluster>,
}

impl<P: InfraProvider> Ctx<P> {
    pub fn new(provider: Arc<P>, name: &str, client: kube::Client, metrics: Arc<Metrics>, stores: Stores<P>) -> Self {
        let field_manager = format!("capstan-{name}");
        let events = Events::new(client.clone(), &field_manager);
        Self {
            provider,
            client,
            machines: stores.machines,
            clusters: stores.clusters,
            infra_clusters: stores.infra_clusters,
            credentials: Mutex::default(),
            metrics,
            backoff: FailureBackoff::default(),
            events,
            field_manager,
            poll_interval: Duration::from_secs(2),
            resync_interval: Duration::from_secs(300),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// The Machine `name` of `ns`: from the store, else read (a Machine created a moment ago).
    pub async fn machine(&self, ns: &str, name: &str) -> Result<Option<Machine>, kube::Error> {
        cached_or_read(&self.client, &self.machines, ns, name).await
    }

    /// The Cluster `name` of `ns`: from the store, else read.
    pub async fn cluster(&self, ns: &str, name: &str) -> Result<Option<Cluster>, kube::Error> {
        cached_or_read(&self.client, &self.clusters, ns, name).await
    }

    /// The InfraCluster `name` of `ns`: from the store, else read.
    pub async fn infra_cluster(&self, ns: &str, name: &str) -> Result<Option<P::Cluster>, kube::Error> {
        cached_or_read(&self.client, &self.infra_clusters, ns, name).await
    }

    /// The credentials Secret `ns/name`, read at most every [`CREDENTIALS_TTL`].
    pub async fn credentials(&self, ns: &str, name: &str) -> Result<Credentials, CredentialsError> {
        let key = (ns.to_string(), name.to_string());
        if let Some((at, c)) = self.credentials.lock().expect("cache poisoned").get(&key)
            && at.elapsed() < CREDENTIALS_TTL
        {
            return Ok(c.clone());
        }
        let c = Credentials::read(&self.client, ns, name).await?;
        let mut cache = self.credentials.lock().expect("cache poisoned");
        cache.retain(|_, (at, _)| at.elapsed() < CREDENTIALS_TTL);
        cache.insert(key, (Instant::now(), c.clone()));
        Ok(c)
    }

    /// Publishes a Kubernetes Event; failures are logged, never fatal.
    pub async fn event(&self, reference: &ObjectReference, warning: bool, reason: &str, note: String) {
        self.events.publish(reference, warning, reason, note).await;
    }
}

async fn cached_or_read<K>(
    client: &kube::Client,
    store: &Store<K>,
    ns: &str,
    name: &str,
) -> Result<Option<K>, kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if let Some(obj) = store.get(&ObjectRef::new(name).within(ns)) {
        return Ok(Some(obj.as_ref().clone()));
    }
    kube::Api::<K>::namespaced(client.clone(), ns).get_opt(name).await
}

/// Times a reconcile for the metrics.
pub struct Timer(Instant);

impl Timer {
    pub fn start() -> Self {
        Self(Instant::now())
    }
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}
