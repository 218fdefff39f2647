//! Bootstrap documents: kubeadm config YAML for the machine's Kubernetes version and the
//! cloud-config that writes it, the certificates and the user's files, and runs kubeadm.

pub mod cloudinit;
pub mod goformat;
pub mod goyaml;
pub mod ignition;
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
        "annotation bootstrap.capstan.dev/ignition-version is {0:?}: use one of 3.0.0, 3.1.0, 3.2.0, 3.3.0, 3.4.0 (the default), 3.5.0, or 2.3.0 (CABPK's output, for old Flatcar images only)"
    )]
    InvalidIgnitionVersion(String),
    #[error("file {path}: {problem}")]
    InvalidFile { path: String, problem: String },
    #[error(
        "spec.{0} is not rendered into Ignition documents yet: remove it, or describe the disks in spec.ignition.containerLinuxConfig.additionalConfig (Ignition storage.disks/filesystems and a .mount unit)"
    )]
    UnsupportedInIgnition(&'static str),
    #[error("spec.ignition.containerLinuxConfig.additionalConfig: {0}")]
    AdditionalConfig(String),
    #[error("rendering the bootstrap template: {0}")]
    Template(#[from] minijinja::Error),
}

impl RenderError {
    /// The KubeadmConfig condition reason: names what the user has to change.
    pub fn reason(&self) -> &'static str {
        match self {
            RenderError::UnsupportedVersion(_) => "UnsupportedKubernetesVersion",
            RenderError::InvalidVersion(_) => "InvalidKubernetesVersion",
            RenderError::InvalidIgnitionVersion(_) => "InvalidIgnitionVersion",
            RenderError::InvalidFile { .. } => "InvalidFile",
            RenderError::UnsupportedInIgnition(_) => "UnsupportedInIgnition",
            RenderError::AdditionalConfig(_) => "InvalidAdditionalConfig",
            RenderError::Template(_) => "RenderError",
        }
    }
}
