//! Sharing one session per VRM endpoint, user and settings across all callers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ApiObserver, DcsClient, DcsConfig, DcsError, NoopObserver};

/// How long a client may go unused before the pool logs its session out and drops it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Everything that makes two clients different: two InfraClusters with the same user but
/// different TLS settings (or a rotated password) get clients of their own instead of replacing
/// each other's on every call. The password enters only as a digest.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PoolKey(String);

impl PoolKey {
    fn of(c: &DcsConfig) -> Self {
        let ca = c
            .ca_bundle_pem
            .as_deref()
            .map(|p| super::sha256_hex(&String::from_utf8_lossy(p)));
        PoolKey(super::sha256_hex(&format!(
            "{}\0{}\0{}\0{:?}\0{:?}\0{}\0{}\0{:?}\0{:?}\0{}\0{:?}\0{:?}",
            c.endpoint,
            c.username,
            super::sha256_hex(c.password.expose()),
            c.user_type,
            c.password_encoding,
            c.api_version,
            c.accept_language,
            c.site,
            ca,
            c.insecure_skip_verify,
            c.request_timeout,
            c.connect_timeout,
        )))
    }
}

struct Entry {
    client: DcsClient,
    last_used: Instant,
}

/// Hands out one [`DcsClient`] per endpoint, user and settings. Many clusters usually share one
/// credential Secret, and VRM caps sessions per user, so they must share the session too.
/// Clients idle for longer than the idle timeout are logged out and dropped, so rotated
/// credentials and deleted clusters leave no session behind on VRM.
#[derive(Clone)]
pub struct DcsClientPool {
    clients: Arc<Mutex<HashMap<PoolKey, Entry>>>,
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

    /// The shared client for `config`. Idle clients are evicted (logged out in the background)
    /// on the way.
    pub fn client(&self, config: DcsConfig) -> Result<DcsClient, DcsError> {
        let key = PoolKey::of(&config);
        let now = Instant::now();
        let (client, idle) = {
            let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            let idle = take_idle(&mut clients, now, DEFAULT_IDLE_TIMEOUT, Some(&key));
            let client = match clients.get_mut(&key) {
                Some(e) => {
                    e.last_used = now;
                    e.client.clone()
                }
                None => {
                    let client = DcsClient::with_observer(config, self.observer.clone())?;
                    clients.insert(
                        key,
                        Entry {
                            client: client.clone(),
                            last_used: now,
                        },
                    );
                    client
                }
            };
            (client, idle)
        };
        if !idle.is_empty()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(log_out(idle));
        }
        Ok(client)
    }

    /// Logs out and drops every client unused for `max_idle` or longer; returns how many.
    pub async fn evict_idle(&self, max_idle: Duration) -> usize {
        let idle = {
            let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            take_idle(&mut clients, Instant::now(), max_idle, None)
        };
        let n = idle.len();
        log_out(idle).await;
        n
    }

    /// Clients held now.
    pub fn len(&self) -> usize {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn take_idle(
    clients: &mut HashMap<PoolKey, Entry>,
    now: Instant,
    max_idle: Duration,
    keep: Option<&PoolKey>,
) -> Vec<DcsClient> {
    let stale: Vec<PoolKey> = clients
        .iter()
        .filter(|(k, e)| Some(*k) != keep && now.duration_since(e.last_used) >= max_idle)
        .map(|(k, _)| k.clone())
        .collect();
    stale
        .into_iter()
        .filter_map(|k| clients.remove(&k))
        .map(|e| e.client)
        .collect()
}

async fn log_out(clients: Vec<DcsClient>) {
    for c in clients {
        if let Err(e) = c.logout().await {
            tracing::debug!(error = %e, "logging out an evicted VRM session failed");
        }
    }
}
