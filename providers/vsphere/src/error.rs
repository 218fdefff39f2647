//! The provider's errors, classified for the lifecycle core: retryable or not, and a condition
//! reason a user can act on. No message carries a credential: vim25 faults never echo the
//! password, and the Secret's values are named by key only.

use capstan_lifecycle::CloudError;
use capstan_lifecycle::ipam::IpamError;

use crate::client::{Fault, VsphereError};

/// What a vSphere inventory look-up was for, for the reason of a failed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inventory {
    Datacenter,
    Template,
    Snapshot,
    Folder,
    ResourcePool,
    Datastore,
    Network,
    ComputeCluster,
    FailureDomain,
}

impl Inventory {
    fn reason(self) -> &'static str {
        match self {
            Inventory::Datacenter => "DatacenterNotFound",
            Inventory::Template => "TemplateNotFound",
            Inventory::Snapshot => "SnapshotNotFound",
            Inventory::Folder => "FolderNotFound",
            Inventory::ResourcePool => "ResourcePoolNotFound",
            Inventory::Datastore => "DatastoreNotFound",
            Inventory::Network => "NetworkNotFound",
            Inventory::ComputeCluster => "ComputeClusterNotFound",
            Inventory::FailureDomain => "FailureDomainNotFound",
        }
    }
}

impl std::fmt::Display for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = match self {
            Inventory::Datacenter => "datacenter",
            Inventory::Template => "template",
            Inventory::Snapshot => "snapshot",
            Inventory::Folder => "folder",
            Inventory::ResourcePool => "resource pool",
            Inventory::Datastore => "datastore",
            Inventory::Network => "network",
            Inventory::ComputeCluster => "compute cluster",
            Inventory::FailureDomain => "failure domain",
        };
        f.write_str(word)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("invalid credentials secret: {0}")]
    Credentials(String),
    #[error("invalid spec: {0}")]
    Spec(String),
    #[error("{what} {path:?} not found in vCenter")]
    NotFound { what: Inventory, path: String },
    #[error(
        "a VM named {name:?} already exists in the folder and does not carry this machine's identity; rename or remove it, or choose another naming template"
    )]
    NameTaken { name: String },
    #[error(
        "no IP address reported by VMware Tools for NIC(s) {macs} within {seconds}s of power-on; check the guest's network and open-vm-tools"
    )]
    AddressTimeout { macs: String, seconds: u64 },
    #[error("the guest did not shut down: {0}")]
    SoftPowerOff(String),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Vsphere(#[from] VsphereError),
}

impl From<capstan_lifecycle::credentials::CredentialsError> for ProviderError {
    fn from(e: capstan_lifecycle::credentials::CredentialsError) -> Self {
        ProviderError::Credentials(e.to_string())
    }
}

impl ProviderError {
    pub fn not_found(what: Inventory, path: impl Into<String>) -> Self {
        ProviderError::NotFound {
            what,
            path: path.into(),
        }
    }

    fn fault_type(&self) -> Option<&str> {
        match self {
            ProviderError::Vsphere(e) => e.fault().map(Fault::fault_type),
            _ => None,
        }
    }
}

impl CloudError for ProviderError {
    fn is_retryable(&self) -> bool {
        match self {
            // IPAM clears up without a spec change (a pool created or freed); an address may
            // still come; the guest may still shut down.
            ProviderError::Ipam(_) | ProviderError::AddressTimeout { .. } | ProviderError::SoftPowerOff(_) => true,
            ProviderError::Vsphere(e) => e.is_retryable(),
            _ => false,
        }
    }

    fn is_not_found(&self) -> bool {
        matches!(self, ProviderError::NotFound { .. }) || matches!(self, ProviderError::Vsphere(e) if e.is_not_found())
    }

    fn reason(&self) -> &'static str {
        match self {
            ProviderError::Credentials(_) => "InvalidCredentials",
            ProviderError::Spec(_) => "InvalidSpec",
            ProviderError::NotFound { what, .. } => what.reason(),
            ProviderError::NameTaken { .. } => "VMNameTaken",
            ProviderError::AddressTimeout { .. } => "IPAddressTimeout",
            ProviderError::SoftPowerOff(_) => "GuestSoftPowerOffFailed",
            ProviderError::Ipam(e) => e.reason(),
            ProviderError::Vsphere(_) => match self.fault_type() {
                Some("InvalidLogin" | "NotAuthenticated") => "AuthenticationFailed",
                Some("NoPermission") => "PermissionDenied",
                Some("InsufficientResourcesFault") => "InsufficientResources",
                _ if self.is_retryable() => "CloudUnavailable",
                _ => "CloudAPIError",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_what_to_fix() {
        let login = ProviderError::Vsphere(VsphereError::Fault {
            method: "Login",
            fault: Box::new(Fault::InvalidLogin {
                message: "Login failure".into(),
            }),
        });
        assert_eq!(login.reason(), "AuthenticationFailed");
        assert!(!login.is_retryable());
        let missing = ProviderError::not_found(Inventory::Template, "/DC0/vm/nope");
        assert_eq!(missing.reason(), "TemplateNotFound");
        assert!(missing.is_not_found());
        assert_eq!(missing.to_string(), "template \"/DC0/vm/nope\" not found in vCenter");
        let busy = ProviderError::Vsphere(VsphereError::Fault {
            method: "ReconfigVM_Task",
            fault: Box::new(Fault::Other {
                fault_type: "TaskInProgress".into(),
                message: String::new(),
                invalid_property: None,
            }),
        });
        assert!(busy.is_retryable());
        assert_eq!(busy.reason(), "CloudUnavailable");
    }
}
