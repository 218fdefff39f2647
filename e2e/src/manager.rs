//! A provider's controllers running inside the test as the manager would run them, watching
//! `default`, and killed mid-flight on demand: the crash trials' "kill the pod".

use std::sync::Arc;

use capstan_runtime::metrics::Metrics;
use capstan_runtime::{BoxError, Provider, ProviderContext, Scope};
use kube::Client;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct RunningProvider {
    provider: Arc<dyn Provider>,
    client: Client,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), BoxError>>>,
}

impl RunningProvider {
    pub fn start(provider: impl Provider + 'static, client: Client) -> Self {
        let mut p = RunningProvider {
            provider: Arc::new(provider),
            client,
            shutdown: CancellationToken::new(),
            task: None,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let ctx = ProviderContext {
            client: self.client.clone(),
            scope: Scope {
                namespace: Some("default".into()),
                watch_filter: None,
            },
            metrics: Arc::new(Metrics::new()),
            concurrency: Default::default(),
            shutdown: self.shutdown.clone(),
        };
        self.task = Some(tokio::spawn(self.provider.run(ctx)));
    }

    /// Kills the controllers wherever they are (their futures dropped mid-flight, nothing
    /// finished or cleaned up) and starts them again.
    pub async fn crash_and_restart(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.spawn();
    }
}

impl Drop for RunningProvider {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
