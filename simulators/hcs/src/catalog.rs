//! Look-ups of the fixed inventory: IMS images (`GET /v2/cloudimages`), VPC subnets and VPCs
//! (B8). A missing subnet or VPC is 404 `VPC.0202` / `VPC.0101` (the simulator's choice of
//! numbers).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::front::{Family, Req, fault, guarded, ok};
use crate::seed::{SimSubnet, SimVpc};
use crate::state::Sh;

pub(crate) async fn list_images(State(sh): State<Sh>, req: Req) -> Response {
    guarded!(sh, "list_images", Family::Ims, None, req, {
        let w = sh.lock();
        let images: Vec<Value> = w
            .config
            .images
            .iter()
            .filter(|i| {
                req.query_pairs().iter().all(|(k, v)| match k.as_str() {
                    "name" => i.name == *v,
                    "status" => i.status == *v,
                    "id" => i.id == *v,
                    _ => true,
                })
            })
            .map(|i| {
                json!({"id": i.id, "name": i.name, "status": i.status, "min_disk": i.min_disk, "min_ram": 0,
                       "visibility": "private", "__imagetype": "private", "__os_type": "Linux", "disk_format": "qcow2"})
            })
            .collect();
        ok(json!({"images": images}))
    })
}

pub(crate) fn subnet_json(s: &SimSubnet) -> Value {
    json!({
        "id": s.id, "name": s.name, "cidr": s.cidr.to_string(), "gateway_ip": s.gateway_ip.to_string(),
        "vpc_id": s.vpc_id, "availability_zone": s.availability_zone, "status": "ACTIVE",
        "dhcp_enable": s.dhcp_enable, "primary_dns": "100.125.1.250", "secondary_dns": "",
        "dnsList": ["100.125.1.250"], "neutron_network_id": s.neutron_network_id,
        "neutron_subnet_id": s.neutron_subnet_id, "ipv6_enable": false, "cidr_v6": "", "neutron_subnet_id_v6": "",
    })
}

fn vpc_json(v: &SimVpc) -> Value {
    json!({"id": v.id, "name": v.name, "cidr": v.cidr, "status": "OK", "description": "", "routes": []})
}

pub(crate) async fn list_subnets(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "list_subnets", Family::Vpc, Some(&pid), req, {
        let w = sh.lock();
        let vpc = req.query("vpc_id");
        let subnets: Vec<Value> = w
            .config
            .subnets
            .iter()
            .filter(|s| vpc.as_ref().is_none_or(|v| s.vpc_id == *v))
            .map(subnet_json)
            .collect();
        ok(json!({"subnets": subnets}))
    })
}

pub(crate) async fn get_subnet(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "get_subnet", Family::Vpc, Some(&pid), req, {
        let w = sh.lock();
        match w.subnet(&id) {
            Some(s) => ok(json!({"subnet": subnet_json(s)})),
            None => Err(fault(
                StatusCode::NOT_FOUND,
                Family::Vpc,
                "0202",
                format!("Subnet {id} does not exist."),
            )),
        }
    })
}

fn vpc_answer(sh: &Sh, id: &str) -> crate::front::Answer {
    let w = sh.lock();
    match w.config.vpcs.iter().find(|v| v.id == id) {
        Some(v) => ok(json!({"vpc": vpc_json(v)})),
        None => Err(fault(
            StatusCode::NOT_FOUND,
            Family::Vpc,
            "0101",
            format!("Vpc {id} does not exist."),
        )),
    }
}

pub(crate) async fn get_vpc_global(State(sh): State<Sh>, Path(id): Path<String>, req: Req) -> Response {
    guarded!(sh, "get_vpc", Family::Vpc, None, req, vpc_answer(&sh, &id))
}

pub(crate) async fn get_vpc(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "get_vpc", Family::Vpc, Some(&pid), req, vpc_answer(&sh, &id))
}
