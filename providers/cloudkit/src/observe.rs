//! A hook through which every cloud API call is reported, so calls, errors and latency are
//! counted per operation without a client knowing about Prometheus.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Success,
    RetryableError,
    TerminalError,
}

/// One finished API call. `operation` is a stable name (`login`, `get_vm`, `clone_vm`, ...).
#[derive(Debug, Clone)]
pub struct ApiCall<'a> {
    pub operation: &'a str,
    pub duration: Duration,
    pub outcome: CallOutcome,
    /// HTTP status of a failed call, when the cloud answered at all.
    pub status: Option<u16>,
}

pub trait ApiObserver: Send + Sync {
    fn observe(&self, call: &ApiCall<'_>);
}

/// What reporting a call needs to know of a client's error.
pub trait CallError {
    /// Worth retrying without any change.
    fn is_retryable(&self) -> bool;
    /// The HTTP status, when the cloud answered.
    fn status(&self) -> Option<u16>;
}

/// Reports one finished call, started at `start`, to `observer`.
pub fn report<T, E: CallError>(
    observer: &dyn ApiObserver,
    operation: &str,
    start: std::time::Instant,
    result: &Result<T, E>,
) {
    let outcome = match result {
        Ok(_) => CallOutcome::Success,
        Err(e) if e.is_retryable() => CallOutcome::RetryableError,
        Err(_) => CallOutcome::TerminalError,
    };
    observer.observe(&ApiCall {
        operation,
        duration: start.elapsed(),
        outcome,
        status: result.as_ref().err().and_then(E::status),
    });
}

/// The default observer: reports nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl ApiObserver for NoopObserver {
    fn observe(&self, _call: &ApiCall<'_>) {}
}

impl<F> ApiObserver for F
where
    F: Fn(&ApiCall<'_>) + Send + Sync,
{
    fn observe(&self, call: &ApiCall<'_>) {
        self(call)
    }
}

/// Reports every call to the process metrics (`capstan_cloud_api_*`), labelled with the cloud.
pub struct MetricsObserver {
    cloud: &'static str,
    metrics: std::sync::Arc<capstan_runtime::metrics::Metrics>,
}

impl MetricsObserver {
    pub fn new(cloud: &'static str, metrics: std::sync::Arc<capstan_runtime::metrics::Metrics>) -> Self {
        Self { cloud, metrics }
    }
}

impl ApiObserver for MetricsObserver {
    fn observe(&self, call: &ApiCall<'_>) {
        let class = match call.outcome {
            CallOutcome::Success => None,
            CallOutcome::RetryableError => Some("retryable"),
            CallOutcome::TerminalError => Some("terminal"),
        };
        self.metrics
            .observe_cloud_call(self.cloud, call.operation, call.duration, class);
    }
}
