//! The machine lifecycle core: everything Capstan's infrastructure providers have in common.
//!
//! A provider implements [`InfraProvider`] in cloud terms (find, create, start, inspect and delete
//! an instance; bring up and tear down cluster infrastructure). The generic reconcilers here turn
//! that into the Cluster API v1beta2 InfraCluster/InfraMachine contract: owner chain, finalizers,
//! pause, waiting on the Cluster and the bootstrap data, long-running operations kept in status and
//! polled on requeue (no worker ever sleeps on a cloud task), idempotent create by a stable
//! identity, deletion that never deadlocks, conditions, events and metrics.

mod cluster;
mod context;
pub use context::DEFAULT_OPERATION_TIMEOUT;
mod controller;
pub mod credentials;
pub mod ignition;
pub mod ipam;
mod machine;
pub mod provider;
pub mod reasons;
pub mod spec;
pub mod status;

pub use controller::LifecycleProvider;
pub use credentials::Credentials;
pub use machine::finalizer_name;
pub use provider::*;
pub use status::*;
