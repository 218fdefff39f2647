//! Shared state of one provider's controllers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_runtime::backoff::FailureBackoff;
use capstan_runtime::events::Events;
use capstan_runtime::metrics::Metrics;
use k8s_openapi::api::core::v1::ObjectReference;

/// A cloud task that has not finished in this long is taken as hung (VRM's own clone timeout is
/// of this order).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub struct Ctx<P> {
    pub provider: Arc<P>,
    pub client: kube::Client,
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

impl<P> Ctx<P> {
    pub fn new(provider: Arc<P>, name: &str, client: kube::Client, metrics: Arc<Metrics>) -> Self {
        let field_manager = format!("capstan-{name}");
        let events = Events::new(client.clone(), &field_manager);
        Self {
            provider,
            client,
            metrics,
            backoff: FailureBackoff::default(),
            events,
            field_manager,
            poll_interval: Duration::from_secs(2),
            resync_interval: Duration::from_secs(300),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// Publishes a Kubernetes Event; failures are logged, never fatal.
    pub async fn event(&self, reference: &ObjectReference, warning: bool, reason: &str, note: String) {
        self.events.publish(reference, warning, reason, note).await;
    }
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
