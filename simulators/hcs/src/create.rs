//! `POST /v1/{pid}/cloudservers` (B4): validation, quota, `X-Client-Token` idempotency, address
//! allocation, volumes, and the create job.
//!
//! Codes where the reference is silent are the simulator's choice: `Ecs.0005` for an illegal
//! body (missing name, `count` ≠ 1, bad volumes, bad or oversized `user_data`, unknown AZ),
//! `Ecs.0007` unknown image, `Ecs.0008` unknown flavor, `Ecs.0009` unknown VPC or subnet
//! (including a Neutron subnet id given where the VPC subnet id belongs), `Ecs.0010` a fixed
//! address outside the subnet or in use (or no free address), `Ecs.0001` quota, `Ecs.0122` a
//! reused client token with another body.

use std::net::Ipv4Addr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::front::{Answer, Family, Fault, Req, bad_request, guarded, ok};
use crate::seed::{SimFlavor, SimImage};
use crate::state::{ClientToken, Server, Sh, Volume, World, after, now_string};

/// The largest decoded `user_data` ECS takes.
pub const MAX_USER_DATA: usize = 32 * 1024;
/// How long ECS remembers a client token.
const CLIENT_TOKEN_TTL: Duration = Duration::from_secs(8 * 3600);
const VOLUME_TYPES: [&str; 4] = ["SATA", "SAS", "SSD", "GPSSD"];

fn illegal(message: impl Into<String>) -> Fault {
    bad_request(Family::Ecs, "0005", message)
}

/// A validated create request.
struct Spec {
    name: String,
    flavor: SimFlavor,
    image: SimImage,
    vpc_id: String,
    subnet_id: String,
    fixed_ip: Option<Ipv4Addr>,
    az: String,
    user_data: Option<String>,
    metadata: serde_json::Map<String, Value>,
    tags: Vec<(String, String)>,
    group: Option<String>,
    volumes: Vec<(String, u64)>,
    power_on: bool,
    security_groups: Vec<String>,
    key_name: Option<String>,
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v[key].as_str().filter(|s| !s.is_empty())
}

fn refs(w: &World, s: &Value) -> Result<(SimFlavor, SimImage, String), Fault> {
    let flavor_ref = str_of(s, "flavorRef").unwrap_or_default();
    let flavor = w
        .config
        .flavors
        .iter()
        .find(|f| f.id == flavor_ref)
        .cloned()
        .ok_or_else(|| bad_request(Family::Ecs, "0008", format!("flavor {flavor_ref:?} does not exist")))?;
    let image_ref = str_of(s, "imageRef").unwrap_or_default();
    let image = w
        .config
        .images
        .iter()
        .find(|i| i.id == image_ref && i.status == "active")
        .cloned()
        .ok_or_else(|| bad_request(Family::Ecs, "0007", format!("image {image_ref:?} does not exist")))?;
    let az = match str_of(s, "availability_zone") {
        Some(az) if w.config.availability_zones.iter().any(|a| a == az) => az.to_string(),
        Some(az) => return Err(illegal(format!("availability_zone {az:?} does not exist"))),
        None => w.config.availability_zones.first().cloned().unwrap_or_default(),
    };
    Ok((flavor, image, az))
}

/// (vpc id, subnet id, fixed address) from `vpcid` and the one NIC.
fn network(w: &World, s: &Value) -> Result<(String, String, Option<Ipv4Addr>), Fault> {
    let vpc_id = str_of(s, "vpcid").unwrap_or_default();
    if !w.config.vpcs.iter().any(|v| v.id == vpc_id) {
        return Err(bad_request(
            Family::Ecs,
            "0009",
            format!("vpc {vpc_id:?} does not exist"),
        ));
    }
    let nics = s["nics"]
        .as_array()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| illegal("nics is required"))?;
    if nics.len() > 1 {
        return Err(illegal("the simulator supports one NIC per server"));
    }
    let subnet_id = str_of(&nics[0], "subnet_id").unwrap_or_default();
    let subnet = w.subnet(subnet_id).ok_or_else(|| {
        let hint = if w.subnet_by_neutron(subnet_id).is_some() {
            " (that is a neutron_subnet_id; nics take the VPC subnet id)"
        } else {
            ""
        };
        bad_request(
            Family::Ecs,
            "0009",
            format!("subnet {subnet_id:?} does not exist{hint}"),
        )
    })?;
    if subnet.vpc_id != vpc_id {
        return Err(bad_request(
            Family::Ecs,
            "0009",
            format!("subnet {subnet_id} is not in vpc {vpc_id}"),
        ));
    }
    let ip = match str_of(&nics[0], "ip_address") {
        None => None,
        Some(ip) => Some(
            ip.parse::<Ipv4Addr>()
                .map_err(|_| bad_request(Family::Ecs, "0010", format!("ip_address {ip:?} is not IPv4")))?,
        ),
    };
    Ok((vpc_id.to_string(), subnet_id.to_string(), ip))
}

fn user_data(s: &Value) -> Result<Option<String>, Fault> {
    let Some(raw) = str_of(s, "user_data") else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| illegal("user_data is not valid base64"))?;
    if decoded.len() > MAX_USER_DATA {
        return Err(illegal(format!(
            "user_data exceeds 32 KB ({} bytes decoded)",
            decoded.len()
        )));
    }
    Ok(Some(raw.to_string()))
}

fn volume(v: &Value, what: &str, min: u64) -> Result<(String, u64), Fault> {
    let kind = str_of(v, "volumetype").unwrap_or_default();
    if !VOLUME_TYPES.contains(&kind) {
        return Err(illegal(format!(
            "{what}.volumetype {kind:?} is not one of {VOLUME_TYPES:?}"
        )));
    }
    let size = v["size"].as_u64().unwrap_or(0);
    if !(min..=32768).contains(&size) {
        return Err(illegal(format!("{what}.size {size} is not within {min}..=32768 GB")));
    }
    Ok((kind.to_string(), size))
}

fn volumes(s: &Value, image: &SimImage) -> Result<Vec<(String, u64)>, Fault> {
    if !s["root_volume"].is_object() {
        return Err(illegal("root_volume is required"));
    }
    let mut out = vec![volume(&s["root_volume"], "root_volume", image.min_disk.max(1))?];
    for (i, d) in s["data_volumes"].as_array().into_iter().flatten().enumerate() {
        out.push(volume(d, &format!("data_volumes[{i}]"), 10)?);
    }
    Ok(out)
}

/// `server_tags` [{key, value}], plus the legacy `tags` ["key.value"].
fn tags(s: &Value) -> Vec<(String, String)> {
    let modern = s["server_tags"].as_array().into_iter().flatten().filter_map(|t| {
        Some((
            t["key"].as_str()?.to_string(),
            t["value"].as_str().unwrap_or("").to_string(),
        ))
    });
    let legacy = s["tags"].as_array().into_iter().flatten().filter_map(|t| {
        let (k, v) = t.as_str()?.split_once('.')?;
        Some((k.to_string(), v.to_string()))
    });
    modern.chain(legacy).collect()
}

fn validate(w: &World, s: &Value) -> Result<Spec, Fault> {
    let name = str_of(s, "name").ok_or_else(|| illegal("name is required"))?;
    if name.len() > 64 {
        return Err(illegal("name is longer than 64 characters"));
    }
    if s["count"].as_u64().unwrap_or(1) != 1 {
        return Err(illegal("count must be 1 in the simulator"));
    }
    let (flavor, image, az) = refs(w, s)?;
    let (vpc_id, subnet_id, fixed_ip) = network(w, s)?;
    Ok(Spec {
        name: name.to_string(),
        volumes: volumes(s, &image)?,
        user_data: user_data(s)?,
        flavor,
        image,
        vpc_id,
        subnet_id,
        fixed_ip,
        az,
        metadata: s["metadata"].as_object().cloned().unwrap_or_default(),
        tags: tags(s),
        group: str_of(&s["os:scheduler_hints"], "group").map(str::to_string),
        power_on: s["power_on"].as_bool().unwrap_or(true),
        security_groups: s["security_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["id"].as_str().map(str::to_string))
            .collect(),
        key_name: str_of(s, "key_name").map(str::to_string),
    })
}

fn check_quota(w: &World, flavor: &SimFlavor) -> Result<(), Fault> {
    let (n, cores, ram) = w.usage();
    let q = w.knobs.quotas;
    let short = if n + 1 > q.instances {
        Some(format!("instances (used {n}, quota {})", q.instances))
    } else if cores + u64::from(flavor.vcpus) > q.cores {
        Some(format!(
            "cores (used {cores}, requested {}, quota {})",
            flavor.vcpus, q.cores
        ))
    } else if ram + flavor.ram_mib > q.ram_mib {
        Some(format!(
            "ram (used {ram} MiB, requested {} MiB, quota {} MiB)",
            flavor.ram_mib, q.ram_mib
        ))
    } else {
        None
    };
    match short {
        Some(which) => Err(bad_request(
            Family::Ecs,
            "0001",
            format!("Insufficient ECS quota: {which}"),
        )),
        None => Ok(()),
    }
}

fn address(w: &mut World, spec: &Spec) -> Result<Ipv4Addr, Fault> {
    let ip_fault = |m: String| bad_request(Family::Ecs, "0010", m);
    match spec.fixed_ip {
        Some(ip) => w.check_fixed_ip(&spec.subnet_id, ip).map(|()| ip).map_err(ip_fault),
        None => w
            .allocate_ip(&spec.subnet_id)
            .ok_or_else(|| ip_fault(format!("subnet {} has no free address", spec.subnet_id))),
    }
}

fn add_volumes(w: &mut World, server_id: &str, spec: &Spec) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, (kind, size)) in spec.volumes.iter().enumerate() {
        let id = w.rng.uuid();
        let device = format!("/dev/vd{}", (b'a' + i as u8) as char);
        w.volumes.insert(
            id.clone(),
            Volume {
                id: id.clone(),
                name: format!("{}-volume-{i:04}", spec.name),
                size: *size,
                volume_type: kind.clone(),
                bootable: i == 0,
                az: spec.az.clone(),
                attachment: Some((server_id.to_string(), device)),
                created: now_string(),
            },
        );
        ids.push(id);
    }
    ids
}

fn insert_server(w: &mut World, spec: Spec, ip: Ipv4Addr) -> String {
    let id = w.rng.uuid();
    let volumes = add_volumes(w, &id, &spec);
    let (mac, port_id) = (w.new_mac(), w.rng.uuid());
    let server = Server {
        id: id.clone(),
        name: spec.name,
        status: "BUILD",
        vm_state: "building",
        task_state: "scheduling",
        az: spec.az,
        flavor: spec.flavor,
        image_id: spec.image.id,
        image_name: spec.image.name,
        vpc_id: spec.vpc_id,
        subnet_id: spec.subnet_id,
        ip,
        mac,
        port_id,
        user_data: spec.user_data,
        metadata: spec.metadata,
        tags: spec.tags,
        group: spec.group,
        security_groups: spec.security_groups,
        key_name: spec.key_name,
        volumes,
        created: now_string(),
        updated: now_string(),
        visible_at: Instant::now() + w.knobs.latency.list_delay,
        epoch: 0,
    };
    w.servers.insert(id.clone(), server);
    id
}

fn create(sh: &Sh, body: &Value, client_token: Option<&str>) -> Answer {
    let mut w = sh.lock();
    if let Some(t) = client_token {
        w.client_tokens.retain(|_, c| c.at.elapsed() < CLIENT_TOKEN_TTL);
        if let Some(c) = w.client_tokens.get(t) {
            if c.body != *body {
                return Err(bad_request(
                    Family::Ecs,
                    "0122",
                    format!("X-Client-Token {t} was already used with another request body"),
                ));
            }
            return ok(json!({"job_id": c.job_id, "serverIds": c.server_ids}));
        }
    }
    let spec = validate(&w, &body["server"])?;
    check_quota(&w, &spec.flavor)?;
    let ip = address(&mut w, &spec)?;
    let power_on = spec.power_on;
    let id = insert_server(&mut w, spec, ip);
    let job = w.new_job("createServer", std::slice::from_ref(&id));
    if let Some(t) = client_token {
        let record = ClientToken {
            body: body.clone(),
            job_id: job.clone(),
            server_ids: vec![id.clone()],
            at: Instant::now(),
        };
        w.client_tokens.insert(t.to_string(), record);
    }
    let fail = w.job_should_fail("createServer");
    schedule_build(sh, &w, &id, &job, power_on, fail);
    ok(json!({"job_id": job, "serverIds": [id]}))
}

fn schedule_build(sh: &Sh, w: &World, id: &str, job: &str, power_on: bool, fail: bool) {
    let (build, rollback) = (w.knobs.latency.build, w.knobs.latency.delete);
    let j = job.to_string();
    after(sh, Duration::ZERO, move |w, _| w.job_running(&j));
    let (id, job) = (id.to_string(), job.to_string());
    after(sh, build, move |w, sh| {
        let Some(s) = w.servers.get_mut(&id).filter(|s| s.epoch == 0) else {
            return;
        };
        if fail {
            s.status = "ERROR";
            s.vm_state = "error";
            s.task_state = "";
            s.updated = now_string();
            after(sh, rollback, move |w, _| {
                let reason =
                    "Simulated failure: not enough resources in the availability zone; the server was rolled back";
                w.finish_sub_job(&job, &id, Some(("Ecs.0010", reason.to_string())));
                w.remove_server(&id, true);
            });
            return;
        }
        s.status = if power_on { "ACTIVE" } else { "SHUTOFF" };
        s.vm_state = if power_on { "active" } else { "stopped" };
        s.task_state = "";
        s.updated = now_string();
        w.finish_sub_job(&job, &id, None);
        if power_on {
            w.boot_guest(&id);
        }
    });
}

pub(crate) async fn create_server(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "create_server", Family::Ecs, Some(&pid), req, {
        let body = req.json(Family::Ecs)?;
        create(&sh, &body, req.header("X-Client-Token"))
    })
}
