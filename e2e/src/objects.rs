//! Small helpers tests use to write objects and read the API server's own accounting.

use kube::api::{Api, PostParams};
use kube::{Client, Resource};
use serde_json::{Value, json};

/// Creates `obj` (JSON of kind `K`) in the `default` namespace and returns what was stored.
pub async fn create<K>(client: &Client, obj: Value) -> K
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(obj).expect("object matches its kind"),
    )
    .await
    .expect("create")
}

/// A (non-controller) owner reference to `obj`, as JSON for object literals.
pub fn owner_ref<K: Resource<DynamicType = ()>>(obj: &K) -> Value {
    json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "name": obj.meta().name, "uid": obj.meta().uid})
}

/// Mutating requests (POST, PUT, PATCH, DELETE) the API server has served for `resources`, from
/// its `apiserver_request_total` metric.
pub async fn apiserver_writes(client: &Client, resources: &[&str]) -> u64 {
    let req = http::Request::get("/metrics").body(Vec::new()).expect("static request");
    let text = client.request_text(req).await.expect("apiserver /metrics");
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| resources.iter().any(|r| l.contains(&format!("resource=\"{r}\""))))
        .filter(|l| {
            ["POST", "PUT", "PATCH", "DELETE"]
                .iter()
                .any(|v| l.contains(&format!("verb=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>() as u64
}
