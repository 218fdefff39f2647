//! The harness itself: processes come up on loopback, clients have the identities they claim, and
//! nothing outlives its guard.

use std::time::Duration;

use capstan_e2e::{TestEnv, Vcsim};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

#[tokio::test]
async fn admin_and_restricted_identities() {
    let env = TestEnv::start_bare().await.unwrap();
    assert!(env.url().starts_with("https://127.0.0.1:"));
    let admin: Api<ConfigMap> = Api::namespaced(env.client().await.unwrap(), "default");
    let cm: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}, "data": {"k": "v"}})).unwrap();
    admin.create(&PostParams::default(), &cm).await.unwrap();

    // The restricted user has no RBAC grants: reads are forbidden, not unauthenticated.
    let restricted: Api<ConfigMap> = Api::namespaced(env.restricted_client().await.unwrap(), "default");
    match restricted.get("x").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("restricted user read a ConfigMap: {other:?}"),
    }
    // Impersonating a service account works the same way.
    let sa: Api<ConfigMap> = Api::namespaced(
        env.impersonating(
            "system:serviceaccount:capstan-system:capstan",
            &["system:serviceaccounts"],
        )
        .await
        .unwrap(),
        "default",
    );
    match sa.get("x").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message.contains("system:serviceaccount:capstan-system:capstan"),
                "{}",
                s.message
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn processes_die_with_their_guard() {
    let env = TestEnv::start_bare().await.unwrap();
    let url = env.url().to_string();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    drop(env);
    // Nothing listens on the API server's port any more.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "kube-apiserver outlived its guard"
    );
}

#[test]
fn vcsim_serves_the_vim25_sdk() {
    let sim = Vcsim::start().expect("vcsim (hack/testenv.sh builds it)");
    assert!(
        sim.url().contains("127.0.0.1") && sim.url().ends_with("/sdk"),
        "{}",
        sim.url()
    );
    let port: u16 = sim
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/sdk")
        .parse()
        .unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "{}",
        sim.log_tail(20)
    );
}
