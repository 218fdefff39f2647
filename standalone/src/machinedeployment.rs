//! The MachineDeployment controller: one MachineSet per Machine template (named and labelled by the
//! template's hash), rolled over with `RollingUpdate` or `OnDelete`, scaled, and cleaned up once
//! an old set has no Machines left.

use std::collections::BTreeMap;
use std::sync::Arc;

use capstan_api::conditions::{self, NewCondition, Status};
use capstan_api::contract::{LABEL_CLUSTER_NAME, LABEL_DEPLOYMENT_NAME, LABEL_MACHINE_TEMPLATE_HASH, is_paused};
use capstan_api::core::{
    Cluster, MachineDeployment, MachineDeploymentPhase, MachineDeploymentStatus, MachineSet, MachineSetSpec,
    ObjectMetaTemplate, RolloutStrategyType,
};
use capstan_runtime::ProviderContext;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::{Resource, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::info;

use crate::controller::{
    self, Ctx, Error, apply_status, controlled_by, delete_ignoring_missing, ensure_cluster_metadata,
};
use crate::machineset::{is_available, is_deleting, is_ready, owned_machines, selector_string};
use crate::rollout::{self, SetState};

const CONTROLLER: &str = "machinedeployment";
pub const ANNOTATION_REVISION: &str = "machinedeployment.clusters.x-k8s.io/revision";
pub const ANNOTATION_DESIRED_REPLICAS: &str = "machinedeployment.clusters.x-k8s.io/desired-replicas";
pub const ANNOTATION_MAX_REPLICAS: &str = "machinedeployment.clusters.x-k8s.io/max-replicas";
const AVAILABLE: &str = "Available";
const ROLLING_OUT: &str = "RollingOut";

pub async fn run(ctx: ProviderContext, state: Arc<Ctx>) {
    let deployments: Api<MachineDeployment> = ctx.scope.api(ctx.client.clone());
    let sets: Api<MachineSet> = ctx.scope.api(ctx.client.clone());
    let controller = Controller::new(deployments, ctx.scope.watcher_config())
        .with_config(ctx.concurrency.controller_config("machinedeployment"))
        .owns(sets, ctx.scope.watcher_config());
    controller::run(&ctx, state, CONTROLLER, controller, |d, c| async move {
        reconcile(&d, &c).await
    })
    .await;
}

/// A short, stable hash of the Machine template's spec: the identity of a MachineSet. Once
/// `rollout.after` has passed it is part of the identity too, so every Machine made from an older
/// set is rolled once, and a set created after that time is not rolled again.
pub fn template_hash(md: &MachineDeployment) -> String {
    let mut canonical = serde_json::to_vec(&md.spec.template.spec).expect("template serialises");
    if let Some(after) = rollout_after(md).filter(|a| *a <= k8s_openapi::jiff::Timestamp::now()) {
        canonical.extend_from_slice(after.to_string().as_bytes());
    }
    let digest = Sha256::digest(&canonical);
    digest[..5].iter().map(|b| format!("{b:02x}")).collect()
}

fn rollout_after(md: &MachineDeployment) -> Option<k8s_openapi::jiff::Timestamp> {
    md.spec.rollout.as_ref()?.after.as_ref().map(|t| t.0)
}

fn revision(obj: &impl Resource) -> i64 {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// One MachineSet with the counts the rollout needs, computed from its Machines (not its status,
/// which may lag behind a Machine that just went away).
struct SetView {
    set: MachineSet,
    live: i32,
    ready: i32,
    available: i32,
}

impl SetView {
    fn state(&self) -> SetState {
        SetState {
            replicas: self.set.spec.replicas.unwrap_or(0),
            available: self.available,
        }
    }
}

async fn reconcile(md: &MachineDeployment, ctx: &Ctx) -> Result<Action, Error> {
    if md.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = md.namespace().unwrap_or_default();
    let api: Api<MachineDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cluster) = clusters.get_opt(&md.spec.cluster_name).await? else {
        return Ok(Action::requeue(ctx.timing.wait));
    };
    if ensure_cluster_metadata(&api, md, &cluster, false, None).await? {
        return Ok(Action::await_change());
    }
    let generation = md.meta().generation;
    let mut status = owned_status(md);
    status.observed_generation = generation;
    let paused = is_paused(Some(&cluster), md.meta());
    conditions::set(&mut status.conditions, conditions::paused(paused), generation);
    if paused {
        apply_status(&api, md, &owned_status(md), &status).await?;
        return Ok(Action::await_change());
    }

    let sets_api: Api<MachineSet> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = md.uid().unwrap_or_default();
    let mut views = Vec::new();
    for set in sets_api
        .list(&ListParams::default().labels(&format!("{LABEL_DEPLOYMENT_NAME}={}", md.name_any())))
        .await?
        .items
        .into_iter()
        .filter(|s| controlled_by(s, &uid))
    {
        let machines = owned_machines(&ctx.client, &set).await?;
        views.push(SetView {
            live: machines.iter().filter(|m| !is_deleting(m)).count() as i32,
            ready: machines.iter().filter(|m| is_ready(m)).count() as i32,
            available: machines.iter().filter(|m| is_available(m)).count() as i32,
            set,
        });
    }
    // Oldest revision first: old sets shrink in that order.
    views.sort_by_key(|v| (revision(&v.set), v.set.meta().creation_timestamp.clone()));
    let hash = template_hash(md);
    let new_index = views
        .iter()
        .position(|v| v.set.labels().get(LABEL_MACHINE_TEMPLATE_HASH) == Some(&hash));
    let desired = md.spec.replicas.unwrap_or(1).max(0);
    let strategy = md.spec.rollout.as_ref().and_then(|r| r.strategy.as_ref());
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let (surge, max_unavailable) = rollout::resolve_bounds(
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        desired,
    );
    let on_delete = strategy.is_some_and(|s| s.type_ == RolloutStrategyType::OnDelete);
    let md_paused = md.spec.paused == Some(true);
    let deleting_cluster = cluster.meta().deletion_timestamp.is_some();

    let new_index = match new_index {
        Some(i) => Some(i),
        // A paused MachineDeployment only scales; it starts no rollout.
        None if md_paused || deleting_cluster => None,
        None => {
            let set = create_set(md, &hash, &views, ctx, &ns, desired, surge, on_delete).await?;
            views.push(SetView {
                set,
                live: 0,
                ready: 0,
                available: 0,
            });
            Some(views.len() - 1)
        }
    };

    // Desired replicas per set, then one patch per set that changes.
    let mut next: Vec<i32> = views.iter().map(|v| v.state().replicas).collect();
    match new_index {
        None => {
            // Paused before any set exists for this template: scale the newest set.
            if !views.is_empty() {
                let others: i32 = views[..views.len() - 1].iter().map(|v| v.state().replicas).sum();
                next[views.len() - 1] = (desired - others).max(0);
            }
        }
        Some(n) => {
            let new = views[n].state();
            let old: Vec<SetState> = views
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != n)
                .map(|(_, v)| v.state())
                .collect();
            let old_idx: Vec<usize> = (0..views.len()).filter(|i| *i != n).collect();
            if old.is_empty() || md_paused {
                // Alone, the set takes every replica; paused, whatever the old sets leave.
                next[n] = (desired - old.iter().map(|s| s.replicas).sum::<i32>()).max(0);
            } else if on_delete {
                // Old sets shrink as the user deletes their Machines; the new set fills the gap.
                for (k, i) in old_idx.iter().enumerate() {
                    next[*i] = old[k].replicas.min(views[*i].live);
                }
                let old_total: i32 = old_idx.iter().map(|i| next[*i]).sum();
                next[n] = (desired - old_total).max(0);
            } else {
                next[n] = rollout::scale_up_new(desired, surge, &new, &old);
                let shrunk = rollout::scale_down_old(desired, max_unavailable, &new, &old);
                for (k, i) in old_idx.iter().enumerate() {
                    next[*i] = shrunk[k];
                }
            }
        }
    }
    for (v, n) in views.iter().zip(&next) {
        if v.state().replicas != *n {
            info!(set = %v.set.name_any(), from = v.state().replicas, to = n, "scaling machine set");
            let patch = json!({"spec": {"replicas": n}, "metadata": {"annotations": {
                ANNOTATION_DESIRED_REPLICAS: desired.to_string(),
                ANNOTATION_MAX_REPLICAS: (desired + surge).to_string(),
            }}});
            sets_api
                .patch(&v.set.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
    }
    // Template labels and annotations are not part of the set's identity: they reach the current
    // set in place (and from there its Machines), without a rollout.
    if let Some(n) = new_index {
        propagate_template_metadata(md, &views[n].set, &hash, &sets_api).await?;
    }
    // Old sets with nothing left go (v1beta2 keeps no revision history of empty sets).
    let mut kept = Vec::new();
    for (i, v) in views.iter().enumerate() {
        if Some(i) != new_index
            && next[i] == 0
            && v.live == 0
            && v.set.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0
        {
            let all = owned_machines(&ctx.client, &v.set).await?;
            if all.is_empty() {
                info!(set = %v.set.name_any(), "deleting old machine set");
                ctx.event(
                    md,
                    false,
                    "SuccessfulDelete",
                    format!("Deleted MachineSet {:?}", v.set.name_any()),
                )
                .await;
                delete_ignoring_missing(&sets_api, &v.set.name_any()).await?;
                continue;
            }
        }
        kept.push(i);
    }

    // Status from the Machines.
    let live: i32 = views.iter().map(|v| v.live).sum();
    let ready: i32 = views.iter().map(|v| v.ready).sum();
    let available: i32 = views.iter().map(|v| v.available).sum();
    let up_to_date = new_index.map(|i| views[i].live).unwrap_or(0);
    status.replicas = Some(live);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.up_to_date_replicas = Some(up_to_date);
    status.selector = Some(selector_string(&md.spec.selector));
    status.phase = Some(if live < desired {
        MachineDeploymentPhase::ScalingUp
    } else if live > desired {
        MachineDeploymentPhase::ScalingDown
    } else {
        MachineDeploymentPhase::Running
    });
    let min_available = desired - max_unavailable;
    conditions::set(
        &mut status.conditions,
        if available >= min_available {
            NewCondition::truthy(AVAILABLE, "Available")
        } else {
            NewCondition::falsy(
                AVAILABLE,
                "NotAvailable",
                format!("{available} available machines, {min_available} required"),
            )
        },
        generation,
    );
    let old_left = kept.iter().filter(|i| Some(**i) != new_index).count();
    conditions::set(
        &mut status.conditions,
        if old_left > 0 || up_to_date < desired {
            NewCondition::new(
                ROLLING_OUT,
                Status::True,
                "RollingOut",
                format!("{up_to_date} of {desired} machines up to date"),
            )
        } else {
            NewCondition::falsy(ROLLING_OUT, "NotRollingOut", "all machines are up to date")
        },
        generation,
    );
    if let Some(i) = new_index {
        let rev = revision(&views[i].set);
        if revision(md) != rev && rev > 0 {
            let patch = json!({"metadata": {"annotations": {ANNOTATION_REVISION: rev.to_string()}}});
            api.patch(&md.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
    }
    apply_status(&api, md, &owned_status(md), &status).await?;
    // Machine readiness reaches this controller through the sets' status; while rolling, also look
    // again on a timer so progress never depends on one event.
    if old_left > 0 || live != desired {
        return Ok(Action::requeue(ctx.timing.wait));
    }
    // A rollout scheduled for later starts on time without anything else happening.
    let until_after = rollout_after(md)
        .map(|a| a.duration_since(k8s_openapi::jiff::Timestamp::now()))
        .and_then(|d| std::time::Duration::try_from(d).ok())
        .filter(|d| !d.is_zero());
    Ok(until_after.map_or_else(Action::await_change, |d| {
        Action::requeue(d + std::time::Duration::from_millis(100))
    }))
}

/// The template metadata a MachineSet of `md` carries: the deployment's, plus the labels that tie
/// Machines to the deployment and the set.
fn set_template_metadata(md: &MachineDeployment, hash: &str) -> ObjectMetaTemplate {
    let template_meta = md.spec.template.metadata.clone().unwrap_or_default();
    let mut labels = template_meta.labels.clone().unwrap_or_default();
    labels.insert(LABEL_DEPLOYMENT_NAME.into(), md.name_any());
    labels.insert(LABEL_MACHINE_TEMPLATE_HASH.into(), hash.to_string());
    ObjectMetaTemplate {
        labels: Some(labels),
        annotations: template_meta.annotations,
    }
}

async fn propagate_template_metadata(
    md: &MachineDeployment,
    set: &MachineSet,
    hash: &str,
    sets_api: &Api<MachineSet>,
) -> Result<(), kube::Error> {
    let desired = set_template_metadata(md, hash);
    let current = set.spec.template.metadata.clone().unwrap_or_default();
    if current == desired {
        return Ok(());
    }
    // Keys the set had from an earlier template and the deployment no longer has are dropped.
    let empty = BTreeMap::new();
    let old_labels: Vec<&String> = current.labels.as_ref().unwrap_or(&empty).keys().collect();
    let old_annotations: Vec<&String> = current.annotations.as_ref().unwrap_or(&empty).keys().collect();
    let labels = controller::map_patch(
        current.labels.as_ref(),
        desired.labels.as_ref().unwrap_or(&empty),
        &old_labels,
    );
    let annotations = controller::map_patch(
        current.annotations.as_ref(),
        desired.annotations.as_ref().unwrap_or(&empty),
        &old_annotations,
    );
    if labels.is_none() && annotations.is_none() {
        return Ok(());
    }
    // Only the maps that change: a null here would remove the whole map.
    let mut metadata = serde_json::Map::new();
    if let Some(l) = labels {
        metadata.insert("labels".into(), l.into());
    }
    if let Some(a) = annotations {
        metadata.insert("annotations".into(), a.into());
    }
    let patch = json!({"spec": {"template": {"metadata": metadata}}});
    sets_api
        .patch(&set.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    info!(set = %set.name_any(), "propagated template labels and annotations");
    Ok(())
}

/// The MachineSet for the current template, named `<deployment>-<hash>` so that a retry after a
/// crash finds it instead of making a second one.
#[allow(clippy::too_many_arguments)]
async fn create_set(
    md: &MachineDeployment,
    hash: &str,
    views: &[SetView],
    ctx: &Ctx,
    ns: &str,
    desired: i32,
    surge: i32,
    on_delete: bool,
) -> Result<MachineSet, Error> {
    let base: String = md.name_any().chars().take(52).collect();
    let name = format!("{base}-{hash}");
    let template_metadata = set_template_metadata(md, hash);
    let mut set_labels = template_metadata.labels.clone().unwrap_or_default();
    set_labels.insert(LABEL_CLUSTER_NAME.into(), md.spec.cluster_name.clone());
    let mut selector = md.spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL_MACHINE_TEMPLATE_HASH.into(), hash.to_string());
    let next_revision = views.iter().map(|v| revision(&v.set)).max().unwrap_or(0) + 1;
    let old_total: i32 = views.iter().map(|v| v.state().replicas).sum();
    let initial = if views.is_empty() {
        desired
    } else if on_delete {
        (desired - old_total).max(0)
    } else {
        rollout::scale_up_new(
            desired,
            surge,
            &SetState {
                replicas: 0,
                available: 0,
            },
            &views.iter().map(SetView::state).collect::<Vec<_>>(),
        )
    };
    let mut template = md.spec.template.clone();
    template.metadata = Some(template_metadata);
    let set = MachineSet {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_string()),
            labels: Some(set_labels),
            annotations: Some(BTreeMap::from([
                (ANNOTATION_REVISION.to_string(), next_revision.to_string()),
                (ANNOTATION_DESIRED_REPLICAS.to_string(), desired.to_string()),
                (ANNOTATION_MAX_REPLICAS.to_string(), (desired + surge).to_string()),
            ])),
            owner_references: Some(vec![
                capstan_api::owner::owner_reference(md, true).expect("a stored MachineDeployment has a uid"),
            ]),
            ..Default::default()
        },
        spec: MachineSetSpec {
            cluster_name: md.spec.cluster_name.clone(),
            replicas: Some(initial),
            selector,
            template,
            deletion: md.spec.deletion.clone(),
            unknown: Default::default(),
        },
        status: None,
    };
    let api: Api<MachineSet> = Api::namespaced(ctx.client.clone(), ns);
    match api.create(&PostParams::default(), &set).await {
        Ok(created) => {
            ctx.event(md, false, "SuccessfulCreate", format!("Created MachineSet {name:?}"))
                .await;
            info!(set = %name, revision = next_revision, replicas = initial, "created machine set");
            Ok(created)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(api.get(&name).await?),
        Err(e) => Err(e.into()),
    }
}

fn owned_status(md: &MachineDeployment) -> MachineDeploymentStatus {
    let current = md.status.clone().unwrap_or_default();
    MachineDeploymentStatus {
        selector: current.selector,
        replicas: current.replicas,
        ready_replicas: current.ready_replicas,
        available_replicas: current.available_replicas,
        up_to_date_replicas: current.up_to_date_replicas,
        phase: current.phase,
        conditions: current.conditions,
        observed_generation: current.observed_generation,
        unknown: Default::default(),
    }
}
