//! HTTP routes of the simulated VRM.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use super::state::{LoginRecord, Shared, SimNic, SimVm, Upload, World, codes, now_string, vm_urn};

type Sh = Arc<Shared>;

pub(crate) struct Fault {
    status: StatusCode,
    code: &'static str,
    des: String,
}

fn fault(status: StatusCode, code: &'static str, des: impl Into<String>) -> Fault {
    Fault {
        status,
        code,
        des: des.into(),
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"errorCode": self.code, "errorDes": self.des})),
        )
            .into_response()
    }
}

type Answer = Result<Response, Fault>;

fn ok(v: Value) -> Answer {
    Ok(axum::Json(v).into_response())
}

pub(crate) fn router(shared: Sh) -> Router {
    Router::new()
        .route("/service/session", post(login).delete(logout))
        .route("/service/sites", get(list_sites))
        .route("/service/sites/{site}/clusters", get(list_clusters))
        .route("/service/sites/{site}/hosts", get(list_hosts))
        .route("/service/sites/{site}/datastores", get(list_datastores))
        .route("/service/sites/{site}/dvswitchs", get(list_dvswitches))
        .route(
            "/service/sites/{site}/dvswitchs/{dvs}/portgroups",
            get(list_port_groups),
        )
        .route("/service/sites/{site}/vms", get(list_vms))
        .route("/service/sites/{site}/vms/{vm}", get(get_vm).delete(delete_vm))
        .route("/service/sites/{site}/vms/{vm}/action/{action}", post(vm_action))
        .route("/service/sites/{site}/tasks", get(list_tasks))
        .route("/service/sites/{site}/tasks/{task}", get(get_task))
        .fallback(|| async { fault(StatusCode::NOT_FOUND, codes::BAD_REQUEST, "no such resource") })
        .layer(DefaultBodyLimit::max(64 << 20))
        .with_state(shared)
}

/// The physical host's management endpoint: it takes only the upload bytes.
pub(crate) fn host_router(shared: Sh) -> Router {
    Router::new()
        .route("/upload/{ticket}", put(upload))
        .fallback(|| async { fault(StatusCode::NOT_FOUND, codes::BAD_REQUEST, "no such resource") })
        .layer(DefaultBodyLimit::max(64 << 20))
        .with_state(shared)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The `version=` of `Accept: application/json;version=6.0;charset=UTF-8`, without a `v`.
fn accept_version(h: &HeaderMap) -> Option<String> {
    let accept = header(h, "accept")?;
    accept.split(';').find_map(|p| {
        p.trim()
            .strip_prefix("version=")
            .map(|v| v.trim().trim_start_matches('v').to_string())
    })
}

fn check_version(w: &World, h: &HeaderMap) -> Result<(), Fault> {
    if let Some(supported) = &w.knobs.supported_versions {
        let v = accept_version(h).unwrap_or_default();
        if !supported.contains(&v) {
            return Err(fault(
                StatusCode::BAD_REQUEST,
                codes::VERSION_NOT_SUPPORTED,
                format!("API version {v:?} is not supported"),
            ));
        }
    }
    Ok(())
}

/// The common front of every authenticated call: count, delay, version, token, site and
/// injected failures, in the order a client would notice them.
async fn enter(sh: &Sh, op: &str, h: &HeaderMap, site: Option<&str>) -> Result<(), Fault> {
    let delay = {
        sh.calls.record(op);
        sh.lock().knobs.latency.request
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut w = sh.lock();
    check_version(&w, h)?;
    // A request with two Content-Type headers is malformed (RFC 9110 §8.3); servers and proxies
    // refuse or misread it, so the simulator refuses it.
    if h.get_all("content-type").iter().count() > 1 {
        return Err(fault(
            StatusCode::BAD_REQUEST,
            codes::BAD_REQUEST,
            "more than one Content-Type header",
        ));
    }
    let token_ok = header(h, "x-auth-token")
        .and_then(|t| w.tokens.get(t))
        .is_some_and(|issued| w.knobs.token_ttl.is_none_or(|ttl| issued.elapsed() < ttl));
    if !token_ok {
        return Err(fault(
            StatusCode::UNAUTHORIZED,
            codes::TOKEN_INVALID,
            "The session has expired or the token is invalid.",
        ));
    }
    if let Some(site) = site
        && site != w.site()
    {
        return Err(fault(
            StatusCode::NOT_FOUND,
            codes::SITE_NOT_FOUND,
            format!("site {site} does not exist"),
        ));
    }
    if capstan_simkit::faults::take_fail_next(&mut w.knobs.fail_next, op) {
        return Err(fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INJECTED,
            "Simulated internal error.",
        ));
    }
    let rate = w.knobs.error_rate;
    if w.roll(rate) {
        return Err(fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INJECTED,
            "Simulated internal error.",
        ));
    }
    Ok(())
}

async fn login(State(sh): State<Sh>, h: HeaderMap) -> Answer {
    sh.calls.record("login");
    let mut w = sh.lock();
    check_version(&w, &h)?;
    let user = header(&h, "x-auth-user").unwrap_or_default();
    let key = header(&h, "x-auth-key").unwrap_or_default();
    let encoding = if user != w.config.user {
        None
    } else if key == w.config.password {
        Some("plain")
    } else if key.eq_ignore_ascii_case(&sha256_hex(&w.config.password)) {
        Some("sha256")
    } else {
        None
    };
    let Some(encoding) = encoding else {
        return Err(fault(
            StatusCode::UNAUTHORIZED,
            codes::AUTH_FAILED,
            "Authentication failed: the user name or password is incorrect.",
        ));
    };
    let token = w.new_token();
    w.tokens.insert(token.clone(), tokio::time::Instant::now());
    let record = LoginRecord {
        user: user.to_string(),
        encoding,
        user_type: header(&h, "x-auth-usertype").map(str::to_string),
        algorithm_header: header(&h, "x-encript-algorithm")
            .or_else(|| header(&h, "x-encrypt-algorithm"))
            .map(str::to_string),
        accept: header(&h, "accept").map(str::to_string),
    };
    w.logins.push(record);
    let validity = w.knobs.token_ttl.map(|d| d.as_secs()).unwrap_or(1800);
    let body = json!({
        "validity": validity, "rightType": 0, "privilegeIds": [], "userId": "1",
        "userName": user, "roleList": ["administrator"],
    });
    Ok(([("X-Auth-Token", token)], axum::Json(body)).into_response())
}

async fn logout(State(sh): State<Sh>, h: HeaderMap) -> Answer {
    enter(&sh, "logout", &h, None).await?;
    let mut w = sh.lock();
    if let Some(t) = header(&h, "x-auth-token") {
        w.tokens.remove(t);
    }
    ok(json!({}))
}

async fn list_sites(State(sh): State<Sh>, h: HeaderMap) -> Answer {
    enter(&sh, "list_sites", &h, None).await?;
    let w = sh.lock();
    let s = w.site();
    ok(json!({"sites": [{
        "uri": format!("/service/sites/{s}"), "urn": format!("urn:sites:{s}"),
        "name": w.config.site_name, "status": "normal", "isSelf": true, "ip": "127.0.0.1",
    }]}))
}

async fn list_clusters(State(sh): State<Sh>, Path(site): Path<String>, h: HeaderMap) -> Answer {
    enter(&sh, "list_clusters", &h, Some(&site)).await?;
    let w = sh.lock();
    let urn = w.cluster_urn();
    ok(json!({"clusters": [{
        "urn": urn, "uri": urn_to_uri(&urn),
        "name": w.config.cluster_name, "parentObjUrn": format!("urn:sites:{site}"), "tag": "",
    }]}))
}

async fn list_hosts(State(sh): State<Sh>, Path(site): Path<String>, h: HeaderMap) -> Answer {
    enter(&sh, "list_hosts", &h, Some(&site)).await?;
    let w = sh.lock();
    let urn = w.host_urn();
    ok(json!({"total": 1, "hosts": [{
        "urn": urn, "uri": urn_to_uri(&urn), "name": w.config.host_name,
        "clusterUrn": w.cluster_urn(), "status": "normal", "ip": host_ip(&sh.host_url),
    }]}))
}

async fn list_datastores(State(sh): State<Sh>, Path(site): Path<String>, h: HeaderMap) -> Answer {
    enter(&sh, "list_datastores", &h, Some(&site)).await?;
    let w = sh.lock();
    let urn = w.datastore_urn();
    ok(json!({"total": 1, "datastores": [{
        "urn": urn, "uri": urn_to_uri(&urn), "name": w.config.datastore_name,
        "status": "NORMAL", "capacityGB": 10240, "freeSizeGB": 8192,
    }]}))
}

async fn list_dvswitches(State(sh): State<Sh>, Path(site): Path<String>, h: HeaderMap) -> Answer {
    enter(&sh, "list_dvswitches", &h, Some(&site)).await?;
    let w = sh.lock();
    let mut seen: Vec<(u32, String)> = Vec::new();
    for pg in &w.config.port_groups {
        if !seen.iter().any(|(id, _)| *id == pg.dvswitch_id) {
            seen.push((pg.dvswitch_id, pg.dvswitch_name.clone()));
        }
    }
    let list: Vec<Value> = seen
        .iter()
        .map(|(id, name)| {
            let n = w.config.port_groups.iter().filter(|p| p.dvswitch_id == *id).count();
            json!({"urn": format!("urn:sites:{site}:dvswitchs:{id}"), "uri": format!("/service/sites/{site}/dvswitchs/{id}"),
                   "name": name, "type": 0, "portGroupNum": n, "mtu": 1500})
        })
        .collect();
    ok(json!({"dvSwitchs": list}))
}

async fn list_port_groups(State(sh): State<Sh>, Path((site, dvs)): Path<(String, String)>, h: HeaderMap) -> Answer {
    enter(&sh, "list_port_groups", &h, Some(&site)).await?;
    let w = sh.lock();
    let list: Vec<Value> = w
        .config
        .port_groups
        .iter()
        .filter(|p| p.dvswitch_id.to_string() == dvs)
        .map(|p| {
            let urn = w.port_group_urn(p.dvswitch_id, p.id);
            json!({"urn": urn, "uri": urn_to_uri(&urn), "name": p.name, "vlanId": 0})
        })
        .collect();
    ok(json!({"total": list.len(), "portGroups": list}))
}

async fn list_vms(
    State(sh): State<Sh>,
    Path(site): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Answer {
    enter(&sh, "list_vms", &h, Some(&site)).await?;
    let w = sh.lock();
    let name = q.get("name").map(|n| n.to_lowercase());
    let matches: Vec<&SimVm> = w
        .vms
        .values()
        // `name` is a fuzzy (substring, case-insensitive) match, as on VRM.
        .filter(|v| name.as_ref().is_none_or(|n| v.name.to_lowercase().contains(n)))
        .filter(|v| {
            q.get("isTemplate")
                .is_none_or(|t| t.eq_ignore_ascii_case(if v.is_template { "true" } else { "false" }))
        })
        .filter(|v| {
            q.get("externalUuid")
                .is_none_or(|e| v.external_uuid.as_deref() == Some(e))
        })
        .filter(|v| q.get("uuid").is_none_or(|u| &v.uuid == u))
        .filter(|v| q.get("status").is_none_or(|s| &v.status == s))
        .collect();
    let total = matches.len();
    if q.get("detail").map(String::as_str) == Some("0") {
        return ok(json!({"total": total, "vms": []}));
    }
    let offset: usize = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100).clamp(1, 100);
    let page: Vec<Value> = matches
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|v| w.vm_json(v))
        .collect();
    ok(json!({"total": total, "vms": page}))
}

fn vm_not_found(id: &str) -> Fault {
    fault(
        StatusCode::NOT_FOUND,
        codes::VM_NOT_FOUND,
        format!("The VM {id} does not exist."),
    )
}

async fn get_vm(State(sh): State<Sh>, Path((site, vm)): Path<(String, String)>, h: HeaderMap) -> Answer {
    enter(&sh, "get_vm", &h, Some(&site)).await?;
    let w = sh.lock();
    let v = w.vms.get(&vm).ok_or_else(|| vm_not_found(&vm))?;
    ok(w.vm_json(v))
}

async fn get_task(State(sh): State<Sh>, Path((site, task)): Path<(String, String)>, h: HeaderMap) -> Answer {
    enter(&sh, "get_task", &h, Some(&site)).await?;
    let mut w = sh.lock();
    w.purge_tasks();
    let t = task
        .parse::<u64>()
        .ok()
        .and_then(|id| w.tasks.get(&id))
        .ok_or_else(|| {
            fault(
                StatusCode::NOT_FOUND,
                codes::TASK_NOT_FOUND,
                format!("task {task} does not exist"),
            )
        })?;
    ok(w.task_json(t))
}

async fn list_tasks(
    State(sh): State<Sh>,
    Path(site): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Answer {
    enter(&sh, "list_tasks", &h, Some(&site)).await?;
    let w = sh.lock();
    let list: Vec<Value> = w
        .tasks
        .values()
        .filter(|t| q.get("status").is_none_or(|s| t.status == s))
        .map(|t| w.task_json(t))
        .collect();
    ok(json!({"total": list.len(), "tasks": list}))
}

/// Refuses a new task when the concurrent-task limit is reached.
fn admit_task(w: &World) -> Result<(), Fault> {
    if let Some(max) = w.knobs.max_concurrent_tasks
        && w.running_tasks() >= max
    {
        return Err(fault(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::TOO_MANY_TASKS,
            format!("The number of concurrent tasks exceeds the limit ({max}). Try again later."),
        ));
    }
    Ok(())
}

/// Runs `f` on the world after `delay` of (tokio) time.
fn after(sh: &Sh, delay: Duration, f: impl FnOnce(&mut World, &Sh) + Send + 'static) {
    let sh = sh.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let mut w = sh.lock();
        f(&mut w, &sh);
    });
}

async fn delete_vm(State(sh): State<Sh>, Path((site, vm)): Path<(String, String)>, h: HeaderMap) -> Answer {
    enter(&sh, "delete_vm", &h, Some(&site)).await?;
    let mut w = sh.lock();
    admit_task(&w)?;
    let lat = w.knobs.latency.delete;
    let v = w.vms.get_mut(&vm).ok_or_else(|| vm_not_found(&vm))?;
    // VRM deletes stopped VMs only (NOVA stops first; a VM still being created cannot go).
    if matches!(v.status.as_str(), "running" | "starting" | "creating" | "stopping") {
        let status = v.status.clone();
        return Err(fault(
            StatusCode::CONFLICT,
            codes::BAD_VM_STATE,
            format!("The VM is {status}; stop it before deleting it."),
        ));
    }
    v.epoch += 1;
    let snapshot = v.clone();
    let task = w.new_task("DeleteVm", &snapshot, lat);
    after(&sh, lat, move |w, _| {
        w.vms.remove(&vm);
        w.uploads.retain(|_, u| u.vm_id != vm);
        if let Some(g) = &w.config.guests {
            g.destroy(&vm);
        }
        w.finish_task(task, None);
    });
    ok(w.task_ref(task))
}

async fn vm_action(
    State(sh): State<Sh>,
    Path((site, vm, action)): Path<(String, String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Answer {
    let op = match action.as_str() {
        "clone" => "clone_vm",
        "start" => "start_vm",
        "stop" => "stop_vm",
        "attachCdrom" => "attach_cdrom",
        "detachCdrom" => "detach_cdrom",
        "applyUpload" => "apply_upload",
        "removeUpload" => "remove_upload",
        _ => "unknown_action",
    };
    enter(&sh, op, &h, Some(&site)).await?;
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            fault(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                format!("invalid JSON body: {e}"),
            )
        })?
    };
    let mut w = sh.lock();
    if !w.vms.contains_key(&vm) {
        return Err(vm_not_found(&vm));
    }
    match op {
        "clone_vm" => clone_vm(&sh, &mut w, &vm, &body),
        "start_vm" => start_vm(&sh, &mut w, &vm),
        "stop_vm" => stop_vm(&sh, &mut w, &vm, &body),
        "attach_cdrom" => attach_cdrom(&sh, &mut w, &vm, &body),
        "detach_cdrom" => detach_cdrom(&sh, &mut w, &vm),
        "apply_upload" => apply_upload(&sh, &mut w, &vm, &body),
        "remove_upload" => remove_upload(&mut w, &vm, &body),
        _ => Err(fault(
            StatusCode::NOT_FOUND,
            codes::BAD_REQUEST,
            format!("unknown action {action}"),
        )),
    }
}

fn bad(des: impl Into<String>) -> Fault {
    fault(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, des)
}

fn clone_vm(sh: &Sh, w: &mut World, template_id: &str, body: &Value) -> Answer {
    let tmpl = w
        .vms
        .get(template_id)
        .cloned()
        .ok_or_else(|| vm_not_found(template_id))?;
    let name = body["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("name is required"))?;
    admit_task(w)?;
    let cfg = &body["vmConfig"];
    let cpu = cfg["cpu"]["quantity"].as_u64().map(|c| c as u32).unwrap_or(tmpl.cpu);
    let memory_mb = cfg["memory"]["quantityMB"]
        .as_u64()
        .or_else(|| cfg["memory"]["quantityMb"].as_u64())
        .unwrap_or(tmpl.memory_mb);
    if cpu == 0 || memory_mb == 0 {
        return Err(bad(
            "vmConfig.cpu.quantity and vmConfig.memory.quantityMB must be positive",
        ));
    }
    if let Some(location) = body["location"].as_str()
        && location != w.cluster_urn()
        && location != w.host_urn()
    {
        return Err(fault(
            StatusCode::NOT_FOUND,
            codes::BAD_REQUEST,
            format!("location {location} is neither a cluster nor a host of this site"),
        ));
    }
    let mut disks = tmpl.disks.clone();
    if let Some(list) = cfg["disks"].as_array() {
        for d in list {
            let seq = d["sequenceNum"].as_u64().unwrap_or(1) as u32;
            let gb = d["quantityGB"]
                .as_u64()
                .or_else(|| d["quantityGb"].as_u64())
                .unwrap_or(0);
            let ds = d["datastoreUrn"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| w.datastore_urn());
            if ds != w.datastore_urn() {
                return Err(fault(
                    StatusCode::NOT_FOUND,
                    codes::BAD_REQUEST,
                    format!("datastore {ds} does not exist"),
                ));
            }
            match disks.iter_mut().find(|(s, _, _)| *s == seq) {
                Some(existing) => {
                    if gb < existing.1 && seq == 1 {
                        return Err(bad(format!(
                            "system disk {gb} GB is smaller than the template's {} GB",
                            existing.1
                        )));
                    }
                    *existing = (seq, gb.max(existing.1), ds);
                }
                None => disks.push((seq, gb, ds)),
            }
        }
    }
    let mut nics: Vec<SimNic> = Vec::new();
    let requested: Vec<(u32, String)> = match cfg["nics"].as_array() {
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let seq = n["sequenceNum"].as_u64().map(|s| s as u32).unwrap_or(i as u32);
                (seq, n["portGroupUrn"].as_str().unwrap_or_default().to_string())
            })
            .collect(),
        None => tmpl.nics.iter().map(|n| (n.seq, n.port_group_urn.clone())).collect(),
    };
    for (seq, pg_urn) in requested {
        let pg = w
            .config
            .port_groups
            .iter()
            .find(|p| w.port_group_urn(p.dvswitch_id, p.id) == pg_urn)
            .cloned()
            .ok_or_else(|| {
                fault(
                    StatusCode::NOT_FOUND,
                    codes::PORT_GROUP_NOT_FOUND,
                    format!("port group {pg_urn} does not exist"),
                )
            })?;
        let mac = w.new_mac();
        nics.push(SimNic {
            seq,
            port_group_urn: pg_urn,
            port_group_name: pg.name,
            mac,
            static_ip: None,
            lease: None,
            ip: String::new(),
        });
    }
    let cust = &body["vmCustomization"];
    if let Some(specs) = cust["nicSpecification"].as_array() {
        for s in specs {
            // Customization numbers NICs from 1, vmConfig from 0.
            let seq = s["sequenceNum"]
                .as_u64()
                .ok_or_else(|| bad("nicSpecification.sequenceNum is required"))?;
            let ip: Ipv4Addr = s["ip"]
                .as_str()
                .and_then(|i| i.parse().ok())
                .ok_or_else(|| bad("nicSpecification.ip is invalid"))?;
            let mask: Ipv4Addr = s["netmask"]
                .as_str()
                .and_then(|m| m.parse().ok())
                .ok_or_else(|| bad("nicSpecification.netmask must be a dotted netmask"))?;
            let m = u32::from(mask);
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return Err(bad(format!("netmask {mask} is not contiguous")));
            }
            let nic = seq
                .checked_sub(1)
                .and_then(|i| nics.get_mut(i as usize))
                .ok_or_else(|| bad(format!("nicSpecification.sequenceNum {seq} has no NIC")))?;
            nic.static_ip = Some(ip.to_string());
        }
    }
    let external_uuid = body["externalUuid"]
        .as_str()
        .or_else(|| body["params"]["externalUuid"].as_str())
        .map(str::to_string);
    let auto_boot = body["autoBoot"].as_bool().unwrap_or(true);
    let id = w.new_vm_id();
    let uuid = body["clonedVmUUID"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| w.new_uuid());
    let vm = SimVm {
        id: id.clone(),
        uuid,
        name: name.to_string(),
        description: body["description"].as_str().unwrap_or_default().to_string(),
        is_template: body["isTemplate"].as_bool().unwrap_or(false),
        status: "creating".into(),
        pv_driver_status: "notRunning".into(),
        external_uuid,
        cpu,
        memory_mb,
        disks,
        nics,
        hostname: cust["hostname"].as_str().map(str::to_string),
        location: body["location"].as_str().map(str::to_string).unwrap_or(tmpl.location),
        create_time: now_string(),
        os_version: tmpl.os_version,
        guest_os: tmpl.guest_os,
        cdrom: None,
        epoch: 0,
    };
    let lat = w.knobs.latency.clone();
    let task = w.new_task("CloneVm", &vm, lat.clone);
    w.vms.insert(id.clone(), vm);
    let fail = {
        let p = w.knobs.task_failure_rate;
        w.roll(p)
    };
    let vm_id = id.clone();
    after(sh, lat.clone, move |w, sh| {
        if fail {
            // As on VRM, a failed clone leaves a broken VM behind, with the identity it was
            // given: the caller must clean it up.
            if let Some(v) = w.vms.get_mut(&vm_id) {
                v.status = "unknown".into();
            }
            w.finish_task(
                task,
                Some("Simulated clone failure: insufficient resources on the target host.".into()),
            );
            return;
        }
        let Some(v) = w.vms.get_mut(&vm_id) else {
            w.finish_task(task, Some("The VM was deleted while it was being created.".into()));
            return;
        };
        v.status = "stopped".into();
        w.finish_task(task, None);
        if auto_boot {
            power_on(w, sh, &vm_id, None);
        }
    });
    let site = w.site().to_string();
    ok(json!({
        "urn": vm_urn(&site, &id),
        "uri": format!("/service/sites/{site}/vms/{id}"),
        "taskUrn": format!("urn:sites:{site}:tasks:{task}"),
        "taskUri": format!("/service/sites/{site}/tasks/{task}"),
    }))
}

/// `stopped` → `starting` → (boot) `running` → (tools) IPs reported.
fn power_on(w: &mut World, sh: &Sh, vm_id: &str, task: Option<u64>) {
    let lat = w.knobs.latency.clone();
    let Some(v) = w.vms.get_mut(vm_id) else { return };
    v.status = "starting".into();
    v.epoch += 1;
    let epoch = v.epoch;
    let vm_id = vm_id.to_string();
    after(sh, lat.boot, move |w, sh| {
        let current = w.vms.get_mut(&vm_id).filter(|v| v.epoch == epoch);
        let Some(v) = current else {
            if let Some(t) = task {
                w.finish_task(t, Some("The VM changed state while starting.".into()));
            }
            return;
        };
        v.status = "running".into();
        v.pv_driver_status = "starting".into();
        if let Some(t) = task {
            w.finish_task(t, None);
        }
        after(sh, lat.tools, move |w, _| {
            let Some(v) = w.vms.get(&vm_id).filter(|v| v.epoch == epoch) else {
                return;
            };
            let need_lease: Vec<usize> = v
                .nics
                .iter()
                .enumerate()
                .filter(|(_, n)| n.static_ip.is_none() && n.lease.is_none())
                .map(|(i, _)| i)
                .collect();
            let leases: Vec<(usize, Option<String>)> = need_lease.into_iter().map(|i| (i, w.dhcp_lease())).collect();
            let Some(v) = w.vms.get_mut(&vm_id) else { return };
            for (i, lease) in leases {
                v.nics[i].lease = lease;
            }
            for n in &mut v.nics {
                n.ip = n
                    .static_ip
                    .clone()
                    .or_else(|| n.lease.clone())
                    .unwrap_or_else(|| "0.0.0.0".into());
            }
            v.pv_driver_status = "running".into();
            if let Some(g) = &w.config.guests {
                // The guest reads the CD-ROM it has at power-on; detaching later changes nothing.
                let iso = v
                    .cdrom
                    .as_ref()
                    .and_then(|p| w.uploads.get(p))
                    .and_then(|u| u.data.clone());
                let info = capstan_guest::VmInfo {
                    id: v.id.clone(),
                    uuid: v.uuid.clone(),
                    name: v.name.clone(),
                    ips: v
                        .nics
                        .iter()
                        .map(|n| n.ip.clone())
                        .filter(|ip| ip != "0.0.0.0")
                        .collect(),
                    os: v.guest_os,
                };
                g.power_on(info, capstan_guest::Datasource::cdrom(iso));
            }
        });
    });
}

fn start_vm(sh: &Sh, w: &mut World, vm_id: &str) -> Answer {
    admit_task(w)?;
    let v = w.vms.get(vm_id).cloned().ok_or_else(|| vm_not_found(vm_id))?;
    if v.is_template || v.status == "creating" {
        return Err(fault(
            StatusCode::BAD_REQUEST,
            codes::BAD_VM_STATE,
            format!("The VM cannot be started in state {}.", v.status),
        ));
    }
    let lat = w.knobs.latency.boot;
    let task = w.new_task("StartVm", &v, lat);
    if v.status == "running" || v.status == "starting" {
        w.finish_task(task, None);
    } else {
        power_on(w, sh, vm_id, Some(task));
    }
    ok(w.task_ref(task))
}

fn stop_vm(sh: &Sh, w: &mut World, vm_id: &str, body: &Value) -> Answer {
    let force = match body["mode"].as_str().unwrap_or("safe") {
        "safe" => false,
        "force" => true,
        other => return Err(bad(format!("unknown stop mode {other:?}"))),
    };
    admit_task(w)?;
    let lat = w.knobs.latency.stop;
    let ignored = !force && w.knobs.ignore_safe_stop;
    let v = w.vms.get_mut(vm_id).ok_or_else(|| vm_not_found(vm_id))?;
    if v.status == "creating" {
        return Err(fault(
            StatusCode::BAD_REQUEST,
            codes::BAD_VM_STATE,
            "The VM cannot be stopped while it is being created.",
        ));
    }
    let already = v.status == "stopped";
    if !already && !ignored {
        v.status = "stopping".into();
        v.epoch += 1;
    }
    let epoch = v.epoch;
    let snapshot = v.clone();
    let task = w.new_task("StopVm", &snapshot, lat);
    if already {
        w.finish_task(task, None);
        return ok(w.task_ref(task));
    }
    let vm_id = vm_id.to_string();
    after(sh, lat, move |w, _| {
        if ignored {
            w.finish_task(
                task,
                Some("The guest OS did not respond to the shutdown request.".into()),
            );
            return;
        }
        if let Some(v) = w.vms.get_mut(&vm_id).filter(|v| v.epoch == epoch) {
            v.status = "stopped".into();
            v.pv_driver_status = "notRunning".into();
            for n in &mut v.nics {
                n.ip = String::new();
            }
            if let Some(g) = &w.config.guests {
                g.power_off(&vm_id);
            }
        }
        w.finish_task(task, None);
    });
    ok(w.task_ref(task))
}

fn attach_cdrom(sh: &Sh, w: &mut World, vm_id: &str, body: &Value) -> Answer {
    let path = body["devicePath"]
        .as_str()
        .ok_or_else(|| bad("devicePath is required"))?
        .to_string();
    let uploaded = w
        .uploads
        .get(&path)
        .is_some_and(|u| u.vm_id == vm_id && u.data.is_some());
    if !uploaded {
        return Err(fault(
            StatusCode::NOT_FOUND,
            codes::UPLOAD_NOT_FOUND,
            format!("no uploaded file {path} for this VM"),
        ));
    }
    admit_task(w)?;
    let lat = w.knobs.latency.cdrom;
    let v = w.vms.get(vm_id).cloned().ok_or_else(|| vm_not_found(vm_id))?;
    let task = w.new_task("AttachCdrom", &v, lat);
    let vm_id = vm_id.to_string();
    after(sh, lat, move |w, _| match w.vms.get_mut(&vm_id) {
        Some(v) => {
            v.cdrom = Some(path);
            w.finish_task(task, None);
        }
        None => w.finish_task(task, Some("The VM no longer exists.".into())),
    });
    ok(w.task_ref(task))
}

fn detach_cdrom(sh: &Sh, w: &mut World, vm_id: &str) -> Answer {
    admit_task(w)?;
    let lat = w.knobs.latency.cdrom;
    let v = w.vms.get(vm_id).cloned().ok_or_else(|| vm_not_found(vm_id))?;
    let task = w.new_task("DetachCdrom", &v, lat);
    let vm_id = vm_id.to_string();
    after(sh, lat, move |w, _| {
        if let Some(v) = w.vms.get_mut(&vm_id) {
            v.cdrom = None;
        }
        w.finish_task(task, None);
    });
    ok(w.task_ref(task))
}

/// The simulator's shape of the undocumented upload (see `DcsClient::upload_iso`).
fn apply_upload(sh: &Sh, w: &mut World, vm_id: &str, body: &Value) -> Answer {
    let file_name = body["fileName"]
        .as_str()
        .filter(|n| !n.is_empty() && !n.contains('/') && !n.contains('@'))
        .ok_or_else(|| bad("fileName is required and may not contain '/' or '@'"))?
        .to_string();
    let size = body["fileSize"].as_u64().ok_or_else(|| bad("fileSize is required"))? as usize;
    let ticket = w.new_token();
    let device_path = format!("{vm_id}@{file_name}");
    w.uploads.insert(
        device_path.clone(),
        Upload {
            vm_id: vm_id.to_string(),
            file_name,
            size,
            data: None,
        },
    );
    w.tickets.insert(ticket.clone(), device_path.clone());
    ok(json!({
        "uploadUri": format!(
            "{}/upload/{ticket}",
            w.knobs.upload_base_override.as_deref().unwrap_or(&sh.host_url)
        ),
        "devicePath": device_path,
    }))
}

/// The simulator's shape of deleting an uploaded image (see `DcsClient::remove_uploaded_iso`):
/// gone already is success; an image still in the drive is refused.
fn remove_upload(w: &mut World, vm_id: &str, body: &Value) -> Answer {
    let file_name = body["fileName"].as_str().ok_or_else(|| bad("fileName is required"))?;
    let path = format!("{vm_id}@{file_name}");
    if w.vms.get(vm_id).and_then(|v| v.cdrom.as_deref()) == Some(path.as_str()) {
        return Err(fault(
            StatusCode::CONFLICT,
            codes::BAD_REQUEST,
            format!("{file_name} is attached to the VM's CD-ROM drive: detach it first"),
        ));
    }
    w.uploads.remove(&path);
    w.tickets.retain(|_, p| *p != path);
    ok(json!({}))
}

async fn upload(State(sh): State<Sh>, Path(ticket): Path<String>, h: HeaderMap, body: Bytes) -> Answer {
    enter(&sh, "upload_iso", &h, None).await?;
    let mut w = sh.lock();
    let path = w
        .tickets
        .get(&ticket)
        .cloned()
        .ok_or_else(|| fault(StatusCode::NOT_FOUND, codes::UPLOAD_NOT_FOUND, "unknown upload ticket"))?;
    let upload = w.uploads.get_mut(&path).ok_or_else(|| {
        fault(
            StatusCode::NOT_FOUND,
            codes::UPLOAD_NOT_FOUND,
            "the upload was withdrawn",
        )
    })?;
    if body.len() != upload.size {
        return Err(bad(format!(
            "{}: received {} bytes, announced {}",
            upload.file_name,
            body.len(),
            upload.size
        )));
    }
    upload.data = Some(body.to_vec());
    w.tickets.remove(&ticket);
    ok(json!({}))
}

/// The address part of `https://<ip>:<port>`, as the host inventory reports it.
fn host_ip(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// `urn:sites:S:hosts:1` → `/service/sites/S/hosts/1`: VRM's own rule, written here again so the
/// simulator does not share the client's code.
fn urn_to_uri(urn: &str) -> String {
    format!("/service/{}", urn.trim_start_matches("urn:").replace(':', "/"))
}

/// VRM's `Sha256` password encoding: lowercase hex of the digest.
fn sha256_hex(input: &str) -> String {
    use sha2::Digest;
    capstan_simkit::hex(&sha2::Sha256::digest(input.as_bytes()))
}
