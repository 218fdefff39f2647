//! The one trait a cloud implements, in cloud terms. Nothing Kubernetes-specific crosses it except
//! the provider's own spec types, and nothing cloud-specific lives in the core.

use std::future::Future;

use capstan_api::core::{ApiEndpoint, Cluster, FailureDomain, MachineAddress};
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use kube::core::object::{HasSpec, HasStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::credentials::Credentials;
use crate::status::{CloudResources, InfraClusterStatus, InfraMachineStatus, PendingOperation};

/// The Kubernetes side of a provider's kind: a namespaced custom resource whose status is owned
/// by the core.
pub trait InfraKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + HasSpec
    + HasStatus
    + Clone
    + Serialize
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> InfraKind for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + HasSpec
        + HasStatus
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// What the core needs to know of an InfraCluster spec.
pub trait InfraClusterSpec {
    /// Name of the Secret (same namespace) with the cloud credentials.
    fn credentials_secret(&self) -> &str;
    /// The endpoint the user supplied (external load balancer or VIP), if any.
    fn control_plane_endpoint(&self) -> Option<&ApiEndpoint>;
}

/// What the core needs to know of an InfraMachine spec.
pub trait InfraMachineSpec {
    fn provider_id(&self) -> Option<&str>;
}

/// Stamped on the instance at creation (as an external UUID, tag or name) so it can be found
/// again after a crash between "create requested" and "status written": never create twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceIdentity {
    /// The InfraMachine's UID: unique, stable across restarts, never reused.
    pub uid: String,
    /// The InfraMachine's name, also the instance name.
    pub name: String,
    pub namespace: String,
    pub cluster_name: String,
}

/// The instance's lifecycle state, normalised from the cloud's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceState {
    Creating,
    Stopped,
    Starting,
    Running,
    Stopping,
    Deleting,
    /// The cloud reports the instance broken; the message says how.
    Failed(String),
    Unknown(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The cloud's id, as `find`/`delete` take it.
    pub id: String,
    /// `dcs://…`, `hcs://…`, `vsphere://…`: must equal what the cloud-controller-manager puts on the Node.
    pub provider_id: String,
    pub state: InstanceState,
    /// The state word as the cloud reported it, for status.
    pub raw_state: String,
    pub addresses: Vec<MachineAddress>,
    pub failure_domain: Option<String>,
}

/// A long-running cloud operation just started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationState {
    Running,
    Succeeded,
    Failed { message: String },
}

/// Bootstrap data from the Machine's data secret (`value`, `format`).
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapData {
    pub value: Vec<u8>,
    pub format: BootstrapFormat,
}

impl std::fmt::Debug for BootstrapData {
    // The document holds join tokens and keys: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapData")
            .field("bytes", &self.value.len())
            .field("format", &self.format)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootstrapFormat {
    CloudConfig,
    Ignition,
}

impl BootstrapFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "cloud-config" => Some(Self::CloudConfig),
            "ignition" => Some(Self::Ignition),
            _ => None,
        }
    }
}

/// Where removing the bootstrap data from an instance stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleanup {
    Done,
    /// A step is under way without a handle to poll; call again.
    InProgress,
    /// A long-running step started (a detach task): the core polls it, then calls again.
    Started(Operation),
    /// The cloud keeps the bootstrap data with the instance and offers no way to remove it
    /// (ECS `user_data`); the message says so, and the condition stays false rather than lie.
    Impossible(String),
}

/// Why an instance is being started.
#[derive(Clone, Copy, Debug)]
pub enum Boot<'a> {
    /// It has never run: deliver the bootstrap data with this start.
    First(&'a BootstrapData),
    /// It ran before (stopped by hand, a host failure, a restart): start it as it is. Its
    /// bootstrap data was removed after provisioning and must not be delivered again.
    Again,
}

/// What cluster infrastructure provides once it is up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterInfra {
    /// An endpoint the provider created (a load balancer); `None` keeps the user's.
    pub control_plane_endpoint: Option<ApiEndpoint>,
    pub failure_domains: Vec<FailureDomain>,
}

/// Where bringing cluster infrastructure up stands. Building a load balancer takes the cloud a
/// while: that is progress to report and poll, not an error to back off from.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterProgress {
    Ready(ClusterInfra),
    /// Still being built; the message says what is awaited. The core polls again shortly.
    Pending(String),
}

/// Where removing something stands, when the cloud does it asynchronously.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    Done,
    /// Under way (a load balancer being deleted, a member draining): call again.
    InProgress(String),
}

/// What the attachments hook found for a running instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attachment {
    /// This machine is attached to nothing (a worker behind no load balancer, a cloud without
    /// one): no `AttachmentsReady` condition.
    NotApplicable,
    /// Everything it belongs to has it.
    Attached,
}

/// Everything about one InfraCluster a provider may need.
pub struct ClusterScope<'a, P: InfraProvider + ?Sized> {
    pub infra: &'a P::Cluster,
    /// The owner Cluster (`spec.clusterNetwork.apiServerPort` is the listener port). On deletion
    /// it may already be gone.
    pub cluster: Option<&'a Cluster>,
    pub credentials: &'a Credentials,
}

impl<P: InfraProvider + ?Sized> ClusterScope<'_, P> {
    /// The API server port the Cluster asks for (CAPI's default, 6443, when it says nothing).
    pub fn api_server_port(&self) -> u16 {
        self.cluster
            .and_then(|c| c.spec.cluster_network.as_ref()?.api_server_port)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(6443)
    }
}

/// Errors a cloud reports, classified so the core knows whether to retry.
pub trait CloudError: std::error::Error + Send + Sync + 'static {
    /// Worth retrying with backoff (5xx, throttling, timeouts, busy).
    fn is_retryable(&self) -> bool;
    /// The thing asked for does not exist.
    fn is_not_found(&self) -> bool;
    /// A condition reason a user can act on, e.g. `AuthenticationFailed`, `TemplateNotFound`.
    fn reason(&self) -> &'static str;
}

/// Everything about one InfraMachine a provider may need.
pub struct MachineScope<'a, P: InfraProvider + ?Sized> {
    pub cluster: &'a P::Cluster,
    pub machine: &'a P::Machine,
    pub credentials: &'a Credentials,
    pub identity: InstanceIdentity,
    /// The cloud's id of the instance from an earlier pass (status), if any: a provider can
    /// look it up directly instead of searching by identity. It may be stale (status restored
    /// by hand, the instance deleted): the identity decides.
    pub known_instance: Option<String>,
    /// `Machine.spec.failureDomain`, where the instance must be placed.
    pub failure_domain: Option<String>,
    /// Whether the owner Machine is a control-plane machine (on deletion, from the Machine or,
    /// once it is gone, from the InfraMachine's `cluster.x-k8s.io/control-plane` label).
    pub control_plane: bool,
}

/// One cloud's operations. Methods are called from reconciles; each must return promptly: start
/// long work and hand back an [`Operation`] that the core keeps in status and polls.
pub trait InfraProvider: Send + Sync + 'static {
    /// The InfraCluster kind (e.g. `DCSCluster`).
    type Cluster: InfraKind<Status = InfraClusterStatus<Self::ClusterResources>>;
    /// The InfraMachine kind (e.g. `DCSMachine`).
    type Machine: InfraKind<Status = InfraMachineStatus<Self::MachineResources>>;
    /// What the provider records in `status.resources` of an InfraCluster / InfraMachine.
    type ClusterResources: CloudResources;
    type MachineResources: CloudResources;
    type Error: CloudError;

    /// Short name used in metrics, events and field managers (`dcs`).
    fn name(&self) -> &'static str;

    /// Brings cluster-level infrastructure up (or checks it is reachable) and reports what it
    /// offers. Ids of what it creates go into `resources` at once: the core writes them to
    /// status whatever the outcome, so a later pass (or a restarted manager) continues.
    fn ensure_cluster_infra(
        &self,
        scope: &ClusterScope<'_, Self>,
        resources: &mut Self::ClusterResources,
    ) -> impl Future<Output = Result<ClusterProgress, Self::Error>> + Send;

    /// Removes cluster-level infrastructure; the finalizer goes once it returns `Done`.
    fn delete_cluster_infra(
        &self,
        scope: &ClusterScope<'_, Self>,
        resources: &mut Self::ClusterResources,
    ) -> impl Future<Output = Result<Removal, Self::Error>> + Send;

    /// Finds the instance by the identity stamped on it at creation.
    fn find_instance(
        &self,
        scope: &MachineScope<'_, Self>,
    ) -> impl Future<Output = Result<Option<Instance>, Self::Error>> + Send;

    /// Starts creating the instance. It must carry `scope.identity` so `find_instance` sees it at
    /// once, even before the operation completes.
    fn create_instance(
        &self,
        scope: &MachineScope<'_, Self>,
        bootstrap: &BootstrapData,
    ) -> impl Future<Output = Result<Operation, Self::Error>> + Send;

    /// Brings a created, stopped instance up: on its first boot with the bootstrap data, later
    /// without. `None` when there is nothing to do.
    fn start_instance(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: &Instance,
        boot: Boot<'_>,
    ) -> impl Future<Output = Result<Option<Operation>, Self::Error>> + Send;

    /// Where an operation kept in status stands.
    fn poll_operation(
        &self,
        scope: &MachineScope<'_, Self>,
        operation: &PendingOperation,
    ) -> impl Future<Output = Result<OperationState, Self::Error>> + Send;

    /// Starts deleting the instance; `None` when it is already gone.
    fn delete_instance(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: &Instance,
    ) -> impl Future<Output = Result<Option<Operation>, Self::Error>> + Send;

    /// Called on every pass while a running instance reports no address yet. An error becomes
    /// the machine's condition reason and message instead of `WaitingForAddresses` (e.g. a wait
    /// that ran past the provider's timeout); the core keeps polling either way, so an address
    /// that turns up later still provisions the machine.
    fn check_address_wait(
        &self,
        _scope: &MachineScope<'_, Self>,
        _instance: &Instance,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Called once the instance is gone for good, before the finalizer is released (e.g. to give
    /// back an address the machine held).
    fn after_deleted(&self, _scope: &MachineScope<'_, Self>) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Keeps what a running instance is attached to in step (a control-plane member in the
    /// load balancer's pool). Called on every pass once the instance runs with addresses; must
    /// be idempotent.
    fn ensure_attachments(
        &self,
        _scope: &MachineScope<'_, Self>,
        _instance: &Instance,
        _resources: &mut Self::MachineResources,
    ) -> impl Future<Output = Result<Attachment, Self::Error>> + Send {
        async { Ok(Attachment::NotApplicable) }
    }

    /// Undoes [`InfraProvider::ensure_attachments`] before the instance is deleted (a member
    /// leaves the pool before its server goes, so no connection is sent to a dying node).
    /// Called on every deletion pass until it returns `Done`, also when the record in
    /// `resources` is lost.
    fn release_attachments(
        &self,
        _scope: &MachineScope<'_, Self>,
        _instance: Option<&Instance>,
        _resources: &mut Self::MachineResources,
    ) -> impl Future<Output = Result<Removal, Self::Error>> + Send {
        async { Ok(Removal::Done) }
    }

    /// Removes whatever delivered the bootstrap data (a volume, an uploaded image, guestinfo):
    /// it holds join tokens and, on control-plane machines, the cluster's private keys. Called
    /// once the instance runs, on every pass until it succeeds (the core records success in the
    /// `BootstrapDataCleanedUp` condition), and again whenever that record is lost (a moved
    /// cluster): it must be idempotent.
    fn clean_up_bootstrap(
        &self,
        _scope: &MachineScope<'_, Self>,
        _instance: &Instance,
    ) -> impl Future<Output = Result<Cleanup, Self::Error>> + Send {
        async { Ok(Cleanup::Done) }
    }
}
