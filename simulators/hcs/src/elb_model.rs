//! The ELB v3 objects and their JSON. Listeners and health monitors own background tasks (the
//! TCP forwarder, the prober) that stop when the object is dropped.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use serde_json::{Value, json};

#[derive(Debug)]
pub(crate) struct Lb {
    pub id: String,
    pub name: String,
    pub description: String,
    pub vip: Ipv4Addr,
    /// The VPC subnet the VIP is taken from (addresses are shared with servers).
    pub subnet_id: String,
    pub neutron_subnet_id: String,
    pub vpc_id: String,
    pub vip_port_id: String,
    pub provisioning_status: &'static str,
    pub azs: Value,
    pub created: String,
}

#[derive(Debug)]
pub(crate) struct Listener {
    pub id: String,
    pub name: String,
    pub lb_id: String,
    pub port: u16,
    pub default_pool_id: Option<String>,
    pub task: Option<tokio::task::AbortHandle>,
    pub created: String,
}

#[derive(Debug)]
pub(crate) struct Pool {
    pub id: String,
    pub name: String,
    pub lb_id: String,
    pub listener_id: Option<String>,
    pub algorithm: String,
    pub kind: String,
    /// Round-robin position.
    pub next: usize,
}

#[derive(Debug)]
pub(crate) struct Member {
    pub id: String,
    pub name: String,
    pub pool_id: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub subnet_cidr_id: String,
    pub weight: u64,
    pub admin_state_up: bool,
    /// `NO_MONITOR`, `ONLINE` or `OFFLINE`.
    pub status: &'static str,
    /// Consecutive failed probes.
    pub fails: u32,
    /// Connections being forwarded to it now (for `LEAST_CONNECTIONS`).
    pub active: Arc<AtomicUsize>,
    /// Creation order, for a stable round robin.
    pub seq: u64,
}

#[derive(Debug)]
pub(crate) struct Monitor {
    pub id: String,
    pub name: String,
    pub pool_id: String,
    pub delay: u64,
    pub timeout: u64,
    pub max_retries: u32,
    pub monitor_port: Option<u16>,
    pub task: Option<tokio::task::AbortHandle>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Elb {
    pub lbs: BTreeMap<String, Lb>,
    pub listeners: BTreeMap<String, Listener>,
    pub pools: BTreeMap<String, Pool>,
    pub members: BTreeMap<String, Member>,
    pub monitors: BTreeMap<String, Monitor>,
    pub seq: u64,
}

fn ids<'a>(it: impl Iterator<Item = &'a String>) -> Vec<Value> {
    it.map(|id| json!({"id": id})).collect()
}

impl Elb {
    /// Stops every forwarder and prober (the simulator is going away).
    pub fn shutdown(&mut self) {
        self.listeners.clear();
        self.monitors.clear();
    }

    pub fn monitor_of(&self, pool_id: &str) -> Option<&Monitor> {
        self.monitors.values().find(|m| m.pool_id == pool_id)
    }

    pub fn lb_json(&self, l: &Lb, project: &str) -> Value {
        json!({
            "id": l.id, "name": l.name, "description": l.description, "project_id": project,
            "vip_address": l.vip.to_string(), "vip_port_id": l.vip_port_id, "vip_subnet_cidr_id": l.neutron_subnet_id,
            "vpc_id": l.vpc_id, "provisioning_status": l.provisioning_status, "operating_status": "ONLINE",
            "admin_state_up": true, "guaranteed": true, "availability_zone_list": l.azs,
            "listeners": ids(self.listeners.values().filter(|x| x.lb_id == l.id).map(|x| &x.id)),
            "pools": ids(self.pools.values().filter(|x| x.lb_id == l.id).map(|x| &x.id)),
            "eips": [], "publicips": [], "elb_virsubnet_ids": [], "created_at": l.created, "updated_at": l.created,
        })
    }

    pub fn listener_json(&self, x: &Listener, project: &str) -> Value {
        json!({
            "id": x.id, "name": x.name, "protocol": "TCP", "protocol_port": x.port, "project_id": project,
            "loadbalancers": [{"id": x.lb_id}], "default_pool_id": x.default_pool_id,
            "admin_state_up": true, "connection_limit": -1, "created_at": x.created, "updated_at": x.created,
        })
    }

    pub fn pool_json(&self, p: &Pool, project: &str) -> Value {
        json!({
            "id": p.id, "name": p.name, "lb_algorithm": p.algorithm, "protocol": "TCP", "type": p.kind,
            "project_id": project, "admin_state_up": true, "session_persistence": null,
            "listeners": ids(p.listener_id.iter()), "loadbalancers": [{"id": p.lb_id}],
            "members": ids(self.members.values().filter(|m| m.pool_id == p.id).map(|m| &m.id)),
            "healthmonitor_id": self.monitor_of(&p.id).map(|m| m.id.clone()),
        })
    }

    pub fn member_json(&self, m: &Member, project: &str) -> Value {
        json!({
            "id": m.id, "name": m.name, "address": m.address.to_string(), "protocol_port": m.port,
            "subnet_cidr_id": m.subnet_cidr_id, "weight": m.weight, "admin_state_up": m.admin_state_up,
            "operating_status": m.status, "pool_id": m.pool_id, "project_id": project, "ip_version": "v4",
        })
    }

    pub fn monitor_json(&self, m: &Monitor, project: &str) -> Value {
        json!({
            "id": m.id, "name": m.name, "type": "TCP", "delay": m.delay, "timeout": m.timeout,
            "max_retries": m.max_retries, "monitor_port": m.monitor_port, "pools": [{"id": m.pool_id}],
            "admin_state_up": true, "project_id": project,
        })
    }

    /// `GET loadbalancers/{id}/statuses`: the tree of one load balancer.
    pub fn statuses_json(&self, l: &Lb) -> Value {
        let pool = |p: &Pool| {
            let members: Vec<Value> = self
                .members
                .values()
                .filter(|m| m.pool_id == p.id)
                .map(|m| {
                    json!({"id": m.id, "name": m.name, "address": m.address.to_string(), "protocol_port": m.port,
                                 "provisioning_status": "ACTIVE", "operating_status": m.status})
                })
                .collect();
            let hm = self
                .monitor_of(&p.id)
                .map(|h| json!({"id": h.id, "name": h.name, "type": "TCP", "provisioning_status": "ACTIVE"}));
            json!({"id": p.id, "name": p.name, "provisioning_status": "ACTIVE", "operating_status": "ONLINE",
                   "healthmonitor": hm, "members": members})
        };
        let listeners: Vec<Value> = self
            .listeners
            .values()
            .filter(|x| x.lb_id == l.id)
            .map(|x| {
                let pools: Vec<Value> = self.pools.values().filter(|p| p.listener_id.as_deref() == Some(&x.id)).map(pool).collect();
                json!({"id": x.id, "name": x.name, "provisioning_status": "ACTIVE", "operating_status": "ONLINE", "pools": pools})
            })
            .collect();
        let pools: Vec<Value> = self.pools.values().filter(|p| p.lb_id == l.id).map(pool).collect();
        json!({"statuses": {"loadbalancer": {
            "id": l.id, "name": l.name, "provisioning_status": l.provisioning_status, "operating_status": "ONLINE",
            "listeners": listeners, "pools": pools,
        }}})
    }
}

/// The query filters ELB lists take: every key the object knows must match one of the values
/// given for it (`?id=a&id=b` is either); keys it does not know (`limit`, `marker`) are ignored.
pub(crate) fn filter(pairs: &[(String, String)], fields: &[(&str, String)]) -> bool {
    let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    keys.dedup();
    keys.iter().all(|k| match fields.iter().find(|(f, _)| f == k) {
        None => true,
        Some((_, have)) => pairs.iter().any(|(pk, pv)| pk == k && pv == have),
    })
}
