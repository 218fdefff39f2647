//! ELB pools, members and health monitors (see [`crate::elb`] for the codes).

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::elb::{body, conflict, invalid, missing, new_pool, text};
use crate::elb_model::{Member, Monitor, filter};
use crate::front::{Answer, Family, Fault, Req, created, fault, guarded, no_content, ok};
use crate::state::{Sh, World};

fn create_pool(sh: &Sh, v: &Value) -> Answer {
    let b = body(v, "pool")?;
    let mut w = sh.lock();
    let pool = new_pool(&mut w, b)?;
    let id = pool.id.clone();
    if let Some(l) = pool.listener_id.as_ref().and_then(|l| w.elb.listeners.get_mut(l)) {
        l.default_pool_id = Some(id.clone());
    }
    w.elb.pools.insert(id.clone(), pool);
    let pid = w.config.project_id.clone();
    created(json!({"pool": w.elb.pool_json(&w.elb.pools[&id], &pid)}))
}

pub(crate) async fn pool_create(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "create_pool", Family::Elb, Some(&pid), req, {
        let v = req.json(Family::Elb)?;
        create_pool(&sh, &v)
    })
}

pub(crate) async fn pool_list(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "list_pools", Family::Elb, Some(&pid), req, {
        let w = sh.lock();
        let q = req.query_pairs();
        let all: Vec<Value> = w
            .elb
            .pools
            .values()
            .filter(|p| {
                let fields = [
                    ("id", p.id.clone()),
                    ("name", p.name.clone()),
                    ("loadbalancer_id", p.lb_id.clone()),
                    ("listener_id", p.listener_id.clone().unwrap_or_default()),
                ];
                filter(&q, &fields)
            })
            .map(|p| w.elb.pool_json(p, &pid))
            .collect();
        ok(json!({"pools": all}))
    })
}

pub(crate) async fn pool_get(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "get_pool", Family::Elb, Some(&pid), req, {
        let w = sh.lock();
        let p = w.elb.pools.get(&id).ok_or_else(|| missing("Pool", &id))?;
        ok(json!({"pool": w.elb.pool_json(p, &pid)}))
    })
}

pub(crate) async fn pool_delete(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "delete_pool", Family::Elb, Some(&pid), req, {
        let mut w = sh.lock();
        if !w.elb.pools.contains_key(&id) {
            return Err(missing("Pool", &id));
        }
        if w.elb.members.values().any(|m| m.pool_id == id) || w.elb.monitor_of(&id).is_some() {
            return Err(conflict(
                "8907",
                format!("Pool {id} still has members or a health monitor."),
            ));
        }
        if let Some(p) = w.elb.pools.remove(&id)
            && let Some(l) = p.listener_id.and_then(|l| w.elb.listeners.get_mut(&l))
        {
            l.default_pool_id = None;
        }
        no_content()
    })
}

fn new_member(w: &mut World, pool_id: &str, b: &Value) -> Result<Member, Fault> {
    let address = text(b, "address").unwrap_or_default();
    let ip: Ipv4Addr = address
        .parse()
        .map_err(|_| invalid(format!("address {address:?} is not IPv4")))?;
    let port = b["protocol_port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid("protocol_port must be 1..65535"))?;
    let subnet_cidr_id = text(b, "subnet_cidr_id")
        .ok_or_else(|| invalid("subnet_cidr_id is required (IP-as-a-backend is not enabled)"))?;
    let subnet = w.subnet_by_neutron(&subnet_cidr_id).ok_or_else(|| {
        fault(
            StatusCode::BAD_REQUEST,
            Family::Elb,
            "8902",
            format!("subnet {subnet_cidr_id:?} not found"),
        )
    })?;
    if !subnet.cidr.contains(ip) {
        return Err(fault(
            StatusCode::BAD_REQUEST,
            Family::Elb,
            "8902",
            format!("address {ip} is not in subnet {}", subnet.cidr),
        ));
    }
    if w.elb
        .members
        .values()
        .any(|m| m.pool_id == pool_id && m.address == ip && m.port == port)
    {
        return Err(conflict(
            "8906",
            format!("Pool {pool_id} already has member {ip}:{port}."),
        ));
    }
    let monitored = w.elb.monitor_of(pool_id).is_some();
    w.elb.seq += 1;
    Ok(Member {
        id: w.rng.uuid(),
        name: text(b, "name").unwrap_or_default(),
        pool_id: pool_id.to_string(),
        address: ip,
        port,
        subnet_cidr_id,
        weight: b["weight"].as_u64().unwrap_or(1),
        admin_state_up: b["admin_state_up"].as_bool().unwrap_or(true),
        status: if monitored { "OFFLINE" } else { "NO_MONITOR" },
        fails: 0,
        active: Arc::default(),
        seq: w.elb.seq,
    })
}

fn create_member(sh: &Sh, pool_id: &str, v: &Value) -> Answer {
    let b = body(v, "member")?;
    let mut w = sh.lock();
    if !w.elb.pools.contains_key(pool_id) {
        return Err(missing("Pool", pool_id));
    }
    let m = new_member(&mut w, pool_id, b)?;
    let id = m.id.clone();
    w.elb.members.insert(id.clone(), m);
    if let Some(monitor) = w.elb.monitor_of(pool_id) {
        crate::health::probe_soon(sh, &monitor.id, &id);
    }
    let pid = w.config.project_id.clone();
    created(json!({"member": w.elb.member_json(&w.elb.members[&id], &pid)}))
}

pub(crate) async fn member_create(
    State(sh): State<Sh>,
    Path((pid, pool)): Path<(String, String)>,
    req: Req,
) -> Response {
    guarded!(sh, "create_member", Family::Elb, Some(&pid), req, {
        let v = req.json(Family::Elb)?;
        create_member(&sh, &pool, &v)
    })
}

pub(crate) async fn member_list(State(sh): State<Sh>, Path((pid, pool)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "list_members", Family::Elb, Some(&pid), req, {
        let w = sh.lock();
        if !w.elb.pools.contains_key(&pool) {
            return Err(missing("Pool", &pool));
        }
        let q = req.query_pairs();
        let all: Vec<Value> = w
            .elb
            .members
            .values()
            .filter(|m| m.pool_id == pool)
            .filter(|m| {
                let fields = [
                    ("id", m.id.clone()),
                    ("name", m.name.clone()),
                    ("address", m.address.to_string()),
                    ("protocol_port", m.port.to_string()),
                    ("operating_status", m.status.to_string()),
                ];
                filter(&q, &fields)
            })
            .map(|m| w.elb.member_json(m, &pid))
            .collect();
        ok(json!({"members": all}))
    })
}

pub(crate) async fn member_get(
    State(sh): State<Sh>,
    Path((pid, pool, id)): Path<(String, String, String)>,
    req: Req,
) -> Response {
    guarded!(sh, "get_member", Family::Elb, Some(&pid), req, {
        let w = sh.lock();
        let m = w
            .elb
            .members
            .get(&id)
            .filter(|m| m.pool_id == pool)
            .ok_or_else(|| missing("Member", &id))?;
        ok(json!({"member": w.elb.member_json(m, &pid)}))
    })
}

pub(crate) async fn member_delete(
    State(sh): State<Sh>,
    Path((pid, pool, id)): Path<(String, String, String)>,
    req: Req,
) -> Response {
    guarded!(sh, "delete_member", Family::Elb, Some(&pid), req, {
        let mut w = sh.lock();
        if w.elb.members.get(&id).is_none_or(|m| m.pool_id != pool) {
            return Err(missing("Member", &id));
        }
        w.elb.members.remove(&id);
        no_content()
    })
}

fn bounded(b: &Value, key: &str, range: std::ops::RangeInclusive<u64>, default: u64) -> Result<u64, Fault> {
    let n = b[key].as_u64().unwrap_or(default);
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(invalid(format!("{key} {n} is not within {range:?}")))
    }
}

fn create_monitor(sh: &Sh, v: &Value) -> Answer {
    let b = body(v, "healthmonitor")?;
    if text(b, "type").as_deref() != Some("TCP") {
        return Err(invalid("type must be TCP"));
    }
    let pool_id = text(b, "pool_id").unwrap_or_default();
    let mut w = sh.lock();
    if !w.elb.pools.contains_key(&pool_id) {
        return Err(missing("Pool", &pool_id));
    }
    if w.elb.monitor_of(&pool_id).is_some() {
        return Err(conflict(
            "8906",
            format!("Pool {pool_id} already has a health monitor."),
        ));
    }
    let monitor_port = match b["monitor_port"].as_u64() {
        None => None,
        Some(p) => Some(
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid("monitor_port must be 1..65535"))?,
        ),
    };
    let id = w.rng.uuid();
    let monitor = Monitor {
        id: id.clone(),
        name: text(b, "name").unwrap_or_default(),
        pool_id: pool_id.clone(),
        delay: bounded(b, "delay", 1..=50, 5)?,
        timeout: bounded(b, "timeout", 1..=50, 3)?,
        max_retries: bounded(b, "max_retries", 1..=10, 3)? as u32,
        monitor_port,
        task: Some(crate::health::spawn(sh.clone(), id.clone())),
    };
    for m in w.elb.members.values_mut().filter(|m| m.pool_id == pool_id) {
        m.status = "OFFLINE";
        m.fails = 0;
    }
    w.elb.monitors.insert(id.clone(), monitor);
    let pid = w.config.project_id.clone();
    created(json!({"healthmonitor": w.elb.monitor_json(&w.elb.monitors[&id], &pid)}))
}

pub(crate) async fn monitor_create(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "create_healthmonitor", Family::Elb, Some(&pid), req, {
        let v = req.json(Family::Elb)?;
        create_monitor(&sh, &v)
    })
}

pub(crate) async fn monitor_list(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "list_healthmonitors", Family::Elb, Some(&pid), req, {
        let w = sh.lock();
        let q = req.query_pairs();
        let all: Vec<Value> = w
            .elb
            .monitors
            .values()
            .filter(|m| {
                let fields = [
                    ("id", m.id.clone()),
                    ("name", m.name.clone()),
                    ("pool_id", m.pool_id.clone()),
                ];
                filter(&q, &fields)
            })
            .map(|m| w.elb.monitor_json(m, &pid))
            .collect();
        ok(json!({"healthmonitors": all}))
    })
}

pub(crate) async fn monitor_get(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "get_healthmonitor", Family::Elb, Some(&pid), req, {
        let w = sh.lock();
        let m = w.elb.monitors.get(&id).ok_or_else(|| missing("Healthmonitor", &id))?;
        ok(json!({"healthmonitor": w.elb.monitor_json(m, &pid)}))
    })
}

pub(crate) async fn monitor_delete(
    State(sh): State<Sh>,
    Path((pid, id)): Path<(String, String)>,
    req: Req,
) -> Response {
    guarded!(sh, "delete_healthmonitor", Family::Elb, Some(&pid), req, {
        let mut w = sh.lock();
        let m = w
            .elb
            .monitors
            .remove(&id)
            .ok_or_else(|| missing("Healthmonitor", &id))?;
        for member in w.elb.members.values_mut().filter(|x| x.pool_id == m.pool_id) {
            member.status = "NO_MONITOR";
            member.fails = 0;
        }
        no_content()
    })
}
