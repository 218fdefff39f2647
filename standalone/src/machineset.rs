//! The MachineSet controller: keeps `replicas` Machines, each with a bootstrap config and an
//! InfraMachine cloned from the set's templates, and removes surplus Machines by the set's deletion
//! order.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use capstan_api::conditions::{self, NewCondition, Status};
use capstan_api::contract::{ANNOTATION_DELETE_MACHINE, LABEL_CLUSTER_NAME, LABEL_SET_NAME, is_paused};
use capstan_api::core::{
    Cluster, ContractVersionedObjectReference, DeletionOrder, LabelSelector, Machine, MachineSet, MachineSetStatus,
};
use capstan_runtime::ProviderContext;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::controller::{
    self, Ctx, Error, apply_status, controlled_by, delete_ignoring_missing, ensure_cluster_metadata,
};
use crate::external;
use crate::template::{self, CloneInput, CreateError};

const CONTROLLER: &str = "machineset";
const SCALING_UP: &str = "ScalingUp";
const SCALING_DOWN: &str = "ScalingDown";
const MACHINES_READY: &str = "MachinesReady";

pub async fn run(ctx: ProviderContext, state: Arc<Ctx>) {
    let sets: Api<MachineSet> = ctx.scope.api(ctx.client.clone());
    let machines: Api<Machine> = ctx.scope.api(ctx.client.clone());
    let controller = Controller::new(sets, ctx.scope.watcher_config())
        .with_config(ctx.concurrency.controller_config("machineset"))
        .owns(machines, ctx.scope.watcher_config());
    controller::run(&ctx, state, CONTROLLER, controller, |s, c| async move {
        reconcile(&s, &c).await
    })
    .await;
}

/// `matchLabels` and `matchExpressions` as a label selector string.
pub fn selector_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// The Machines this set controls, oldest first.
pub async fn owned_machines(client: &kube::Client, set: &MachineSet) -> Result<Vec<Machine>, kube::Error> {
    let api: Api<Machine> = Api::namespaced(client.clone(), &set.namespace().unwrap_or_default());
    let uid = set.uid().unwrap_or_default();
    let mut list: Vec<Machine> = api
        .list(&ListParams::default().labels(&selector_string(&set.spec.selector)))
        .await?
        .items
        .into_iter()
        .filter(|m| controlled_by(m, &uid))
        .collect();
    list.sort_by(|a, b| {
        a.meta()
            .creation_timestamp
            .cmp(&b.meta().creation_timestamp)
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    Ok(list)
}

pub fn is_deleting(m: &Machine) -> bool {
    m.meta().deletion_timestamp.is_some()
}

/// Ready and not on its way out.
pub fn is_ready(m: &Machine) -> bool {
    !is_deleting(m)
        && m.status
            .as_ref()
            .is_some_and(|s| conditions::is_true(&s.conditions, conditions::READY))
}

/// Available (Ready for minReadySeconds) and not on its way out.
pub fn is_available(m: &Machine) -> bool {
    !is_deleting(m)
        && m.status
            .as_ref()
            .is_some_and(|s| conditions::is_true(&s.conditions, crate::machine::AVAILABLE))
}

async fn reconcile(set: &MachineSet, ctx: &Ctx) -> Result<Action, Error> {
    if set.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = set.namespace().unwrap_or_default();
    let api: Api<MachineSet> = Api::namespaced(ctx.client.clone(), &ns);
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cluster) = clusters.get_opt(&set.spec.cluster_name).await? else {
        return Ok(Action::requeue(ctx.timing.wait));
    };
    if ensure_cluster_metadata(&api, set, &cluster, true, None).await? {
        return Ok(Action::await_change());
    }
    let generation = set.meta().generation;
    let mut status = owned_status(set);
    status.observed_generation = generation;
    let paused = is_paused(Some(&cluster), set.meta());
    conditions::set(&mut status.conditions, conditions::paused(paused), generation);
    if paused {
        apply_status(&api, set, &owned_status(set), &status).await?;
        return Ok(Action::await_change());
    }

    let machines = owned_machines(&ctx.client, set).await?;
    delete_orphaned_clones(ctx, set, &machines).await?;
    let live: Vec<&Machine> = machines.iter().filter(|m| !is_deleting(m)).collect();
    propagate_template_metadata(set, ctx, &live).await?;
    let desired = set.spec.replicas.unwrap_or(1).max(0) as usize;
    let mut requeue = None;
    // A Machine on its way out still counts until it is gone, as upstream counts it: replacing it
    // at once would race the MachineDeployment, which shrinks an old set (OnDelete) when it sees
    // one of its Machines deleted.
    if machines.len() < desired && cluster.meta().deletion_timestamp.is_none() {
        let missing = desired - machines.len();
        let mut failed = None;
        for _ in 0..missing {
            match create_machine(set, ctx, &ns).await {
                Ok(name) => {
                    ctx.event(set, false, "SuccessfulCreate", format!("Created machine {name:?}"))
                        .await
                }
                Err(e) => {
                    ctx.event(set, true, "FailedCreate", format!("Failed to create machine: {e}"))
                        .await;
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            Some(CreateError::Kube(e)) => return Err(e.into()),
            Some(CreateError::Template(e)) => {
                conditions::set(
                    &mut status.conditions,
                    NewCondition::falsy(SCALING_UP, "CannotCreateMachines", e.to_string()),
                    generation,
                );
                requeue = Some(ctx.timing.wait);
            }
            None => {
                info!(count = missing, "created machines");
                conditions::set(
                    &mut status.conditions,
                    NewCondition::new(
                        SCALING_UP,
                        Status::True,
                        "ScalingUp",
                        format!("scaling up from {} to {desired} replicas", live.len()),
                    ),
                    generation,
                );
            }
        }
    } else {
        conditions::set(
            &mut status.conditions,
            NewCondition::falsy(SCALING_UP, "NotScalingUp", "not scaling up"),
            generation,
        );
    }
    if live.len() > desired {
        let victims = pick_victims(&live, live.len() - desired, deletion_order(set));
        let machines_api: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
        for m in &victims {
            delete_ignoring_missing(&machines_api, &m.name_any()).await?;
            ctx.event(
                set,
                false,
                "SuccessfulDelete",
                format!("Deleted machine {:?}", m.name_any()),
            )
            .await;
        }
        info!(machines = ?victims.iter().map(|m| m.name_any()).collect::<Vec<_>>(), "scaled down");
        conditions::set(
            &mut status.conditions,
            NewCondition::new(
                SCALING_DOWN,
                Status::True,
                "ScalingDown",
                format!("scaling down from {} to {desired} replicas", live.len()),
            ),
            generation,
        );
    } else {
        conditions::set(
            &mut status.conditions,
            NewCondition::falsy(SCALING_DOWN, "NotScalingDown", "not scaling down"),
            generation,
        );
    }

    let ready = machines.iter().filter(|m| is_ready(m)).count() as i32;
    status.replicas = Some(live.len() as i32);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(machines.iter().filter(|m| is_available(m)).count() as i32);
    // The set's template never changes under its Machines (a new template means a new set).
    status.up_to_date_replicas = Some(live.len() as i32);
    status.selector = Some(selector_string(&set.spec.selector));
    let not_ready: Vec<String> = live.iter().filter(|m| !is_ready(m)).map(|m| m.name_any()).collect();
    conditions::set(
        &mut status.conditions,
        if not_ready.is_empty() {
            NewCondition::truthy(MACHINES_READY, "Ready")
        } else {
            NewCondition::falsy(
                MACHINES_READY,
                "NotReady",
                format!("not ready: {}", not_ready.join(", ")),
            )
        },
        generation,
    );
    apply_status(&api, set, &owned_status(set), &status).await?;
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

fn deletion_order(set: &MachineSet) -> DeletionOrder {
    set.spec
        .deletion
        .as_ref()
        .and_then(|d| d.order.clone())
        .unwrap_or(DeletionOrder::Random)
}

/// Which Machines go first, as upstream ranks them: marked for deletion, then unhealthy (no node
/// or not ready), then by the set's order.
pub fn pick_victims<'a>(machines: &[&'a Machine], count: usize, order: DeletionOrder) -> Vec<&'a Machine> {
    let rank = |m: &Machine| -> u8 {
        if m.annotations().contains_key(ANNOTATION_DELETE_MACHINE) {
            3
        } else if m.status.as_ref().and_then(|s| s.node_ref.as_ref()).is_none() || !is_ready(m) {
            2
        } else {
            1
        }
    };
    let mut ranked: Vec<(&Machine, u8, u64)> = machines
        .iter()
        .map(|m| {
            let tiebreak = match order {
                DeletionOrder::Random | DeletionOrder::Other(_) => fastrand::u64(..),
                _ => 0,
            };
            (*m, rank(m), tiebreak)
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.1.cmp(&a.1).then_with(|| match order {
            DeletionOrder::Newest => b.0.meta().creation_timestamp.cmp(&a.0.meta().creation_timestamp),
            DeletionOrder::Oldest => a.0.meta().creation_timestamp.cmp(&b.0.meta().creation_timestamp),
            // An order a newer Cluster API added: upstream's default until we know it.
            DeletionOrder::Random | DeletionOrder::Other(_) => a.2.cmp(&b.2),
        })
    });
    ranked.into_iter().take(count).map(|(m, _, _)| m).collect()
}

/// The set's template labels and annotations reach its Machines in place (added or updated;
/// labels others put on a Machine stay).
async fn propagate_template_metadata(set: &MachineSet, ctx: &Ctx, machines: &[&Machine]) -> Result<(), kube::Error> {
    let meta = set.spec.template.metadata.clone().unwrap_or_default();
    let (labels, annotations) = (meta.labels.unwrap_or_default(), meta.annotations.unwrap_or_default());
    let api: Api<Machine> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    for m in machines {
        let l = controller::map_patch(m.meta().labels.as_ref(), &labels, &[]);
        let a = controller::map_patch(m.meta().annotations.as_ref(), &annotations, &[]);
        if l.is_none() && a.is_none() {
            continue;
        }
        // Only the maps that change: a null here would remove the whole map.
        let mut metadata = serde_json::Map::new();
        if let Some(l) = l {
            metadata.insert("labels".into(), l.into());
        }
        if let Some(a) = a {
            metadata.insert("annotations".into(), a.into());
        }
        let patch = serde_json::json!({ "metadata": metadata });
        api.patch(
            &m.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}

/// `<set>-<5 random characters>`, as upstream's name generator (no vowels, no look-alikes).
fn machine_name(set: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let base: String = set.chars().take(57).collect();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    format!("{base}-{suffix}")
}

/// Clones the bootstrap config and InfraMachine, then creates the Machine. A failed Machine create
/// takes its clones back; a crash in between leaves clones that [`delete_orphaned_clones`] finds.
async fn create_machine(set: &MachineSet, ctx: &Ctx, ns: &str) -> Result<String, CreateError> {
    let name = machine_name(&set.name_any());
    let tmpl = &set.spec.template;
    let mut labels: BTreeMap<String, String> = tmpl
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(LABEL_SET_NAME.into(), set.name_any());
    labels.insert(LABEL_CLUSTER_NAME.into(), set.spec.cluster_name.clone());
    let annotations = tmpl
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    let set_owner = capstan_api::owner::owner_reference(set, false).expect("a stored MachineSet has a uid");
    let base = CloneInput {
        namespace: ns,
        template: &tmpl.spec.infrastructure_ref,
        name: &name,
        cluster_name: &set.spec.cluster_name,
        labels: &labels,
        annotations: &annotations,
        owner: set_owner,
    };
    let mut spec = tmpl.spec.clone();
    spec.cluster_name = set.spec.cluster_name.clone();
    let mut created = Vec::new();
    let result = async {
        if let Some(r) = &tmpl.spec.bootstrap.config_ref {
            let cloned = template::create(
                &ctx.client,
                &CloneInput {
                    template: r,
                    ..base.clone()
                },
            )
            .await?;
            created.push(cloned.clone());
            spec.bootstrap.config_ref = Some(cloned);
        }
        let infra = template::create(&ctx.client, &base).await?;
        created.push(infra.clone());
        spec.infrastructure_ref = infra;
        let machine = Machine {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.to_string()),
                labels: Some(labels.clone()),
                annotations: Some(annotations.clone()).filter(|a| !a.is_empty()),
                owner_references: Some(vec![
                    capstan_api::owner::owner_reference(set, true).expect("a stored MachineSet has a uid"),
                ]),
                ..Default::default()
            },
            spec: spec.clone(),
            status: None,
        };
        let api: Api<Machine> = Api::namespaced(ctx.client.clone(), ns);
        api.create(&PostParams::default(), &machine).await?;
        Ok::<String, CreateError>(name.clone())
    }
    .await;
    if result.is_err() {
        for r in &created {
            if let Err(e) = delete_reference(ctx, ns, r).await {
                warn!(kind = %r.kind, name = %r.name, error = %e, "cannot remove the clone of a failed machine");
            }
        }
    }
    result
}

async fn delete_reference(ctx: &Ctx, ns: &str, r: &ContractVersionedObjectReference) -> Result<(), Error> {
    let ar = external::resolve(&ctx.client, r).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
    delete_ignoring_missing(&api, &r.name).await?;
    Ok(())
}

/// Clones made for a Machine that was never created (the process died in between) are deleted.
async fn delete_orphaned_clones(ctx: &Ctx, set: &MachineSet, machines: &[Machine]) -> Result<(), Error> {
    let ns = set.namespace().unwrap_or_default();
    let names: HashSet<String> = machines.iter().map(|m| m.name_any()).collect();
    let uid = set.uid().unwrap_or_default();
    let spec = &set.spec.template.spec;
    let templates = [Some(&spec.infrastructure_ref), spec.bootstrap.config_ref.as_ref()];
    for t in templates.into_iter().flatten() {
        let Some(kind) = template::cloned_kind(&t.kind) else {
            continue;
        };
        let r = ContractVersionedObjectReference::new(t.api_group.clone(), kind, "");
        let Ok(ar) = external::resolve(&ctx.client, &r).await else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
        let lp = ListParams::default().labels(&format!("{LABEL_SET_NAME}={}", set.name_any()));
        for obj in api.list(&lp).await?.items {
            let ours = obj.owner_references().iter().any(|o| o.uid == uid);
            if ours && !names.contains(&obj.name_any()) && obj.metadata.deletion_timestamp.is_none() {
                // A Machine of that name may exist but be controlled by someone else: leave it.
                let machines: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
                if machines.get_opt(&obj.name_any()).await?.is_none() {
                    info!(kind = %ar.kind, name = %obj.name_any(), "deleting a clone whose machine was never created");
                    delete_ignoring_missing(&api, &obj.name_any()).await?;
                }
            }
        }
    }
    Ok(())
}

fn owned_status(set: &MachineSet) -> MachineSetStatus {
    let current = set.status.clone().unwrap_or_default();
    MachineSetStatus {
        selector: current.selector,
        replicas: current.replicas,
        ready_replicas: current.ready_replicas,
        available_replicas: current.available_replicas,
        up_to_date_replicas: current.up_to_date_replicas,
        conditions: current.conditions,
        observed_generation: current.observed_generation,
        unknown: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn machine(name: &str, age_s: i64, ready: bool, marked: bool) -> Machine {
        let created = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 - age_s).unwrap();
        let mut m: Machine = serde_json::from_value(json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
            "metadata": {"name": name},
            "spec": {"clusterName": "c", "bootstrap": {"dataSecretName": "s"},
                     "infrastructureRef": {"apiGroup": "g", "kind": "K", "name": name}}
        }))
        .unwrap();
        m.metadata.creation_timestamp = Some(Time(created));
        if marked {
            m.metadata.annotations = Some(BTreeMap::from([(ANNOTATION_DELETE_MACHINE.into(), "yes".into())]));
        }
        if ready {
            m.status = Some(
                serde_json::from_value(json!({
                    "nodeRef": {"name": name},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "Ready",
                                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]
                }))
                .unwrap(),
            );
        }
        m
    }

    fn names(v: Vec<&Machine>) -> Vec<String> {
        v.into_iter().map(|m| m.name_any()).collect()
    }

    #[test]
    fn deletion_order_puts_marked_then_unhealthy_first() {
        let old = machine("old", 300, true, false);
        let mid = machine("mid", 200, true, false);
        let new = machine("new", 100, true, false);
        let broken = machine("broken", 250, false, false);
        let marked = machine("marked", 400, true, true);
        let all = [&old, &mid, &new, &broken, &marked];
        assert_eq!(
            names(pick_victims(&all, 3, DeletionOrder::Newest)),
            ["marked", "broken", "new"]
        );
        assert_eq!(
            names(pick_victims(&all, 3, DeletionOrder::Oldest)),
            ["marked", "broken", "old"]
        );
        let random = names(pick_victims(&all, 3, DeletionOrder::Random));
        assert_eq!(&random[..2], ["marked", "broken"]);
        assert!(["old", "mid", "new"].contains(&random[2].as_str()));
        let healthy = [&old, &mid, &new];
        assert_eq!(names(pick_victims(&healthy, 1, DeletionOrder::Newest)), ["new"]);
    }

    #[test]
    fn selectors_render_as_label_queries() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"a": "1", "b": "2"},
            "matchExpressions": [{"key": "c", "operator": "In", "values": ["x", "y"]},
                                 {"key": "d", "operator": "DoesNotExist"}]
        }))
        .unwrap();
        assert_eq!(selector_string(&sel), "a=1,b=2,c in (x,y),!d");
    }
}
