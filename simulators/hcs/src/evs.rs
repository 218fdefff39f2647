//! EVS (`/v2/{pid}/cloudvolumes`): the volumes ECS created with its servers. Deleting one that
//! is attached is 400 `EVS.2024`, a missing one 404 `EVS.2001` (the simulator's numbers).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::front::{Family, Fault, Req, bad_request, fault, guarded, no_content, ok};
use crate::state::{Sh, Volume};

pub(crate) fn volume_json(v: &Volume) -> Value {
    let attachments: Vec<Value> = v
        .attachment
        .iter()
        .map(|(server, device)| {
            json!({"server_id": server, "device": device, "volume_id": v.id, "attachment_id": format!("{}-{server}", v.id)})
        })
        .collect();
    json!({
        "id": v.id, "name": v.name, "size": v.size, "volume_type": v.volume_type,
        "status": if v.attachment.is_some() { "in-use" } else { "available" },
        "bootable": v.bootable.to_string(), "attachments": attachments,
        "availability_zone": v.az, "created_at": v.created, "multiattach": false,
    })
}

fn missing(id: &str) -> Fault {
    fault(
        StatusCode::NOT_FOUND,
        Family::Evs,
        "2001",
        format!("Volume {id} could not be found."),
    )
}

pub(crate) async fn list_volumes(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "list_volumes", Family::Evs, Some(&pid), req, {
        let w = sh.lock();
        let server = req.query("server_id");
        let volumes: Vec<Value> = w
            .volumes
            .values()
            .filter(|v| {
                server
                    .as_ref()
                    .is_none_or(|s| v.attachment.as_ref().is_some_and(|a| a.0 == *s))
            })
            .map(volume_json)
            .collect();
        ok(json!({"count": volumes.len(), "volumes": volumes}))
    })
}

pub(crate) async fn get_volume(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "get_volume", Family::Evs, Some(&pid), req, {
        let w = sh.lock();
        match w.volumes.get(&id) {
            Some(v) => ok(json!({"volume": volume_json(v)})),
            None => Err(missing(&id)),
        }
    })
}

pub(crate) async fn delete_volume(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "delete_volume", Family::Evs, Some(&pid), req, {
        let mut w = sh.lock();
        match w.volumes.get(&id) {
            None => Err(missing(&id)),
            Some(v) if v.attachment.is_some() => Err(bad_request(
                Family::Evs,
                "2024",
                format!("Volume {id} is in-use; only available volumes can be deleted."),
            )),
            Some(_) => {
                w.volumes.remove(&id);
                no_content()
            }
        }
    })
}
