//! Guest emulation for Capstan's simulators: what a VM does with its bootstrap data when it
//! powers on. Its [`GuestOs`] decides how: an Ubuntu image reads its NoCloud seed (ISO,
//! metadata service or guestinfo) and behaves like cloud-init (jinja header, `write_files`,
//! `runcmd`); MicroOS, Flatcar and FCOS images run [`ignition`] on what their platform offers,
//! then systemd starts the enabled units. Both behave like kubeadm (`init` starts a real etcd +
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
