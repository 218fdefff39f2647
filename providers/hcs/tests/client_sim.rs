//! The HCS client against the HCS simulator over verified HTTPS: signed calls succeed, refusals
//! are classified, and every call is reported to the observer.

use std::sync::{Arc, Mutex};

use capstan_cloudkit::{ApiCall, CallOutcome};
use capstan_hcs::client::{HcsClient, HcsConfig, HcsError};
use capstan_sim_hcs::{SimConfig, Simulator};

fn config(sim: &capstan_sim_hcs::SimHandle, c: &SimConfig, secret: &str) -> HcsConfig {
    let mut config = HcsConfig::new("sim.invalid", &c.region, &c.project_id, &c.access_key, secret);
    config.endpoints.insert("iam".into(), sim.url().clone());
    config.ca_bundle_pem = Some(sim.ca_pem().as_bytes().to_vec());
    config
}

#[tokio::test]
async fn signed_calls_succeed_and_refusals_are_classified() {
    let c = SimConfig::default();
    let sim = Simulator::start(c.clone()).await.unwrap();
    type Seen = Vec<(String, CallOutcome, Option<u16>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let observer = {
        let seen = seen.clone();
        move |call: &ApiCall<'_>| {
            seen.lock()
                .unwrap()
                .push((call.operation.to_string(), call.outcome, call.status))
        }
    };
    let client = HcsClient::with_observer(config(&sim, &c, &c.secret_key), Arc::new(observer)).unwrap();
    let projects = client.list_projects().await.unwrap();
    assert_eq!(projects[0].id, c.project_id);

    let wrong = HcsClient::new(config(&sim, &c, "not-the-secret")).unwrap();
    let err = wrong.list_projects().await.unwrap_err();
    assert!(matches!(err, HcsError::Auth { status: 401, .. }), "{err:?}");
    assert_eq!(err.code(), Some("APIGW.0301"));
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("not-the-secret"), "{err}");

    assert_eq!(
        seen.lock().unwrap().clone(),
        [("list_projects".to_string(), CallOutcome::Success, None)]
    );
    assert_eq!(sim.state().call_count("list_projects"), 1);
    assert_eq!(sim.state().call_count("auth_failed"), 1);
}

#[tokio::test]
async fn verification_is_on_by_default() {
    let c = SimConfig::default();
    let sim = Simulator::start(c.clone()).await.unwrap();
    let mut untrusted = config(&sim, &c, &c.secret_key);
    untrusted.ca_bundle_pem = None;
    let err = HcsClient::new(untrusted).unwrap().list_projects().await.unwrap_err();
    assert!(
        matches!(err, HcsError::Transport { .. }),
        "the simulator's CA is not a system root: {err:?}"
    );
    assert_eq!(sim.state().call_count("list_projects"), 0);
}

#[tokio::test]
async fn an_iam_user_logs_in_once_and_wrong_passwords_are_auth_errors() {
    use capstan_hcs::client::Auth;
    let c = SimConfig::default();
    let sim = Simulator::start(c.clone()).await.unwrap();
    let user = |password: &str| {
        let mut config = HcsConfig::with_auth(
            "sim.invalid",
            &c.region,
            &c.project_id,
            Auth::Password {
                user: c.user.clone(),
                password: password.to_string().into(),
                domain: c.domain.clone(),
            },
        );
        config.endpoints.insert("iam".into(), sim.url().clone());
        config.ca_bundle_pem = Some(sim.ca_pem().as_bytes().to_vec());
        HcsClient::new(config).unwrap()
    };
    let client = user(&c.password);
    for _ in 0..3 {
        assert_eq!(client.list_projects().await.unwrap()[0].id, c.project_id);
    }
    assert_eq!(sim.state().call_count("create_token"), 1, "one token for every call");
    assert_eq!(sim.state().call_count("list_projects"), 3);

    let err = user("wrong-password").list_projects().await.unwrap_err();
    assert!(matches!(err, HcsError::Auth { status: 401, .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong-password"), "{err}");
    assert_eq!(sim.state().call_count("list_projects"), 3);
}
