//! Test harness for Capstan: a real etcd + kube-apiserver on loopback, CRD installation and
//! clients for an admin or a restricted identity. Every process it starts listens on 127.0.0.1
//! only, on ports chosen at run time, and is killed when its guard drops, on panic too, and
//! (through `PR_SET_PDEATHSIG`) when the test process itself dies.
//!
//! The binaries come from `hack/testenv.sh` (`CAPSTAN_ETCD`, `CAPSTAN_KUBE_APISERVER`, or the
//! default cache `~/.cache/capstan`).

pub mod bench;
mod crds;
pub mod fuzz;
pub mod ignition;
pub mod manager;
pub mod objects;
mod testenv;
pub mod upstream;

pub use capstan_localplane::{
    ChildGuard, LocalPlane, PlaneOptions, RESTRICTED_USER, free_port, wait_for, wait_for_value,
};
pub use capstan_sim_vsphere::{Vcsim, VcsimOptions, VcsimTls, test_tls as vcsim_test_tls};
pub use crds::{capi_crds_dir, load_crds_from_dir, shared_dir};
pub use testenv::{TestEnv, TestEnvOptions};
