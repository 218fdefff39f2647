//! A local control plane: a real etcd + kube-apiserver on loopback, for the tests, for
//! `capstan up`'s management cluster and for the workload clusters that simulated guests
//! initialise. Every process it starts listens on 127.0.0.1 only and is killed when its guard
//! drops, on panic too, and (through `PR_SET_PDEATHSIG`) when the starting thread dies.
//!
//! The binaries come from `hack/testenv.sh` (`CAPSTAN_ETCD`, `CAPSTAN_KUBE_APISERVER`, or the
//! cache `~/.cache/capstan`, one kube-apiserver per Kubernetes minor version: see [`binaries`]).

mod apiserver;
mod apply;
pub mod binaries;
mod pki;
mod process;

pub use apiserver::{LocalPlane, PlaneOptions, RESTRICTED_USER, SuppliedPki, install_crds};
pub use apply::apply_yaml;
pub use binaries::{binaries, cache_dir};
pub use process::{ChildGuard, free_port, wait_for, wait_for_value};
