//! VMware vSphere support for Capstan: a vim25 SOAP client of its own ([`client`]), the kinds
//! ([`api`]) and the provider on the lifecycle core ([`provider`]): VMs cloned from a template
//! with the VCenterMachine's UID as instance UUID, booted with cloud-init or Ignition guestinfo,
//! powered off per `powerOffMode` and destroyed. vcsim is the test oracle; no simulator code
//! lives here.

pub mod api;
pub mod bootstrap;
pub mod client;
pub mod error;
mod naming;
pub mod placement;
pub mod provider;
mod settings;

pub use error::ProviderError;
pub use provider::{Options, VsphereProvider};

const INSTALLED_BY: &str = "the vSphere provider CRDs (`capstan crds | kubectl apply -f -`, or `clusterctl init --infrastructure capstan-vsphere`)";

/// The vSphere provider as the manager runs it (`--provider vsphere`).
pub fn lifecycle_provider() -> capstan_lifecycle::LifecycleProvider<VsphereProvider> {
    lifecycle_provider_with(Options::default())
}

/// [`lifecycle_provider`] with settings of its own (tests shorten the IP wait).
pub fn lifecycle_provider_with(options: Options) -> capstan_lifecycle::LifecycleProvider<VsphereProvider> {
    capstan_lifecycle::LifecycleProvider::new("vsphere", INSTALLED_BY, move |kube, metrics| {
        VsphereProvider::new(kube, metrics, options.clone())
    })
}
