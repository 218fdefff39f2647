//! ECS jobs (B5): every asynchronous server operation answers with a `job_id`, and the job goes
//! `INIT` → `RUNNING` → `SUCCESS` | `FAIL`, one sub-job per server naming it in
//! `entities.server_id`. A failed job carries `error_code` and `fail_reason` both on itself
//! and on the sub-job. Jobs are kept for the simulator's lifetime.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::front::{Family, Req, fault, guarded, ok};
use crate::state::{Sh, World};

#[derive(Debug, Clone)]
pub(crate) struct SubJob {
    pub id: String,
    pub server_id: String,
    pub status: &'static str,
    pub error_code: Option<String>,
    pub fail_reason: Option<String>,
    pub end_time: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub id: String,
    /// `createServer`, `deleteServer`, `startServer`, `stopServer`, `rebootServer`.
    pub job_type: String,
    pub status: &'static str,
    pub begin_time: String,
    pub end_time: Option<String>,
    pub error_code: Option<String>,
    pub fail_reason: Option<String>,
    pub sub_jobs: Vec<SubJob>,
}

fn time() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The sub-job type ECS reports for a job type (`createServer` → `createSingleServer`).
fn sub_type(job_type: &str) -> String {
    job_type.replacen("Server", "SingleServer", 1)
}

impl World {
    /// A new job in `INIT` over `server_ids`.
    pub fn new_job(&mut self, job_type: &str, server_ids: &[String]) -> String {
        let id = format!("ff8080{}", self.rng.hex(13));
        let sub_jobs = server_ids
            .iter()
            .map(|s| SubJob {
                id: format!("ff8080{}", self.rng.hex(13)),
                server_id: s.clone(),
                status: "INIT",
                error_code: None,
                fail_reason: None,
                end_time: None,
            })
            .collect();
        self.jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                job_type: job_type.into(),
                status: "INIT",
                begin_time: time(),
                end_time: None,
                error_code: None,
                fail_reason: None,
                sub_jobs,
            },
        );
        id
    }

    pub fn job_running(&mut self, id: &str) {
        if let Some(j) = self.jobs.get_mut(id).filter(|j| j.status == "INIT") {
            j.status = "RUNNING";
            j.sub_jobs.iter_mut().for_each(|s| s.status = "RUNNING");
        }
    }

    /// Ends the sub-job of `server_id` (`failure` = (code, reason)); the job ends when its
    /// last sub-job does, failed if any failed.
    pub fn finish_sub_job(&mut self, id: &str, server_id: &str, failure: Option<(&str, String)>) {
        let Some(j) = self.jobs.get_mut(id) else { return };
        for s in j
            .sub_jobs
            .iter_mut()
            .filter(|s| s.server_id == server_id && s.end_time.is_none())
        {
            s.status = if failure.is_some() { "FAIL" } else { "SUCCESS" };
            s.error_code = failure.as_ref().map(|(c, _)| c.to_string());
            s.fail_reason = failure.as_ref().map(|(_, r)| r.clone());
            s.end_time = Some(time());
        }
        if j.sub_jobs.iter().any(|s| s.end_time.is_none()) {
            return;
        }
        let failed = j.sub_jobs.iter().find(|s| s.status == "FAIL").cloned();
        j.status = if failed.is_some() { "FAIL" } else { "SUCCESS" };
        j.error_code = failed.as_ref().and_then(|s| s.error_code.clone());
        j.fail_reason = failed.and_then(|s| s.fail_reason);
        j.end_time = Some(time());
    }

    /// Whether the next job of `job_type` must fail (`fail_next_job`, then `job_failure_rate`
    /// for create jobs).
    pub fn job_should_fail(&mut self, job_type: &str) -> bool {
        if capstan_simkit::faults::take_fail_next(&mut self.knobs.fail_next_job, job_type) {
            return true;
        }
        let rate = self.knobs.job_failure_rate;
        job_type == "createServer" && self.rng.roll(rate)
    }
}

pub(crate) fn job_json(j: &Job) -> Value {
    let subs: Vec<Value> = j
        .sub_jobs
        .iter()
        .map(|s| {
            json!({
                "job_id": s.id, "job_type": sub_type(&j.job_type), "status": s.status,
                "begin_time": j.begin_time, "end_time": s.end_time,
                "error_code": s.error_code, "fail_reason": s.fail_reason,
                "entities": {"server_id": s.server_id},
            })
        })
        .collect();
    json!({
        "job_id": j.id, "job_type": j.job_type, "status": j.status,
        "begin_time": j.begin_time, "end_time": j.end_time,
        "error_code": j.error_code, "fail_reason": j.fail_reason,
        "entities": {"sub_jobs_total": subs.len(), "sub_jobs": subs},
    })
}

pub(crate) async fn get_job(State(sh): State<Sh>, Path((pid, id)): Path<(String, String)>, req: Req) -> Response {
    guarded!(sh, "get_job", Family::Ecs, Some(&pid), req, {
        let w = sh.lock();
        match w.jobs.get(&id) {
            Some(j) => ok(job_json(j)),
            None => Err(fault(
                StatusCode::NOT_FOUND,
                Family::Ecs,
                "0200",
                format!("Job[{id}] could not be found."),
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_job_types() {
        assert_eq!(sub_type("createServer"), "createSingleServer");
        assert_eq!(sub_type("rebootServer"), "rebootSingleServer");
    }
}
