//! ECS, jobs, look-ups and quotas against the simulator over HTTPS.

mod common;

use std::time::Duration;

use base64::Engine;
use capstan_sim_hcs::{Latency, Quotas};
use common::*;
use serde_json::json;

#[tokio::test]
async fn create_runs_a_job_and_the_server_builds_into_active_in_the_subnet() {
    let api = start(config(Latency::compressed())).await;
    let (s, v) = api.create(server("cp-1")).await;
    assert_eq!(s, 200, "{v}");
    let job = v["job_id"].as_str().unwrap().to_string();
    let id = v["serverIds"][0].as_str().unwrap().to_string();
    // Not visible during the list delay.
    let (s, v) = api.get(&format!("/v1/{{pid}}/cloudservers/{id}")).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "Ecs.0114");
    let (_, v) = api.get("/v1/{pid}/cloudservers/detail?name=cp").await;
    assert_eq!(v["count"], 0);
    let (_, j) = api.get(&format!("/v1/{{pid}}/jobs/{job}")).await;
    assert!(j["status"] == "INIT" || j["status"] == "RUNNING", "{j}");
    assert_eq!(j["job_type"], "createServer");
    eventually("RUNNING", || async {
        api.get(&format!("/v1/{{pid}}/jobs/{job}")).await.1["status"] == "RUNNING"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (s, v) = api.get(&format!("/v1/{{pid}}/cloudservers/{id}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["server"]["status"], "BUILD");
    assert_eq!(v["server"]["OS-EXT-STS:vm_state"], "building");
    let done = api.wait_job(&job).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(done["entities"]["sub_jobs"][0]["entities"]["server_id"], id.as_str());
    let (_, v) = api.get(&format!("/v1/{{pid}}/cloudservers/{id}")).await;
    let srv = &v["server"];
    assert_eq!(srv["status"], "ACTIVE");
    assert_eq!(srv["OS-EXT-AZ:availability_zone"], "az2");
    let addr = &srv["addresses"][VPC][0];
    assert_eq!(addr["OS-EXT-IPS:type"], "fixed");
    assert!(addr["addr"].as_str().unwrap().starts_with("127.16."), "{addr}");
    let tags: Vec<&str> = srv["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"capstan.io/machine=cp-1") && tags.contains(&"cluster=c1"));
    assert_eq!(srv["metadata"]["role"], "worker");
    assert_eq!(srv["flavor"]["vcpus"], "2");
    assert_eq!(srv["os-extended-volumes:volumes_attached"].as_array().unwrap().len(), 2);
    let (_, list) = api
        .get("/v1/{pid}/cloudservers/detail?tags=cluster=c1,capstan.io/machine=cp-1")
        .await;
    assert_eq!(list["count"], 1);
    let (_, list) = api.get("/v1/{pid}/cloudservers/detail?tags=cluster=c2").await;
    assert_eq!(list["count"], 0);
    let view = api.sim.state().server_by_name("cp-1").unwrap();
    assert_eq!(view.scheduler_group.as_deref(), Some("grp-1"));
    assert_eq!(view.flavor, "s6.large.2");
    let (_, vols) = api
        .get(&format!("/v2/{{pid}}/cloudvolumes/detail?server_id={id}"))
        .await;
    assert_eq!(vols["count"], 2);
    assert!(
        vols["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["bootable"] == "true" && v["status"] == "in-use")
    );
}

#[tokio::test]
async fn client_token_makes_create_idempotent() {
    let api = start(config(Latency::zero())).await;
    let body = json!({"server": server("w-1")});
    let t = [("X-Client-Token", "tok-1")];
    let (s1, a) = api
        .call(reqwest::Method::POST, "/v1/{pid}/cloudservers", Some(body.clone()), &t)
        .await;
    let (s2, b) = api
        .call(reqwest::Method::POST, "/v1/{pid}/cloudservers", Some(body), &t)
        .await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(a, b);
    assert_eq!(api.sim.state().servers().len(), 1);
    let (s, v) = api
        .call(
            reqwest::Method::POST,
            "/v1/{pid}/cloudservers",
            Some(json!({"server": server("w-2")})),
            &t,
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["code"], "Ecs.0122");
    assert_eq!(api.sim.state().servers().len(), 1);
}

#[tokio::test]
async fn invalid_creates_are_refused_and_create_nothing() {
    let api = start(config(Latency::zero())).await;
    let cases = [
        ("flavorRef", json!("nope"), "Ecs.0008"),
        ("imageRef", json!("nope"), "Ecs.0007"),
        ("nics", json!([{"subnet_id": api.neutron_id()}]), "Ecs.0009"),
        ("nics", json!([{"subnet_id": "nope"}]), "Ecs.0009"),
        (
            "nics",
            json!([{"subnet_id": api.subnet_id(), "ip_address": "10.0.0.5"}]),
            "Ecs.0010",
        ),
        ("availability_zone", json!("az9"), "Ecs.0005"),
        ("count", json!(2), "Ecs.0005"),
        ("root_volume", json!({"volumetype": "FAST", "size": 40}), "Ecs.0005"),
        ("user_data", json!("not base64!"), "Ecs.0005"),
    ];
    for (field, value, code) in cases {
        let mut body = server("bad");
        body[field] = value;
        let (s, v) = api.create(body).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some(code)), "{field}: {v}");
    }
    let big = base64::engine::general_purpose::STANDARD.encode(vec![b'a'; 32 * 1024 + 1]);
    let mut body = server("big");
    body["user_data"] = json!(big);
    let (s, v) = api.create(body).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("32 KB"), "{v}");
    let ok = base64::engine::general_purpose::STANDARD.encode(vec![b'a'; 32 * 1024]);
    let mut body = server("fits");
    body["user_data"] = json!(ok);
    assert_eq!(api.create(body).await.0, 200);
    assert_eq!(api.sim.state().servers().len(), 1);
}

#[tokio::test]
async fn quota_is_enforced_and_released_on_delete() {
    let mut cfg = config(Latency::zero());
    cfg.knobs.quotas = Quotas {
        instances: 10,
        cores: 4,
        ram_mib: 1 << 20,
    };
    let api = start(cfg).await;
    for n in ["a", "b"] {
        assert_eq!(api.create(server(n)).await.0, 200);
    }
    let (s, v) = api.create(server("c")).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["code"], "Ecs.0001");
    assert!(v["error"]["message"].as_str().unwrap().contains("cores"), "{v}");
    assert_eq!(api.sim.state().servers().len(), 2);
    let (_, limits) = api.get("/v1/{pid}/cloudservers/limits").await;
    assert_eq!(limits["absolute"]["totalCoresUsed"], 4);
    assert_eq!(limits["absolute"]["maxTotalCores"], 4);
    let id = api.sim.state().server_by_name("a").unwrap().id;
    let (_, v) = api
        .post(
            "/v1/{pid}/cloudservers/delete",
            json!({"servers": [{"id": id}], "delete_volume": true}),
        )
        .await;
    let job = api.wait_job(v["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "SUCCESS");
    assert_eq!(api.sim.state().quota_usage().cores, 2);
    assert_eq!(api.create(server("c")).await.0, 200);
}

#[tokio::test]
async fn delete_removes_the_server_and_its_volumes() {
    let api = start(config(Latency::compressed())).await;
    let (_, v) = api.create(server("d-1")).await;
    let id = v["serverIds"][0].as_str().unwrap().to_string();
    api.wait_job(v["job_id"].as_str().unwrap()).await;
    let (_, v) = api.create(server("d-2")).await;
    let keep = v["serverIds"][0].as_str().unwrap().to_string();
    api.wait_job(v["job_id"].as_str().unwrap()).await;
    let (s, v) = api
        .post(
            "/v1/{pid}/cloudservers/delete",
            json!({"servers": [{"id": id}], "delete_volume": true, "delete_publicip": true}),
        )
        .await;
    assert_eq!(s, 200);
    let job = v["job_id"].as_str().unwrap().to_string();
    let (_, g) = api.get(&format!("/v1/{{pid}}/cloudservers/{id}")).await;
    assert_eq!(g["server"]["OS-EXT-STS:task_state"], "deleting");
    assert_eq!(api.wait_job(&job).await["status"], "SUCCESS");
    let (s, g) = api.get(&format!("/v1/{{pid}}/cloudservers/{id}")).await;
    assert_eq!((s, g["error"]["code"].as_str()), (404, Some("Ecs.0114")));
    let vols = api.sim.state().volumes();
    assert!(
        vols.iter().all(|v| v.server_id.as_deref() == Some(keep.as_str())),
        "{vols:?}"
    );
    // Without delete_volume the volumes stay, available, and can then be deleted.
    let (_, v) = api
        .post("/v1/{pid}/cloudservers/delete", json!({"servers": [{"id": keep}]}))
        .await;
    api.wait_job(v["job_id"].as_str().unwrap()).await;
    let (_, vols) = api.get("/v2/{pid}/cloudvolumes/detail").await;
    assert_eq!(vols["count"], 2);
    let vol = vols["volumes"][0]["id"].as_str().unwrap();
    assert_eq!(vols["volumes"][0]["status"], "available");
    assert_eq!(api.delete(&format!("/v2/{{pid}}/cloudvolumes/{vol}")).await.0, 204);
    // An unknown id: the job fails with Ecs.0114.
    let (_, v) = api
        .post("/v1/{pid}/cloudservers/delete", json!({"servers": [{"id": "nope"}]}))
        .await;
    let job = api.wait_job(v["job_id"].as_str().unwrap()).await;
    assert_eq!(
        (job["status"].as_str(), job["error_code"].as_str()),
        (Some("FAIL"), Some("Ecs.0114"))
    );
}

#[tokio::test]
async fn power_stop_and_start() {
    let api = start(config(Latency::compressed())).await;
    let (_, v) = api.create(server("p-1")).await;
    let id = v["serverIds"][0].as_str().unwrap().to_string();
    api.wait_job(v["job_id"].as_str().unwrap()).await;
    let status = || async { api.get(&format!("/v1/{{pid}}/cloudservers/{id}")).await.1["server"]["status"].clone() };
    let (_, v) = api
        .post(
            "/v1/{pid}/cloudservers/action",
            json!({"os-stop": {"servers": [{"id": id}], "type": "SOFT"}}),
        )
        .await;
    let j = api.wait_job(v["job_id"].as_str().unwrap()).await;
    assert_eq!(
        (j["status"].as_str(), j["job_type"].as_str()),
        (Some("SUCCESS"), Some("stopServer"))
    );
    assert_eq!(status().await, "SHUTOFF");
    // Stopping a stopped server: success, no change.
    let (_, v) = api
        .post(
            "/v1/{pid}/cloudservers/action",
            json!({"os-stop": {"servers": [{"id": id}]}}),
        )
        .await;
    assert_eq!(api.wait_job(v["job_id"].as_str().unwrap()).await["status"], "SUCCESS");
    let (_, v) = api
        .post(
            "/v1/{pid}/cloudservers/action",
            json!({"os-start": {"servers": [{"id": id}]}}),
        )
        .await;
    assert_eq!(api.wait_job(v["job_id"].as_str().unwrap()).await["status"], "SUCCESS");
    assert_eq!(status().await, "ACTIVE");
    let (_, v) = api
        .post(
            "/v1/{pid}/cloudservers/action",
            json!({"reboot": {"servers": [{"id": id}], "type": "HARD"}}),
        )
        .await;
    assert_eq!(status().await, "HARD_REBOOT");
    assert_eq!(api.wait_job(v["job_id"].as_str().unwrap()).await["status"], "SUCCESS");
    assert_eq!(status().await, "ACTIVE");
    // power_on false: the build ends SHUTOFF.
    let mut body = server("p-2");
    body["power_on"] = json!(false);
    let (_, v) = api.create(body).await;
    api.wait_job(v["job_id"].as_str().unwrap()).await;
    assert_eq!(api.sim.state().server_by_name("p-2").unwrap().status, "SHUTOFF");
}

#[tokio::test]
async fn failed_create_jobs_roll_back() {
    let api = start(config(Latency::compressed())).await;
    api.sim.state().update_knobs(|k| {
        k.fail_next_job.insert("createServer".into(), 1);
    });
    let (_, v) = api.create(server("f-1")).await;
    let id = v["serverIds"][0].as_str().unwrap().to_string();
    eventually("ERROR", || async {
        api.sim
            .state()
            .server_by_name("f-1")
            .is_some_and(|s| s.status == "ERROR")
    })
    .await;
    let job = api.wait_job(v["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "FAIL");
    assert_eq!(job["error_code"], "Ecs.0010");
    assert!(job["fail_reason"].as_str().unwrap().contains("rolled back"));
    assert_eq!(job["entities"]["sub_jobs"][0]["error_code"], "Ecs.0010");
    assert_eq!(job["entities"]["sub_jobs"][0]["entities"]["server_id"], id.as_str());
    assert!(api.sim.state().servers().is_empty());
    assert!(api.sim.state().volumes().is_empty());
    assert_eq!(api.sim.state().quota_usage().instances, 0);
    // The next one succeeds.
    let (_, v) = api.create(server("f-2")).await;
    assert_eq!(api.wait_job(v["job_id"].as_str().unwrap()).await["status"], "SUCCESS");
}

#[tokio::test]
async fn lookups_of_images_flavors_subnets_and_vpcs() {
    let api = start(config(Latency::zero())).await;
    let (_, v) = api.get("/v2/cloudimages?name=capstan-ubuntu-22.04&status=active").await;
    assert_eq!(v["images"][0]["id"], IMAGE);
    let (_, v) = api.get("/v2/cloudimages?name=other").await;
    assert_eq!(v["images"].as_array().unwrap().len(), 0);
    let (_, v) = api.get("/v1/{pid}/cloudservers/flavors?availability_zone=az1").await;
    let f = &v["flavors"][0];
    assert_eq!((f["vcpus"].as_str(), f["ram"].as_u64()), (Some("2"), Some(4096)));
    let (_, v) = api.get(&format!("/v1/{{pid}}/subnets?vpc_id={VPC}")).await;
    let s = &v["subnets"][0];
    assert_eq!(s["name"], "subnet-sim");
    assert_ne!(s["id"], s["neutron_subnet_id"]);
    assert_eq!(s["cidr"], "127.16.0.0/16");
    let (s, v) = api.get("/v1/{pid}/subnets/nope").await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("VPC.0202")));
    assert_eq!(api.get(&format!("/v1/vpcs/{VPC}")).await.1["vpc"]["status"], "OK");
    assert_eq!(
        api.get(&format!("/v1/{{pid}}/vpcs/{VPC}")).await.1["vpc"]["name"],
        "vpc-sim"
    );
    let (s, v) = api.get("/v1/otherproject/cloudservers/detail").await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("Ecs.0003")));
    let (s, v) = api.get("/v3/otherproject/elb/loadbalancers").await;
    assert_eq!((s, v["error_code"].as_str()), (403, Some("ELB.1001")));
    assert_eq!(api.sim.state().call_count("list_images"), 2);
}

#[tokio::test]
async fn injected_errors_throttling_and_rate_limits() {
    let api = start(config(Latency::zero())).await;
    let st = api.sim.state();
    st.update_knobs(|k| {
        k.fail_next.insert("list_servers".into(), 1);
    });
    let (s, v) = api.get("/v1/{pid}/cloudservers/detail").await;
    assert_eq!((s, v["error"]["code"].as_str()), (500, Some("Ecs.0002")));
    assert_eq!(api.get("/v1/{pid}/cloudservers/detail").await.0, 200);
    st.update_knobs(|k| k.error_rate = 1.0);
    let (s, v) = api.get("/v3/{pid}/elb/loadbalancers").await;
    assert_eq!((s, v["error_code"].as_str()), (500, Some("ELB.0001")));
    st.update_knobs(|k| {
        k.error_rate = 0.0;
        k.throttle_rate = 1.0;
    });
    let (s, v) = api.get("/v1/{pid}/cloudservers/detail").await;
    assert_eq!((s, v["error_code"].as_str()), (429, Some("APIGW.0308")));
    st.update_knobs(|k| {
        k.throttle_rate = 0.0;
        k.rate_limit_per_second = Some(3);
    });
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(api.get("/v1/{pid}/cloudservers/detail").await.0);
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 3, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 2, "{codes:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(api.get("/v1/{pid}/cloudservers/detail").await.0, 200);
    assert_eq!(st.call_count("injected_error"), 2);
    assert_eq!(st.call_count("throttled"), 3);
    // Unauthenticated calls are refused before any of that.
    let resp = api
        .http
        .get(api.url("/v1/{pid}/cloudservers/detail"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
