//! `--provider standalone`: the part of Cluster API core that Capstan needs where CAPI is not
//! installed (the installer's first cluster, offline demos, end-to-end tests). It works on the
//! real upstream CRDs with upstream semantics, so the objects can later be handed to a real CAPI.
//!
//! Never run it next to a real CAPI core: two controllers would fight over the same objects. The
//! provider refuses to start when CAPI core's leader-election Lease exists.
//!
//! Controllers: Cluster, Machine, MachineSet, MachineDeployment. Out of scope (objects of these
//! kinds are left alone): MachinePool, ClusterClass/topology, MachineHealthCheck remediation,
//! in-place updates, and control-plane providers such as KubeadmControlPlane (control-plane
//! Machines are plain Machines labelled `cluster.x-k8s.io/control-plane`).

mod cluster;
mod controller;
mod external;
mod machine;
mod machinedeployment;
mod machineset;
pub mod node_sync;
pub mod rollout;
mod template;

use std::sync::Arc;

pub use controller::Timing;
pub use machinedeployment::{ANNOTATION_REVISION, template_hash};

use capstan_runtime::preflight::RequiredCrd;
use capstan_runtime::{BoxError, Provider, ProviderContext};
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};

/// Field manager for every write of the standalone core.
pub const FIELD_MANAGER: &str = "capstan-standalone";
/// The Lease upstream CAPI core's manager elects its leader with.
pub const CAPI_CORE_LEASE: &str = "controller-leader-election-capi";

#[derive(Default)]
pub struct Standalone {
    pub timing: Timing,
}

impl Standalone {
    /// Shorter waits, for tests that compress time.
    pub fn with_timing(timing: Timing) -> Self {
        Self { timing }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "Cluster API core is running in this cluster (Lease {namespace}/{CAPI_CORE_LEASE} exists): the standalone core would fight it over the same objects; run the providers without --provider standalone"
)]
pub struct CapiCorePresent {
    pub namespace: String,
}

/// The namespace of CAPI core's leader Lease, if CAPI core runs in this cluster.
pub async fn capi_core_namespace(client: &kube::Client) -> Result<Option<String>, kube::Error> {
    let leases: Api<Lease> = Api::all(client.clone());
    let found = leases
        .list(&ListParams::default().fields(&format!("metadata.name={CAPI_CORE_LEASE}")))
        .await?;
    Ok(found
        .items
        .first()
        .map(|l| l.metadata.namespace.clone().unwrap_or_default()))
}

/// Refuses to start next to a real CAPI core.
async fn check_no_capi_core(client: &kube::Client) -> Result<(), BoxError> {
    if let Some(namespace) = capi_core_namespace(client).await? {
        return Err(Box::new(CapiCorePresent { namespace }));
    }
    Ok(())
}

impl Provider for Standalone {
    fn name(&self) -> &'static str {
        "standalone"
    }

    fn required_crds(&self) -> Vec<RequiredCrd> {
        let by = "the Cluster API core CRDs (`capstan crds --with-capi-core | kubectl apply -f -`)";
        ["clusters", "machines", "machinesets", "machinedeployments"]
            .into_iter()
            .map(|plural| RequiredCrd::new(capstan_api::core::GROUP, capstan_api::core::VERSION, plural, by))
            .collect()
    }

    fn run(&self, ctx: ProviderContext) -> BoxFuture<'static, Result<(), BoxError>> {
        let timing = self.timing.clone();
        Box::pin(async move {
            check_no_capi_core(&ctx.client).await?;
            let state = Arc::new(controller::Ctx::new(ctx.client.clone(), ctx.metrics.clone(), timing));
            futures::join!(
                cluster::run(ctx.clone(), state.clone()),
                machine::run(ctx.clone(), state.clone()),
                machineset::run(ctx.clone(), state.clone()),
                machinedeployment::run(ctx, state),
            );
            Ok(())
        })
    }
}
