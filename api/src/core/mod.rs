//! Cluster API core kinds, `cluster.x-k8s.io/v1beta2`, client side.
//!
//! Only what the providers, the bootstrap provider and the standalone core read or write is
//! modelled; everything else lands in the `unknown` map of the nearest struct. The schemas
//! generated from these types mark those places with `x-kubernetes-preserve-unknown-fields`, so
//! a CRD built from them (used by `capstan up` when no CAPI is installed) stores what it does not
//! know instead of pruning it.

mod cluster;
mod common;
mod machine;
mod machine_deployment;
mod machine_set;
mod open_enum;

pub use cluster::*;
pub use common::*;
pub use machine::*;
pub use machine_deployment::*;
pub use machine_set::*;

/// The API group of the Cluster API core kinds.
pub const GROUP: &str = "cluster.x-k8s.io";
/// The version of the core kinds Capstan reads and writes.
pub const VERSION: &str = "v1beta2";
