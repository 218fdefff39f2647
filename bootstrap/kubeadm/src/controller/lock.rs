//! The control-plane init lock (`pkg/locking/control_plane_init_mutex.go`): a ConfigMap
//! `<cluster>-lock` naming the one Machine allowed to run `kubeadm init`.

use std::collections::BTreeMap;

use capstan_api::contract::LABEL_CLUSTER_NAME;
use capstan_api::core::{Cluster, Machine};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

const LOCK_KEY: &str = "lock-information";

#[derive(Serialize, Deserialize)]
struct LockInformation {
    #[serde(rename = "machineName")]
    machine_name: String,
}

pub fn lock_name(cluster: &str) -> String {
    format!("{cluster}-lock")
}

fn holder(cm: &ConfigMap) -> Option<String> {
    let data = cm.data.as_ref()?.get(LOCK_KEY)?;
    serde_json::from_str::<LockInformation>(data)
        .ok()
        .map(|l| l.machine_name)
}

/// Takes the lock for `machine`. True when this machine holds it (newly or already).
pub async fn lock(client: &Client, cluster: &Cluster, machine: &Machine) -> Result<bool, kube::Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let name = lock_name(&cluster.name_any());
    let machine_name = machine.name_any();
    if let Some(existing) = cms.get_opt(&name).await? {
        match holder(&existing) {
            Some(h) if h == machine_name => return Ok(true),
            Some(h) => {
                // A lock held by a Machine that no longer exists would block init forever (CAPI#5814).
                let machines: Api<Machine> = Api::namespaced(client.clone(), &ns);
                if machines.get_opt(&h).await?.is_some() {
                    info!(holder = %h, "init lock held by another machine");
                    return Ok(false);
                }
                warn!(holder = %h, "init lock held by a deleted machine: releasing it");
            }
            None => warn!("init lock without readable holder: releasing it"),
        }
        // Delete exactly the stale lock we looked at: another reconcile may have replaced it with
        // a live one since, and a plain delete would remove that and let two machines init.
        let preconditions = Preconditions {
            uid: existing.metadata.uid.clone(),
            resource_version: existing.metadata.resource_version.clone(),
        };
        let dp = DeleteParams {
            preconditions: Some(preconditions),
            ..Default::default()
        };
        match cms.delete(&name, &dp).await {
            Ok(_) => {}
            // Gone already: whoever removed it races us on the create below.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            // Changed since we read it: someone else took it over.
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ns),
            labels: Some(BTreeMap::from([(LABEL_CLUSTER_NAME.to_string(), cluster.name_any())])),
            owner_references: capstan_api::owner::owner_reference(cluster, false).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            LOCK_KEY.to_string(),
            serde_json::to_string(&LockInformation { machine_name }).unwrap_or_default(),
        )])),
        ..Default::default()
    };
    match cms.create(&PostParams::default(), &cm).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Releases the lock (best effort: a missing lock is fine).
pub async fn unlock(client: &Client, cluster: &Cluster) -> Result<(), kube::Error> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    match cms
        .delete(&lock_name(&cluster.name_any()), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
