//! The Machine controller: owns the Machine's bootstrap config and InfraMachine, carries their
//! results (bootstrap data secret, providerID, addresses, failure domain) into the Machine, finds
//! its Node in the workload cluster, and on deletion removes the InfraMachine, the bootstrap
//! config and the Node before letting the Machine go.

use std::sync::Arc;
use std::time::Duration;

use capstan_api::conditions::{self, NewCondition, Status};
use capstan_api::contract::{LABEL_CLUSTER_NAME, LABEL_CONTROL_PLANE, is_paused};
use capstan_api::core::{Cluster, Machine, MachineAddress, MachineNodeReference, MachinePhase, MachineStatus};
use capstan_runtime::{ProviderContext, finalizer};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::FIELD_MANAGER;
use crate::controller::{self, Ctx, Error, apply_status, ensure_cluster_metadata};
use crate::external::{self, ExternalError};

pub const FINALIZER: &str = "machine.cluster.x-k8s.io";
const CONTROLLER: &str = "machine";

pub const BOOTSTRAP_CONFIG_READY: &str = "BootstrapConfigReady";
pub const INFRASTRUCTURE_READY: &str = "InfrastructureReady";
pub const NODE_READY: &str = "NodeReady";
pub const NODE_HEALTHY: &str = "NodeHealthy";
pub const AVAILABLE: &str = "Available";
/// `status.nodeInfo`, copied from the Node as upstream does.
const NODE_INFO: &str = "nodeInfo";

/// Upstream's default bound on deleting the Node of a deleted Machine.
const NODE_DELETION_TIMEOUT: Duration = Duration::from_secs(10);
/// How soon a failed Node deletion is tried again.
const NODE_DELETION_RETRY: Duration = Duration::from_secs(2);

pub async fn run(ctx: ProviderContext, state: Arc<Ctx>) {
    let machines: Api<Machine> = ctx.scope.api(ctx.client.clone());
    let controller =
        Controller::new(machines, ctx.scope.watcher_config()).with_config(ctx.concurrency.controller_config("machine"));
    controller::run(&ctx, state, CONTROLLER, controller, |m, c| async move {
        reconcile(&m, &c).await
    })
    .await;
}

/// What the reconcile learnt about a dependent object.
struct Dependent {
    ready: bool,
    condition: NewCondition,
}

async fn reconcile(machine: &Machine, ctx: &Ctx) -> Result<Action, Error> {
    let ns = machine.namespace().unwrap_or_default();
    let api: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = clusters.get_opt(&machine.spec.cluster_name).await?;

    if machine.meta().deletion_timestamp.is_some() {
        return delete(machine, cluster.as_ref(), ctx, &api).await;
    }
    let Some(cluster) = cluster else {
        // Upstream waits for the Cluster too; the Cluster watch brings the Machine back.
        return Ok(Action::requeue(ctx.timing.wait));
    };
    if ensure_cluster_metadata(&api, machine, &cluster, true, Some(FINALIZER)).await? {
        return Ok(Action::await_change());
    }

    let generation = machine.meta().generation;
    let mut status = owned_status(machine);
    status.observed_generation = generation;
    let paused = is_paused(Some(&cluster), machine.meta());
    conditions::set(&mut status.conditions, conditions::paused(paused), generation);
    if paused {
        apply_status(&api, machine, &owned_status(machine), &status).await?;
        return Ok(Action::await_change());
    }

    let mut waiting = false;
    let bootstrap = reconcile_bootstrap(machine, &cluster, ctx, &api, &ns).await?;
    waiting |= !bootstrap.ready;
    conditions::set(&mut status.conditions, bootstrap.condition, generation);

    let (infra, provider_id) = reconcile_infrastructure(machine, &cluster, ctx, &api, &ns, &mut status).await?;
    waiting |= !infra.ready;
    conditions::set(&mut status.conditions, infra.condition, generation);

    let init = status.initialization.get_or_insert_with(Default::default);
    // Both flags only ever turn true (upstream never resets them).
    init.bootstrap_data_secret_created = Some(init.bootstrap_data_secret_created == Some(true) || bootstrap.ready);
    init.infrastructure_provisioned = Some(init.infrastructure_provisioned == Some(true) || infra.ready);

    let node = match &provider_id {
        Some(pid) => reconcile_node(machine, ctx, &ns, pid, &mut status).await,
        None => Dependent {
            ready: false,
            condition: NewCondition::new(
                NODE_HEALTHY,
                Status::Unknown,
                "WaitingForProviderID",
                "waiting for the infrastructure provider to report a providerID",
            ),
        },
    };
    waiting |= !node.ready;
    conditions::set(&mut status.conditions, node.condition, generation);

    let phase = if status.node_ref.is_some() {
        MachinePhase::Running
    } else if provider_id.is_some() && infra.ready {
        MachinePhase::Provisioned
    } else if bootstrap.ready {
        MachinePhase::Provisioning
    } else {
        MachinePhase::Pending
    };
    set_phase(&mut status, phase);
    let requeue_available = set_ready_and_available(machine, &mut status);
    apply_status(&api, machine, &owned_status(machine), &status).await?;

    // Provider kinds and Nodes are not watched: poll while waiting on them, resync when settled.
    let next = if waiting { ctx.timing.wait } else { ctx.timing.resync };
    Ok(Action::requeue(requeue_available.map_or(next, |r| r.min(next))))
}

async fn reconcile_bootstrap(
    machine: &Machine,
    cluster: &Cluster,
    ctx: &Ctx,
    api: &Api<Machine>,
    ns: &str,
) -> Result<Dependent, Error> {
    let Some(r) = &machine.spec.bootstrap.config_ref else {
        return Ok(match machine.data_secret_name() {
            Some(_) => Dependent {
                ready: true,
                condition: NewCondition::truthy(BOOTSTRAP_CONFIG_READY, "DataSecretProvided"),
            },
            None => Dependent {
                ready: false,
                condition: NewCondition::falsy(
                    BOOTSTRAP_CONFIG_READY,
                    "InvalidBootstrapConfig",
                    "spec.bootstrap has neither configRef nor dataSecretName",
                ),
            },
        });
    };
    let config = match external::get(&ctx.client, ns, r).await {
        Err(ExternalError::Kube(e)) => return Err(e.into()),
        Err(e) => {
            return Ok(Dependent {
                ready: false,
                condition: NewCondition::falsy(BOOTSTRAP_CONFIG_READY, "InvalidBootstrapConfigRef", e.to_string()),
            });
        }
        Ok((_, None)) => {
            return Ok(Dependent {
                ready: machine.data_secret_name().is_some(),
                condition: NewCondition::falsy(
                    BOOTSTRAP_CONFIG_READY,
                    "BootstrapConfigDoesNotExist",
                    format!("{} {} does not exist", r.kind, r.name),
                ),
            });
        }
        Ok((ar, Some(config))) => {
            adopt_dependent(ctx, &ar, &config, machine, cluster).await?;
            config
        }
    };
    let status = &config.data["status"];
    let created = status["initialization"]["dataSecretCreated"]
        .as_bool()
        .or_else(|| status["ready"].as_bool())
        .unwrap_or(false);
    let secret = status["dataSecretName"].as_str().filter(|s| !s.is_empty());
    match (created, secret) {
        (true, Some(secret)) => {
            if machine.data_secret_name() != Some(secret) {
                let patch = json!({"spec": {"bootstrap": {"dataSecretName": secret}}});
                api.patch(&machine.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            Ok(Dependent {
                ready: true,
                condition: NewCondition::truthy(BOOTSTRAP_CONFIG_READY, "Ready"),
            })
        }
        _ => {
            let (st, reason, message) = external::ready_condition(&config).unwrap_or((
                Status::False,
                "BootstrapConfigNotReady".into(),
                format!("waiting for {} {} to create the bootstrap data secret", r.kind, r.name),
            ));
            Ok(Dependent {
                // Once the data secret name was copied, a config that is later not ready (e.g.
                // paused) does not take the Machine back.
                ready: machine.data_secret_name().is_some(),
                condition: NewCondition::new(
                    BOOTSTRAP_CONFIG_READY,
                    if st == Status::True { Status::False } else { st },
                    &reason,
                    message,
                ),
            })
        }
    }
}

/// Returns the InfraMachine's state and the providerID once it is provisioned.
async fn reconcile_infrastructure(
    machine: &Machine,
    cluster: &Cluster,
    ctx: &Ctx,
    api: &Api<Machine>,
    ns: &str,
    status: &mut MachineStatus,
) -> Result<(Dependent, Option<String>), Error> {
    let r = &machine.spec.infrastructure_ref;
    let infra = match external::get(&ctx.client, ns, r).await {
        Err(ExternalError::Kube(e)) => return Err(e.into()),
        Err(e) => {
            let c = NewCondition::falsy(INFRASTRUCTURE_READY, "InvalidInfrastructureRef", e.to_string());
            return Ok((
                Dependent {
                    ready: false,
                    condition: c,
                },
                None,
            ));
        }
        Ok((_, None)) => {
            let was = machine
                .status
                .as_ref()
                .and_then(|s| s.initialization.as_ref())
                .and_then(|i| i.infrastructure_provisioned)
                == Some(true);
            let (reason, message) = if was {
                ("InfrastructureDeleted", format!("{} {} was deleted", r.kind, r.name))
            } else {
                (
                    "InfrastructureDoesNotExist",
                    format!("{} {} does not exist", r.kind, r.name),
                )
            };
            return Ok((
                Dependent {
                    ready: false,
                    condition: NewCondition::falsy(INFRASTRUCTURE_READY, reason, message),
                },
                machine.spec.provider_id.clone(),
            ));
        }
        Ok((ar, Some(infra))) => {
            adopt_dependent(ctx, &ar, &infra, machine, cluster).await?;
            infra
        }
    };
    let provisioned = external::provisioned(&infra);
    let provider_id = infra.data["spec"]["providerID"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if provisioned {
        if let Ok(addresses) = serde_json::from_value::<Vec<MachineAddress>>(infra.data["status"]["addresses"].clone())
        {
            status.addresses = Some(addresses).filter(|a| !a.is_empty());
        }
        let fd = infra.data["spec"]["failureDomain"]
            .as_str()
            .or_else(|| infra.data["status"]["failureDomain"].as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if fd.is_some() {
            status.failure_domain = fd;
        }
        if let Some(pid) = &provider_id
            && machine.spec.provider_id.as_ref() != Some(pid)
        {
            let patch = json!({"spec": {"providerID": pid}});
            api.patch(&machine.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
    }
    let ready = provisioned && provider_id.is_some();
    let condition = match external::ready_condition(&infra) {
        Some((st, reason, message)) => NewCondition::new(INFRASTRUCTURE_READY, st, &reason, message),
        None if ready => NewCondition::truthy(INFRASTRUCTURE_READY, "Ready"),
        None => NewCondition::falsy(
            INFRASTRUCTURE_READY,
            "InfrastructureNotReady",
            format!("waiting for {} {} to be provisioned", r.kind, r.name),
        ),
    };
    Ok((Dependent { ready, condition }, provider_id.filter(|_| provisioned)))
}

/// The Machine controls its bootstrap config and InfraMachine.
async fn adopt_dependent(
    ctx: &Ctx,
    ar: &kube::core::ApiResource,
    obj: &DynamicObject,
    machine: &Machine,
    cluster: &Cluster,
) -> Result<(), kube::Error> {
    // Something else controlling it (a control-plane provider) keeps control.
    let controlled_elsewhere = capstan_api::owner::controller_owner(&obj.metadata)
        .is_some_and(|o| Some(&o.uid) != machine.meta().uid.as_ref());
    let Some(owner) = capstan_api::owner::owner_reference(machine, !controlled_elsewhere) else {
        return Ok(());
    };
    external::adopt(&ctx.client, ar, obj, owner, &cluster.name_any()).await?;
    Ok(())
}

/// A Node without providerID that is this Machine's: by name (the usual hostname) or by one of
/// its addresses.
fn node_without_provider_id<'a>(
    nodes: &'a [Arc<Node>],
    machine: &Machine,
    status: &MachineStatus,
) -> Option<&'a Arc<Node>> {
    let ours: Vec<&str> = status.addresses.iter().flatten().map(|a| a.address.as_str()).collect();
    nodes.iter().find(|n| {
        n.name_any() == machine.name_any()
            || n.status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .is_some_and(|a| a.iter().any(|a| ours.contains(&a.address.as_str())))
    })
}

/// Finds the Node with the Machine's providerID in the workload cluster.
async fn reconcile_node(
    machine: &Machine,
    ctx: &Ctx,
    ns: &str,
    provider_id: &str,
    status: &mut MachineStatus,
) -> Dependent {
    let unknown = |reason: &str, message: String| Dependent {
        ready: false,
        condition: NewCondition::new(NODE_HEALTHY, Status::Unknown, reason, message),
    };
    let (client, nodes) = match ctx.workload.nodes(&ctx.client, ns, &machine.spec.cluster_name).await {
        Ok(w) => w,
        Err(e) => return unknown("WaitingForKubeconfig", e.to_string()),
    };
    if !nodes.is_ready() {
        // The index is (re)listing — a restarted manager, a new kubeconfig: keep what the last
        // pass found rather than flip every running Machine's health (and availability) at once.
        if status.node_ref.is_some()
            && let Some(last) = machine
                .status
                .as_ref()
                .and_then(|s| conditions::get(&s.conditions, NODE_HEALTHY))
        {
            let st = Status::parse(&last.status);
            return Dependent {
                ready: st == Status::True,
                condition: NewCondition::new(NODE_HEALTHY, st, &last.reason, last.message.clone()),
            };
        }
        let why = nodes.error().unwrap_or_else(|| "no answer yet".into());
        return unknown(
            "InspectionFailed",
            format!("cannot list Nodes in the workload cluster: {why}"),
        );
    }
    let found = nodes.by_provider_id(provider_id);
    // A kubelet started without --provider-id registers a Node nobody can match; say so instead
    // of waiting forever without a clue.
    if found.is_none()
        && status.node_ref.is_none()
        && let Some(node) = node_without_provider_id(&nodes.without_provider_id(), machine, status)
    {
        return Dependent {
            ready: false,
            condition: NewCondition::falsy(
                NODE_HEALTHY,
                "NodeProviderIDMissing",
                format!(
                    "Node {:?} registered without spec.providerID, so it cannot be matched to {provider_id}: \
                     the kubelet needs --provider-id (kubeletExtraArgs provider-id in the KubeadmConfig)",
                    node.name_any()
                ),
            ),
        };
    }
    let Some(node) = found else {
        return if status.node_ref.is_some() {
            Dependent {
                ready: false,
                condition: NewCondition::falsy(NODE_HEALTHY, "NodeDeleted", "the Node of this Machine was deleted"),
            }
        } else {
            unknown(
                "NodeDoesNotExist",
                format!("waiting for a Node with providerID {provider_id}"),
            )
        };
    };
    if status.node_ref.as_ref().map(|r| r.name.as_str()) != Some(node.name_any().as_str()) {
        ctx.event(
            machine,
            false,
            "SuccessfulSetNodeRef",
            format!("Node {:?} has providerID {provider_id}", node.name_any()),
        )
        .await;
    }
    status.node_ref = Some(MachineNodeReference { name: node.name_any() });
    if machine.meta().deletion_timestamp.is_none()
        && let Err(e) = crate::node_sync::sync(&client, machine, &node).await
    {
        // Retried on the next pass; a conflict only means the Node moved on meanwhile.
        warn!(node = %node.name_any(), error = %e, "could not sync the Machine's labels and taints to its Node");
    }
    if let Some(info) = node.status.as_ref().and_then(|s| s.node_info.as_ref())
        && let Ok(v) = serde_json::to_value(info)
    {
        status.unknown.insert(NODE_INFO.into(), v);
    }
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    let generation = machine.meta().generation;
    match ready {
        Some(c) if c.status == "True" => {
            conditions::set(
                &mut status.conditions,
                NewCondition::truthy(NODE_READY, "NodeReady"),
                generation,
            );
            Dependent {
                ready: true,
                condition: NewCondition::truthy(NODE_HEALTHY, "NodeHealthy"),
            }
        }
        other => {
            let message = other
                .and_then(|c| c.message.clone())
                .unwrap_or_else(|| format!("Node {} is not ready", node.name_any()));
            conditions::set(
                &mut status.conditions,
                NewCondition::falsy(NODE_READY, "NodeNotReady", message.clone()),
                generation,
            );
            Dependent {
                ready: false,
                condition: NewCondition::falsy(NODE_HEALTHY, "NodeNotHealthy", message),
            }
        }
    }
}

fn set_phase(status: &mut MachineStatus, phase: MachinePhase) {
    if status.phase.as_ref() != Some(&phase) {
        status.phase = Some(phase);
        status.last_updated = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    }
}

/// `Ready` when bootstrap, infrastructure and node are; `Available` once Ready has held for
/// `minReadySeconds`. Returns when to look again for Available.
fn set_ready_and_available(machine: &Machine, status: &mut MachineStatus) -> Option<Duration> {
    let generation = machine.meta().generation;
    let pending: Vec<&str> = [BOOTSTRAP_CONFIG_READY, INFRASTRUCTURE_READY, NODE_HEALTHY]
        .into_iter()
        .filter(|t| !conditions::is_true(&status.conditions, t))
        .collect();
    let ready = if pending.is_empty() {
        NewCondition::truthy(conditions::READY, "Ready")
    } else {
        NewCondition::falsy(
            conditions::READY,
            "NotReady",
            format!("not yet: {}", pending.join(", ")),
        )
    };
    conditions::set(&mut status.conditions, ready, generation);
    let min_ready = Duration::from_secs(machine.spec.min_ready_seconds.unwrap_or(0).max(0) as u64);
    let ready_for = conditions::get(&status.conditions, conditions::READY)
        .filter(|c| c.status == "True")
        .map(|c| {
            let since = c.last_transition_time.0;
            let now = k8s_openapi::jiff::Timestamp::now();
            Duration::try_from(now.duration_since(since)).unwrap_or_default()
        });
    match ready_for {
        Some(d) if d >= min_ready => {
            conditions::set(
                &mut status.conditions,
                NewCondition::truthy(AVAILABLE, "Available"),
                generation,
            );
            None
        }
        Some(d) => {
            conditions::set(
                &mut status.conditions,
                NewCondition::falsy(AVAILABLE, "NotAvailable", "Ready for less than minReadySeconds"),
                generation,
            );
            Some(min_ready - d)
        }
        None => {
            conditions::set(
                &mut status.conditions,
                NewCondition::falsy(AVAILABLE, "NotReady", "the Machine is not Ready"),
                generation,
            );
            None
        }
    }
}

/// The fields of the Machine's status this controller owns, as they are now.
fn owned_status(machine: &Machine) -> MachineStatus {
    let current = machine.status.clone().unwrap_or_default();
    MachineStatus {
        initialization: current.initialization,
        node_ref: current.node_ref,
        addresses: current.addresses,
        failure_domain: current.failure_domain,
        phase: current.phase,
        last_updated: current.last_updated,
        conditions: current.conditions,
        observed_generation: current.observed_generation,
        // The only unmodelled field this controller writes.
        unknown: current
            .unknown
            .get(NODE_INFO)
            .map(|v| [(NODE_INFO.to_string(), v.clone())].into())
            .unwrap_or_default(),
    }
}

/// Deletes the InfraMachine and the bootstrap config, waits for them to go, deletes the Node (best
/// effort, bounded), then drops the finalizer.
async fn delete(machine: &Machine, cluster: Option<&Cluster>, ctx: &Ctx, api: &Api<Machine>) -> Result<Action, Error> {
    if !machine.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let ns = machine.namespace().unwrap_or_default();
    let generation = machine.meta().generation;
    let mut status = owned_status(machine);
    set_phase(&mut status, MachinePhase::Deleting);
    conditions::set(
        &mut status.conditions,
        NewCondition::falsy(conditions::READY, "Deleting", "the Machine is being deleted"),
        generation,
    );
    conditions::set(
        &mut status.conditions,
        NewCondition::falsy(AVAILABLE, "Deleting", "the Machine is being deleted"),
        generation,
    );

    let mut remaining = Vec::new();
    let refs = [
        Some(&machine.spec.infrastructure_ref),
        machine.spec.bootstrap.config_ref.as_ref(),
    ];
    for r in refs.into_iter().flatten() {
        match external::get(&ctx.client, &ns, r).await {
            Ok((ar, Some(obj))) => {
                if obj.metadata.deletion_timestamp.is_none() {
                    let dapi: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
                    dapi.delete(&obj.name_any(), &DeleteParams::background()).await?;
                }
                remaining.push(format!("{} {}", r.kind, r.name));
            }
            Ok((_, None)) | Err(ExternalError::CrdMissing(_)) | Err(ExternalError::NoContractLabel { .. }) => {}
            Err(ExternalError::Kube(e)) => return Err(e.into()),
        }
    }
    if !remaining.is_empty() {
        conditions::set(
            &mut status.conditions,
            NewCondition::new(
                conditions::DELETING,
                Status::True,
                "WaitingForInfrastructureDeletion",
                format!("waiting for {} to be deleted", remaining.join(", ")),
            ),
            generation,
        );
        apply_status(api, machine, &owned_status(machine), &status).await?;
        return Ok(Action::requeue(ctx.timing.wait));
    }

    if let Some(node) = machine.status.as_ref().and_then(|s| s.node_ref.as_ref())
        && let NodeDeletion::Retry(after) = delete_node(machine, cluster, ctx, &ns, &node.name).await
    {
        return Ok(Action::requeue(after));
    }
    finalizer::remove(api, machine, FINALIZER, FIELD_MANAGER).await?;
    info!("machine deleted");
    Ok(Action::await_change())
}

/// Whether the Machine may go now or its Node deletion is tried again later.
enum NodeDeletion {
    Done,
    Retry(Duration),
}

/// As upstream: skipped when the whole cluster goes or this is the last control-plane Machine;
/// tried again until the node deletion timeout (counted from the Machine's deletion) has passed,
/// then given up on with a Warning Event, and the Machine goes without it.
async fn delete_node(machine: &Machine, cluster: Option<&Cluster>, ctx: &Ctx, ns: &str, node: &str) -> NodeDeletion {
    let Some(cluster) = cluster.filter(|c| c.meta().deletion_timestamp.is_none()) else {
        return NodeDeletion::Done;
    };
    if is_last_control_plane(machine, cluster, ctx, ns).await {
        info!(node, "last control-plane machine: its node stays");
        return NodeDeletion::Done;
    }
    let remaining = node_deletion_time_left(machine);
    if remaining.is_zero() {
        warn!(node, "node deletion timeout passed; the node stays");
        ctx.event(
            machine,
            true,
            "FailedDeleteNode",
            format!("Node {node:?} stays: not deleted within the node deletion timeout"),
        )
        .await;
        return NodeDeletion::Done;
    }
    let retry = NodeDeletion::Retry(remaining.min(NODE_DELETION_RETRY));
    let client = match ctx.workload.get(&ctx.client, ns, &cluster.name_any()).await {
        Ok(c) => c,
        Err(e) => {
            warn!(node, error = %e, "cannot reach the workload cluster to delete the node; trying again");
            return retry;
        }
    };
    let nodes: Api<Node> = Api::all(client);
    match tokio::time::timeout(remaining, nodes.delete(node, &DeleteParams::default())).await {
        Ok(Ok(_)) => {
            info!(node, "deleted node");
            ctx.event(machine, false, "SuccessfulDeleteNode", format!("Deleted Node {node:?}"))
                .await;
            NodeDeletion::Done
        }
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => NodeDeletion::Done,
        Ok(Err(e)) => {
            warn!(node, error = %e, "node deletion failed; trying again");
            retry
        }
        // The next pass finds the timeout passed and says so.
        Err(_) => NodeDeletion::Retry(Duration::from_millis(10)),
    }
}

/// A control-plane Machine of a Cluster without a control-plane provider whose peers are all gone
/// or going: its Node is the cluster's last and stays.
async fn is_last_control_plane(machine: &Machine, cluster: &Cluster, ctx: &Ctx, ns: &str) -> bool {
    if !machine.is_control_plane() || cluster.spec.control_plane_ref.is_some() {
        return false;
    }
    let machines: Api<Machine> = Api::namespaced(ctx.client.clone(), ns);
    let lp = ListParams::default().labels(&format!(
        "{LABEL_CLUSTER_NAME}={},{LABEL_CONTROL_PLANE}",
        cluster.name_any()
    ));
    let others = machines.list(&lp).await.map(|l| {
        l.items
            .iter()
            .filter(|m| m.meta().deletion_timestamp.is_none() && m.name_any() != machine.name_any())
            .count()
    });
    matches!(others, Ok(0))
}

/// `spec.deletion.nodeDeletionTimeoutSeconds` (default 10 s; 0 tries for ever, as upstream)
/// minus the time since the Machine's deletion was requested.
fn node_deletion_time_left(machine: &Machine) -> Duration {
    let timeout = match machine
        .spec
        .unknown
        .get("deletion")
        .and_then(|d| d["nodeDeletionTimeoutSeconds"].as_u64())
    {
        Some(0) => return Duration::MAX,
        Some(s) => Duration::from_secs(s),
        None => NODE_DELETION_TIMEOUT,
    };
    let since = machine
        .meta()
        .deletion_timestamp
        .as_ref()
        .and_then(|t| Duration::try_from(k8s_openapi::jiff::Timestamp::now().duration_since(t.0)).ok())
        .unwrap_or_default();
    timeout.saturating_sub(since)
}
