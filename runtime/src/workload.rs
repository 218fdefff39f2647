//! Clients for workload clusters, built from their `<cluster>-kubeconfig` secrets and reused until
//! the secret changes, and an index of each workload cluster's Nodes by providerID kept by one
//! watch per cluster (a Machine finds its Node without listing them all on every reconcile).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{WatchStreamExt, watcher};

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The Secret CAPI keeps a cluster's admin kubeconfig in (key `value`).
pub fn kubeconfig_secret_name(cluster: &str) -> String {
    format!("{cluster}-kubeconfig")
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("secret {0} does not exist yet")]
    NoKubeconfig(String),
    #[error("secret {secret} holds no usable kubeconfig: {reason}")]
    BadKubeconfig { secret: String, reason: String },
    #[error("reading secret {secret}: {source}")]
    Read { secret: String, source: kube::Error },
}

/// Shared by every reconcile of a controller: one client per workload cluster, rebuilt when its
/// kubeconfig secret changes.
#[derive(Default)]
pub struct WorkloadClients {
    cache: Mutex<HashMap<String, Entry>>,
}

/// One workload cluster: the kubeconfig secret's resourceVersion the client was built from, the
/// client, and the Node watch once someone asked for Nodes (dropped, and so stopped, with it).
struct Entry {
    version: String,
    client: Client,
    nodes: Option<(NodeIndex, AbortOnDrop)>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl WorkloadClients {
    /// A client for the workload cluster `cluster` and its Nodes by providerID. The first call
    /// for a cluster (or after its kubeconfig changed) starts a watch and waits briefly for its
    /// first list.
    pub async fn nodes(
        &self,
        mgmt: &Client,
        namespace: &str,
        cluster: &str,
    ) -> Result<(Client, NodeIndex), WorkloadError> {
        let client = self.get(mgmt, namespace, cluster).await?;
        let key = format!("{namespace}/{cluster}");
        let index = {
            let mut cache = self.cache.lock().expect("cache poisoned");
            let Some(entry) = cache.get_mut(&key) else {
                // Forgotten meanwhile (the cluster is going): an empty, never-ready index.
                return Ok((client, NodeIndex::default()));
            };
            match &entry.nodes {
                Some((index, _)) => return Ok((client, index.clone())),
                None => {
                    let index = NodeIndex::default();
                    let task = tokio::spawn(watch_nodes(client.clone(), index.clone()));
                    entry.nodes = Some((index.clone(), AbortOnDrop(task)));
                    index
                }
            }
        };
        index.wait_ready(Duration::from_secs(5)).await;
        Ok((client, index))
    }

    /// A client for the workload cluster `cluster` in `namespace`.
    pub async fn get(&self, mgmt: &Client, namespace: &str, cluster: &str) -> Result<Client, WorkloadError> {
        let name = kubeconfig_secret_name(cluster);
        let secrets: Api<Secret> = Api::namespaced(mgmt.clone(), namespace);
        let secret = secrets
            .get_opt(&name)
            .await
            .map_err(|source| WorkloadError::Read {
                secret: name.clone(),
                source,
            })?
            .ok_or_else(|| WorkloadError::NoKubeconfig(name.clone()))?;
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        let cache_key = format!("{namespace}/{cluster}");
        if let Some(entry) = self.cache.lock().expect("cache poisoned").get(&cache_key)
            && entry.version == version
        {
            return Ok(entry.client.clone());
        }
        let bad = |reason: String| WorkloadError::BadKubeconfig {
            secret: name.clone(),
            reason,
        };
        let data = secret
            .data
            .as_ref()
            .and_then(|d| d.get("value"))
            .ok_or_else(|| bad("no `value` key".into()))?;
        let text = std::str::from_utf8(&data.0).map_err(|e| bad(e.to_string()))?;
        let kubeconfig = Kubeconfig::from_yaml(text).map_err(|e| bad(e.to_string()))?;
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| bad(e.to_string()))?;
        // A workload cluster that does not answer must not hold a reconcile for long.
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(15));
        let client = Client::try_from(config).map_err(|e| bad(e.to_string()))?;
        // A new kubeconfig replaces the entry: an old Node watch stops with it.
        self.cache.lock().expect("cache poisoned").insert(
            cache_key,
            Entry {
                version,
                client: client.clone(),
                nodes: None,
            },
        );
        Ok(client)
    }

    /// Drops the cached client (and stops the Node watch) of a deleted cluster.
    pub fn forget(&self, namespace: &str, cluster: &str) {
        self.cache
            .lock()
            .expect("cache poisoned")
            .remove(&format!("{namespace}/{cluster}"));
    }
}

/// The Nodes of one workload cluster as its watch last saw them, by name and by providerID.
#[derive(Clone, Default)]
pub struct NodeIndex(Arc<NodeIndexInner>);

#[derive(Default)]
struct NodeIndexInner {
    state: RwLock<NodeState>,
    ready: tokio::sync::Notify,
}

#[derive(Default)]
struct NodeState {
    by_name: HashMap<String, Arc<Node>>,
    by_provider_id: HashMap<String, String>,
    /// Filled during a (re)list, swapped in when it completes.
    relisting: Option<HashMap<String, Arc<Node>>>,
    ready: bool,
    /// The watch's last error, while it has not recovered.
    error: Option<String>,
}

impl NodeState {
    fn forget(&mut self, name: &str) {
        if let Some(p) = self.by_name.remove(name).as_deref().and_then(provider_id) {
            self.by_provider_id.remove(p);
        }
    }

    fn reindex(&mut self) {
        self.by_provider_id = self
            .by_name
            .iter()
            .filter_map(|(name, n)| provider_id(n).map(|p| (p.to_string(), name.clone())))
            .collect();
    }
}

fn provider_id(n: &Node) -> Option<&str> {
    n.spec
        .as_ref()
        .and_then(|s| s.provider_id.as_deref())
        .filter(|p| !p.is_empty())
}

impl NodeIndex {
    /// Whether the first list has completed (until then nothing is known, not "no Nodes").
    pub fn is_ready(&self) -> bool {
        self.0.state.read().expect("index poisoned").ready
    }

    /// Why the watch is failing, while it is.
    pub fn error(&self) -> Option<String> {
        self.0.state.read().expect("index poisoned").error.clone()
    }

    /// The Node whose `spec.providerID` is `id`.
    pub fn by_provider_id(&self, id: &str) -> Option<Arc<Node>> {
        let state = self.0.state.read().expect("index poisoned");
        state
            .by_provider_id
            .get(id)
            .and_then(|name| state.by_name.get(name))
            .cloned()
    }

    /// Nodes registered without a providerID (a kubelet started without `--provider-id`).
    pub fn without_provider_id(&self) -> Vec<Arc<Node>> {
        let state = self.0.state.read().expect("index poisoned");
        state
            .by_name
            .values()
            .filter(|n| provider_id(n).is_none())
            .cloned()
            .collect()
    }

    async fn wait_ready(&self, timeout: Duration) {
        let notified = self.0.ready.notified();
        tokio::pin!(notified);
        // Registered before the check, so a list completing in between still wakes us.
        notified.as_mut().enable();
        if self.is_ready() {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }

    fn apply(&self, event: watcher::Event<Node>) {
        let mut state = self.0.state.write().expect("index poisoned");
        state.error = None;
        let name = |n: &Node| n.metadata.name.clone().unwrap_or_default();
        match event {
            watcher::Event::Init => state.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(n) => {
                state
                    .relisting
                    .get_or_insert_with(HashMap::new)
                    .insert(name(&n), Arc::new(n));
            }
            watcher::Event::InitDone => {
                state.by_name = state.relisting.take().unwrap_or_default();
                state.reindex();
                state.ready = true;
                drop(state);
                self.0.ready.notify_waiters();
            }
            watcher::Event::Apply(n) => {
                let name = name(&n);
                state.forget(&name);
                if let Some(p) = provider_id(&n) {
                    state.by_provider_id.insert(p.to_string(), name.clone());
                }
                state.by_name.insert(name, Arc::new(n));
            }
            watcher::Event::Delete(n) => state.forget(&name(&n)),
        }
    }
}

/// Keeps `index` in step with the cluster's Nodes until aborted. The server closes each watch
/// within 10 s, below the client's 15 s read timeout; the watcher resumes from where it was.
async fn watch_nodes(client: Client, index: NodeIndex) {
    let config = watcher::Config::default().timeout(10);
    let mut events = watcher(Api::<Node>::all(client), config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(e) => index.apply(e),
            Err(e) => {
                tracing::debug!(error = %e, "workload Node watch failed; retrying");
                index.0.state.write().expect("index poisoned").error = Some(e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, pid: Option<&str>) -> Node {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": {"providerID": pid}})).unwrap()
    }

    #[test]
    fn the_index_follows_lists_changes_and_deletions() {
        let index = NodeIndex::default();
        assert!(!index.is_ready(), "nothing known before the first list");
        index.apply(watcher::Event::Init);
        index.apply(watcher::Event::InitApply(node("a", Some("dcs://a"))));
        index.apply(watcher::Event::InitApply(node("b", None)));
        assert!(!index.is_ready(), "a list in progress is not swapped in");
        index.apply(watcher::Event::InitDone);
        assert!(index.is_ready());
        assert_eq!(
            index.by_provider_id("dcs://a").unwrap().metadata.name.as_deref(),
            Some("a")
        );
        assert_eq!(index.without_provider_id().len(), 1);

        // b gains a providerID, a's changes: old keys go.
        index.apply(watcher::Event::Apply(node("b", Some("dcs://b"))));
        index.apply(watcher::Event::Apply(node("a", Some("dcs://a2"))));
        assert!(index.by_provider_id("dcs://a").is_none());
        assert!(index.by_provider_id("dcs://a2").is_some());
        assert!(index.by_provider_id("dcs://b").is_some());
        assert!(index.without_provider_id().is_empty());

        index.apply(watcher::Event::Delete(node("b", Some("dcs://b"))));
        assert!(index.by_provider_id("dcs://b").is_none());

        // A relist replaces everything: what it does not return is gone.
        index.apply(watcher::Event::Init);
        index.apply(watcher::Event::InitApply(node("c", Some("dcs://c"))));
        index.apply(watcher::Event::InitDone);
        assert!(index.by_provider_id("dcs://a2").is_none());
        assert!(index.by_provider_id("dcs://c").is_some());
    }
}
