use std::ops::{Deref, DerefMut};

use capstan_localplane::{LocalPlane, PlaneOptions};

use crate::crds::{capi_crds_dir, load_crds_from_dir};

/// What to start.
#[derive(Clone, Debug, Default)]
pub struct TestEnvOptions {
    /// Install the upstream Cluster API CRDs (`shared/capi/crds-upstream`, unmodified).
    pub capi_crds: bool,
    /// Extra kube-apiserver flags, e.g. `--enable-bootstrap-token-auth`.
    pub extra_args: Vec<String>,
}

/// A [`LocalPlane`] for tests, optionally with the upstream CAPI CRDs installed.
pub struct TestEnv(LocalPlane);

impl TestEnv {
    /// Starts etcd and kube-apiserver with the upstream CAPI CRDs installed.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(TestEnvOptions {
            capi_crds: true,
            ..Default::default()
        })
        .await
    }

    /// Starts etcd and kube-apiserver with nothing installed.
    pub async fn start_bare() -> anyhow::Result<Self> {
        Self::start_with(TestEnvOptions::default()).await
    }

    pub async fn start_with(opts: TestEnvOptions) -> anyhow::Result<Self> {
        let plane = LocalPlane::start_with(PlaneOptions {
            extra_args: opts.extra_args,
            ..Default::default()
        })
        .await?;
        if opts.capi_crds {
            plane.install_crds(&load_crds_from_dir(&capi_crds_dir())?).await?;
        }
        Ok(TestEnv(plane))
    }
}

impl Deref for TestEnv {
    type Target = LocalPlane;
    fn deref(&self) -> &LocalPlane {
        &self.0
    }
}

impl DerefMut for TestEnv {
    fn deref_mut(&mut self) -> &mut LocalPlane {
        &mut self.0
    }
}
