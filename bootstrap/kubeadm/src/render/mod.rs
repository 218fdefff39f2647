//! Bootstrap documents: kubeadm config YAML for the machine's Kubernetes version and the
//! cloud-config that writes it, the certificates and the user's files, and runs kubeadm.

pub mod cloudinit;
pub mod goformat;
pub mod goyaml;
pub mod kubeadm;

pub use cloudinit::{CloudInitInput, DocumentKind, SENTINEL_FILE};
pub use kubeadm::{ClusterExtras, KubeadmApi};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "Kubernetes version {0} is not supported: the kubeadm bootstrap provider needs v1.22 or later (kubeadm config API v1beta3/v1beta4)"
    )]
    UnsupportedVersion(String),
    #[error("invalid Kubernetes version {0:?}: expected vMAJOR.MINOR.PATCH")]
    InvalidVersion(String),
    #[error(
        "spec.format ignition is not supported by Capstan's kubeadm bootstrap provider (upstream gates it behind the alpha KubeadmBootstrapFormatIgnition feature): use cloud-config"
    )]
    IgnitionUnsupported,
    #[error("rendering the bootstrap template: {0}")]
    Template(#[from] minijinja::Error),
}
