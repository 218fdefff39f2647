//! The generic InfraMachine reconciler (CAPI v1beta2 contract).

use std::sync::Arc;
use std::time::Duration;

use capstan_api::conditions::{self, NewCondition, Status};
use capstan_api::contract::{is_externally_managed, is_paused};
use capstan_api::core::{Cluster, Machine};
use capstan_runtime::backoff::ObjectKey;
use capstan_runtime::finalizer;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::object::{HasSpec, HasStatus};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::context::Ctx;
use crate::credentials::Credentials;
use crate::provider::*;
use crate::reasons::*;
use crate::status::{
    InfraMachineStatus, Initialization, OperationKind, PendingOperation, put_resources, take_resources,
};

/// The status of provider `P`'s InfraMachine kind.
type MachineStatus<P> = InfraMachineStatus<<P as InfraProvider>::MachineResources>;

/// Why a reconcile failed; the controller backs off per object and retries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeError",
        }
    }
}

/// The finalizer of an InfraMachine kind: `<lowercase kind>.infrastructure.cluster.x-k8s.io`.
pub fn finalizer_name<K: Resource<DynamicType = ()>>() -> String {
    format!("{}.{}", K::kind(&()).to_lowercase(), K::group(&()))
}

/// Outcome of one pass: the status to write and when to come back.
struct Step<P: InfraProvider> {
    status: MachineStatus<P>,
    requeue: Option<Duration>,
    /// `spec.providerID` to set, written after the status so that any reconcile the spec write
    /// triggers already sees the operation now in flight.
    provider_id: Option<String>,
    /// A cloud call failed: keep the per-object backoff growing. Any other pass made progress
    /// and resets it, as controller-runtime's rate limiter forgets an item on success.
    failed: bool,
}

impl<P: InfraProvider> Step<P> {
    fn new(status: MachineStatus<P>, requeue: Option<Duration>) -> Self {
        Self {
            status,
            requeue,
            provider_id: None,
            failed: false,
        }
    }

    fn failed(status: MachineStatus<P>, requeue: Duration) -> Self {
        Self {
            status,
            requeue: Some(requeue),
            provider_id: None,
            failed: true,
        }
    }
}

pub async fn reconcile<P>(obj: Arc<P::Machine>, ctx: Arc<Ctx<P>>) -> Result<Action, Error>
where
    P: InfraProvider,
    <P::Machine as HasSpec>::Spec: InfraMachineSpec,
    <P::Cluster as HasSpec>::Spec: InfraClusterSpec,
{
    let m = obj.as_ref();
    if is_externally_managed(m.meta()) {
        return Ok(Action::await_change());
    }
    let ns = m.namespace().unwrap_or_default();
    let api: Api<P::Machine> = Api::namespaced(ctx.client.clone(), &ns);
    let generation = m.meta().generation;
    let mut status = m.status().cloned().unwrap_or_default();
    status.observed_generation = generation;

    // Core sets the owner reference from Machine.spec.infrastructureRef; until then, wait.
    let Some(owner) = capstan_api::owner::owner_machine(m.meta()).cloned() else {
        if m.meta().deletion_timestamp.is_some() {
            finalizer::remove(&api, m, &finalizer_name::<P::Machine>(), &ctx.field_manager).await?;
            return Ok(Action::await_change());
        }
        conditions::set(
            &mut status.conditions,
            NewCondition::falsy(READY, WAITING_FOR_OWNER, "Waiting for the owner Machine to be set"),
            generation,
        );
        write_status::<P>(&ctx, &api, m, status).await?;
        return Ok(Action::await_change());
    };
    let machine = ctx.machine(&ns, &owner.name).await?;
    if let Some(phase) = machine
        .as_ref()
        .and_then(|m| m.status.as_ref()?.phase.as_ref())
        .filter(|p| p.is_unknown())
    {
        // Nothing here depends on the phase; say so and carry on rather than stop.
        warn!(machine = %owner.name, %phase, "the owner Machine has a phase this version does not know (a newer Cluster API?)");
    }
    // A deleted owner Machine must not strand the VM: the InfraMachine's own cluster-name label
    // still leads to the Cluster, and through it to the cloud (CAPV does the same).
    let cluster_name = machine
        .as_ref()
        .map(|machine| machine.spec.cluster_name.clone())
        .or_else(|| m.labels().get(capstan_api::contract::LABEL_CLUSTER_NAME).cloned());
    let cluster = match cluster_name {
        Some(name) => ctx.cluster(&ns, &name).await?,
        None => None,
    };

    if m.meta().deletion_timestamp.is_some() {
        return delete::<P>(&ctx, &api, m, machine.as_ref(), cluster.as_ref(), status).await;
    }
    let (Some(machine), Some(cluster)) = (machine, cluster) else {
        return Ok(Action::requeue(ctx.poll_interval * 5));
    };
    if finalizer::add(&api, m, &finalizer_name::<P::Machine>(), &ctx.field_manager).await? {
        return Ok(Action::await_change());
    }
    let paused = is_paused(Some(&cluster), m.meta());
    conditions::set(&mut status.conditions, conditions::paused(paused), generation);
    if paused {
        write_status::<P>(&ctx, &api, m, status).await?;
        return Ok(Action::await_change());
    }

    let step = provision::<P>(&ctx, m, &machine, &cluster, status).await?;
    let requeue = step.requeue;
    if !step.failed {
        ctx.backoff.reset(&ObjectKey::of(m));
    }
    write_status::<P>(&ctx, &api, m, step.status).await?;
    if let Some(id) = step.provider_id {
        let patch = json!({"spec": {"providerID": id}});
        api.patch(&m.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(requeue
        .map(Action::requeue)
        .unwrap_or_else(|| Action::requeue(ctx.resync_interval)))
}

fn waiting<R: crate::status::CloudResources>(
    status: &mut InfraMachineStatus<R>,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) {
    let message = message.into();
    conditions::set(
        &mut status.conditions,
        NewCondition::falsy(INSTANCE_PROVISIONED, reason, message.clone()),
        generation,
    );
    conditions::set(
        &mut status.conditions,
        NewCondition::falsy(READY, reason, message),
        generation,
    );
}

/// Reads the InfraCluster and its credentials; a missing piece is a condition, not an error.
async fn cluster_and_credentials<P>(
    ctx: &Ctx<P>,
    ns: &str,
    cluster: &Cluster,
) -> Result<Result<(P::Cluster, Credentials), (String, String)>, kube::Error>
where
    P: InfraProvider,
    <P::Cluster as HasSpec>::Spec: InfraClusterSpec,
{
    let Some(r) = &cluster.spec.infrastructure_ref else {
        return Ok(Err((
            WAITING_FOR_CLUSTER_INFRASTRUCTURE.into(),
            "Cluster has no infrastructureRef".into(),
        )));
    };
    let Some(infra) = ctx.infra_cluster(ns, &r.name).await? else {
        return Ok(Err((
            WAITING_FOR_CLUSTER_INFRASTRUCTURE.into(),
            format!("{} {} not found", r.kind, r.name),
        )));
    };
    let secret = infra.spec().credentials_secret().to_string();
    match ctx.credentials(ns, &secret).await {
        Ok(c) => Ok(Ok((infra, c))),
        Err(e) => Ok(Err((CREDENTIALS_UNAVAILABLE.into(), e.to_string()))),
    }
}

async fn bootstrap_data<P: InfraProvider>(
    ctx: &Ctx<P>,
    ns: &str,
    name: &str,
) -> Result<Result<BootstrapData, String>, kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(secret) = secrets.get_opt(name).await? else {
        return Ok(Err(format!("bootstrap data secret {name} not found")));
    };
    let data = secret.data.unwrap_or_default();
    let Some(value) = data.get("value") else {
        return Ok(Err(format!("bootstrap data secret {name} has no key \"value\"")));
    };
    let format = data
        .get("format")
        .map(|f| String::from_utf8_lossy(&f.0).to_string())
        .unwrap_or_default();
    match BootstrapFormat::parse(&format) {
        Some(format) => Ok(Ok(BootstrapData {
            value: value.0.clone(),
            format,
        })),
        None => Ok(Err(format!(
            "bootstrap data secret {name} has unknown format {format:?}"
        ))),
    }
}

fn identity<K: Resource>(m: &K, cluster: &Cluster) -> InstanceIdentity {
    InstanceIdentity {
        uid: m.meta().uid.clone().unwrap_or_default(),
        name: m.meta().name.clone().unwrap_or_default(),
        namespace: m.meta().namespace.clone().unwrap_or_default(),
        cluster_name: cluster.name_any(),
    }
}

/// Whether `op` has run longer than `timeout`.
fn expired(op: &PendingOperation, timeout: Duration) -> bool {
    let started = op.started_at.0;
    Timestamp::now()
        .duration_since(started)
        .try_into()
        .is_ok_and(|elapsed: Duration| elapsed > timeout)
}

fn timed_out_message(op: &PendingOperation, timeout: Duration) -> String {
    format!(
        "{:?} operation {} did not finish within {}s; giving up on it and checking the instance again",
        op.kind,
        op.id,
        timeout.as_secs()
    )
}

fn pending(kind: OperationKind, op: Operation) -> PendingOperation {
    PendingOperation {
        kind,
        id: op.id,
        started_at: Time(Timestamp::now()),
    }
}

async fn provision<P>(
    ctx: &Ctx<P>,
    m: &P::Machine,
    machine: &Machine,
    cluster: &Cluster,
    mut status: MachineStatus<P>,
) -> Result<Step<P>, Error>
where
    P: InfraProvider,
    <P::Machine as HasSpec>::Spec: InfraMachineSpec,
    <P::Cluster as HasSpec>::Spec: InfraClusterSpec,
{
    let generation = m.meta().generation;
    let ns = m.namespace().unwrap_or_default();
    let slow = Some(ctx.poll_interval * 5);
    if !cluster.infrastructure_provisioned() {
        waiting(
            &mut status,
            WAITING_FOR_CLUSTER_INFRASTRUCTURE,
            "Waiting for the cluster infrastructure to be provisioned",
            generation,
        );
        return Ok(Step::new(status, slow));
    }
    let Some(secret_name) = machine.data_secret_name() else {
        waiting(
            &mut status,
            WAITING_FOR_BOOTSTRAP_DATA,
            "Waiting for the bootstrap provider to produce the data secret",
            generation,
        );
        return Ok(Step::new(status, slow));
    };
    let (infra_cluster, credentials) = match cluster_and_credentials(ctx, &ns, cluster).await? {
        Ok(v) => v,
        Err((reason, message)) => {
            waiting(&mut status, &reason, message, generation);
            return Ok(Step::new(status, slow));
        }
    };
    let scope = MachineScope::<P> {
        cluster: &infra_cluster,
        machine: m,
        credentials: &credentials,
        identity: identity(m, cluster),
        known_instance: status.instance_id.clone(),
        failure_domain: machine.spec.failure_domain.clone(),
        control_plane: machine.is_control_plane(),
    };
    let provider = ctx.provider.as_ref();

    // An operation in flight is polled, never started again.
    let mut status = match poll_in_flight(ctx, m, &scope, status).await? {
        Polled::Done(status) => status,
        Polled::Wait(step) => return Ok(step),
    };

    let instance = match provider.find_instance(&scope).await {
        Ok(i) => i,
        Err(e) => return cloud_failure(ctx, m, status, e),
    };
    let Some(instance) = instance else {
        if m.spec().provider_id().is_some() {
            // It ran once and is gone: somebody deleted it behind our back. Recreating it would
            // hide that from the owner; report it and let remediation replace the Machine.
            status.initialization = Some(Initialization {
                provisioned: Some(false),
            });
            status.ready = Some(false);
            status.addresses = None;
            waiting(
                &mut status,
                INSTANCE_NOT_FOUND,
                "The instance was deleted outside of Capstan",
                generation,
            );
            let already_reported = m
                .status()
                .and_then(|s| conditions::get(&s.conditions, INSTANCE_PROVISIONED))
                .is_some_and(|c| c.reason == INSTANCE_NOT_FOUND);
            if !already_reported {
                ctx.event(
                    &m.object_ref(&()),
                    true,
                    INSTANCE_NOT_FOUND,
                    "the instance no longer exists in the cloud".into(),
                )
                .await;
            }
            return Ok(Step::new(status, None));
        }
        let bootstrap = match bootstrap_data(ctx, &ns, secret_name).await? {
            Ok(b) => b,
            Err(message) => {
                waiting(&mut status, BOOTSTRAP_DATA_INVALID, message, generation);
                return Ok(Step::new(status, slow));
            }
        };
        return match provider.create_instance(&scope, &bootstrap).await {
            Ok(op) => {
                info!(operation = %op.id, "creating instance");
                status.operation = Some(pending(OperationKind::Create, op));
                waiting(&mut status, INSTANCE_PROVISIONING, "Creating the instance", generation);
                ctx.event(
                    &m.object_ref(&()),
                    false,
                    "CreatingInstance",
                    format!("creating instance {}", scope.identity.name),
                )
                .await;
                Ok(Step::new(status, Some(ctx.poll_interval)))
            }
            Err(e) => cloud_failure(ctx, m, status, e),
        };
    };

    status.instance_id = Some(instance.id.clone());
    status.instance_state = Some(instance.raw_state.clone());
    // The providerID is set once the instance runs: it is also the record that the instance
    // existed, so one that breaks before it ever ran can be replaced without looking deleted
    // out of band.
    let provider_id = (instance.state == InstanceState::Running
        && m.spec().provider_id() != Some(instance.provider_id.as_str()))
    .then(|| instance.provider_id.clone());
    let step = running_or_starting(ctx, m, &scope, &instance, status, secret_name).await;
    step.map(|mut s| {
        s.provider_id = provider_id;
        s
    })
}

/// What polling the operation in flight (if any) left to do.
enum Polled<P: InfraProvider> {
    /// Nothing in flight (any more): go on with this status.
    Done(MachineStatus<P>),
    /// Still running, failed or timed out: this is the pass's outcome.
    Wait(Step<P>),
}

async fn poll_in_flight<P>(
    ctx: &Ctx<P>,
    m: &P::Machine,
    scope: &MachineScope<'_, P>,
    mut status: MachineStatus<P>,
) -> Result<Polled<P>, Error>
where
    P: InfraProvider,
{
    let Some(op) = status.operation.clone() else {
        return Ok(Polled::Done(status));
    };
    let generation = m.meta().generation;
    let step = match ctx.provider.poll_operation(scope, &op).await {
        Ok(OperationState::Running) if expired(&op, ctx.operation_timeout) => {
            // A hung cloud task must not keep the machine Provisioning for ever: drop it, say
            // so, and look at the instance afresh after a backoff (every step is idempotent).
            status.operation = None;
            let message = timed_out_message(&op, ctx.operation_timeout);
            waiting(&mut status, OPERATION_TIMED_OUT, message.clone(), generation);
            ctx.event(&m.object_ref(&()), true, OPERATION_TIMED_OUT, message).await;
            Step::failed(status, ctx.backoff.next_delay(&ObjectKey::of(m)))
        }
        Ok(OperationState::Running) => Step::new(status, Some(ctx.poll_interval)),
        Ok(OperationState::Succeeded) => {
            status.operation = None;
            return Ok(Polled::Done(status));
        }
        Ok(OperationState::Failed { message }) if op.kind == OperationKind::Cleanup => {
            // The machine runs; only its clean-up failed, and is retried.
            status.operation = None;
            let delay = cleanup_failed(ctx, m, &mut status, message).await;
            Step::failed(status, delay)
        }
        Ok(OperationState::Failed { message }) => {
            status.operation = None;
            waiting(
                &mut status,
                INSTANCE_PROVISIONING_FAILED,
                format!("{:?} failed: {message}", op.kind),
                generation,
            );
            ctx.event(&m.object_ref(&()), true, INSTANCE_PROVISIONING_FAILED, message)
                .await;
            Step::failed(status, ctx.backoff.next_delay(&ObjectKey::of(m)))
        }
        Err(e) => cloud_failure(ctx, m, status, e)?,
    };
    Ok(Polled::Wait(step))
}

/// What to do with an instance that exists.
async fn running_or_starting<P>(
    ctx: &Ctx<P>,
    m: &P::Machine,
    scope: &MachineScope<'_, P>,
    instance: &Instance,
    mut status: MachineStatus<P>,
    secret_name: &str,
) -> Result<Step<P>, Error>
where
    P: InfraProvider,
    <P::Machine as HasSpec>::Spec: InfraMachineSpec,
    <P::Cluster as HasSpec>::Spec: InfraClusterSpec,
{
    let generation = m.meta().generation;
    let provider = ctx.provider.as_ref();
    let was_provisioned = m
        .status()
        .and_then(|s| s.initialization.as_ref())
        .and_then(|i| i.provisioned)
        .unwrap_or(false);
    match &instance.state {
        InstanceState::Running if instance.addresses.is_empty() => {
            let (reason, message) = match provider.check_address_wait(scope, instance).await {
                Ok(()) => (
                    WAITING_FOR_ADDRESSES,
                    "The instance runs but reports no address yet".to_string(),
                ),
                Err(e) => (e.reason(), e.to_string()),
            };
            waiting(&mut status, reason, message, generation);
            Ok(Step::new(status, Some(ctx.poll_interval)))
        }
        InstanceState::Running => running(ctx, m, scope, instance, status, was_provisioned).await,
        InstanceState::Stopped => start(ctx, m, scope, instance, status, secret_name, was_provisioned).await,
        // Broken before it ever ran (a failed clone leaves such a VM with our identity): it
        // can only be replaced. Delete it; the next pass, finding nothing, creates it again.
        InstanceState::Failed(message) if !was_provisioned => {
            let message = format!("The instance failed before it ever ran ({message}); deleting it to create it again");
            waiting(&mut status, INSTANCE_PROVISIONING_FAILED, message.clone(), generation);
            // Its own Event reason: Events with one reason are aggregated under the first note.
            ctx.event(&m.object_ref(&()), true, DELETING_BROKEN_INSTANCE, message)
                .await;
            match provider.delete_instance(scope, instance).await {
                Ok(op) => {
                    status.operation = op.map(|op| pending(OperationKind::Delete, op));
                    Ok(Step::failed(status, ctx.backoff.next_delay(&ObjectKey::of(m))))
                }
                Err(e) => cloud_failure(ctx, m, status, e),
            }
        }
        // A machine that ran and broke is reported; replacing it is remediation's call.
        InstanceState::Failed(message) => {
            waiting(&mut status, INSTANCE_PROVISIONING_FAILED, message.clone(), generation);
            Ok(Step::failed(status, ctx.backoff.next_delay(&ObjectKey::of(m))))
        }
        other => {
            waiting(
                &mut status,
                INSTANCE_PROVISIONING,
                format!("The instance is {other:?}"),
                generation,
            );
            Ok(Step::new(status, Some(ctx.poll_interval)))
        }
    }
}

/// The instance runs with addresses: provisioned; then the bootstrap clean-up until done.
async fn running<P>(
    ctx: &Ctx<P>,
    m: &P::Machine,
    scope: &MachineScope<'_, P>,
    instance: &Instance,
    mut status: MachineStatus<P>,
    was_provisioned: bool,
) -> Result<Step<P>, Error>
where
    P: InfraProvider,
{
    let generation = m.meta().generation;
    status.addresses = Some(instance.addresses.clone());
    status.failure_domain = instance.failure_domain.clone().or(scope.failure_domain.clone());
    status.initialization = Some(Initialization {
        provisioned: Some(true),
    });
    status.ready = Some(true);
    conditions::set(
        &mut status.conditions,
        NewCondition::truthy(INSTANCE_PROVISIONED, INSTANCE_RUNNING),
        generation,
    );
    conditions::set(&mut status.conditions, NewCondition::truthy(READY, READY), generation);
    if !was_provisioned {
        ctx.event(
            &m.object_ref(&()),
            false,
            "InstanceProvisioned",
            format!("instance {} is running", instance.id),
        )
        .await;
    }
    if let Err(delay) = attach(ctx, m, scope, instance, &mut status).await {
        return Ok(Step::failed(status, delay));
    }
    match clean_up_bootstrap(ctx, m, scope, instance, &mut status).await {
        Ok(None) => {}
        Ok(Some(again)) => return Ok(Step::new(status, Some(again))),
        // Provisioned all the same; the clean-up is retried until it is done.
        Err(delay) => return Ok(Step::failed(status, delay)),
    }
    ctx.backoff.reset(&ObjectKey::of(m));
    Ok(Step::new(status, None))
}

/// Runs the provider's attachments hook, recording the outcome in `AttachmentsReady` when the
/// provider has anything to attach; `Err` carries the backoff before the next attempt.
async fn attach<P: InfraProvider>(
    ctx: &Ctx<P>,
    m: &P::Machine,
    scope: &MachineScope<'_, P>,
    instance: &Instance,
    status: &mut MachineStatus<P>,
) -> Result<(), Duration> {
    let mut resources = take_resources(&mut status.resources);
    let result = ctx.provider.ensure_attachments(scope, instance, &mut resources).await;
    put_resources(&mut status.resources, resources);
    let generation = m.meta().generation;
    match result {
        Ok(Attachment::NotApplicable) => Ok(()),
        Ok(Attachment::Attached) => {
            conditions::set(
                &mut status.conditions,
                NewCondition::truthy(ATTACHMENTS_READY, ATTACHED),
                generation,
            );
            Ok(())
        }
        Err(e) => {
            warn!(error = %e, retryable = e.is_retryable(), "attaching the instance failed");
            conditions::set(
                &mut status.conditions,
                NewCondition::falsy(ATTACHMENTS_READY, e.reason(), e.to_string()),
                generation,
            );
            Err(ctx.backoff.next_delay(&ObjectKey::of(m)))
        }
    }
}

/// The instance is stopped: its first boot gets the bootstrap data, any later one does not.
async fn start<P>(
    ctx: &Ctx<P>,
    m: &P::Machine,
    scope: &MachineScope<'_, P>,
    instance: &Instance,
    mut status: MachineStatus<P>,
    secret_name: &str,
    was_provisioned: bool,
) -> Result<Step<P>, Error>
where
    P: InfraProvider,
{
    let generation = m.meta().generation;
    let ns = m.namespace().unwrap_or_default();
    // Once it has run, its bootstrap data has been taken away and stays away.
    let ran_before = was_provisioned || conditions::get(&status.conditions, BOOTSTRAP_DATA_CLEANED_UP).is_some();
    let bootstrap = if ran_before {
        None
    } else {
        match bootstrap_data(ctx, &ns, secret_name).await? {
            Ok(b) => Some(b),
            Err(message) => {
                waiting(&mut status, BOOTSTRAP_DATA_INVALID, message, generation);
                return Ok(Step::new(status, Some(ctx.poll_interval * 5)));
            }
        }
    };
    let boot = bootstrap.as_ref().map(Boot::First).unwrap_or(Boot::Again);
    match ctx.provider.start_instance(scope, instance, boot).await {
        Ok(op) => {
            status.operation = op.map(|op| pending(OperationKind::Start, op));
            waiting(&mut status, INSTANCE_PROVISIONING, "Starting the instance", generation);
            Ok(Step::new(status, Some(ctx.poll_interval)))
        }
        Err(e) => cloud_failure(ctx, m, status, e),
    }
}

/// Runs the provider's bootstrap clean-up until it has succeeded once, recording the outcome in
/// the `BootstrapDataCleanedUp` condition. `Ok(Some(_))`: in progress, look again after that
/// long; `Err` carries the backoff before the next attempt.
async fn clean_up_bootstrap<P>(
    ctx: &Ctx<P>,
    m: &P::Machine,
    scope: &MachineScope<'_, P>,
    instance: &Instance,
    status: &mut MachineStatus<P>,
) -> Result<Option<Duration>, Duration>
where
    P: InfraProvider,
{
    if conditions::is_true(&status.conditions, BOOTSTRAP_DATA_CLEANED_UP) {
        return Ok(None);
    }
    let generation = m.meta().generation;
    match ctx.provider.clean_up_bootstrap(scope, instance).await {
        Ok(Cleanup::Done) => {
            conditions::set(
                &mut status.conditions,
                NewCondition::truthy(BOOTSTRAP_DATA_CLEANED_UP, CLEANED_UP),
                generation,
            );
            Ok(None)
        }
        Ok(Cleanup::Impossible(message)) => {
            conditions::set(
                &mut status.conditions,
                NewCondition::falsy(BOOTSTRAP_DATA_CLEANED_UP, BOOTSTRAP_DATA_RETAINED, message),
                generation,
            );
            Ok(None)
        }
        Ok(step @ (Cleanup::InProgress | Cleanup::Started(_))) => {
            if let Cleanup::Started(op) = step {
                status.operation = Some(pending(OperationKind::Cleanup, op));
            }
            conditions::set(
                &mut status.conditions,
                NewCondition::falsy(
                    BOOTSTRAP_DATA_CLEANED_UP,
                    CLEANING_UP,
                    "Removing the bootstrap data from the instance",
                ),
                generation,
            );
            Ok(Some(ctx.poll_interval))
        }
        Err(e) => Err(cleanup_failed(ctx, m, status, e).await),
    }
}

/// Records a failed bootstrap clean-up, whether the provider's call or the cloud task it
/// started failed: the condition says why, a Warning Event marks the first failure of a streak.
/// Returns the backoff before the next attempt.
async fn cleanup_failed<P>(
    ctx: &Ctx<P>,
    m: &P::Machine,
    status: &mut MachineStatus<P>,
    cause: impl std::fmt::Display,
) -> Duration
where
    P: InfraProvider,
{
    let message = format!("Removing the bootstrap data from the instance failed, retrying: {cause}");
    warn!(error = %cause, "bootstrap clean-up failed");
    let first =
        conditions::get(&status.conditions, BOOTSTRAP_DATA_CLEANED_UP).is_none_or(|c| c.reason != CLEANUP_FAILED);
    conditions::set(
        &mut status.conditions,
        NewCondition::falsy(BOOTSTRAP_DATA_CLEANED_UP, CLEANUP_FAILED, message.clone()),
        m.meta().generation,
    );
    if first {
        ctx.event(&m.object_ref(&()), true, CLEANUP_FAILED, message).await;
    }
    ctx.backoff.next_delay(&ObjectKey::of(m))
}

/// A cloud error becomes a condition; retryable ones back off, terminal ones wait for a change.
fn cloud_failure<P: InfraProvider, K: Resource<DynamicType = ()>>(
    ctx: &Ctx<P>,
    m: &K,
    mut status: MachineStatus<P>,
    e: impl CloudError,
) -> Result<Step<P>, Error> {
    let generation = m.meta().generation;
    let (retryable, message) = (e.is_retryable(), e.to_string());
    let reason = match e.reason() {
        "" => INSTANCE_PROVISIONING_FAILED,
        r => r,
    };
    waiting(&mut status, reason, message.clone(), generation);
    warn!(retryable, reason, error = %message, "cloud call failed");
    let requeue = if retryable {
        ctx.backoff.next_delay(&ObjectKey::of(m))
    } else {
        ctx.resync_interval
    };
    Ok(Step::failed(status, requeue))
}

async fn delete<P>(
    ctx: &Ctx<P>,
    api: &Api<P::Machine>,
    m: &P::Machine,
    machine: Option<&Machine>,
    cluster: Option<&Cluster>,
    mut status: MachineStatus<P>,
) -> Result<Action, Error>
where
    P: InfraProvider,
    <P::Machine as HasSpec>::Spec: InfraMachineSpec,
    <P::Cluster as HasSpec>::Spec: InfraClusterSpec,
{
    let generation = m.meta().generation;
    let fin = finalizer_name::<P::Machine>();
    if !m.finalizers().contains(&fin) {
        return Ok(Action::await_change());
    }
    let ns = m.namespace().unwrap_or_default();
    let fail = |status: &mut MachineStatus<P>, message: String| {
        conditions::set(
            &mut status.conditions,
            NewCondition::new(conditions::DELETING, Status::True, DELETION_FAILED, message.clone()),
            generation,
        );
        conditions::set(
            &mut status.conditions,
            NewCondition::falsy(READY, DELETION_FAILED, message),
            generation,
        );
    };
    // Without the Cluster chain there is no way to reach the cloud; deleting would leak the
    // instance, so keep the finalizer and say why (see docs: removing it by hand forces deletion).
    let Some(cluster) = cluster else {
        fail(
            &mut status,
            "The Cluster is gone (neither the owner Machine nor the cluster.x-k8s.io/cluster-name label leads to one); cannot reach the cloud to delete the instance".into(),
        );
        write_status::<P>(ctx, api, m, status).await?;
        return Ok(Action::requeue(ctx.backoff.next_delay(&ObjectKey::of(m))));
    };
    let (infra_cluster, credentials) = match cluster_and_credentials(ctx, &ns, cluster).await? {
        Ok(v) => v,
        Err((_, message)) => {
            fail(&mut status, message);
            write_status::<P>(ctx, api, m, status).await?;
            return Ok(Action::requeue(ctx.backoff.next_delay(&ObjectKey::of(m))));
        }
    };
    let scope = MachineScope::<P> {
        cluster: &infra_cluster,
        machine: m,
        credentials: &credentials,
        identity: identity(m, cluster),
        known_instance: status.instance_id.clone(),
        // What the machine was, for providers that must undo attachments first: the Machine
        // says while it exists, the InfraMachine's own record after.
        failure_domain: status
            .failure_domain
            .clone()
            .or_else(|| machine.and_then(|mc| mc.spec.failure_domain.clone())),
        control_plane: machine.map_or_else(
            || m.labels().contains_key(capstan_api::contract::LABEL_CONTROL_PLANE),
            Machine::is_control_plane,
        ),
    };
    let provider = ctx.provider.as_ref();
    if let Some(op) = status.operation.clone() {
        match provider.poll_operation(&scope, &op).await {
            Ok(OperationState::Running) if expired(&op, ctx.operation_timeout) => {
                status.operation = None;
                let message = timed_out_message(&op, ctx.operation_timeout);
                fail(&mut status, message.clone());
                ctx.event(&m.object_ref(&()), true, OPERATION_TIMED_OUT, message).await;
                write_status::<P>(ctx, api, m, status).await?;
                return Ok(Action::requeue(ctx.backoff.next_delay(&ObjectKey::of(m))));
            }
            Ok(OperationState::Running) => return Ok(Action::requeue(ctx.poll_interval)),
            Ok(OperationState::Succeeded) => status.operation = None,
            Ok(OperationState::Failed { message }) => {
                status.operation = None;
                // A create that failed while we delete needs no report; a failed delete does.
                if op.kind == OperationKind::Delete {
                    fail(&mut status, message);
                }
            }
            Err(e) => {
                fail(&mut status, e.to_string());
                write_status::<P>(ctx, api, m, status).await?;
                return Ok(Action::requeue(ctx.backoff.next_delay(&ObjectKey::of(m))));
            }
        }
    }
    let instance = match provider.find_instance(&scope).await {
        Ok(i) => i,
        Err(e) => {
            fail(&mut status, e.to_string());
            write_status::<P>(ctx, api, m, status).await?;
            return Ok(Action::requeue(ctx.backoff.next_delay(&ObjectKey::of(m))));
        }
    };
    match release(ctx, &scope, instance.as_ref(), &mut status).await {
        Ok(Removal::Done) => {}
        Ok(Removal::InProgress(message)) => {
            info!(%message, "releasing the instance's attachments");
            write_status::<P>(ctx, api, m, status).await?;
            return Ok(Action::requeue(ctx.poll_interval));
        }
        Err(e) => {
            fail(&mut status, e.to_string());
            write_status::<P>(ctx, api, m, status).await?;
            return Ok(Action::requeue(ctx.backoff.next_delay(&ObjectKey::of(m))));
        }
    }
    let Some(instance) = instance else {
        if let Err(e) = provider.after_deleted(&scope).await {
            fail(&mut status, e.to_string());
            write_status::<P>(ctx, api, m, status).await?;
            return Ok(Action::requeue(ctx.backoff.next_delay(&ObjectKey::of(m))));
        }
        info!("instance gone, releasing the finalizer");
        ctx.event(
            &m.object_ref(&()),
            false,
            "InstanceDeleted",
            "the instance is deleted".into(),
        )
        .await;
        finalizer::remove(api, m, &fin, &ctx.field_manager).await?;
        return Ok(Action::await_change());
    };
    match provider.delete_instance(&scope, &instance).await {
        Ok(op) => {
            status.operation = op.map(|op| pending(OperationKind::Delete, op));
            conditions::set(
                &mut status.conditions,
                NewCondition::truthy(conditions::DELETING, DELETING),
                generation,
            );
            conditions::set(
                &mut status.conditions,
                NewCondition::falsy(READY, DELETING, "Deleting the instance"),
                generation,
            );
            write_status::<P>(ctx, api, m, status).await?;
            Ok(Action::requeue(ctx.poll_interval))
        }
        Err(e) => {
            fail(&mut status, e.to_string());
            write_status::<P>(ctx, api, m, status).await?;
            Ok(Action::requeue(ctx.backoff.next_delay(&ObjectKey::of(m))))
        }
    }
}

/// The provider's release of attachments, with its record taken from and put back in status.
async fn release<P: InfraProvider>(
    ctx: &Ctx<P>,
    scope: &MachineScope<'_, P>,
    instance: Option<&Instance>,
    status: &mut MachineStatus<P>,
) -> Result<Removal, P::Error> {
    let mut resources = take_resources(&mut status.resources);
    let result = ctx.provider.release_attachments(scope, instance, &mut resources).await;
    put_resources(&mut status.resources, resources);
    result
}

/// Server-side applies the whole status (the core owns all of it), only when it changed.
pub(crate) async fn write_status<P: InfraProvider>(
    ctx: &Ctx<P>,
    api: &Api<P::Machine>,
    m: &P::Machine,
    status: MachineStatus<P>,
) -> Result<(), kube::Error> {
    if m.status() == Some(&status) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": P::Machine::api_version(&()),
        "kind": P::Machine::kind(&()),
        "status": status,
    });
    match api
        .patch_status(
            &m.name_any(),
            &PatchParams::apply(&ctx.field_manager).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Deleted while we worked: nothing to report on.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
