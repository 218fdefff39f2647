//! The Prometheus metrics every controller and cloud client reports, served on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerErrorLabels {
    pub controller: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudLabels {
    pub provider: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudErrorLabels {
    pub provider: String,
    pub operation: String,
    /// `retryable` or `terminal`.
    pub class: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// All metric families, registered once per process.
pub struct Metrics {
    registry: Registry,
    pub reconcile_total: Family<ControllerLabels, Counter>,
    pub reconcile_errors_total: Family<ControllerErrorLabels, Counter>,
    pub reconcile_duration_seconds: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    pub cloud_api_calls_total: Family<CloudLabels, Counter>,
    pub cloud_api_errors_total: Family<CloudErrorLabels, Counter>,
    pub cloud_api_duration_seconds: Family<CloudLabels, Histogram, fn() -> Histogram>,
    /// 1 while this process holds the leader lease (or runs without leader election).
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("capstan");
        let reconcile_total = Family::<ControllerLabels, Counter>::default();
        let reconcile_errors_total = Family::<ControllerErrorLabels, Counter>::default();
        let reconcile_duration_seconds = Family::<ControllerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let cloud_api_calls_total = Family::<CloudLabels, Counter>::default();
        let cloud_api_errors_total = Family::<CloudErrorLabels, Counter>::default();
        let cloud_api_duration_seconds = Family::<CloudLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let leader = Gauge::default();
        registry.register("reconcile", "Reconciles per controller", reconcile_total.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles per controller and reason",
            reconcile_errors_total.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration per controller",
            reconcile_duration_seconds.clone(),
        );
        registry.register(
            "cloud_api_calls",
            "Cloud API calls per provider and operation",
            cloud_api_calls_total.clone(),
        );
        registry.register(
            "cloud_api_errors",
            "Failed cloud API calls per provider, operation and class",
            cloud_api_errors_total.clone(),
        );
        registry.register(
            "cloud_api_duration_seconds",
            "Cloud API call latency per provider and operation",
            cloud_api_duration_seconds.clone(),
        );
        registry.register("leader", "Whether this process is the active leader", leader.clone());
        Self {
            registry,
            reconcile_total,
            reconcile_errors_total,
            reconcile_duration_seconds,
            cloud_api_calls_total,
            cloud_api_errors_total,
            cloud_api_duration_seconds,
            leader,
        }
    }

    /// Records one reconcile of `controller`; `error` is the failure reason, if it failed.
    pub fn observe_reconcile(&self, controller: &str, took: Duration, error: Option<&str>) {
        let labels = ControllerLabels {
            controller: controller.to_string(),
        };
        self.reconcile_total.get_or_create(&labels).inc();
        self.reconcile_duration_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Some(reason) = error {
            self.reconcile_errors_total
                .get_or_create(&ControllerErrorLabels {
                    controller: controller.to_string(),
                    reason: reason.to_string(),
                })
                .inc();
        }
    }

    /// Records one cloud API call; `error_class` is `Some("retryable"|"terminal")` when it failed.
    pub fn observe_cloud_call(&self, provider: &str, operation: &str, took: Duration, error_class: Option<&str>) {
        let labels = CloudLabels {
            provider: provider.to_string(),
            operation: operation.to_string(),
        };
        self.cloud_api_calls_total.get_or_create(&labels).inc();
        self.cloud_api_duration_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Some(class) = error_class {
            self.cloud_api_errors_total
                .get_or_create(&CloudErrorLabels {
                    provider: provider.to_string(),
                    operation: operation.to_string(),
                    class: class.to_string(),
                })
                .inc();
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_observations() {
        let m = Metrics::new();
        m.observe_reconcile("dcsmachine", Duration::from_millis(5), None);
        m.observe_reconcile("dcsmachine", Duration::from_millis(5), Some("CloudError"));
        m.observe_cloud_call("dcs", "clone_vm", Duration::from_millis(30), Some("retryable"));
        m.leader.set(1);
        let text = m.encode();
        assert!(
            text.contains(r#"capstan_reconcile_total{controller="dcsmachine"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"capstan_reconcile_errors_total{controller="dcsmachine",reason="CloudError"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"capstan_cloud_api_calls_total{provider="dcs",operation="clone_vm"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"capstan_cloud_api_errors_total{provider="dcs",operation="clone_vm",class="retryable"} 1"#),
            "{text}"
        );
        assert!(text.contains("capstan_leader 1"), "{text}");
    }
}
