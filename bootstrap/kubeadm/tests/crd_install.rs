//! Our CRDs in a real kube-apiserver: a valid KubeadmConfig is stored as written, invalid ones are
//! rejected with a message naming the offending field, and a config without spec is defaulted.

use capstan_e2e::TestEnv;
use capstan_kubeadm::api::{KubeadmConfig, KubeadmConfigTemplate};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

fn config_api(client: kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("bootstrap.cluster.x-k8s.io", "v1beta2", "KubeadmConfig");
    Api::namespaced_with(
        client,
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "kubeadmconfigs"),
    )
}

async fn create_raw(api: &Api<DynamicObject>, value: serde_json::Value) -> Result<DynamicObject, kube::Error> {
    api.create(&PostParams::default(), &serde_json::from_value(value).unwrap())
        .await
}

#[tokio::test]
async fn crds_install_and_validate() {
    let env = TestEnv::start_bare().await.unwrap();
    env.install_crds(&capstan_kubeadm::api::crds()).await.unwrap();
    let client = env.client().await.unwrap();
    let raw = config_api(client.clone());

    let valid = json!({
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfig",
        "metadata": {"name": "valid", "namespace": "default"},
        "spec": {
            "clusterConfiguration": {
                "apiServer": {"extraArgs": [{"name": "cloud-provider", "value": "external"}]},
                "encryptionAlgorithm": "ECDSA-P256",
                "caCertificateValidityPeriodDays": 100
            },
            "initConfiguration": {"nodeRegistration": {"taints": [], "kubeletExtraArgs": [{"name": "v", "value": "2"}]}},
            "joinConfiguration": {"controlPlane": {}},
            "files": [{"path": "/etc/a", "content": "x", "encoding": "base64", "append": true}],
            "users": [{"name": "capstan", "passwdFrom": {"secret": {"name": "s", "key": "k"}}}],
            "mounts": [["/dev/sdb", "/data"]],
            "diskSetup": {"partitions": [{"device": "/dev/sdb", "layout": true, "tableType": "gpt"}]},
            "ntp": {"enabled": true, "servers": ["pool.ntp.org"]},
            "verbosity": 5,
            "format": "cloud-config"
        }
    });
    create_raw(&raw, valid.clone()).await.unwrap();
    let typed: Api<KubeadmConfig> = Api::namespaced(client.clone(), "default");
    let back = typed.get("valid").await.unwrap();
    // Round trip through our types loses nothing the user wrote.
    let spec_back = serde_json::to_value(&back.spec).unwrap();
    assert_eq!(spec_back, valid["spec"]);
    assert_eq!(back.spec.join_configuration.control_plane, Some(Default::default()));
    assert_eq!(back.spec.init_configuration.node_registration.taints, Some(vec![]));

    // No spec at all (upstream omits an empty one): defaulted to {} and readable.
    create_raw(
        &raw,
        json!({"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfig",
               "metadata": {"name": "nospec", "namespace": "default"}}),
    )
    .await
    .unwrap();
    assert_eq!(typed.get("nospec").await.unwrap().spec, Default::default());

    let invalid = [
        (
            json!({"files": [{"path": "/a", "encoding": "rot13"}]}),
            "spec.files[0].encoding",
        ),
        (
            json!({"clusterConfiguration": {"encryptionAlgorithm": "DSA"}}),
            "spec.clusterConfiguration.encryptionAlgorithm",
        ),
        (
            json!({"clusterConfiguration": {"caCertificateValidityPeriodDays": 0}}),
            "spec.clusterConfiguration.caCertificateValidityPeriodDays",
        ),
        (json!({"files": [{"content": "no path"}]}), "spec.files[0].path"),
        (json!({"clusterConfiguration": {}}), "spec.clusterConfiguration"),
        (json!({"format": "yaml"}), "spec.format"),
    ];
    for (i, (spec, field)) in invalid.into_iter().enumerate() {
        let err = create_raw(
            &raw,
            json!({"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfig",
                   "metadata": {"name": format!("invalid-{i}"), "namespace": "default"}, "spec": spec}),
        )
        .await
        .expect_err(field);
        match err {
            kube::Error::Api(s) => {
                assert_eq!(s.code, 422, "{s:?}");
                assert!(s.message.contains(field), "{field} not named in: {}", s.message);
            }
            other => panic!("unexpected error {other}"),
        }
    }

    let templates: Api<KubeadmConfigTemplate> = Api::namespaced(client, "default");
    let t: KubeadmConfigTemplate = serde_json::from_value(json!({
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfigTemplate",
        "metadata": {"name": "workers", "namespace": "default"},
        "spec": {"template": {"spec": {"joinConfiguration": {"nodeRegistration": {"name": "{{ ds.meta_data.local_hostname }}"}}}}}
    }))
    .unwrap();
    templates.create(&PostParams::default(), &t).await.unwrap();
    let back = templates.get("workers").await.unwrap();
    assert_eq!(
        back.spec.template.spec.join_configuration.node_registration.name,
        "{{ ds.meta_data.local_hostname }}"
    );
}
