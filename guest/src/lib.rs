//! Guest emulation for Capstan's simulators: what a VM does with its bootstrap data when it
//! powers on. It reads the NoCloud seed from the ISO it was given, behaves like cloud-init
//! (jinja header, `write_files`, `runcmd`) and like kubeadm (`init` starts a real etcd +
//! kube-apiserver for the workload cluster from the certificates written to disk; `join`
//! discovers and authenticates exactly as kubeadm does), then registers the VM's Node with the
//! providerID its kubelet flags give.

pub mod cloudinit;
mod host;
pub mod ignition;
pub mod kubeadm;
pub mod nocloud;
pub mod os;

pub use host::{
    BootContext, ClusterView, Clusters, Datasource, EndpointMode, GuestOptions, GuestStatus, Guests, Mode, VmInfo,
};
pub use os::{BootAgent, GuestOs};
