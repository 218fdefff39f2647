//! Huawei DCS (FusionCompute VRM) support for Capstan: the VRM REST client and the provider on the
//! lifecycle core. The VRM simulator lives in its own crate (`capstan-sim-dcs`), which shares no
//! code with this client.

pub mod api;
pub mod client;
pub use capstan_iso as iso;
pub mod pool;
pub mod provider;
pub mod volume;

pub use client::{DcsClient, DcsClientPool, DcsConfig, DcsError, PasswordEncoding, SecretString, UserType};

/// The `dcs` provider as the manager runs it.
pub fn lifecycle_provider() -> capstan_lifecycle::LifecycleProvider<provider::DcsProvider> {
    capstan_lifecycle::LifecycleProvider::new(
        "dcs",
        "the DCS provider CRDs (`capstan crds | kubectl apply -f -`, or `clusterctl init --infrastructure capstan-dcs`)",
        provider::DcsProvider::new,
    )
    .with_companion(ipam_crds(), pool::run)
}

/// The CAPI IPAM kinds the pool controller serves (installed with Cluster API core).
fn ipam_crds() -> Vec<capstan_runtime::preflight::RequiredCrd> {
    use capstan_api::ipam::{GROUP, VERSION};
    let by = "Cluster API core (`clusterctl init`, or `capstan crds --with-capi-core | kubectl apply -f -` for standalone mode)";
    ["ipaddressclaims", "ipaddresses"]
        .into_iter()
        .map(|plural| capstan_runtime::preflight::RequiredCrd::new(GROUP, VERSION, plural, by))
        .collect()
}
