//! The Cluster controller: ties a Cluster to its InfraCluster, reports what the infrastructure
//! provides, tracks control-plane initialization, and tears everything down in order.

use std::sync::Arc;

use capstan_api::conditions::{self, NewCondition, Status};
use capstan_api::contract::{LABEL_CLUSTER_NAME, LABEL_CONTROL_PLANE, is_paused};
use capstan_api::core::{
    ApiEndpoint, Cluster, ClusterInitializationStatus, ClusterPhase, ClusterStatus, FailureDomain, Machine,
    MachineDeployment, MachineSet,
};
use capstan_runtime::{ProviderContext, finalizer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::info;

use crate::FIELD_MANAGER;
use crate::controller::{Ctx, Error, apply_status, backoff, controlled_by, delete_ignoring_missing, observe};
use crate::external::{self, ExternalError};
use capstan_kubeadm::kubeconfig::{admin_kubeconfig, kubeconfig_secret, kubeconfig_secret_name};
use capstan_kubeadm::pki::Purpose;

pub const FINALIZER: &str = "cluster.cluster.x-k8s.io";
const CONTROLLER: &str = "cluster";

/// Condition types and reasons, as upstream names them.
const INFRASTRUCTURE_READY: &str = "InfrastructureReady";
const CONTROL_PLANE_INITIALIZED: &str = "ControlPlaneInitialized";

pub async fn run(ctx: ProviderContext, state: Arc<Ctx>) {
    let clusters: Api<Cluster> = ctx.scope.api(ctx.client.clone());
    let machines: Api<Machine> = ctx.scope.api(ctx.client.clone());
    let shutdown = ctx.shutdown.clone();
    Controller::new(clusters, ctx.scope.watcher_config())
        .with_config(ctx.concurrency.controller_config("cluster"))
        // A control-plane Machine getting its node decides ControlPlaneInitialized.
        .watches(machines, ctx.scope.watcher_config(), |m: Machine| {
            let ns = m.namespace()?;
            Some(ObjectRef::<Cluster>::new(&m.spec.cluster_name).within(&ns))
        })
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(
            |c, ctx| async move { observe(CONTROLLER, &*c, &ctx, reconcile(&c, &ctx)).await },
            |c, err, ctx| backoff(CONTROLLER, &*c, err, &ctx),
            state,
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile(cluster: &Cluster, ctx: &Ctx) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    if cluster.meta().deletion_timestamp.is_some() {
        return delete(cluster, ctx, &api).await;
    }
    if finalizer::add(&api, cluster, FINALIZER, FIELD_MANAGER).await? {
        // The patch triggers another reconcile with the finalizer in place.
        return Ok(Action::await_change());
    }

    let mut status = owned_status(cluster);
    status.observed_generation = cluster.meta().generation;
    let paused = is_paused(Some(cluster), cluster.meta());
    conditions::set(
        &mut status.conditions,
        conditions::paused(paused),
        cluster.meta().generation,
    );
    if paused {
        apply_status(&api, cluster, &owned_status(cluster), &status).await?;
        return Ok(Action::await_change());
    }

    let mut requeue = None;
    let mut phase = ClusterPhase::Pending;
    let mut infra_provisioned = false;
    match &cluster.spec.infrastructure_ref {
        None => {
            // Without infrastructure there is nothing to provision; upstream treats it as ready.
            infra_provisioned = true;
        }
        Some(r) => {
            phase = ClusterPhase::Provisioning;
            match external::get(&ctx.client, &ns, r).await {
                Err(ExternalError::Kube(e)) => return Err(e.into()),
                Err(e) => {
                    conditions::set(
                        &mut status.conditions,
                        NewCondition::falsy(INFRASTRUCTURE_READY, "InvalidInfrastructureRef", e.to_string()),
                        cluster.meta().generation,
                    );
                    requeue = Some(ctx.timing.wait);
                }
                Ok((_, None)) => {
                    conditions::set(
                        &mut status.conditions,
                        NewCondition::falsy(
                            INFRASTRUCTURE_READY,
                            "InfrastructureDoesNotExist",
                            format!("{} {} does not exist", r.kind, r.name),
                        ),
                        cluster.meta().generation,
                    );
                    requeue = Some(ctx.timing.wait);
                }
                Ok((ar, Some(infra))) => {
                    if let Some(owner) = capstan_api::owner::owner_reference(cluster, false)
                        && external::adopt(&ctx.client, &ar, &infra, owner, &cluster.name_any()).await?
                    {
                        info!(infra = %infra.name_any(), "adopted infrastructure cluster");
                    }
                    infra_provisioned = external::provisioned(&infra);
                    let ready = infra.data["status"]["conditions"]
                        .as_array()
                        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                        .cloned();
                    let (st, reason, message) = match (&ready, infra_provisioned) {
                        (Some(c), _) => (
                            Status::parse(c["status"].as_str().unwrap_or_default()),
                            c["reason"].as_str().unwrap_or("Ready").to_string(),
                            c["message"].as_str().unwrap_or_default().to_string(),
                        ),
                        (None, true) => (Status::True, "Ready".to_string(), String::new()),
                        (None, false) => (
                            Status::False,
                            "NotReady".to_string(),
                            format!("waiting for {} {} to be provisioned", r.kind, r.name),
                        ),
                    };
                    conditions::set(
                        &mut status.conditions,
                        NewCondition::new(INFRASTRUCTURE_READY, st, &reason, message),
                        cluster.meta().generation,
                    );
                    if infra_provisioned {
                        copy_endpoint(&api, cluster, &infra).await?;
                        status.failure_domains = failure_domains(&infra);
                    } else {
                        requeue = Some(ctx.timing.wait);
                    }
                }
            }
        }
    }
    let endpoint_valid = cluster
        .spec
        .control_plane_endpoint
        .as_ref()
        .is_some_and(ApiEndpoint::is_valid);
    if infra_provisioned && (endpoint_valid || cluster.spec.infrastructure_ref.is_none()) {
        phase = ClusterPhase::Provisioned;
    }

    if endpoint_valid && cluster.spec.control_plane_ref.is_none() {
        let (condition, ready) = match ensure_kubeconfig(cluster, ctx, &ns).await? {
            Kubeconfig::Ready => (NewCondition::truthy(KUBECONFIG_AVAILABLE, "Available"), true),
            Kubeconfig::WaitingForCa(secret) => (
                NewCondition::falsy(
                    KUBECONFIG_AVAILABLE,
                    "WaitingForClusterCA",
                    format!("Waiting for Secret {secret}"),
                ),
                false,
            ),
            // The user's (or the bootstrap provider's) to fix: say what is wrong, retry slowly.
            Kubeconfig::InvalidCa(message) => (
                NewCondition::falsy(KUBECONFIG_AVAILABLE, "InvalidClusterCA", message),
                false,
            ),
        };
        conditions::set(&mut status.conditions, condition, cluster.meta().generation);
        if !ready {
            requeue = Some(ctx.timing.wait);
        }
    }

    let cp_initialized = control_plane_initialized(cluster, ctx, &ns).await?;
    conditions::set(
        &mut status.conditions,
        if cp_initialized {
            NewCondition::truthy(CONTROL_PLANE_INITIALIZED, "Initialized")
        } else {
            NewCondition::falsy(
                CONTROL_PLANE_INITIALIZED,
                "NotInitialized",
                "Control plane not yet initialized",
            )
        },
        cluster.meta().generation,
    );
    status.initialization = Some(ClusterInitializationStatus {
        infrastructure_provisioned: Some(infra_provisioned),
        control_plane_initialized: Some(cp_initialized),
    });
    status.phase = Some(phase);
    apply_status(&api, cluster, &owned_status(cluster), &status).await?;
    // InfraCluster kinds are not watched (any provider's kind may be referenced): resync slowly.
    Ok(Action::requeue(requeue.unwrap_or(ctx.timing.resync)))
}

/// The fields of the Cluster's status this controller owns, as they are now.
fn owned_status(cluster: &Cluster) -> ClusterStatus {
    let current = cluster.status.clone().unwrap_or_default();
    ClusterStatus {
        initialization: current.initialization,
        conditions: current.conditions,
        failure_domains: current.failure_domains,
        phase: current.phase,
        observed_generation: current.observed_generation,
        unknown: Default::default(),
    }
}

/// Copies the InfraCluster's endpoint into the Cluster when the user did not set one.
async fn copy_endpoint(api: &Api<Cluster>, cluster: &Cluster, infra: &DynamicObject) -> Result<(), kube::Error> {
    if cluster
        .spec
        .control_plane_endpoint
        .as_ref()
        .is_some_and(ApiEndpoint::is_valid)
    {
        return Ok(());
    }
    let Ok(endpoint) = serde_json::from_value::<ApiEndpoint>(infra.data["spec"]["controlPlaneEndpoint"].clone()) else {
        return Ok(());
    };
    if !endpoint.is_valid() {
        return Ok(());
    }
    let patch = json!({"spec": {"controlPlaneEndpoint": endpoint}});
    api.patch(&cluster.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// `status.failureDomains` of the InfraCluster: a list in contract v1beta2, a map in v1beta1.
fn failure_domains(infra: &DynamicObject) -> Option<Vec<FailureDomain>> {
    let fds = &infra.data["status"]["failureDomains"];
    if let Ok(list) = serde_json::from_value::<Vec<FailureDomain>>(fds.clone()) {
        return Some(list).filter(|l| !l.is_empty());
    }
    let map = fds.as_object()?;
    let mut list: Vec<FailureDomain> = map
        .iter()
        .map(|(name, fd)| FailureDomain {
            name: name.clone(),
            control_plane: fd["controlPlane"].as_bool(),
            attributes: serde_json::from_value(fd["attributes"].clone()).ok(),
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Some(list).filter(|l| !l.is_empty())
}

/// Whether the Cluster's admin kubeconfig exists (without a control-plane provider this
/// controller writes it, as upstream does).
const KUBECONFIG_AVAILABLE: &str = "KubeconfigAvailable";

enum Kubeconfig {
    Ready,
    /// The cluster CA Secret (named) does not exist yet.
    WaitingForCa(String),
    /// The cluster CA Secret cannot sign a client certificate; the message says why.
    InvalidCa(String),
}

/// Writes the admin kubeconfig when it does not exist, from the cluster CA the bootstrap provider
/// generated.
async fn ensure_kubeconfig(cluster: &Cluster, ctx: &Ctx, ns: &str) -> Result<Kubeconfig, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = cluster.name_any();
    if secrets.get_opt(&kubeconfig_secret_name(&name)).await?.is_some() {
        return Ok(Kubeconfig::Ready);
    }
    let ca_secret = Purpose::ClusterCa.secret_name(&name);
    let Some(ca) = secrets.get_opt(&ca_secret).await? else {
        return Ok(Kubeconfig::WaitingForCa(ca_secret));
    };
    let data = ca.data.unwrap_or_default();
    let (Some(crt), Some(key)) = (data.get("tls.crt"), data.get("tls.key")) else {
        return Ok(Kubeconfig::InvalidCa(format!(
            "Secret {ca_secret} lacks tls.crt or tls.key: the admin kubeconfig cannot be written"
        )));
    };
    let Some(ep) = cluster.spec.control_plane_endpoint.as_ref() else {
        return Ok(Kubeconfig::WaitingForCa(ca_secret));
    };
    let server = format!(
        "https://{}:{}",
        ep.host.as_deref().unwrap_or_default(),
        ep.port.unwrap_or(6443)
    );
    let text = match admin_kubeconfig(&name, &server, &crt.0, &key.0) {
        Ok(t) => t,
        Err(e) => {
            return Ok(Kubeconfig::InvalidCa(format!(
                "Secret {ca_secret} holds no usable CA ({e}): the admin kubeconfig cannot be written"
            )));
        }
    };
    let owner = capstan_api::owner::owner_reference(cluster, true).expect("a stored Cluster has a uid");
    let secret = kubeconfig_secret(&name, ns, &text, Some(owner));
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => info!(secret = %kubeconfig_secret_name(&name), "wrote admin kubeconfig"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Kubeconfig::Ready)
}

/// Without a control-plane provider, the control plane is initialized once a control-plane
/// Machine has a node. Once true it stays true (upstream never flips it back).
async fn control_plane_initialized(cluster: &Cluster, ctx: &Ctx, ns: &str) -> Result<bool, kube::Error> {
    if cluster.control_plane_initialized() {
        return Ok(true);
    }
    if cluster.spec.control_plane_ref.is_some() {
        // A control-plane provider reports it; the standalone core does not run one.
        return Ok(false);
    }
    let machines: Api<Machine> = Api::namespaced(ctx.client.clone(), ns);
    let lp = ListParams::default().labels(&format!(
        "{LABEL_CLUSTER_NAME}={},{LABEL_CONTROL_PLANE}",
        cluster.name_any()
    ));
    Ok(machines
        .list(&lp)
        .await?
        .items
        .iter()
        .any(|m| m.status.as_ref().is_some_and(|s| s.node_ref.is_some())))
}

/// Deletes descendants first (MachineDeployments, MachineSets, Machines), then the InfraCluster,
/// and only then lets the Cluster go.
async fn delete(cluster: &Cluster, ctx: &Ctx, api: &Api<Cluster>) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let mut status = owned_status(cluster);
    status.phase = Some(ClusterPhase::Deleting);
    let lp = ListParams::default().labels(&format!("{LABEL_CLUSTER_NAME}={}", cluster.name_any()));
    let remaining = delete_all::<MachineDeployment>(ctx, &ns, &lp).await?
        + delete_all::<MachineSet>(ctx, &ns, &lp).await?
        + delete_all::<Machine>(ctx, &ns, &lp).await?;
    if remaining > 0 {
        conditions::set(
            &mut status.conditions,
            NewCondition::truthy(conditions::DELETING, "WaitingForWorkersDeletion"),
            cluster.meta().generation,
        );
        apply_status(api, cluster, &owned_status(cluster), &status).await?;
        return Ok(Action::requeue(ctx.timing.wait));
    }
    if let Some(r) = &cluster.spec.infrastructure_ref {
        match external::get(&ctx.client, &ns, r).await {
            Ok((ar, Some(infra))) => {
                if infra.metadata.deletion_timestamp.is_none() {
                    let infra_api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
                    infra_api.delete(&infra.name_any(), &DeleteParams::default()).await?;
                }
                conditions::set(
                    &mut status.conditions,
                    NewCondition::truthy(conditions::DELETING, "WaitingForInfrastructureDeletion"),
                    cluster.meta().generation,
                );
                apply_status(api, cluster, &owned_status(cluster), &status).await?;
                return Ok(Action::requeue(ctx.timing.wait));
            }
            Ok((_, None)) => {}
            // The kind is gone with its CRD: nothing left to wait for.
            Err(ExternalError::CrdMissing(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Garbage collection would take the kubeconfig with the Cluster; where none runs (a bare
    // apiserver), nothing may be left behind either.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = kubeconfig_secret_name(&cluster.name_any());
    if let Some(secret) = secrets.get_opt(&name).await?
        && controlled_by(&secret, cluster.uid().as_deref().unwrap_or_default())
    {
        delete_ignoring_missing(&secrets, &name).await?;
    }
    collect_orphaned_secrets(ctx, &ns, &lp).await?;
    ctx.workload.forget(&ns, &cluster.name_any());
    finalizer::remove(api, cluster, FINALIZER, FIELD_MANAGER).await?;
    info!("cluster deleted");
    Ok(Action::await_change())
}

/// What the garbage collector would do for the cluster's Secrets (certificates, bootstrap data),
/// for API servers where none runs: a Secret of this cluster whose owners are all gone goes too.
/// Secrets without owners (credentials a user created) are never touched.
async fn collect_orphaned_secrets(ctx: &Ctx, ns: &str, lp: &ListParams) -> Result<(), kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for secret in secrets.list(lp).await?.items {
        let owners = secret.metadata.owner_references.clone().unwrap_or_default();
        if owners.is_empty() || secret.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let mut any_alive = false;
        for o in &owners {
            if owner_exists(ctx, ns, o).await? {
                any_alive = true;
                break;
            }
        }
        if !any_alive {
            delete_ignoring_missing(&secrets, &secret.name_any()).await?;
        }
    }
    Ok(())
}

async fn owner_exists(
    ctx: &Ctx,
    ns: &str,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<bool, kube::Error> {
    let (group, version) = match owner.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", owner.api_version.as_str()),
    };
    let gvk = kube::core::GroupVersionKind::gvk(group, version, &owner.kind);
    // A kind the server no longer serves has no objects left.
    let Ok((ar, _)) = kube::discovery::pinned_kind(&ctx.client, &gvk).await else {
        return Ok(false);
    };
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
    Ok(api
        .get_opt(&owner.name)
        .await?
        .is_some_and(|o| o.uid().as_deref() == Some(owner.uid.as_str())))
}

/// Deletes every object of kind `K` matching `lp`; returns how many still exist.
async fn delete_all<K>(ctx: &Ctx, ns: &str, lp: &ListParams) -> Result<usize, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let items = api.list(lp).await?.items;
    for item in &items {
        if item.meta().deletion_timestamp.is_none() {
            match api.delete(&item.name_any(), &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(items.len())
}
