//! One client (and so one session) per endpoint, user and settings, shared by every caller.
//! Many clusters usually share one credentials Secret and clouds cap sessions per user, so they
//! must share the session too; two clusters with the same user but other settings (TLS, a
//! rotated password) get clients of their own instead of replacing each other's on every call.
//! Clients idle longer than the idle timeout are logged out and dropped, so rotated credentials
//! and deleted clusters leave no session behind.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::observe::{ApiObserver, NoopObserver};

/// How long a client may go unused before the pool logs its session out and drops it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A cloud client the pool can share.
pub trait PooledClient: Clone + Send + Sync + 'static {
    type Config;
    type Error;

    /// Everything that makes two clients different, secrets only as digests
    /// ([`crate::sha256_hex`]).
    fn pool_key(config: &Self::Config) -> String;

    fn connect(config: Self::Config, observer: Arc<dyn ApiObserver>) -> Result<Self, Self::Error>;

    /// Ends the client's session, if it has one; failures are only logged.
    fn logout(&self) -> impl Future<Output = ()> + Send;
}

struct Entry<C> {
    client: C,
    last_used: Instant,
}

/// Hands out one `C` per [`PooledClient::pool_key`].
pub struct ClientPool<C> {
    clients: Arc<Mutex<HashMap<String, Entry<C>>>>,
    observer: Arc<dyn ApiObserver>,
}

impl<C> Clone for ClientPool<C> {
    fn clone(&self) -> Self {
        Self {
            clients: self.clients.clone(),
            observer: self.observer.clone(),
        }
    }
}

impl<C: PooledClient> Default for ClientPool<C> {
    fn default() -> Self {
        Self::new(Arc::new(NoopObserver))
    }
}

impl<C: PooledClient> ClientPool<C> {
    /// Clients built by this pool report every call to `observer`.
    pub fn new(observer: Arc<dyn ApiObserver>) -> Self {
        Self {
            clients: Arc::default(),
            observer,
        }
    }

    /// The shared client for `config`. Idle clients are evicted (logged out in the background)
    /// on the way.
    pub fn client(&self, config: C::Config) -> Result<C, C::Error> {
        let key = C::pool_key(&config);
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
                    let client = C::connect(config, self.observer.clone())?;
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

fn take_idle<C>(
    clients: &mut HashMap<String, Entry<C>>,
    now: Instant,
    max_idle: Duration,
    keep: Option<&String>,
) -> Vec<C> {
    let stale: Vec<String> = clients
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

async fn log_out<C: PooledClient>(clients: Vec<C>) {
    for c in clients {
        c.logout().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone)]
    struct Fake {
        id: usize,
        logouts: Arc<AtomicUsize>,
    }

    static NEXT: AtomicUsize = AtomicUsize::new(0);

    impl PooledClient for Fake {
        type Config = (String, Arc<AtomicUsize>);
        type Error = std::convert::Infallible;
        fn pool_key(config: &Self::Config) -> String {
            crate::sha256_hex(config.0.as_bytes())
        }
        fn connect(config: Self::Config, _: Arc<dyn ApiObserver>) -> Result<Self, Self::Error> {
            Ok(Fake {
                id: NEXT.fetch_add(1, Ordering::SeqCst),
                logouts: config.1,
            })
        }
        async fn logout(&self) {
            self.logouts.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn one_client_per_key_and_idle_ones_are_logged_out() {
        let logouts = Arc::new(AtomicUsize::new(0));
        let pool: ClientPool<Fake> = ClientPool::default();
        let a = pool.client(("a".into(), logouts.clone())).unwrap();
        let a2 = pool.client(("a".into(), logouts.clone())).unwrap();
        let b = pool.client(("b".into(), logouts.clone())).unwrap();
        assert_eq!(a.id, a2.id, "same settings, same client");
        assert_ne!(a.id, b.id);
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.evict_idle(Duration::from_secs(3600)).await, 0);
        assert_eq!(pool.evict_idle(Duration::ZERO).await, 2);
        assert_eq!(logouts.load(Ordering::SeqCst), 2);
        assert!(pool.is_empty());
    }
}
