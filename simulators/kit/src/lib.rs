//! What every Capstan cloud simulator needs, and nothing of any cloud's client: a throwaway CA
//! with server certificates ([`tls`]) and HTTPS servers for axum routers that stop cleanly
//! ([`Server`]), and fault machinery ([`faults`]: seeded randomness, fail-next counters, a
//! token bucket). Simulators never import a provider's client code: a simulator that shares the
//! client's helpers cannot catch the client's bugs.

pub mod faults;
pub mod tls;

/// Lowercase hex of `bytes` (digests and signatures as clouds write them). The simulators' own,
/// not the clients'.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

use std::io;
use std::sync::Arc;
use std::time::Duration;

/// One HTTPS listener of a simulator and the axum server behind it; dropping it stops both.
pub struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    accept_task: tokio::task::JoinHandle<()>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Serves `app` over TLS on `tcp`; `name` labels its log lines.
    pub fn start(
        name: &'static str,
        tcp: tokio::net::TcpListener,
        tls: Arc<rustls::ServerConfig>,
        app: axum::Router,
    ) -> io::Result<Server> {
        let (listener, accept_task) = tls::TlsListener::new(tcp, tls)?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let res = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = res {
                tracing::warn!(error = %e, "{name} simulator stopped with an error");
            }
        });
        Ok(Server {
            stop: Some(stop_tx),
            accept_task,
            server: Some(server),
        })
    }

    /// Stops accepting and asks the server to finish what is in flight.
    pub fn signal_stop(&mut self) {
        self.accept_task.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// [`Server::signal_stop`], then waits (bounded) for in-flight requests.
    pub async fn shutdown(&mut self) {
        self.signal_stop();
        if let Some(server) = self.server.take()
            && tokio::time::timeout(Duration::from_secs(5), server).await.is_err()
        {
            tracing::warn!("simulator server did not stop within 5s");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal_stop();
        // Idle keep-alive connections would otherwise hold the server task open.
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Requests a simulator received, per operation name (`login`, `get_vm`, …), rejected ones
/// included: what tests and benchmarks count calls with.
#[derive(Debug, Default)]
pub struct CallCounts(std::sync::Mutex<std::collections::BTreeMap<String, u64>>);

impl CallCounts {
    pub fn record(&self, operation: &str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(operation.to_string())
            .or_default() += 1;
    }

    pub fn get(&self, operation: &str) -> u64 {
        self.snapshot().get(operation).copied().unwrap_or(0)
    }

    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
