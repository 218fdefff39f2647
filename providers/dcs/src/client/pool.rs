//! Sharing one session per VRM endpoint and user across all callers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{ApiObserver, DcsClient, DcsConfig, DcsError, NoopObserver};

/// Hands out one [`DcsClient`] per (endpoint, user). Many clusters usually share one credential
/// Secret, and VRM caps sessions per user, so they must share the session too.
#[derive(Clone)]
pub struct DcsClientPool {
    clients: Arc<Mutex<HashMap<(String, String), DcsClient>>>,
    observer: Arc<dyn ApiObserver>,
}

impl Default for DcsClientPool {
    fn default() -> Self {
        Self::new(Arc::new(NoopObserver))
    }
}

impl DcsClientPool {
    pub fn new(observer: Arc<dyn ApiObserver>) -> Self {
        DcsClientPool {
            clients: Arc::default(),
            observer,
        }
    }

    /// The shared client for `config`'s endpoint and user. A changed password, CA or other
    /// setting (a rotated Secret) replaces the cached client, so stale credentials are not kept.
    pub fn client(&self, config: DcsConfig) -> Result<DcsClient, DcsError> {
        let key = (config.endpoint.as_str().to_string(), config.username.clone());
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key)
            && same_settings(c.config(), &config)
        {
            return Ok(c.clone());
        }
        let client = DcsClient::with_observer(config, self.observer.clone())?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

fn same_settings(a: &DcsConfig, b: &DcsConfig) -> bool {
    a.password == b.password
        && a.user_type == b.user_type
        && a.password_encoding == b.password_encoding
        && a.api_version == b.api_version
        && a.site == b.site
        && a.ca_bundle_pem == b.ca_bundle_pem
        && a.insecure_skip_verify == b.insecure_skip_verify
        && a.request_timeout == b.request_timeout
}
