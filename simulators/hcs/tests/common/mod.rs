//! Test helpers: a simulator, a Keystone token, and JSON calls over real HTTPS.
#![allow(dead_code)]

use std::time::Duration;

use capstan_sim_hcs::{Latency, SimConfig, SimHandle, SimKnobs, Simulator};
use serde_json::{Value, json};

pub struct Api {
    pub sim: SimHandle,
    pub http: reqwest::Client,
    pub token: String,
    pub pid: String,
}

pub fn config(latency: Latency) -> SimConfig {
    SimConfig {
        knobs: SimKnobs {
            latency,
            ..SimKnobs::default()
        },
        ..SimConfig::default()
    }
}

pub async fn start(config: SimConfig) -> Api {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pid = config.project_id.clone();
    let (user, password, domain) = (config.user.clone(), config.password.clone(), config.domain.clone());
    let sim = Simulator::start(config).await.unwrap();
    let ca = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let resp = http
        .post(sim.url().join("/v3/auth/tokens").unwrap())
        .json(
            &json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"name": domain}}}},
            "scope": {"project": {"id": pid}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let token = resp.headers()["x-subject-token"].to_str().unwrap().to_string();
    Api { sim, http, token, pid }
}

impl Api {
    pub fn url(&self, path: &str) -> reqwest::Url {
        self.sim.url().join(&path.replace("{pid}", &self.pid)).unwrap()
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, self.url(path))
            .header("X-Auth-Token", &self.token);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None, &[]).await
    }

    /// Polls the job until it ends; returns its last body.
    pub async fn wait_job(&self, job: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            let (s, v) = self.get(&format!("/v1/{{pid}}/jobs/{job}")).await;
            assert_eq!(s, 200, "{v}");
            if v["status"] == "SUCCESS" || v["status"] == "FAIL" {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("job {job} never ended: {last}");
    }

    pub async fn create(&self, server: Value) -> (u16, Value) {
        self.post("/v1/{pid}/cloudservers", json!({"server": server})).await
    }

    pub fn subnet_id(&self) -> String {
        "8f4e1d2c-6a5b-4c3d-8e9f-0a1b2c3d4e02".into()
    }

    pub fn neutron_id(&self) -> String {
        "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e503".into()
    }
}

pub const VPC: &str = "3c2a9f50-7b1e-4d6a-9e0f-5a1b2c3d4e01";
pub const IMAGE: &str = "6b1e0a3f-2c4d-4e5f-9a8b-7c6d5e4f3a21";

/// A valid create body for `name`.
pub fn server(name: &str) -> Value {
    json!({
        "name": name, "imageRef": IMAGE, "flavorRef": "s6.large.2", "vpcid": VPC,
        "nics": [{"subnet_id": "8f4e1d2c-6a5b-4c3d-8e9f-0a1b2c3d4e02"}],
        "root_volume": {"volumetype": "SSD", "size": 40},
        "data_volumes": [{"volumetype": "SAS", "size": 100}],
        "availability_zone": "az2",
        "server_tags": [{"key": "capstan.io/machine", "value": name}, {"key": "cluster", "value": "c1"}],
        "metadata": {"role": "worker"},
        "os:scheduler_hints": {"group": "grp-1"},
        "count": 1,
    })
}

pub async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    for _ in 0..400 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}
