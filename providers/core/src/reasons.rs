//! Condition types and reasons the core sets. Reasons are what a user acts on, so each names the
//! thing that is missing or wrong.

/// InfraMachine condition: the instance exists and runs with addresses.
pub const INSTANCE_PROVISIONED: &str = "InstanceProvisioned";
/// InfraCluster condition: the cloud behind the cluster is reachable with its credentials.
pub const CLOUD_AVAILABLE: &str = "CloudAvailable";

pub const WAITING_FOR_OWNER: &str = "WaitingForOwner";
pub const WAITING_FOR_CLUSTER_INFRASTRUCTURE: &str = "WaitingForClusterInfrastructure";
pub const WAITING_FOR_BOOTSTRAP_DATA: &str = "WaitingForBootstrapData";
pub const INSTANCE_PROVISIONING: &str = "InstanceProvisioning";
/// Cluster infrastructure (a load balancer) is being built.
pub const PROVISIONING: &str = "Provisioning";
/// A running instance could not be attached (e.g. to the load balancer pool).
pub const ATTACHMENTS_READY: &str = "AttachmentsReady";
pub const ATTACHED: &str = "Attached";
pub const ATTACH_FAILED: &str = "AttachFailed";
pub const INSTANCE_PROVISIONING_FAILED: &str = "InstanceProvisioningFailed";
pub const INSTANCE_NOT_FOUND: &str = "InstanceNotFound";
/// Event: an instance that broke before it ever ran is deleted to be created again.
pub const DELETING_BROKEN_INSTANCE: &str = "DeletingBrokenInstance";
pub const INSTANCE_RUNNING: &str = "InstanceRunning";
pub const WAITING_FOR_ADDRESSES: &str = "WaitingForAddresses";
pub const CREDENTIALS_UNAVAILABLE: &str = "CredentialsUnavailable";
pub const BOOTSTRAP_DATA_INVALID: &str = "BootstrapDataInvalid";
/// Condition: what delivered the bootstrap data to the instance is gone.
pub const BOOTSTRAP_DATA_CLEANED_UP: &str = "BootstrapDataCleanedUp";
pub const CLEANED_UP: &str = "CleanedUp";
pub const CLEANING_UP: &str = "CleaningUp";
pub const CLEANUP_FAILED: &str = "CleanupFailed";
/// The cloud keeps the bootstrap data with the instance (see the provider's documentation).
pub const BOOTSTRAP_DATA_RETAINED: &str = "BootstrapDataRetainedByCloud";
/// A cloud operation ran longer than the operation timeout.
pub const OPERATION_TIMED_OUT: &str = "OperationTimedOut";
pub const DELETING: &str = "Deleting";
pub const DELETION_FAILED: &str = "DeletionFailed";
pub const READY: &str = "Ready";
pub const NOT_READY: &str = "NotReady";
pub const PROVISIONED: &str = "Provisioned";
