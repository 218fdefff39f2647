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
    apiserver_requests(client, resources, &["POST", "PUT", "PATCH", "DELETE"]).await
}

/// Requests with one of `verbs` (`GET`, `LIST`, `WATCH`, `PATCH`, …) the API server has served for
/// `resources`, from its `apiserver_request_total` metric.
pub async fn apiserver_requests(client: &Client, resources: &[&str], verbs: &[&str]) -> u64 {
    let req = http::Request::get("/metrics").body(Vec::new()).expect("static request");
    let text = client.request_text(req).await.expect("apiserver /metrics");
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| resources.iter().any(|r| l.contains(&format!("resource=\"{r}\""))))
        .filter(|l| verbs.iter().any(|v| l.contains(&format!("verb=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>() as u64
}

/// Copies every object of kind `K` in `default` from one API server to another as
/// `clusterctl move` does: metadata (labels, annotations, finalizers, owner references pointed
/// at the copies' new UIDs) and spec, never status. `uids` maps source UIDs to target UIDs:
/// copy owners before what they own. Returns how many objects were copied.
pub async fn copy_for_move<K>(
    from: &Client,
    to: &Client,
    uids: &mut std::collections::BTreeMap<String, String>,
) -> usize
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let source: Api<K> = Api::namespaced(from.clone(), "default");
    let target: Api<K> = Api::namespaced(to.clone(), "default");
    let objects = source.list(&Default::default()).await.expect("list the source").items;
    for obj in &objects {
        let mut v = serde_json::to_value(obj).expect("objects serialize");
        let fields = v.as_object_mut().expect("an object");
        fields.remove("status");
        let meta = fields
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .expect("metadata");
        for server_set in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(server_set);
        }
        for owner in meta
            .get_mut("ownerReferences")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let old = owner["uid"].as_str().unwrap_or_default().to_string();
            let new = uids
                .get(&old)
                .unwrap_or_else(|| panic!("owner {owner} was not copied first"));
            owner["uid"] = json!(new);
        }
        let created = target
            .create(
                &PostParams::default(),
                &serde_json::from_value(v).expect("still the same kind"),
            )
            .await
            .expect("create in the target");
        uids.insert(
            obj.meta().uid.clone().expect("a stored object has a UID"),
            created.meta().uid.clone().expect("a stored object has a UID"),
        );
    }
    objects.len()
}

/// CAPI core's part in a provider's lifecycle test, played by the test: a Cluster pointing at
/// an InfraCluster, Machines with their bootstrap data secrets, the provisioned flag copied.
/// Each returns an owner reference to what it created, for the infrastructure object it owns.
pub mod capi {
    use kube::Client;
    use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
    use kube::core::{ApiResource, GroupVersionKind};
    use serde_json::{Value, json};

    fn resource(kind: &str) -> ApiResource {
        ApiResource::from_gvk(&GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta2", kind))
    }

    async fn create(client: &Client, kind: &str, obj: Value) -> Value {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource(kind));
        let created = api
            .create(&PostParams::default(), &serde_json::from_value(obj).expect("object"))
            .await
            .expect("create");
        json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": kind, "name": created.metadata.name, "uid": created.metadata.uid})
    }

    /// A Cluster whose `infrastructureRef` names the InfraCluster `name` of `infra_kind`.
    pub async fn cluster(client: &Client, name: &str, infra_kind: &str, endpoint: Option<(&str, u16)>) -> Value {
        let mut spec = json!({
            "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": infra_kind, "name": name}
        });
        if let Some((host, port)) = endpoint {
            spec["controlPlaneEndpoint"] = json!({"host": host, "port": port});
        }
        create(
            client,
            "Cluster",
            json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "metadata": {"name": name}, "spec": spec}),
        )
        .await
    }

    /// A Machine of `cluster` whose InfraMachine is `name` of `infra_kind`, with the bootstrap
    /// data secret `<name>-boot` holding `user_data`.
    pub async fn machine(
        client: &Client,
        cluster: &str,
        name: &str,
        infra_kind: &str,
        placement: Placement<'_>,
        user_data: &str,
    ) -> Value {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), "default");
        let secret = json!({
            "metadata": {"name": format!("{name}-boot"), "labels": {"cluster.x-k8s.io/cluster-name": cluster}},
            "type": "cluster.x-k8s.io/secret",
            "stringData": {"value": user_data, "format": "cloud-config"}
        });
        secrets
            .create(&PostParams::default(), &serde_json::from_value(secret).expect("secret"))
            .await
            .expect("create bootstrap secret");
        let mut labels = json!({"cluster.x-k8s.io/cluster-name": cluster});
        if placement.control_plane {
            labels["cluster.x-k8s.io/control-plane"] = json!("");
        }
        create(
            client,
            "Machine",
            json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "clusterName": cluster,
                    "bootstrap": {"dataSecretName": format!("{name}-boot")},
                    "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": infra_kind, "name": name},
                    "failureDomain": placement.failure_domain,
                }
            }),
        )
        .await
    }

    /// What a Machine is: a control-plane one or not, and the failure domain CAPI chose.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Placement<'a> {
        pub control_plane: bool,
        pub failure_domain: Option<&'a str>,
    }

    /// Copies the InfraCluster's provisioned flag into the Cluster, as core does.
    pub async fn mark_infrastructure_provisioned(client: &Client, name: &str) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource("Cluster"));
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"initialization": {"infrastructureProvisioned": true}}})),
        )
        .await
        .expect("patch Cluster status");
    }
}
