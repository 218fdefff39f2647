//! ELB v3 (dedicated) under `/v3/{pid}/elb/` (B9): load balancers, listeners, pools, members and
//! health monitors. Creates answer 201 and deletes 204; bodies are wrapped in the kind's name.
//!
//! Codes where the reference is silent are the simulator's choice: `ELB.1001` an invalid
//! request (bad body, unsupported protocol or algorithm, missing field); `ELB.8902` a subnet
//! that is not a `neutron_subnet_id` (a VPC subnet id included) or an address outside it;
//! `ELB.8903` a VIP address in use; `ELB.8904` (404) a missing object, in the path or
//! referenced from the body; `ELB.8906` (409) a duplicate (listener port, member address+port,
//! a second pool on a listener, a second monitor on a pool) or a port the host cannot bind;
//! `ELB.8907` (409) delete order (a load balancer with listeners, a listener with a pool, a
//! pool with members or a monitor) and a listener on a load balancer still `PENDING_CREATE`.

use std::net::Ipv4Addr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

pub(crate) use crate::elb_model::Elb;
use crate::elb_model::{Lb, Listener, Pool, filter};
use crate::front::{Answer, Family, Fault, Req, created, fault, guarded, no_content, ok};
use crate::state::{Sh, World, after, now_string};

pub(crate) fn invalid(message: impl Into<String>) -> Fault {
    fault(StatusCode::BAD_REQUEST, Family::Elb, "1001", message)
}

pub(crate) fn missing(kind: &str, id: &str) -> Fault {
    fault(
        StatusCode::NOT_FOUND,
        Family::Elb,
        "8904",
        format!("{kind} {id} could not be found."),
    )
}

pub(crate) fn conflict(code: &str, message: impl Into<String>) -> Fault {
    fault(StatusCode::CONFLICT, Family::Elb, code, message)
}

pub(crate) fn body<'a>(v: &'a Value, kind: &str) -> Result<&'a Value, Fault> {
    v.get(kind)
        .filter(|b| b.is_object())
        .ok_or_else(|| invalid(format!("the body must be {{\"{kind}\": {{..}}}}")))
}

pub(crate) fn text(v: &Value, key: &str) -> Option<String> {
    v[key].as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn vip(w: &mut World, subnet_id: &str, asked: Option<String>) -> Result<Ipv4Addr, Fault> {
    match asked {
        Some(a) => {
            let ip: Ipv4Addr = a
                .parse()
                .map_err(|_| invalid(format!("vip_address {a:?} is not IPv4")))?;
            w.check_fixed_ip(subnet_id, ip).map_err(|why| {
                let code = if why.contains("in use") { "8903" } else { "8902" };
                fault(StatusCode::BAD_REQUEST, Family::Elb, code, why)
            })?;
            Ok(ip)
        }
        None => w.allocate_ip(subnet_id).ok_or_else(|| {
            fault(
                StatusCode::BAD_REQUEST,
                Family::Elb,
                "8903",
                "the subnet has no free address",
            )
        }),
    }
}

fn create_lb(sh: &Sh, v: &Value) -> Answer {
    let b = body(v, "loadbalancer")?;
    let mut w = sh.lock();
    let neutron = text(b, "vip_subnet_cidr_id").unwrap_or_default();
    let subnet = w.subnet_by_neutron(&neutron).cloned().ok_or_else(|| {
        let hint = if w.subnet(&neutron).is_some() {
            " (that is a VPC subnet id; vip_subnet_cidr_id takes the neutron_subnet_id)"
        } else {
            ""
        };
        fault(
            StatusCode::BAD_REQUEST,
            Family::Elb,
            "8902",
            format!("subnet {neutron:?} not found{hint}"),
        )
    })?;
    let ip = vip(&mut w, &subnet.id, text(b, "vip_address"))?;
    let id = w.rng.uuid();
    let lb = Lb {
        id: id.clone(),
        name: text(b, "name").unwrap_or_default(),
        description: text(b, "description").unwrap_or_default(),
        vip: ip,
        subnet_id: subnet.id.clone(),
        neutron_subnet_id: neutron,
        vpc_id: subnet.vpc_id.clone(),
        vip_port_id: w.rng.uuid(),
        provisioning_status: "PENDING_CREATE",
        azs: b.get("availability_zone_list").cloned().unwrap_or(json!([])),
        created: now_string(),
    };
    w.elb.lbs.insert(id.clone(), lb);
    let lat = w.knobs.latency.lb;
    let lb_id = id.clone();
    after(sh, lat, move |w, _| {
        if let Some(l) = w.elb.lbs.get_mut(&lb_id) {
            l.provisioning_status = "ACTIVE";
        }
    });
    let pid = w.config.project_id.clone();
    created(json!({"loadbalancer": w.elb.lb_json(&w.elb.lbs[&id], &pid)}))
}

pub(crate) async fn lb_create(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "create_lb", Family::Elb, Some(&pid), req, {
        let v = req.json(Family::Elb)?;
        create_lb(&sh, &v)
    })
}

pub(crate) async fn lb_list(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "list_lbs", Family::Elb, Some(&pid), req, {
        let w = sh.lock();
        let q = req.query_pairs();
        let all: Vec<Value> = w
            .elb
            .lbs
            .values()
            .filter(|l| {
                let fields = [
                    ("id", l.id.clone()),
                    ("name", l.name.clone()),
                    ("vip_address", l.vip.to_string()),
                ];
                filter(&q, &fields)
            })
            .map(|l| w.elb.lb_json(l, &pid))
            .collect();
        ok(json!({"loadbalancers": all, "page_info": {"current_page_count": all.len()}}))
    })
}

pub(crate) async fn lb_get(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "get_lb", Family::Elb, Some(&pid), req, {
        let w = sh.lock();
        let l = w.elb.lbs.get(&id).ok_or_else(|| missing("Loadbalancer", &id))?;
        ok(json!({"loadbalancer": w.elb.lb_json(l, &pid)}))
    })
}

pub(crate) async fn lb_statuses(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "lb_statuses", Family::Elb, Some(&pid), req, {
        let w = sh.lock();
        let l = w.elb.lbs.get(&id).ok_or_else(|| missing("Loadbalancer", &id))?;
        ok(w.elb.statuses_json(l))
    })
}

pub(crate) async fn lb_delete(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "delete_lb", Family::Elb, Some(&pid), req, {
        let mut w = sh.lock();
        if !w.elb.lbs.contains_key(&id) {
            return Err(missing("Loadbalancer", &id));
        }
        if w.elb.listeners.values().any(|x| x.lb_id == id) || w.elb.pools.values().any(|p| p.lb_id == id) {
            Err(conflict(
                "8907",
                format!("Loadbalancer {id} still has listeners or pools."),
            ))
        } else {
            w.elb.lbs.remove(&id);
            no_content()
        }
    })
}

/// Listener creation: checks, then the real socket on VIP:port.
fn create_listener(sh: &Sh, v: &Value) -> Answer {
    let b = body(v, "listener")?;
    let protocol = text(b, "protocol").unwrap_or_default();
    if protocol != "TCP" {
        return Err(invalid(format!("protocol {protocol:?} is not supported (TCP only)")));
    }
    let port = b["protocol_port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid("protocol_port must be 1..65535"))?;
    let lb_id = text(b, "loadbalancer_id").unwrap_or_default();
    let mut w = sh.lock();
    let lb = w.elb.lbs.get(&lb_id).ok_or_else(|| missing("Loadbalancer", &lb_id))?;
    if lb.provisioning_status != "ACTIVE" {
        return Err(conflict(
            "8907",
            format!("Loadbalancer {lb_id} is {}; wait for ACTIVE.", lb.provisioning_status),
        ));
    }
    let vip = lb.vip;
    if w.elb.listeners.values().any(|x| x.lb_id == lb_id && x.port == port) {
        return Err(conflict(
            "8906",
            format!("Loadbalancer {lb_id} already has a listener on port {port}."),
        ));
    }
    let default_pool_id = text(b, "default_pool_id");
    if let Some(p) = &default_pool_id {
        let pool = w.elb.pools.get(p).ok_or_else(|| missing("Pool", p))?;
        if pool.listener_id.is_some() || pool.lb_id != lb_id {
            return Err(conflict(
                "8906",
                format!("Pool {p} is used by another listener or load balancer."),
            ));
        }
    }
    let socket =
        crate::forward::bind(vip, port).map_err(|e| conflict("8906", format!("cannot listen on {vip}:{port}: {e}")))?;
    let id = w.rng.uuid();
    if let Some(p) = default_pool_id.as_ref().and_then(|p| w.elb.pools.get_mut(p)) {
        p.listener_id = Some(id.clone());
    }
    let listener = Listener {
        id: id.clone(),
        name: text(b, "name").unwrap_or_default(),
        lb_id,
        port,
        default_pool_id,
        task: Some(crate::forward::spawn(sh.clone(), id.clone(), socket)),
        created: now_string(),
    };
    w.elb.listeners.insert(id.clone(), listener);
    let pid = w.config.project_id.clone();
    created(json!({"listener": w.elb.listener_json(&w.elb.listeners[&id], &pid)}))
}

pub(crate) async fn listener_create(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "create_listener", Family::Elb, Some(&pid), req, {
        let v = req.json(Family::Elb)?;
        create_listener(&sh, &v)
    })
}

pub(crate) async fn listener_list(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "list_listeners", Family::Elb, Some(&pid), req, {
        let w = sh.lock();
        let q = req.query_pairs();
        let all: Vec<Value> = w
            .elb
            .listeners
            .values()
            .filter(|x| {
                let fields = [
                    ("id", x.id.clone()),
                    ("name", x.name.clone()),
                    ("loadbalancer_id", x.lb_id.clone()),
                    ("protocol_port", x.port.to_string()),
                    ("protocol", "TCP".to_string()),
                ];
                filter(&q, &fields)
            })
            .map(|x| w.elb.listener_json(x, &pid))
            .collect();
        ok(json!({"listeners": all}))
    })
}

pub(crate) async fn listener_get(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "get_listener", Family::Elb, Some(&pid), req, {
        let w = sh.lock();
        let x = w.elb.listeners.get(&id).ok_or_else(|| missing("Listener", &id))?;
        ok(json!({"listener": w.elb.listener_json(x, &pid)}))
    })
}

pub(crate) async fn listener_delete(
    State(sh): State<Sh>,
    Path((pid, id)): Path<(String, String)>,
    req: Req,
) -> Response {
    guarded!(sh, "delete_listener", Family::Elb, Some(&pid), req, {
        let mut w = sh.lock();
        let x = w.elb.listeners.get(&id).ok_or_else(|| missing("Listener", &id))?;
        let pooled = x.default_pool_id.is_some() || w.elb.pools.values().any(|p| p.listener_id.as_deref() == Some(&id));
        if pooled {
            Err(conflict("8907", format!("Listener {id} still has a pool.")))
        } else {
            // Dropping it stops the forwarder and closes the socket.
            w.elb.listeners.remove(&id);
            no_content()
        }
    })
}

pub(crate) fn new_pool(w: &mut World, b: &Value) -> Result<Pool, Fault> {
    let algorithm = text(b, "lb_algorithm").unwrap_or_default();
    if !["ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP"].contains(&algorithm.as_str()) {
        return Err(invalid(format!("lb_algorithm {algorithm:?} is not supported")));
    }
    if text(b, "protocol").as_deref() != Some("TCP") {
        return Err(invalid("protocol must be TCP"));
    }
    let listener_id = text(b, "listener_id");
    let lb_id = match (&listener_id, text(b, "loadbalancer_id")) {
        (Some(l), _) => {
            let x = w.elb.listeners.get(l).ok_or_else(|| missing("Listener", l))?;
            if x.default_pool_id.is_some() {
                return Err(conflict("8906", format!("Listener {l} already has a default pool.")));
            }
            x.lb_id.clone()
        }
        (None, Some(lb)) if w.elb.lbs.contains_key(&lb) => lb,
        (None, Some(lb)) => return Err(missing("Loadbalancer", &lb)),
        (None, None) => return Err(invalid("a pool needs listener_id or loadbalancer_id")),
    };
    Ok(Pool {
        id: w.rng.uuid(),
        name: text(b, "name").unwrap_or_default(),
        lb_id,
        listener_id,
        algorithm,
        kind: text(b, "type").unwrap_or_else(|| "instance".into()),
        next: 0,
    })
}
