//! Servers boot their user_data in guest emulation.

mod common;

use base64::Engine;
use capstan_guest::{EndpointMode, GuestOptions, GuestStatus, Guests, Mode};
use capstan_sim_hcs::Latency;
use common::*;
use serde_json::json;

#[tokio::test]
async fn active_servers_boot_their_user_data_and_stop_start_delete_follow() {
    let disks = tempfile::tempdir().unwrap();
    let guests = Guests::new(GuestOptions {
        mode: Mode::NodesOnly,
        endpoint: EndpointMode::LoadBalanced,
        ..GuestOptions::new(disks.path())
    });
    let mut cfg = config(Latency::compressed());
    cfg.guests = Some(guests.clone());
    let api = start(cfg).await;
    let user_data = "#cloud-config\nwrite_files:\n- path: /etc/hello\n  content: hi\n";
    let mut body = server("g-1");
    body["user_data"] = json!(base64::engine::general_purpose::STANDARD.encode(user_data));
    let (_, v) = api.create(body).await;
    let id = v["serverIds"][0].as_str().unwrap().to_string();
    assert_eq!(guests.status(&id), None, "no guest before the build ends");
    api.wait_job(v["job_id"].as_str().unwrap()).await;
    eventually("Running", || async {
        guests.status(&id) == Some(GuestStatus::Running { node: None })
    })
    .await;
    let hello = disks.path().join("vms").join(&id).join("etc/hello");
    assert_eq!(std::fs::read_to_string(&hello).unwrap().trim(), "hi");
    let view = api.sim.state().server_by_name("g-1").unwrap();
    assert!(view.has_user_data);
    assert_eq!(view.user_data_len, user_data.len());
    // ECS shows the owner the user_data as given.
    let (_, g) = api.get(&format!("/v1/{{pid}}/cloudservers/{id}")).await;
    let shown = g["server"]["OS-EXT-SRV-ATTR:user_data"].as_str().unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(shown).unwrap(),
        user_data.as_bytes()
    );

    let (_, v) = api
        .post(
            "/v1/{pid}/cloudservers/action",
            json!({"os-stop": {"servers": [{"id": id}]}}),
        )
        .await;
    api.wait_job(v["job_id"].as_str().unwrap()).await;
    assert_eq!(guests.status(&id), Some(GuestStatus::Off));
    let (_, v) = api
        .post(
            "/v1/{pid}/cloudservers/action",
            json!({"os-start": {"servers": [{"id": id}]}}),
        )
        .await;
    api.wait_job(v["job_id"].as_str().unwrap()).await;
    assert_eq!(guests.status(&id), Some(GuestStatus::Running { node: None }));
    assert!(api.sim.state().stop_server_outside(&id));
    assert_eq!(guests.status(&id), Some(GuestStatus::Off));
    assert_eq!(api.sim.state().server_by_name("g-1").unwrap().status, "SHUTOFF");
    let (_, v) = api
        .post(
            "/v1/{pid}/cloudservers/delete",
            json!({"servers": [{"id": id}], "delete_volume": true}),
        )
        .await;
    api.wait_job(v["job_id"].as_str().unwrap()).await;
    assert_eq!(guests.status(&id), None);
    assert!(!disks.path().join("vms").join(&id).exists());

    // Without user_data cloud-init finds no datasource.
    let (_, v) = api.create(server("g-2")).await;
    let id = v["serverIds"][0].as_str().unwrap().to_string();
    api.wait_job(v["job_id"].as_str().unwrap()).await;
    eventually("Failed", || async {
        matches!(guests.status(&id), Some(GuestStatus::Failed { .. }))
    })
    .await;
}
