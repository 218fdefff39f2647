//! VRM asynchronous tasks: every mutating VM call answers with a task to poll.

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{Body, DcsClient, DcsError, urn};

/// A handle on a task, as returned by clone/start/stop/delete/CD-ROM actions. Small and
/// serialisable so the caller can persist it and poll after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRef {
    #[serde(default)]
    pub task_urn: String,
    #[serde(default)]
    pub task_uri: String,
}

impl TaskRef {
    /// The URI if VRM gave one, else derived from the URN.
    pub fn uri(&self) -> Option<String> {
        if !self.task_uri.is_empty() {
            Some(self.task_uri.clone())
        } else {
            urn::urn_to_uri(&self.task_urn)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    Running,
    Success,
    Failed,
    /// Statuses not confirmed by public sources (`waiting`, `cancelling`, ...): treated as
    /// still in progress, as the Nova driver does.
    Other(String),
}

impl TaskStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "running" => TaskStatus::Running,
            "success" => TaskStatus::Success,
            "failed" => TaskStatus::Failed,
            other => TaskStatus::Other(other.to_string()),
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, TaskStatus::Success | TaskStatus::Failed)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    #[serde(default)]
    pub urn: String,
    #[serde(default)]
    pub uri: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub entity_urn: Option<String>,
    #[serde(default)]
    pub entity_name: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub progress: Option<i64>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub reason_des: Option<String>,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub finish_time: Option<String>,
}

impl Task {
    pub fn status(&self) -> TaskStatus {
        TaskStatus::parse(&self.status)
    }

    /// Why the task failed, in VRM's words.
    pub fn failure_reason(&self) -> String {
        [self.reason_des.as_deref(), self.reason.as_deref()]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())
            .unwrap_or("no reason given")
            .to_string()
    }
}

impl DcsClient {
    /// Reads a task by its URI (`/service/sites/S/tasks/N`), URN or bare id.
    pub async fn get_task(&self, task: &str) -> Result<Task, DcsError> {
        let uri = if task.starts_with("urn:") || task.starts_with("/service/") {
            urn::to_uri("", "tasks", task)
        } else {
            urn::to_uri(&self.site_id().await?, "tasks", task)
        };
        let url = self.url(&uri)?;
        self.call("get_task", Method::GET, url, task, Body::None).await
    }

    /// Polls a task until it is terminal. Meant for tools and tests; controllers should persist
    /// the [`TaskRef`] and poll with [`DcsClient::get_task`] on later reconciles instead.
    pub async fn wait_task(&self, task: &TaskRef, interval: Duration, timeout: Duration) -> Result<Task, DcsError> {
        let id = task.uri().ok_or_else(|| DcsError::Decode {
            operation: "get_task",
            message: "task reference has neither URI nor URN".into(),
        })?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let t = self.get_task(&id).await?;
            match t.status() {
                TaskStatus::Success => return Ok(t),
                TaskStatus::Failed => {
                    return Err(DcsError::TaskFailed {
                        task: id,
                        reason: t.failure_reason(),
                    });
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DcsError::WaitTimeout {
                    what: format!("task {id}"),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(interval).await;
        }
    }
}
