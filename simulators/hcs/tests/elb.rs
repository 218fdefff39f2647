//! ELB v3 CRUD, delete order, and real TCP forwarding with health monitors.

mod common;

use std::time::Duration;

use capstan_sim_hcs::Latency;
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP server on `addr` answering every connection with `name` and closing.
async fn echo(addr: &str, name: &'static str) -> tokio::task::JoinHandle<()> {
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = c.write_all(name.as_bytes()).await;
                let _ = c.shutdown().await;
            });
        }
    })
}

async fn ask(addr: &str) -> String {
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut s = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_string(&mut s)).await;
    s
}

async fn ok_id(api: &Api, path: &str, body: Value, kind: &str) -> String {
    let (s, v) = api.post(path, body).await;
    assert_eq!(s, 201, "{path}: {v}");
    v[kind]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn load_balancer_crud_and_delete_order() {
    let api = start(config(Latency::compressed())).await;
    // The VPC subnet id is not what ELB takes.
    let (s, v) = api
        .post(
            "/v3/{pid}/elb/loadbalancers",
            json!({"loadbalancer": {"name": "k8s", "vip_subnet_cidr_id": api.subnet_id()}}),
        )
        .await;
    assert_eq!((s, v["error_code"].as_str()), (400, Some("ELB.8902")));
    let (s, v) = api
        .post(
            "/v3/{pid}/elb/loadbalancers",
            json!({"loadbalancer": {"name": "k8s", "vip_subnet_cidr_id": api.neutron_id(), "vip_address": "127.16.200.10"}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["loadbalancer"]["provisioning_status"], "PENDING_CREATE");
    assert_eq!(v["loadbalancer"]["vip_address"], "127.16.200.10");
    let lb = v["loadbalancer"]["id"].as_str().unwrap().to_string();
    // Not ACTIVE yet: no listener.
    let listener =
        json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 16443, "name": "api"}});
    assert_eq!(api.post("/v3/{pid}/elb/listeners", listener.clone()).await.0, 409);
    eventually("ACTIVE", || async {
        api.get(&format!("/v3/{{pid}}/elb/loadbalancers/{lb}")).await.1["loadbalancer"]["provisioning_status"]
            == "ACTIVE"
    })
    .await;
    let (_, v) = api.get("/v3/{pid}/elb/loadbalancers?name=k8s").await;
    assert_eq!(v["loadbalancers"].as_array().unwrap().len(), 1);
    let (_, v) = api.get("/v3/{pid}/elb/loadbalancers?name=other").await;
    assert_eq!(v["loadbalancers"].as_array().unwrap().len(), 0);
    let bad = json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}});
    assert_eq!(api.post("/v3/{pid}/elb/listeners", bad).await.0, 400);
    let l = ok_id(&api, "/v3/{pid}/elb/listeners", listener.clone(), "listener").await;
    assert_eq!(api.post("/v3/{pid}/elb/listeners", listener).await.0, 409);
    let pool =
        json!({"pool": {"lb_algorithm": "ROUND_ROBIN", "protocol": "TCP", "listener_id": l, "type": "instance"}});
    let p = ok_id(&api, "/v3/{pid}/elb/pools", pool, "pool").await;
    assert_eq!(
        api.get(&format!("/v3/{{pid}}/elb/listeners/{l}")).await.1["listener"]["default_pool_id"],
        p.as_str()
    );
    let member = json!({"member": {"address": "127.16.0.50", "protocol_port": 6443, "subnet_cidr_id": api.neutron_id(), "weight": 1}});
    let m = ok_id(
        &api,
        &format!("/v3/{{pid}}/elb/pools/{p}/members"),
        member.clone(),
        "member",
    )
    .await;
    assert_eq!(
        api.post(&format!("/v3/{{pid}}/elb/pools/{p}/members"), member).await.0,
        409
    );
    let outside = json!({"member": {"address": "10.0.0.1", "protocol_port": 6443, "subnet_cidr_id": api.neutron_id()}});
    assert_eq!(
        api.post(&format!("/v3/{{pid}}/elb/pools/{p}/members"), outside).await.0,
        400
    );
    let (_, v) = api.get(&format!("/v3/{{pid}}/elb/pools/{p}/members/{m}")).await;
    assert_eq!(v["member"]["operating_status"], "NO_MONITOR");
    let hm = json!({"healthmonitor": {"pool_id": p, "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 3, "monitor_port": 6443}});
    let h = ok_id(&api, "/v3/{pid}/elb/healthmonitors", hm, "healthmonitor").await;
    let (_, v) = api.get(&format!("/v3/{{pid}}/elb/loadbalancers/{lb}/statuses")).await;
    let tree = &v["statuses"]["loadbalancer"];
    assert_eq!(tree["listeners"][0]["pools"][0]["healthmonitor"]["id"], h.as_str());
    assert_eq!(tree["listeners"][0]["pools"][0]["members"][0]["id"], m.as_str());
    // Delete order: each parent refuses while a child exists.
    assert_eq!(api.delete(&format!("/v3/{{pid}}/elb/loadbalancers/{lb}")).await.0, 409);
    assert_eq!(api.delete(&format!("/v3/{{pid}}/elb/listeners/{l}")).await.0, 409);
    assert_eq!(api.delete(&format!("/v3/{{pid}}/elb/pools/{p}")).await.0, 409);
    assert_eq!(api.delete(&format!("/v3/{{pid}}/elb/healthmonitors/{h}")).await.0, 204);
    assert_eq!(api.delete(&format!("/v3/{{pid}}/elb/pools/{p}")).await.0, 409);
    assert_eq!(
        api.delete(&format!("/v3/{{pid}}/elb/pools/{p}/members/{m}")).await.0,
        204
    );
    assert_eq!(api.delete(&format!("/v3/{{pid}}/elb/pools/{p}")).await.0, 204);
    assert_eq!(api.delete(&format!("/v3/{{pid}}/elb/listeners/{l}")).await.0, 204);
    assert_eq!(api.delete(&format!("/v3/{{pid}}/elb/loadbalancers/{lb}")).await.0, 204);
    let (s, v) = api.get(&format!("/v3/{{pid}}/elb/loadbalancers/{lb}")).await;
    assert_eq!((s, v["error_code"].as_str()), (404, Some("ELB.8904")));
    // The port is free again once the listener is gone.
    tokio::net::TcpListener::bind("127.16.200.10:16443").await.unwrap();
}

#[tokio::test]
async fn listeners_forward_round_robin_and_skip_offline_members() {
    let api = start(config(Latency::zero())).await;
    api.sim
        .state()
        .update_knobs(|k| k.health_interval_override = Some(Duration::from_millis(50)));
    let a = echo("127.16.1.1:7001", "a").await;
    let _b = echo("127.16.1.2:7001", "b").await;
    let lb_body = json!({"loadbalancer": {"name": "fw", "vip_subnet_cidr_id": api.neutron_id()}});
    let (_, v) = api.post("/v3/{pid}/elb/loadbalancers", lb_body).await;
    let lb = v["loadbalancer"]["id"].as_str().unwrap().to_string();
    let vip = v["loadbalancer"]["vip_address"].as_str().unwrap().to_string();
    assert!(vip.starts_with("127.16."));
    eventually("ACTIVE", || async {
        api.get(&format!("/v3/{{pid}}/elb/loadbalancers/{lb}")).await.1["loadbalancer"]["provisioning_status"]
            == "ACTIVE"
    })
    .await;
    let l_body = json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 7443}});
    let l = ok_id(&api, "/v3/{pid}/elb/listeners", l_body, "listener").await;
    let target = format!("{vip}:7443");
    // No pool yet: accepted, then closed.
    assert_eq!(ask(&target).await, "");
    let p_body = json!({"pool": {"lb_algorithm": "ROUND_ROBIN", "protocol": "TCP", "listener_id": l}});
    let p = ok_id(&api, "/v3/{pid}/elb/pools", p_body, "pool").await;
    for ip in ["127.16.1.1", "127.16.1.2"] {
        let m = json!({"member": {"address": ip, "protocol_port": 7001, "subnet_cidr_id": api.neutron_id()}});
        ok_id(&api, &format!("/v3/{{pid}}/elb/pools/{p}/members"), m, "member").await;
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(ask(&target).await);
    }
    assert_eq!(got, ["a", "b", "a", "b"]);
    let hm = json!({"healthmonitor": {"pool_id": p, "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 2}});
    ok_id(&api, "/v3/{pid}/elb/healthmonitors", hm, "healthmonitor").await;
    let statuses = || {
        let st = api.sim.state();
        move || {
            st.load_balancers()[0].pools[0]
                .members
                .iter()
                .map(|m| m.operating_status.clone())
                .collect::<Vec<_>>()
        }
    };
    let s = statuses();
    eventually("both ONLINE", || async { s().iter().all(|x| x == "ONLINE") }).await;
    a.abort();
    let _ = a.await;
    eventually("a OFFLINE", || async {
        s().iter().filter(|x| *x == "OFFLINE").count() == 1
    })
    .await;
    for _ in 0..4 {
        assert_eq!(ask(&target).await, "b");
    }
    let (_, v) = api
        .get(&format!("/v3/{{pid}}/elb/pools/{p}/members?operating_status=OFFLINE"))
        .await;
    assert_eq!(v["members"][0]["address"], "127.16.1.1");
}
