//! ECS reads (B6): one server, the detail list with ECS's filters, flavors and limits.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::front::{Family, Fault, Req, fault, guarded, ok};
use crate::state::{Server, Sh, World};

pub(crate) fn server_not_found(id: &str) -> Fault {
    fault(
        StatusCode::NOT_FOUND,
        Family::Ecs,
        "0114",
        format!("Instance[{id}] could not be found."),
    )
}

impl World {
    pub fn server_json(&self, s: &Server) -> Value {
        let volumes: Vec<Value> = s
            .volumes
            .iter()
            .filter_map(|v| self.volumes.get(v))
            .enumerate()
            .map(|(i, v)| {
                json!({"id": v.id, "bootIndex": if v.bootable { "0" } else { "-1" }, "device": v.attachment.as_ref().map(|a| a.1.clone()).unwrap_or_default(),
                       "delete_on_termination": if i == 0 { "true" } else { "false" }})
            })
            .collect();
        let f = &s.flavor;
        json!({
            "id": s.id, "name": s.name, "status": s.status, "created": s.created, "updated": s.updated,
            "tenant_id": self.config.project_id, "user_id": self.config.user, "description": "",
            "flavor": {"id": f.id, "name": f.name, "vcpus": f.vcpus.to_string(), "ram": f.ram_mib.to_string(), "disk": "0"},
            "image": {"id": s.image_id},
            "addresses": {s.vpc_id.clone(): [{
                "version": "4", "addr": s.ip.to_string(), "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": s.mac, "OS-EXT-IPS:port_id": s.port_id,
            }]},
            "security_groups": s.security_groups.iter().map(|g| json!({"id": g, "name": g})).collect::<Vec<_>>(),
            "metadata": s.metadata,
            "tags": s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "key_name": s.key_name,
            "OS-EXT-STS:vm_state": s.vm_state, "OS-EXT-STS:task_state": s.task_state,
            "OS-EXT-STS:power_state": s.power_state(),
            "OS-EXT-AZ:availability_zone": s.az,
            "OS-EXT-SRV-ATTR:hostname": s.name, "OS-EXT-SRV-ATTR:instance_name": s.name,
            "OS-EXT-SRV-ATTR:user_data": s.user_data,
            "OS-SRV-USG:launched_at": s.created,
            "os-extended-volumes:volumes_attached": volumes,
            "os:scheduler_hints": {"group": s.group.as_ref().map(|g| vec![g.clone()]).unwrap_or_default()},
            "sys_tags": [{"key": "_sys_enterprise_project_id", "value": "0"}],
            "locked": false, "config_drive": "",
        })
    }
}

pub(crate) async fn get_server(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "get_server", Family::Ecs, Some(&pid), req, {
        let w = sh.lock();
        match w.visible(&id) {
            Some(s) => ok(json!({"server": w.server_json(s)})),
            None => Err(server_not_found(&id)),
        }
    })
}

/// ECS's list filters: `name` matches as a substring, `status` and `ip` exactly, every `tags`
/// value (repeated or comma-separated) must be an exact `key=value` of the server.
fn matches(s: &Server, req: &Req) -> bool {
    req.query_pairs().iter().all(|(k, v)| match k.as_str() {
        "name" => s.name.contains(v.as_str()),
        "status" => s.status == v,
        "ip" => s.ip.to_string() == *v,
        "flavor" => s.flavor.id == *v,
        "tags" => v.split(',').filter(|t| !t.is_empty()).all(|t| {
            let (tk, tv) = t.split_once('=').unwrap_or((t, ""));
            s.tags.iter().any(|(k, v)| k == tk && v == tv)
        }),
        _ => true,
    })
}

pub(crate) async fn list_servers(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "list_servers", Family::Ecs, Some(&pid), req, {
        let w = sh.lock();
        let found: Vec<&Server> = w
            .servers
            .keys()
            .filter_map(|id| w.visible(id))
            .filter(|s| matches(s, &req))
            .collect();
        let offset: usize = req.query("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
        let limit: usize = req.query("limit").and_then(|o| o.parse().ok()).unwrap_or(1000);
        let page: Vec<Value> = found
            .iter()
            .skip(offset)
            .take(limit)
            .map(|s| w.server_json(s))
            .collect();
        ok(json!({"count": found.len(), "servers": page, "servers_links": []}))
    })
}

pub(crate) async fn list_flavors(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "list_flavors", Family::Ecs, Some(&pid), req, {
        let w = sh.lock();
        let az_known = req
            .query("availability_zone")
            .is_none_or(|az| w.config.availability_zones.contains(&az));
        let flavors: Vec<Value> = w
            .config
            .flavors
            .iter()
            .filter(|_| az_known)
            .map(|f| {
                json!({"id": f.id, "name": f.name, "vcpus": f.vcpus.to_string(), "ram": f.ram_mib, "disk": "0",
                       "os-flavor-access:is_public": true, "os_extra_specs": {"cond:operation:status": "normal"}})
            })
            .collect();
        ok(json!({"flavors": flavors}))
    })
}

pub(crate) async fn get_limits(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "get_limits", Family::Ecs, Some(&pid), req, {
        let w = sh.lock();
        let (n, cores, ram) = w.usage();
        let q = w.knobs.quotas;
        ok(json!({"absolute": {
            "maxTotalInstances": q.instances, "totalInstancesUsed": n,
            "maxTotalCores": q.cores, "totalCoresUsed": cores,
            "maxTotalRAMSize": q.ram_mib, "totalRAMUsed": ram,
        }}))
    })
}
