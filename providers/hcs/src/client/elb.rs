//! Dedicated ELB v3 (`/v3/{project}/elb/…`, served on the VPC host on HCS): the load balancer,
//! its TCP listener, the pool behind it with a TCP health monitor, and the pool's members. Every
//! kind has the same create/get/list/delete shape (bodies wrapped in the kind's singular name,
//! 201 on create, 204 on delete), so one generic path serves them all.

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ecs::form_urlencoded;
use super::{Call, HcsClient, HcsError, Service};

/// An ELB object kind: its path segment and the key its body is wrapped in.
pub trait ElbKind: DeserializeOwned {
    /// `loadbalancers`, `listeners`, …
    const PLURAL: &'static str;
    /// `loadbalancer`, `listener`, …
    const SINGULAR: &'static str;
    /// Metrics names: create, get, list, delete.
    const OPERATIONS: [&'static str; 4];
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LoadBalancer {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub vip_address: String,
    #[serde(default)]
    pub vip_subnet_cidr_id: Option<String>,
    /// `ACTIVE`, `PENDING_CREATE`, `PENDING_DELETE`, `ERROR`.
    pub provisioning_status: String,
    #[serde(default)]
    pub operating_status: Option<String>,
}

impl ElbKind for LoadBalancer {
    const PLURAL: &'static str = "loadbalancers";
    const SINGULAR: &'static str = "loadbalancer";
    const OPERATIONS: [&'static str; 4] = ["create_lb", "get_lb", "list_lbs", "delete_lb"];
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Listener {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub protocol: String,
    pub protocol_port: u16,
    #[serde(default)]
    pub default_pool_id: Option<String>,
}

impl ElbKind for Listener {
    const PLURAL: &'static str = "listeners";
    const SINGULAR: &'static str = "listener";
    const OPERATIONS: [&'static str; 4] = ["create_listener", "get_listener", "list_listeners", "delete_listener"];
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pool {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub protocol: String,
    #[serde(default)]
    pub healthmonitor_id: Option<String>,
}

impl ElbKind for Pool {
    const PLURAL: &'static str = "pools";
    const SINGULAR: &'static str = "pool";
    const OPERATIONS: [&'static str; 4] = ["create_pool", "get_pool", "list_pools", "delete_pool"];
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HealthMonitor {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl ElbKind for HealthMonitor {
    const PLURAL: &'static str = "healthmonitors";
    const SINGULAR: &'static str = "healthmonitor";
    const OPERATIONS: [&'static str; 4] = [
        "create_healthmonitor",
        "get_healthmonitor",
        "list_healthmonitors",
        "delete_healthmonitor",
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Member {
    pub id: String,
    pub address: String,
    pub protocol_port: u16,
    /// `ONLINE`, `OFFLINE`, `NO_MONITOR`.
    #[serde(default)]
    pub operating_status: Option<String>,
}

/// Members live under their pool (`pools/{pool}/members`).
impl ElbKind for Member {
    const PLURAL: &'static str = "members";
    const SINGULAR: &'static str = "member";
    const OPERATIONS: [&'static str; 4] = ["create_member", "get_member", "list_members", "delete_member"];
}

/// What a new load balancer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateLoadBalancer {
    pub name: String,
    /// The neutron (IPv4) subnet id of the VIP's subnet.
    pub vip_subnet_cidr_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip_address: Option<String>,
    pub availability_zone_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl HcsClient {
    fn elb_path(&self, rest: &str) -> String {
        self.project_path("v3", &format!("elb/{rest}"))
    }

    /// Creates an object under `parent` (`pools/{id}/` for members, empty otherwise).
    async fn elb_create<K: ElbKind>(&self, parent: &str, body: Value) -> Result<K, HcsError> {
        let path = self.elb_path(&format!("{parent}{}", K::PLURAL));
        let answer: Value = self
            .call(
                Call::new(K::OPERATIONS[0], Service::Vpc, Method::POST, path, K::SINGULAR)
                    .body(json!({ K::SINGULAR: body })),
            )
            .await?;
        unwrap_one(K::OPERATIONS[0], K::SINGULAR, answer)
    }

    async fn elb_get<K: ElbKind>(&self, parent: &str, id: &str) -> Result<K, HcsError> {
        let path = self.elb_path(&format!("{parent}{}/{id}", K::PLURAL));
        let what = format!("{} {id}", K::SINGULAR);
        let answer: Value = self
            .call(Call::new(K::OPERATIONS[1], Service::Vpc, Method::GET, path, what))
            .await?;
        unwrap_one(K::OPERATIONS[1], K::SINGULAR, answer)
    }

    async fn elb_list<K: ElbKind>(&self, parent: &str, query: &[(&str, &str)]) -> Result<Vec<K>, HcsError> {
        let mut path = self.elb_path(&format!("{parent}{}", K::PLURAL));
        if !query.is_empty() {
            path = format!("{path}?{}", form_urlencoded(query));
        }
        let mut answer: Value = self
            .call(Call::new(K::OPERATIONS[2], Service::Vpc, Method::GET, path, K::PLURAL))
            .await?;
        serde_json::from_value(answer[K::PLURAL].take()).map_err(|e| HcsError::Decode {
            operation: K::OPERATIONS[2],
            message: e.to_string(),
        })
    }

    /// Deletes an object; one already gone counts as deleted.
    async fn elb_delete<K: ElbKind>(&self, parent: &str, id: &str) -> Result<(), HcsError> {
        let path = self.elb_path(&format!("{parent}{}/{id}", K::PLURAL));
        let what = format!("{} {id}", K::SINGULAR);
        match self
            .call_raw(Call::new(K::OPERATIONS[3], Service::Vpc, Method::DELETE, path, what))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn create_load_balancer(&self, lb: &CreateLoadBalancer) -> Result<LoadBalancer, HcsError> {
        let mut body = serde_json::to_value(lb).map_err(|e| HcsError::Config(e.to_string()))?;
        body["admin_state_up"] = json!(true);
        body["guaranteed"] = json!(true);
        self.elb_create("", body).await
    }

    pub async fn get_load_balancer(&self, id: &str) -> Result<LoadBalancer, HcsError> {
        self.elb_get("", id).await
    }

    /// Load balancers named exactly `name` (ELB names are not unique: the caller decides).
    pub async fn find_load_balancers(&self, name: &str) -> Result<Vec<LoadBalancer>, HcsError> {
        let all: Vec<LoadBalancer> = self.elb_list("", &[("name", name)]).await?;
        Ok(all.into_iter().filter(|l| l.name == name).collect())
    }

    pub async fn delete_load_balancer(&self, id: &str) -> Result<(), HcsError> {
        self.elb_delete::<LoadBalancer>("", id).await
    }

    pub async fn create_tcp_listener(&self, lb_id: &str, name: &str, port: u16) -> Result<Listener, HcsError> {
        let body = json!({"loadbalancer_id": lb_id, "protocol": "TCP", "protocol_port": port, "name": name});
        self.elb_create("", body).await
    }

    pub async fn listeners(&self, lb_id: &str) -> Result<Vec<Listener>, HcsError> {
        self.elb_list("", &[("loadbalancer_id", lb_id)]).await
    }

    pub async fn delete_listener(&self, id: &str) -> Result<(), HcsError> {
        self.elb_delete::<Listener>("", id).await
    }

    /// A round-robin TCP pool behind `listener_id`.
    pub async fn create_tcp_pool(&self, listener_id: &str, name: &str) -> Result<Pool, HcsError> {
        let body = json!({"listener_id": listener_id, "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN", "name": name, "type": "instance"});
        self.elb_create("", body).await
    }

    pub async fn pools(&self, lb_id: &str) -> Result<Vec<Pool>, HcsError> {
        self.elb_list("", &[("loadbalancer_id", lb_id)]).await
    }

    pub async fn delete_pool(&self, id: &str) -> Result<(), HcsError> {
        self.elb_delete::<Pool>("", id).await
    }

    /// A TCP health monitor on `port` (every 5 s, 3 s timeout, 3 failures → offline).
    pub async fn create_tcp_health_monitor(&self, pool_id: &str, port: u16) -> Result<HealthMonitor, HcsError> {
        let body = json!({"pool_id": pool_id, "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 3, "monitor_port": port});
        self.elb_create("", body).await
    }

    pub async fn health_monitors(&self, pool_id: &str) -> Result<Vec<HealthMonitor>, HcsError> {
        self.elb_list("", &[("pool_id", pool_id)]).await
    }

    pub async fn delete_health_monitor(&self, id: &str) -> Result<(), HcsError> {
        self.elb_delete::<HealthMonitor>("", id).await
    }

    pub async fn add_member(
        &self,
        pool_id: &str,
        address: &str,
        port: u16,
        neutron_subnet_id: &str,
    ) -> Result<Member, HcsError> {
        let body = json!({"address": address, "protocol_port": port, "subnet_cidr_id": neutron_subnet_id, "weight": 1});
        self.elb_create(&format!("pools/{pool_id}/"), body).await
    }

    pub async fn members(&self, pool_id: &str) -> Result<Vec<Member>, HcsError> {
        self.elb_list(&format!("pools/{pool_id}/"), &[]).await
    }

    pub async fn get_member(&self, pool_id: &str, id: &str) -> Result<Member, HcsError> {
        self.elb_get(&format!("pools/{pool_id}/"), id).await
    }

    pub async fn remove_member(&self, pool_id: &str, id: &str) -> Result<(), HcsError> {
        self.elb_delete::<Member>(&format!("pools/{pool_id}/"), id).await
    }
}

fn unwrap_one<K: DeserializeOwned>(operation: &'static str, key: &str, mut answer: Value) -> Result<K, HcsError> {
    serde_json::from_value(answer[key].take()).map_err(|e| HcsError::Decode {
        operation,
        message: e.to_string(),
    })
}
