//! `--provider kubeadm`.

use capstan_runtime::preflight::RequiredCrd;
use capstan_runtime::{BoxError, Provider, ProviderContext};
use futures::future::BoxFuture;

use crate::controller::{self, Options};

/// The kubeadm bootstrap provider: the KubeadmConfig controller.
#[derive(Clone, Debug, Default)]
pub struct KubeadmBootstrapProvider {
    pub options: Options,
}

impl Provider for KubeadmBootstrapProvider {
    fn name(&self) -> &'static str {
        "kubeadm"
    }

    fn required_crds(&self) -> Vec<RequiredCrd> {
        let ours = "the kubeadm bootstrap CRDs (`capstan crds | kubectl apply -f -`)";
        let core = "the Cluster API core CRDs (clusterctl init, or `capstan crds --with-capi-core`)";
        vec![
            RequiredCrd::new(crate::api::GROUP, crate::api::VERSION, "kubeadmconfigs", ours),
            RequiredCrd::new(crate::api::GROUP, crate::api::VERSION, "kubeadmconfigtemplates", ours),
            RequiredCrd::new(capstan_api::core::GROUP, capstan_api::core::VERSION, "clusters", core),
            RequiredCrd::new(capstan_api::core::GROUP, capstan_api::core::VERSION, "machines", core),
        ]
    }

    fn run(&self, ctx: ProviderContext) -> BoxFuture<'static, Result<(), BoxError>> {
        let options = self.options.clone();
        Box::pin(async move {
            controller::run(ctx, options).await;
            Ok(())
        })
    }
}
