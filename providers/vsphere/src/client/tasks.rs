//! Tasks: the `*_Task` methods answer a `Task` reference at once and run on; their outcome is
//! `Task.info` (`state`, `result`, `error`), read here through the property collector. Plain
//! polling suits a reconcile loop (one read per pass); `wait_for_task` is for callers that do
//! wait.

use std::time::{Duration, Instant};

use super::error::Fault;
use super::types::MoRef;
use super::xml::Node;
use super::{VsphereClient, VsphereError};

/// `TaskInfo.state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Queued,
    Running,
    Success,
    Error,
}

/// What a task says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub task: MoRef,
    pub state: TaskState,
    /// What the task made, e.g. the new VM of a clone (`xsi:type="ManagedObjectReference"`).
    pub result: Option<Node>,
    /// The fault of a task in `error`, with its `localizedMessage`.
    pub error: Option<Fault>,
    /// The method the task runs (`VirtualMachine.clone`), as vCenter names it.
    pub description_id: Option<String>,
    pub entity: Option<MoRef>,
}

impl TaskInfo {
    pub(crate) fn from_node(task: &MoRef, info: &Node) -> Result<TaskInfo, VsphereError> {
        let state = match info.child_text("state").map(str::trim) {
            Some("queued") => TaskState::Queued,
            Some("running") => TaskState::Running,
            Some("success") => TaskState::Success,
            Some("error") => TaskState::Error,
            other => {
                return Err(VsphereError::Decode {
                    method: "RetrievePropertiesEx",
                    message: format!("task {task} has state {other:?}"),
                });
            }
        };
        let error = info.child("error").map(|lmf| {
            let message = lmf.child_text("localizedMessage").unwrap_or_default().to_string();
            match lmf.child("fault") {
                Some(f) => Fault::from_node(f, message),
                None => Fault::Other {
                    fault_type: "MethodFault".into(),
                    message,
                    invalid_property: None,
                },
            }
        });
        Ok(TaskInfo {
            task: task.clone(),
            state,
            result: info.child("result").cloned(),
            error,
            description_id: info.child_text("descriptionId").map(str::to_string),
            entity: info.child("entity").and_then(MoRef::from_node),
        })
    }

    /// The result as a managed object reference (a clone's new VM).
    pub fn result_moref(&self) -> Option<MoRef> {
        self.result.as_ref().and_then(MoRef::from_node)
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, TaskState::Success | TaskState::Error)
    }
}

impl VsphereClient {
    /// Reads `info` of a task. A task vCenter no longer knows (it keeps finished tasks for a
    /// while only, and forgets all on restart) is `ManagedObjectNotFound`: the outcome is then
    /// unknown, and the caller should look for what the task was to make.
    pub async fn task_info(&self, task: &MoRef) -> Result<TaskInfo, VsphereError> {
        let content = self.retrieve_properties(task, &["info"]).await?;
        let info = content.get("info").ok_or_else(|| VsphereError::Decode {
            method: "RetrievePropertiesEx",
            message: format!("task {task} has no info"),
        })?;
        TaskInfo::from_node(task, info)
    }

    /// Polls a task until it ends: its info on success, [`VsphereError::Task`] with its fault
    /// on error, [`VsphereError::WaitTimeout`] after `timeout`.
    pub async fn wait_for_task(&self, task: &MoRef, timeout: Duration) -> Result<TaskInfo, VsphereError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(20);
        loop {
            let info = self.task_info(task).await?;
            match (&info.state, &info.error) {
                (TaskState::Success, _) => return Ok(info),
                (TaskState::Error, Some(fault)) => {
                    return Err(VsphereError::Task {
                        task: task.clone(),
                        fault: Box::new(fault.clone()),
                    });
                }
                (TaskState::Error, None) => {
                    return Err(VsphereError::Task {
                        task: task.clone(),
                        fault: Box::new(Fault::Other {
                            fault_type: "MethodFault".into(),
                            message: "the task failed without saying why".into(),
                            invalid_property: None,
                        }),
                    });
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(VsphereError::WaitTimeout {
                    what: format!("task {task}"),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}
