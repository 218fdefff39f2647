//! Clients for workload clusters, built from their `<cluster>-kubeconfig` secrets and reused until
//! the secret changes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

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
    cache: Mutex<HashMap<String, (String, Client)>>,
}

impl WorkloadClients {
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
        if let Some((v, client)) = self.cache.lock().expect("cache poisoned").get(&cache_key)
            && *v == version
        {
            return Ok(client.clone());
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
        self.cache
            .lock()
            .expect("cache poisoned")
            .insert(cache_key, (version, client.clone()));
        Ok(client)
    }

    /// Drops the cached client of a deleted cluster.
    pub fn forget(&self, namespace: &str, cluster: &str) {
        self.cache
            .lock()
            .expect("cache poisoned")
            .remove(&format!("{namespace}/{cluster}"));
    }
}
