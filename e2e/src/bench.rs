//! What the providers' benchmarks share (reported figures, not pass/fail): the manager binary to
//! run as its own process, its CPU and peak memory from `/proc`, call-count deltas, and a watch
//! that times machines until they are all provisioned.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::WatchStreamExt;

/// The `capstan` binary: `$CAPSTAN_BIN`, else the workspace's release or debug build.
pub fn capstan_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CAPSTAN_BIN") {
        return PathBuf::from(p);
    }
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("capstan"))
        .find(|p| p.is_file())
        .expect("build the manager first: cargo build --release -p capstan (or set CAPSTAN_BIN)")
}

/// CPU time (user + system) a process has used so far, in seconds (`/proc/<pid>/stat`; `self`
/// for this process).
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// Peak resident set of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// What grew between two call-count snapshots.
pub fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Waits (watching, not listing: polling a thousand objects would load the API server more than
/// the manager does) until `n` InfraMachines of `kind` named `<prefix>-*` in `default`, labelled
/// for cluster `cluster`, are provisioned; the time since `start`.
pub async fn until_provisioned(
    client: &Client,
    kind: &str,
    cluster: &str,
    prefix: &str,
    n: usize,
    start: Instant,
) -> Duration {
    let gvk = GroupVersionKind::gvk("infrastructure.cluster.x-k8s.io", "v1beta1", kind);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk(&gvk));
    let config = kube::runtime::watcher::Config::default().labels(&format!("cluster.x-k8s.io/cluster-name={cluster}"));
    let mut events = kube::runtime::watcher(api, config).applied_objects().boxed();
    let mut provisioned = HashSet::new();
    let done = tokio::time::timeout(Duration::from_secs(1800), async {
        while let Some(Ok(m)) = events.next().await {
            let name = m.metadata.name.clone().unwrap_or_default();
            let ok = m.data["status"]["initialization"]["provisioned"] == serde_json::Value::Bool(true);
            if ok && name.starts_with(&format!("{prefix}-")) {
                provisioned.insert(name);
                if provisioned.len() == n {
                    return true;
                }
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(done, "{n} machines did not all provision");
    start.elapsed()
}
