//! Huawei Cloud Stack support for Capstan: the HCS API client ([`client`]: AK/SK request signing,
//! endpoints, classified errors, on the cloud kit), the kinds ([`api`]) and the provider on the
//! lifecycle core ([`provider`]): ECS servers booted with `user_data`, a dedicated ELB for the
//! control-plane endpoint, availability zones as failure domains. The HCS simulator is its own
//! crate (`capstan-sim-hcs`) and shares no code with this client.

pub mod api;
pub mod client;
mod loadbalancer;
pub mod provider;
mod settings;

/// The HCS provider as the manager runs it (`--provider hcs`).
pub fn lifecycle_provider() -> capstan_lifecycle::LifecycleProvider<provider::HcsProvider> {
    capstan_lifecycle::LifecycleProvider::new(
        "hcs",
        "the HCS provider CRDs (`capstan crds | kubectl apply -f -`, or `clusterctl init --infrastructure capstan-hcs`)",
        |_client, metrics| provider::HcsProvider::new(metrics),
    )
}
