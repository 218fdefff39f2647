//! The guests of one simulator: each VM's boot, its status, and the workload clusters their
//! kubeadm runs brought up (stopped once none of their VMs remains).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cloudinit::{self, PlannedStep, RunIf};
use crate::kubeadm::cluster::WorkloadCluster;
use crate::kubeadm::node::NodeRecord;
use crate::nocloud;
use crate::os::{BootAgent, GuestOs};

mod exec;
mod guestinfo;
mod ignition;

use exec::Shell;

/// What the hypervisor offers the guest at power-on. The guest decides by its OS how to read it
/// (cloud-init's NoCloud/OpenStack/VMware datasources, or Ignition's platform providers).
#[derive(Debug)]
pub enum Datasource {
    /// Nothing: no volume attached, no metadata service.
    None,
    /// An attached CD-ROM image. Ubuntu reads a NoCloud seed (label `cidata`); MicroOS reads
    /// `ignition/config.ign` from a volume labelled exactly `ignition`; Flatcar and FCOS have no
    /// such source.
    Cdrom(Vec<u8>),
    /// An OpenStack-style metadata service: `user_data` and `meta_data`.
    Metadata(nocloud::Seed),
    /// vSphere guestinfo keys (`guestinfo.ignition.config.data`, `guestinfo.userdata`, ...).
    Guestinfo(BTreeMap<String, String>),
}

impl Datasource {
    /// A drive's image if there is one, else nothing.
    pub fn cdrom(iso: Option<Vec<u8>>) -> Self {
        iso.map_or(Datasource::None, Datasource::Cdrom)
    }

    fn seed(self) -> Result<nocloud::Seed, String> {
        match self {
            Datasource::None => Err("no bootstrap volume attached: cloud-init found no datasource".into()),
            Datasource::Cdrom(iso) => nocloud::read_seed(&iso).map_err(|e| format!("cloud-init: {e}")),
            Datasource::Metadata(seed) => Ok(seed),
            Datasource::Guestinfo(keys) => guestinfo::cloud_init_seed(&keys).map_err(|e| format!("cloud-init: {e}")),
        }
    }
}

/// How much of a cluster the guests bring up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `kubeadm init` starts a real etcd + kube-apiserver; joins discover and authenticate
    /// against it; Nodes are registered there.
    #[default]
    Full,
    /// No API server: init and join only record nodes. For benchmarks with many clusters.
    NodesOnly,
}

/// Who serves a workload cluster's `controlPlaneEndpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointMode {
    /// The control-plane node holds the endpoint address itself (kube-vip style, as on DCS):
    /// `kubeadm init` serves the API server on the endpoint, which must be 127.0.0.1.
    #[default]
    Vip,
    /// A cloud load balancer fronts the endpoint (an HCS ELB VIP): the API server binds the
    /// VM's first IP (a 127.0.0.0/8 address) on the endpoint's port with serving SANs for both
    /// the endpoint host and that IP. The cluster is still known by the endpoint `host:port`
    /// and kubeconfigs and joins use the endpoint, i.e. they go through the load balancer; the
    /// initialising node's own kubelet registers through its local API server (kubeadm's
    /// `ControlPlaneKubeletLocalMode`), as nothing routes the endpoint to it before the
    /// provider has made it a member.
    LoadBalanced,
}

#[derive(Debug, Clone)]
pub struct GuestOptions {
    /// Per-VM root directories and workload-cluster data live here.
    pub state_dir: PathBuf,
    pub mode: Mode,
    /// From power-on until cloud-init runs (firmware, kernel, systemd).
    pub boot_delay: Duration,
    /// kubeadm join's discovery and TLS-bootstrap timeout (kubeadm's default is 5 minutes).
    pub join_timeout: Duration,
    pub endpoint: EndpointMode,
}

impl GuestOptions {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        GuestOptions {
            state_dir: state_dir.into(),
            mode: Mode::Full,
            boot_delay: Duration::ZERO,
            join_timeout: Duration::from_secs(300),
            endpoint: EndpointMode::Vip,
        }
    }
}

/// The VM as the hypervisor knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmInfo {
    pub id: String,
    /// SMBIOS system UUID.
    pub uuid: String,
    pub name: String,
    pub ips: Vec<String>,
    /// The image the VM boots.
    pub os: GuestOs,
}

/// What an operator would see on the VM's console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestStatus {
    /// Powered on; cloud-init has not finished.
    Booting,
    /// cloud-init finished; `node` is the Node it registered, if its bootstrap data ran kubeadm.
    Running { node: Option<String> },
    /// The boot failed; the reason is what cloud-init/kubeadm would have logged.
    Failed { reason: String },
    /// Powered off after having booted.
    Off,
}

/// Workload clusters by `host:port`.
#[derive(Default)]
pub struct Clusters {
    by_endpoint: Mutex<HashMap<String, ClusterEntry>>,
}

struct ClusterEntry {
    cluster: Arc<WorkloadCluster>,
    members: BTreeSet<String>,
}

impl Clusters {
    pub fn get(&self, endpoint: &str) -> Option<Arc<WorkloadCluster>> {
        self.by_endpoint.lock().ok()?.get(endpoint).map(|e| e.cluster.clone())
    }

    /// Registers a cluster that `vm_id` just initialised; the VM is its first member, so
    /// deleting it stops the cluster even if the rest of its boot failed.
    pub(crate) fn insert(&self, cluster: Arc<WorkloadCluster>, vm_id: &str) {
        if let Ok(mut m) = self.by_endpoint.lock() {
            m.insert(
                cluster.endpoint.clone(),
                ClusterEntry {
                    cluster,
                    members: BTreeSet::from([vm_id.to_string()]),
                },
            );
        }
    }

    fn add_member(&self, endpoint: &str, vm_id: &str) {
        if let Ok(mut m) = self.by_endpoint.lock()
            && let Some(e) = m.get_mut(endpoint)
        {
            e.members.insert(vm_id.to_string());
        }
    }

    /// Forgets the VM; returns the clusters left without VMs, removed from the registry (the
    /// caller drops them, which stops their processes).
    fn remove_member(&self, vm_id: &str) -> Vec<Arc<WorkloadCluster>> {
        let Ok(mut m) = self.by_endpoint.lock() else {
            return Vec::new();
        };
        for e in m.values_mut() {
            if e.members.remove(vm_id) {
                e.cluster.forget_vm(vm_id);
            }
        }
        let empty: Vec<String> = m
            .iter()
            .filter(|(_, e)| e.members.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        empty
            .into_iter()
            .filter_map(|k| m.remove(&k).map(|e| e.cluster))
            .collect()
    }

    fn all(&self) -> Vec<Arc<WorkloadCluster>> {
        self.by_endpoint
            .lock()
            .map(|m| m.values().map(|e| e.cluster.clone()).collect())
            .unwrap_or_default()
    }
}

/// What [`kubeadm::init`]/[`kubeadm::join`] get to work with.
pub struct BootContext<'a> {
    pub root: &'a Path,
    pub vm: &'a VmInfo,
    pub hostname: &'a str,
    pub options: &'a GuestOptions,
    pub clusters: &'a Clusters,
}

struct VmRecord {
    status: GuestStatus,
    /// cloud-init ran to the end (successfully or not): a reboot does not run it again.
    booted: bool,
    /// The Node the boot registered; still registered after a reboot.
    node: Option<String>,
    log: Vec<String>,
    task: Option<tokio::task::AbortHandle>,
    /// vSphere guestinfo as the guest left it (Ignition replaces its config with `e30K`).
    guestinfo: Option<BTreeMap<String, String>>,
}

struct Inner {
    options: GuestOptions,
    vms: Mutex<BTreeMap<String, VmRecord>>,
    clusters: Clusters,
}

/// The guest side of a simulator. Cheap to clone.
#[derive(Clone)]
pub struct Guests(Arc<Inner>);

impl std::fmt::Debug for Guests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guests")
            .field("options", &self.0.options)
            .finish_non_exhaustive()
    }
}

/// A workload cluster as tests and `capstan up` see it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub endpoint: String,
    pub nodes: Vec<NodeRecord>,
    pub apiserver_pid: Option<u32>,
}

impl Guests {
    pub fn new(options: GuestOptions) -> Self {
        Guests(Arc::new(Inner {
            options,
            vms: Mutex::new(BTreeMap::new()),
            clusters: Clusters::default(),
        }))
    }

    pub fn options(&self) -> &GuestOptions {
        &self.0.options
    }

    fn root(&self, vm_id: &str) -> PathBuf {
        self.0.options.state_dir.join("vms").join(vm_id)
    }

    fn update(&self, vm_id: &str, f: impl FnOnce(&mut VmRecord)) {
        if let Ok(mut vms) = self.0.vms.lock()
            && let Some(r) = vms.get_mut(vm_id)
        {
            f(r);
        }
    }

    /// The VM was powered on with `source` attached. On first boot, the OS's boot agent
    /// (cloud-init or Ignition) runs after the boot delay; a reboot finds it already done.
    pub fn power_on(&self, vm: VmInfo, source: Datasource) {
        let Ok(mut vms) = self.0.vms.lock() else { return };
        if let Some(r) = vms.get_mut(&vm.id)
            && r.booted
        {
            if r.status == GuestStatus::Off {
                r.status = GuestStatus::Running { node: r.node.clone() };
            }
            return;
        }
        let me = self.clone();
        let id = vm.id.clone();
        let task = tokio::spawn(async move { me.boot(vm, source).await });
        vms.insert(
            id,
            VmRecord {
                status: GuestStatus::Booting,
                booted: false,
                node: None,
                log: Vec::new(),
                task: Some(task.abort_handle()),
                guestinfo: None,
            },
        );
    }

    pub fn power_off(&self, vm_id: &str) {
        self.update(vm_id, |r| {
            if r.booted {
                r.status = GuestStatus::Off;
            } else if let Some(t) = r.task.take() {
                // Pulled the plug mid-boot: cloud-init starts over next time.
                t.abort();
                r.status = GuestStatus::Off;
            }
        });
    }

    /// The VM is gone: its disk, its membership, and any cluster left without VMs.
    pub fn destroy(&self, vm_id: &str) {
        let record = self.0.vms.lock().ok().and_then(|mut v| v.remove(vm_id));
        if let Some(t) = record.and_then(|r| r.task) {
            t.abort();
        }
        let _ = std::fs::remove_dir_all(self.root(vm_id));
        for cluster in self.0.clusters.remove_member(vm_id) {
            tracing::info!(endpoint = %cluster.endpoint, "last VM of the workload cluster deleted; stopping its control plane");
            drop(cluster);
        }
    }

    pub fn status(&self, vm_id: &str) -> Option<GuestStatus> {
        self.0.vms.lock().ok()?.get(vm_id).map(|r| r.status.clone())
    }

    /// What cloud-init did, in order (recorded commands included).
    pub fn log(&self, vm_id: &str) -> Vec<String> {
        self.0
            .vms
            .lock()
            .ok()
            .and_then(|v| v.get(vm_id).map(|r| r.log.clone()))
            .unwrap_or_default()
    }

    /// The guestinfo keys after the boot, for the vSphere simulator to store back: `None` until
    /// the guest changed them (Ignition's `ignition-delete-config.service` after provisioning).
    pub fn guestinfo(&self, vm_id: &str) -> Option<BTreeMap<String, String>> {
        self.0.vms.lock().ok()?.get(vm_id).and_then(|r| r.guestinfo.clone())
    }

    pub fn cluster(&self, endpoint: &str) -> Option<Arc<WorkloadCluster>> {
        self.0.clusters.get(endpoint)
    }

    pub fn clusters(&self) -> Vec<ClusterView> {
        self.0
            .clusters
            .all()
            .iter()
            .map(|c| ClusterView {
                endpoint: c.endpoint.clone(),
                nodes: c.nodes(),
                apiserver_pid: c.apiserver_pid(),
            })
            .collect()
    }

    async fn boot(self, vm: VmInfo, source: Datasource) {
        tokio::time::sleep(self.0.options.boot_delay).await;
        let result = match vm.os.boot_agent() {
            BootAgent::CloudInit => self.run_cloud_init(&vm, source).await,
            BootAgent::Ignition => self.run_ignition(&vm, source).await,
        };
        self.update(&vm.id, |r| {
            r.booted = true;
            r.task = None;
            r.status = match result {
                Ok(node) => {
                    r.node = node.clone();
                    GuestStatus::Running { node }
                }
                Err(reason) => {
                    r.log.push(format!("boot failed: {reason}"));
                    GuestStatus::Failed { reason }
                }
            };
        });
    }

    fn context<'a>(&'a self, root: &'a Path, vm: &'a VmInfo, hostname: &'a str) -> BootContext<'a> {
        BootContext {
            root,
            vm,
            hostname,
            options: &self.0.options,
            clusters: &self.0.clusters,
        }
    }

    fn note(&self, vm_id: &str, line: String) {
        tracing::debug!(vm = vm_id, "{line}");
        self.update(vm_id, |r| r.log.push(line));
    }

    async fn run_cloud_init(&self, vm: &VmInfo, source: Datasource) -> Result<Option<String>, String> {
        let seed = source.seed()?;
        let root = self.root(&vm.id);
        std::fs::create_dir_all(&root).map_err(|e| format!("guest disk: {e}"))?;
        let boot = cloudinit::boot(&root, &seed).map_err(|e| format!("cloud-init: {e}"))?;
        let hostname = seed
            .meta_data
            .get("local-hostname")
            .and_then(|h| h.as_str())
            .unwrap_or(&vm.name)
            .to_string();
        self.note(&vm.id, format!("cloud-init: wrote {} files", boot.written.len()));
        let ctx = self.context(&root, vm, &hostname);
        let steps: Vec<PlannedStep> = boot
            .steps
            .iter()
            .map(|step| PlannedStep {
                step: step.clone(),
                run_if: RunIf::Always,
            })
            .collect();
        self.run_steps(&ctx, &steps, &BTreeMap::new(), "runcmd", Shell::CloudInit)
            .await
    }
}
