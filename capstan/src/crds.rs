use std::io::Write;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

#[derive(clap::Args)]
pub struct CrdsArgs {
    /// Also print the Cluster API core kinds (Cluster, Machine, MachineSet, MachineDeployment) as
    /// Capstan models them, for running without Cluster API core (standalone mode).
    #[arg(long)]
    pub with_capi_core: bool,
}

/// Every CRD Capstan's own kinds need, in install order.
pub fn all(with_capi_core: bool) -> Vec<CustomResourceDefinition> {
    let mut crds = capstan_dcs::api::crds();
    crds.extend(capstan_hcs::api::crds());
    crds.extend(capstan_vsphere::api::crds());
    crds.extend(capstan_kubeadm::api::crds());
    if with_capi_core {
        crds.extend(capstan_api::crd::capi_core());
    }
    crds
}

pub fn run(args: &CrdsArgs) -> anyhow::Result<()> {
    let yaml = capstan_api::crd::to_yaml(&all(args.with_capi_core))?;
    std::io::stdout().write_all(yaml.as_bytes())?;
    Ok(())
}
