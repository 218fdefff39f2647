//! Kubernetes Events for user-visible transitions. Publishing is best effort: a failed event is
//! logged and never fails the reconcile that wanted to report something.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    /// Events reported as coming from `controller` (e.g. `capstan-dcs`).
    pub fn new(client: kube::Client, controller: &str) -> Self {
        Self {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: controller.to_string(),
                    instance: None,
                },
            ),
        }
    }

    pub async fn publish(&self, reference: &ObjectReference, warning: bool, reason: &str, note: String) {
        let ev = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, reference).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }
}
