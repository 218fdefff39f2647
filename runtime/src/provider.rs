use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::preflight::RequiredCrd;

/// Which objects this process may touch: `--namespace` and `--watch-filter`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// Only objects labelled `cluster.x-k8s.io/watch-filter=<value>`.
    pub watch_filter: Option<String>,
}

impl Scope {
    /// The label selector for list/watch calls, if a filter is set.
    pub fn label_selector(&self) -> Option<String> {
        capstan_label_selector(self.watch_filter.as_deref())
    }

    /// An `Api` for `K` in the scope's namespace (or all namespaces).
    pub fn api<K>(&self, client: Client) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.namespace {
            Some(ns) => kube::Api::namespaced(client, ns),
            None => kube::Api::all(client),
        }
    }

    /// The watcher configuration honouring the watch filter.
    pub fn watcher_config(&self) -> kube::runtime::watcher::Config {
        let cfg = kube::runtime::watcher::Config::default();
        match self.label_selector() {
            Some(sel) => cfg.labels(&sel),
            None => cfg,
        }
    }
}

fn capstan_label_selector(filter: Option<&str>) -> Option<String> {
    filter
        .filter(|f| !f.is_empty())
        .map(|f| format!("cluster.x-k8s.io/watch-filter={f}"))
}

/// How many objects of each kind reconcile at once (`--dcsmachine-concurrency` and the like,
/// as CAPI's and CAPV's managers have them). Keyed by the lowercase kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Concurrency(BTreeMap<String, u16>);

impl Concurrency {
    /// CAPI's default for every controller.
    pub const DEFAULT: u16 = 10;

    pub fn set(&mut self, kind: &str, n: u16) {
        self.0.insert(kind.to_lowercase(), n.max(1));
    }

    pub fn of(&self, kind: &str) -> u16 {
        self.0.get(&kind.to_lowercase()).copied().unwrap_or(Self::DEFAULT)
    }

    /// The kube-runtime controller configuration for `kind`.
    pub fn controller_config(&self, kind: &str) -> kube::runtime::controller::Config {
        kube::runtime::controller::Config::default().concurrency(self.of(kind))
    }
}

/// Everything a provider's controllers get when the manager starts them.
#[derive(Clone)]
pub struct ProviderContext {
    pub client: Client,
    pub scope: Scope,
    pub metrics: Arc<Metrics>,
    pub concurrency: Concurrency,
    /// Cancelled on SIGTERM/SIGINT or lost leadership: controllers finish in-flight reconciles
    /// and return.
    pub shutdown: CancellationToken,
}

/// A set of controllers started together under one name (`--provider NAME`).
pub trait Provider: Send + Sync {
    /// The name users pass to `--provider`.
    fn name(&self) -> &'static str;

    /// CRDs that must be served before the controllers can start; the manager checks them first
    /// and refuses to start with a one-line hint when one is missing.
    fn required_crds(&self) -> Vec<RequiredCrd>;

    /// Runs the controllers until `ctx.shutdown` is cancelled.
    fn run(&self, ctx: ProviderContext) -> BoxFuture<'static, Result<(), BoxError>>;
}

/// The error a provider's run loop ends with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_from_filter() {
        let mut s = Scope::default();
        assert_eq!(s.label_selector(), None);
        s.watch_filter = Some(String::new());
        assert_eq!(s.label_selector(), None);
        s.watch_filter = Some("team-a".into());
        assert_eq!(
            s.label_selector().as_deref(),
            Some("cluster.x-k8s.io/watch-filter=team-a")
        );
    }
}
