//! A hook through which every VRM API call is reported, so the lifecycle core can count calls,
//! errors and latency per operation without this crate knowing about Prometheus.

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
    /// HTTP status of a failed call, when VRM answered at all.
    pub status: Option<u16>,
}

pub trait ApiObserver: Send + Sync {
    fn observe(&self, call: &ApiCall<'_>);
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
