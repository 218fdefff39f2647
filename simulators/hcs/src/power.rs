//! Delete and power actions (B7), each answered with a job.
//!
//! Choices the reference leaves open: an unknown server id does not fail the request, its
//! sub-job FAILs with `Ecs.0114`; `os-start` on a running server and `os-stop` on a stopped one
//! succeed without a change; an action on a server that is building, in error, being deleted or
//! in the middle of another action FAILs its sub-job with `Ecs.0103`, and so does `reboot` of a
//! stopped server. A server being deleted keeps its status (`ACTIVE`/`SHUTOFF`, task state
//! `deleting`) until the delete latency has passed; then it is gone (404 `Ecs.0114`), no
//! `DELETED` tombstone is kept.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use crate::front::{Answer, Family, Fault, Req, bad_request, guarded, ok};
use crate::state::{Sh, World, after, now_string};

fn server_ids(v: &Value) -> Result<Vec<String>, Fault> {
    let ids: Vec<String> = v["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    if ids.is_empty() || ids.len() > 1000 {
        return Err(bad_request(Family::Ecs, "0005", "servers must list 1 to 1000 {\"id\"}"));
    }
    Ok(ids)
}

fn not_found(id: &str) -> Option<(&'static str, String)> {
    Some(("Ecs.0114", format!("Instance[{id}] could not be found.")))
}

impl World {
    /// The server is gone: its volumes deleted (or detached), its guest destroyed; its address
    /// and quota are free again because they are computed from the servers that exist. Open
    /// sub-jobs still naming it fail.
    pub fn remove_server(&mut self, id: &str, delete_volumes: bool) {
        let Some(s) = self.servers.remove(id) else { return };
        for v in &s.volumes {
            if delete_volumes {
                self.volumes.remove(v);
            } else if let Some(v) = self.volumes.get_mut(v) {
                v.attachment = None;
            }
        }
        self.destroy_guest(id);
        let open: Vec<String> = self
            .jobs
            .values()
            .filter(|j| j.sub_jobs.iter().any(|s| s.server_id == id && s.end_time.is_none()))
            .map(|j| j.id.clone())
            .collect();
        for j in open {
            self.finish_sub_job(&j, id, not_found(id));
        }
    }

    /// The server stops as if it crashed: no job, the guest is off.
    pub fn stop_outside(&mut self, id: &str) -> bool {
        let Some(s) = self.servers.get_mut(id) else {
            return false;
        };
        s.status = "SHUTOFF";
        s.vm_state = "stopped";
        s.task_state = "";
        s.epoch += 1;
        s.updated = now_string();
        self.power_off_guest(id);
        true
    }
}

fn delete(sh: &Sh, body: &Value) -> Answer {
    let ids = server_ids(body)?;
    let delete_volume = body["delete_volume"].as_bool().unwrap_or(false);
    let mut w = sh.lock();
    let job = w.new_job("deleteServer", &ids);
    let latency = w.knobs.latency.delete;
    for id in ids {
        let job = job.clone();
        let Some(s) = w.servers.get_mut(&id) else {
            after(sh, Duration::ZERO, move |w, _| {
                w.finish_sub_job(&job, &id, not_found(&id))
            });
            continue;
        };
        s.task_state = "deleting";
        s.updated = now_string();
        after(sh, latency, move |w, _| {
            w.finish_sub_job(&job, &id, None);
            w.remove_server(&id, delete_volume);
        });
    }
    let j = job.clone();
    after(sh, Duration::ZERO, move |w, _| w.job_running(&j));
    ok(json!({"job_id": job}))
}

pub(crate) async fn delete_servers(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "delete_servers", Family::Ecs, Some(&pid), req, {
        let body = req.json(Family::Ecs)?;
        delete(&sh, &body)
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Action {
    Start,
    Stop,
    Reboot,
}

/// What the action does to one server now, and when (and whether) it ends.
fn begin(w: &mut World, action: Action, id: &str, hard: bool) -> Result<Option<Duration>, (&'static str, String)> {
    let lat = w.knobs.latency.clone();
    let Some(s) = w.servers.get_mut(id) else {
        return Err(not_found(id).expect("some"));
    };
    let busy = !s.task_state.is_empty() || matches!(s.status, "BUILD" | "ERROR" | "REBOOT" | "HARD_REBOOT");
    let conflict = || {
        (
            "Ecs.0103",
            format!("Instance[{id}] is in state {} ({}).", s.status, s.task_state),
        )
    };
    match (action, s.status) {
        _ if busy => Err(conflict()),
        (Action::Start, "ACTIVE") | (Action::Stop, "SHUTOFF") => Ok(None),
        (Action::Reboot, "SHUTOFF") => Err(conflict()),
        (Action::Start, _) => {
            s.task_state = "powering-on";
            Ok(Some(lat.boot))
        }
        (Action::Stop, _) => {
            s.task_state = "powering-off";
            Ok(Some(lat.stop))
        }
        (Action::Reboot, _) => {
            s.status = if hard { "HARD_REBOOT" } else { "REBOOT" };
            s.task_state = "rebooting";
            s.epoch += 1;
            w.power_off_guest(id);
            Ok(Some(lat.boot))
        }
    }
}

/// The action's end on one server (unless something else changed it meanwhile).
fn complete(w: &mut World, action: Action, id: &str, epoch: u64, job: &str) {
    let Some(s) = w.servers.get_mut(id).filter(|s| s.epoch == epoch) else {
        w.finish_sub_job(
            job,
            id,
            Some(("Ecs.0103", format!("Instance[{id}] changed state meanwhile."))),
        );
        return;
    };
    let on = action != Action::Stop;
    s.status = if on { "ACTIVE" } else { "SHUTOFF" };
    s.vm_state = if on { "active" } else { "stopped" };
    s.task_state = "";
    s.updated = now_string();
    w.finish_sub_job(job, id, None);
    if on {
        w.boot_guest(id);
    } else {
        w.power_off_guest(id);
    }
}

fn action(sh: &Sh, body: &Value) -> Answer {
    let (action, job_type, spec) = if body["os-start"].is_object() {
        (Action::Start, "startServer", &body["os-start"])
    } else if body["os-stop"].is_object() {
        (Action::Stop, "stopServer", &body["os-stop"])
    } else if body["reboot"].is_object() {
        (Action::Reboot, "rebootServer", &body["reboot"])
    } else {
        return Err(bad_request(Family::Ecs, "0005", "expected os-start, os-stop or reboot"));
    };
    let ids = server_ids(spec)?;
    let hard = spec["type"].as_str() == Some("HARD");
    let mut w = sh.lock();
    let job = w.new_job(job_type, &ids);
    for id in ids {
        let job = job.clone();
        let delay = match begin(&mut w, action, &id, hard) {
            Err(failure) => {
                after(sh, Duration::ZERO, move |w, _| {
                    w.finish_sub_job(&job, &id, Some(failure))
                });
                continue;
            }
            Ok(None) => Duration::ZERO,
            Ok(Some(d)) => d,
        };
        let epoch = w.servers.get(&id).map_or(0, |s| s.epoch);
        let changes = delay > Duration::ZERO || w.servers.get(&id).is_some_and(|s| !s.task_state.is_empty());
        after(sh, delay, move |w, _| {
            if changes {
                complete(w, action, &id, epoch, &job);
            } else {
                w.finish_sub_job(&job, &id, None);
            }
        });
    }
    let j = job.clone();
    after(sh, Duration::ZERO, move |w, _| w.job_running(&j));
    ok(json!({"job_id": job}))
}

pub(crate) async fn server_action(State(sh): State<Sh>, Path(pid): Path<String>, req: Req) -> Response {
    guarded!(sh, "server_action", Family::Ecs, Some(&pid), req, {
        let body = req.json(Family::Ecs)?;
        action(&sh, &body)
    })
}
