//! Finalizer patches against a real API server: a concurrent write makes the guarded patch a
//! no-op reported as sent (the watch brings the new version), an invalid patch stays an error.

use capstan_localplane::LocalPlane;
use capstan_runtime::finalizer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const FIN: &str = "test.capstan.dev/cleanup";

#[tokio::test]
async fn concurrent_writes_are_not_failures_and_invalid_patches_are() {
    capstan_runtime::install_crypto_provider();
    let plane = LocalPlane::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(plane.client().await.unwrap(), "default");
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "cm"}})).unwrap(),
        )
        .await
        .unwrap();
    // Someone else writes in between: our copy is stale.
    api.patch(
        "cm",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await
    .unwrap();
    assert!(finalizer::add(&api, &created, FIN, "test").await.unwrap());
    assert!(
        api.get("cm").await.unwrap().finalizers().is_empty(),
        "a stale patch must not apply"
    );

    let fresh = api.get("cm").await.unwrap();
    assert!(finalizer::add(&api, &fresh, FIN, "test").await.unwrap());
    let with = api.get("cm").await.unwrap();
    assert_eq!(with.finalizers(), [FIN]);

    // The server rejects the name itself: that is a real error, not a race.
    let err = finalizer::add(&api, &with, "not a valid/finalizer/name", "test")
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 422), "{err}");

    api.patch(
        "cm",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "z"}}})),
    )
    .await
    .unwrap();
    assert!(finalizer::remove(&api, &with, FIN, "test").await.unwrap());
    let now = api.get("cm").await.unwrap();
    assert_eq!(now.finalizers(), [FIN], "a stale removal must not apply");
    assert!(finalizer::remove(&api, &now, FIN, "test").await.unwrap());
    assert!(api.get("cm").await.unwrap().finalizers().is_empty());
}
