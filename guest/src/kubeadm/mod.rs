//! `kubeadm init` and `kubeadm join` as the emulated guest runs them.

pub mod clients;
pub mod cluster;
pub mod config;
pub mod discovery;
mod init;
mod join;
pub mod node;
pub mod pki;

pub use init::init;
pub use join::join;

/// Why kubeadm failed. The message is what a user reads in the simulator's VM state.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KubeadmError {
    #[error("invalid kubeadm configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Certificates(String),
    #[error("control-plane endpoint: {0}")]
    Endpoint(String),
    #[error("starting the control plane: {0}")]
    ControlPlane(String),
    #[error("discovery: {0}")]
    Discovery(String),
    /// The signer has not signed cluster-info for this token (yet).
    #[error("discovery: {0}")]
    NotSigned(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("TLS bootstrap: {0}")]
    Unauthorized(String),
    #[error("{0}")]
    Registration(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl KubeadmError {
    /// kubeadm keeps retrying these until its discovery/bootstrap timeout.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            KubeadmError::NotSigned(_) | KubeadmError::Unreachable(_) | KubeadmError::Unauthorized(_)
        )
    }
}
