//! ECS: servers (create with `X-Client-Token`, get, find by tag, delete, power), the jobs those
//! calls start, flavors and the project's quotas.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Call, HcsClient, HcsError, Service};

/// ECS refuses `user_data` larger than this, counted before base64 encoding.
pub const USER_DATA_LIMIT: usize = 32 * 1024;

/// What a new server is made of (the `server` object of `POST /v1/{project}/cloudservers`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateServer {
    pub name: String,
    #[serde(rename = "imageRef")]
    pub image_ref: String,
    #[serde(rename = "flavorRef")]
    pub flavor_ref: String,
    pub vpcid: String,
    pub nics: Vec<Nic>,
    pub root_volume: Volume,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_volumes: Vec<Volume>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<IdRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Base64 of the bootstrap document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    pub server_tags: Vec<Tag>,
    #[serde(rename = "os:scheduler_hints", skip_serializing_if = "Option::is_none")]
    pub scheduler_hints: Option<SchedulerHints>,
    pub count: u32,
    #[serde(rename = "isAutoRename")]
    pub is_auto_rename: bool,
    pub power_on: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nic {
    /// The VPC subnet id (not the neutron subnet id ELB takes).
    pub subnet_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub volumetype: String,
    /// GiB.
    pub size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRef {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchedulerHints {
    pub group: String,
}

/// The answer to a create: the job and the id the server will have.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreatedServer {
    pub job_id: String,
    #[serde(rename = "serverIds", default)]
    pub server_ids: Vec<String>,
}

/// A server as ECS reports it (the fields Capstan reads).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Server {
    pub id: String,
    pub name: String,
    /// `BUILD`, `ACTIVE`, `SHUTOFF`, `ERROR`, `DELETED`, …
    pub status: String,
    /// Addresses by VPC id.
    #[serde(default)]
    pub addresses: BTreeMap<String, Vec<ServerAddress>>,
    #[serde(rename = "OS-EXT-AZ:availability_zone", default)]
    pub availability_zone: Option<String>,
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    pub task_state: Option<String>,
    /// `key=value` strings.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServerAddress {
    pub addr: String,
    #[serde(default)]
    pub version: serde_json::Value,
    #[serde(rename = "OS-EXT-IPS:type", default)]
    pub kind: Option<String>,
}

impl Server {
    /// The value of tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find_map(|t| {
            let (k, v) = t.split_once('=')?;
            (k == key).then_some(v)
        })
    }

    /// Fixed (private) addresses, in VPC order.
    pub fn fixed_addresses(&self) -> impl Iterator<Item = &str> {
        self.addresses
            .values()
            .flatten()
            .filter(|a| a.kind.as_deref() != Some("floating"))
            .map(|a| a.addr.as_str())
    }

    /// Floating (public) addresses.
    pub fn floating_addresses(&self) -> impl Iterator<Item = &str> {
        self.addresses
            .values()
            .flatten()
            .filter(|a| a.kind.as_deref() == Some("floating"))
            .map(|a| a.addr.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Job {
    pub job_id: String,
    /// `INIT`, `RUNNING`, `SUCCESS`, `FAIL`, `PENDING_PAYMENT`.
    pub status: String,
    #[serde(default)]
    pub job_type: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub fail_reason: Option<String>,
    #[serde(default)]
    pub entities: JobEntities,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct JobEntities {
    #[serde(default)]
    pub sub_jobs: Vec<SubJob>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubJob {
    pub status: String,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub fail_reason: Option<String>,
}

/// A job's outcome in the words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    Failed(String),
}

impl Job {
    pub fn state(&self) -> JobState {
        match self.status.as_str() {
            "SUCCESS" => JobState::Succeeded,
            "FAIL" => {
                // The sub-job usually says more than the parent.
                let sub = self.entities.sub_jobs.iter().find(|s| s.status == "FAIL");
                let code = sub.and_then(|s| s.error_code.clone()).or(self.error_code.clone());
                let reason = sub
                    .and_then(|s| s.fail_reason.clone())
                    .or(self.fail_reason.clone())
                    .unwrap_or_else(|| "no reason given".into());
                JobState::Failed(match code {
                    Some(code) => format!("job {} failed: {code}: {reason}", self.job_id),
                    None => format!("job {} failed: {reason}", self.job_id),
                })
            }
            _ => JobState::Running,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    /// ECS writes the count as a string.
    #[serde(default)]
    pub vcpus: serde_json::Value,
    /// MiB.
    #[serde(default)]
    pub ram: serde_json::Value,
}

impl Flavor {
    pub fn vcpus(&self) -> Option<u64> {
        number(&self.vcpus)
    }
    pub fn ram_mib(&self) -> Option<u64> {
        number(&self.ram)
    }
}

fn number(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

/// The project's compute quotas (`GET /v1/{project}/cloudservers/limits`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub max_total_instances: i64,
    pub total_instances_used: i64,
    pub max_total_cores: i64,
    pub total_cores_used: i64,
    #[serde(rename = "maxTotalRAMSize")]
    pub max_total_ram_size: i64,
    #[serde(rename = "totalRAMUsed")]
    pub total_ram_used: i64,
}

/// A power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Start,
    Stop { hard: bool },
}

impl HcsClient {
    /// Starts creating a server. The same `client_token` within ECS's idempotency window gets
    /// the first request's job and server back instead of a second server.
    pub async fn create_server(&self, server: &CreateServer, client_token: &str) -> Result<CreatedServer, HcsError> {
        let path = self.project_path("v1", "cloudservers");
        self.call(
            Call::new(
                "create_server",
                Service::Ecs,
                Method::POST,
                path,
                format!("server {}", server.name),
            )
            .body(json!({ "server": server }))
            .client_token(client_token),
        )
        .await
    }

    pub async fn get_server(&self, id: &str) -> Result<Server, HcsError> {
        #[derive(Deserialize)]
        struct One {
            server: Server,
        }
        let path = self.project_path("v1", &format!("cloudservers/{id}"));
        let one: One = self
            .call(Call::new(
                "get_server",
                Service::Ecs,
                Method::GET,
                path,
                format!("server {id}"),
            ))
            .await?;
        Ok(one.server)
    }

    /// Servers carrying tag `key=value` (deleted ones excluded).
    pub async fn find_servers_by_tag(&self, key: &str, value: &str) -> Result<Vec<Server>, HcsError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            servers: Vec<Server>,
        }
        let tag = format!("{key}={value}");
        let query = form_urlencoded(&[("tags", tag.as_str()), ("limit", "100")]);
        let path = self.project_path("v1", &format!("cloudservers/detail?{query}"));
        let list: List = self
            .call(Call::new("list_servers", Service::Ecs, Method::GET, path, "servers"))
            .await?;
        Ok(list
            .servers
            .into_iter()
            .filter(|s| s.status != "DELETED" && s.tag(key) == Some(value))
            .collect())
    }

    /// Starts deleting a server with its volumes; the job id.
    pub async fn delete_server(&self, id: &str) -> Result<String, HcsError> {
        let path = self.project_path("v1", "cloudservers/delete");
        let body = json!({"servers": [{"id": id}], "delete_volume": true, "delete_publicip": true});
        self.job_call("delete_servers", path, body, format!("server {id}"))
            .await
    }

    pub async fn server_action(&self, id: &str, action: PowerAction) -> Result<String, HcsError> {
        let servers = json!([{ "id": id }]);
        let body = match action {
            PowerAction::Start => json!({"os-start": {"servers": servers}}),
            PowerAction::Stop { hard } => {
                json!({"os-stop": {"servers": servers, "type": if hard { "HARD" } else { "SOFT" }}})
            }
        };
        let path = self.project_path("v1", "cloudservers/action");
        self.job_call("server_action", path, body, format!("server {id}")).await
    }

    async fn job_call(
        &self,
        operation: &'static str,
        path: String,
        body: serde_json::Value,
        what: String,
    ) -> Result<String, HcsError> {
        #[derive(Deserialize)]
        struct Started {
            job_id: String,
        }
        let started: Started = self
            .call(Call::new(operation, Service::Ecs, Method::POST, path, what).body(body))
            .await?;
        Ok(started.job_id)
    }

    pub async fn get_job(&self, id: &str) -> Result<Job, HcsError> {
        let path = self.project_path("v1", &format!("jobs/{id}"));
        self.call(Call::new(
            "get_job",
            Service::Ecs,
            Method::GET,
            path,
            format!("job {id}"),
        ))
        .await
    }

    pub async fn list_flavors(&self, availability_zone: Option<&str>) -> Result<Vec<Flavor>, HcsError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            flavors: Vec<Flavor>,
        }
        let rest = match availability_zone {
            Some(az) => format!("cloudservers/flavors?{}", form_urlencoded(&[("availability_zone", az)])),
            None => "cloudservers/flavors".into(),
        };
        let path = self.project_path("v1", &rest);
        let list: List = self
            .call(Call::new("list_flavors", Service::Ecs, Method::GET, path, "flavors"))
            .await?;
        Ok(list.flavors)
    }

    pub async fn limits(&self) -> Result<Limits, HcsError> {
        #[derive(Deserialize)]
        struct Answer {
            absolute: Limits,
        }
        let path = self.project_path("v1", "cloudservers/limits");
        let a: Answer = self
            .call(Call::new("get_limits", Service::Ecs, Method::GET, path, "limits"))
            .await?;
        Ok(a.absolute)
    }
}

/// `k=v&k=v`, each escaped as a query component.
pub(crate) fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_job_says_why_from_its_sub_job() {
        let job: Job = serde_json::from_value(json!({
            "job_id": "j1", "status": "FAIL", "error_code": null, "fail_reason": null,
            "entities": {"sub_jobs": [{"status": "FAIL", "error_code": "Ecs.0010", "fail_reason": "Private IP address 10.0.0.5 is already in use."}]}
        }))
        .unwrap();
        assert_eq!(
            job.state(),
            JobState::Failed("job j1 failed: Ecs.0010: Private IP address 10.0.0.5 is already in use.".into())
        );
        let running: Job = serde_json::from_value(json!({"job_id": "j2", "status": "INIT"})).unwrap();
        assert_eq!(running.state(), JobState::Running);
    }

    #[test]
    fn server_addresses_and_tags() {
        let s: Server = serde_json::from_value(json!({
            "id": "s1", "name": "cp-1", "status": "ACTIVE",
            "addresses": {"vpc-1": [
                {"version": "4", "addr": "10.0.0.11", "OS-EXT-IPS:type": "fixed"},
                {"version": "4", "addr": "1.2.3.4", "OS-EXT-IPS:type": "floating"}]},
            "tags": ["capstan.dev/uid=u-1", "other=x=y"]
        }))
        .unwrap();
        assert_eq!(s.fixed_addresses().collect::<Vec<_>>(), ["10.0.0.11"]);
        assert_eq!(s.floating_addresses().collect::<Vec<_>>(), ["1.2.3.4"]);
        assert_eq!(s.tag("capstan.dev/uid"), Some("u-1"));
        assert_eq!(s.tag("other"), Some("x=y"));
        assert_eq!(s.tag("missing"), None);
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(form_urlencoded(&[("tags", "a/b=c d")]), "tags=a%2Fb%3Dc%20d");
    }
}
