//! Conditions with upstream's types and reasons (v1beta2), mirrored into the deprecated v1beta1
//! list, and the `Ready` summary CABPK computes in its deferred patch.

use capstan_api::conditions::{self, NewCondition, Status};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::{Deprecated, KubeadmConfigStatus, V1Beta1Condition, V1Beta1Status};

pub const READY: &str = "Ready";
pub const DATA_SECRET_AVAILABLE: &str = "DataSecretAvailable";
pub const CERTIFICATES_AVAILABLE: &str = "CertificatesAvailable";

pub const REASON_AVAILABLE: &str = "Available";
pub const REASON_NOT_AVAILABLE: &str = "NotAvailable";
pub const REASON_INTERNAL_ERROR: &str = "InternalError";

/// v1beta1 reasons, kept in `status.deprecated.v1beta1.conditions`.
pub const V1_WAITING_FOR_INFRA: &str = "WaitingForClusterInfrastructure";
pub const V1_WAITING_FOR_CONTROL_PLANE: &str = "WaitingForControlPlaneAvailable";
pub const V1_DATA_SECRET_FAILED: &str = "DataSecretGenerationFailed";
pub const V1_CERTIFICATES_FAILED: &str = "CertificatesGenerationFailed";
pub const V1_CERTIFICATES_CORRUPTED: &str = "CertificatesCorrupted";

pub const MSG_WAITING_FOR_INFRA: &str = "Waiting for Cluster status.infrastructureReady to be true";
pub const MSG_WAITING_FOR_CP: &str = "Waiting for Cluster control plane to be initialized";
pub const MSG_INTERNAL: &str = "Please check controller logs for errors";

/// A status being built for one reconcile.
pub struct StatusBuilder {
    pub status: KubeadmConfigStatus,
    generation: Option<i64>,
}

impl StatusBuilder {
    pub fn new(current: Option<&KubeadmConfigStatus>, generation: Option<i64>) -> Self {
        StatusBuilder {
            status: current.cloned().unwrap_or_default(),
            generation,
        }
    }

    pub fn has(&self, type_: &str) -> bool {
        conditions::get(&self.status.conditions, type_).is_some()
    }

    pub fn message_is(&self, type_: &str, message: &str) -> bool {
        conditions::get(&self.status.conditions, type_).is_some_and(|c| c.message == message)
    }

    pub fn set(&mut self, c: NewCondition) {
        conditions::set(&mut self.status.conditions, c, self.generation);
    }

    pub fn available(&mut self, type_: &str) {
        self.set(NewCondition::truthy(type_, REASON_AVAILABLE));
        self.set_v1beta1(type_, "True", None, None, None);
    }

    /// Not available, with the v1beta1 reason and severity (`Info` while waiting, `Warning` on failure).
    pub fn not_available(&mut self, type_: &str, message: &str, v1_reason: &str, severity: &str) {
        self.set(NewCondition::falsy(type_, REASON_NOT_AVAILABLE, message));
        self.set_v1beta1(type_, "False", Some(v1_reason), Some(severity), Some(message));
    }

    /// A failure the user can act on, with its own reason.
    pub fn failed(&mut self, type_: &str, reason: &str, message: &str, v1_reason: &str) {
        self.set(NewCondition::falsy(type_, reason, message));
        self.set_v1beta1(type_, "False", Some(v1_reason), Some("Warning"), Some(message));
    }

    /// An unexpected error: status Unknown, details only in the controller's logs.
    pub fn internal_error(&mut self, type_: &str, v1_reason: &str) {
        self.set(NewCondition::new(
            type_,
            Status::Unknown,
            REASON_INTERNAL_ERROR,
            MSG_INTERNAL,
        ));
        self.set_v1beta1(type_, "False", Some(v1_reason), Some("Warning"), Some(MSG_INTERNAL));
    }

    pub fn paused(&mut self, paused: bool) {
        self.set(conditions::paused(paused));
    }

    pub fn data_secret(&mut self, name: &str) {
        self.status.data_secret_name = Some(name.to_string());
        self.status.initialization = Some(crate::api::Initialization {
            data_secret_created: Some(true),
        });
    }

    fn set_v1beta1(
        &mut self,
        type_: &str,
        status: &str,
        reason: Option<&str>,
        severity: Option<&str>,
        message: Option<&str>,
    ) {
        let v1 = self
            .status
            .deprecated
            .get_or_insert_with(Deprecated::default)
            .v1beta1
            .get_or_insert_with(V1Beta1Status::default);
        let list = v1.conditions.get_or_insert_with(Vec::new);
        let new = V1Beta1Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            severity: severity.map(str::to_string),
            last_transition_time: Time(Timestamp::now()),
            reason: reason.map(str::to_string),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        };
        match list.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => {
                let ltt = if existing.status == new.status {
                    existing.last_transition_time.clone()
                } else {
                    new.last_transition_time.clone()
                };
                *existing = V1Beta1Condition {
                    last_transition_time: ltt,
                    ..new
                };
            }
            None => list.push(new),
        }
    }

    /// Sets `Ready` from DataSecretAvailable and CertificatesAvailable (an absent one does not
    /// count against readiness) and returns the finished status.
    pub fn finish(mut self) -> KubeadmConfigStatus {
        let parts: Vec<_> = [DATA_SECRET_AVAILABLE, CERTIFICATES_AVAILABLE]
            .iter()
            .filter_map(|t| conditions::get(&self.status.conditions, t).cloned())
            .collect();
        let ready = if parts.is_empty() {
            NewCondition::new(
                READY,
                Status::Unknown,
                "ReadyUnknown",
                "Waiting for DataSecretAvailable",
            )
        } else if let Some(c) = parts.iter().find(|c| c.status == "False") {
            NewCondition::falsy(READY, "NotReady", format!("{}: {}", c.type_, c.message))
        } else if let Some(c) = parts.iter().find(|c| c.status == "Unknown") {
            NewCondition::new(
                READY,
                Status::Unknown,
                "ReadyUnknown",
                format!("{}: {}", c.type_, c.message),
            )
        } else {
            NewCondition::truthy(READY, "Ready")
        };
        let v1 = match ready.status {
            Status::True => ("True", None, None),
            _ => {
                let v1 = self
                    .status
                    .deprecated
                    .as_ref()
                    .and_then(|d| d.v1beta1.as_ref())
                    .and_then(|v| v.conditions.as_ref())
                    .and_then(|l| l.iter().find(|c| c.status != "True" && c.type_ != READY))
                    .cloned();
                (
                    "False",
                    v1.as_ref().and_then(|c| c.reason.clone()),
                    v1.as_ref().and_then(|c| c.message.clone()),
                )
            }
        };
        let severity = (v1.0 == "False").then_some("Info");
        self.set_v1beta1(READY, v1.0, v1.1.as_deref(), severity, v1.2.as_deref());
        self.set(ready);
        if let Some(g) = self.generation.filter(|g| *g >= 1) {
            self.status.observed_generation = Some(g);
        }
        self.status
    }
}
