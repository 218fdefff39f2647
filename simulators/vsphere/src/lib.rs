//! vSphere for Capstan's tests and `capstan up --infrastructure vsphere`: the real vcsim
//! ([`Vcsim`], govmomi's own simulator built by `hack/testenv.sh`) and the [`Bridge`] that boots
//! its VMs' guestinfo through guest emulation and reports their addresses as VMware Tools would.

mod bridge;
mod vcsim;

pub use bridge::{Bridge, BridgeOptions};
pub use vcsim::{Vcsim, VcsimOptions, VcsimTls, test_tls};
