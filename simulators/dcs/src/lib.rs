//! A VRM simulator: the subset of the FusionCompute REST API that the client uses, served over
//! HTTPS with a CA generated at start-up.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use capstan_sim_dcs::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default()).await?;
//! println!("VRM at {} (CA:\n{})", sim.url(), sim.ca_pem());
//! # Ok(()) }
//! ```
//!
//! Simulated time runs on tokio timers (clone, boot and tools latency), so it never blocks a
//! runtime thread and follows `tokio::time::pause` in tests.

mod api;
mod state;

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use capstan_iso::{IsoFile, read_iso};
use capstan_simkit::Server;
use state::Shared;
pub use state::{LoginRecord, codes};

/// Simulated durations of asynchronous operations.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// Clone task: `creating` → `stopped`.
    pub clone: Duration,
    /// Start task: `stopped` → `running`.
    pub boot: Duration,
    /// From `running` until the guest tools report IPs.
    pub tools: Duration,
    pub stop: Duration,
    pub delete: Duration,
    pub cdrom: Duration,
    /// Added to every request before it is answered.
    pub request: Duration,
}

impl Latency {
    /// Every task takes a few hundred milliseconds: states are still observable in between, but
    /// a whole machine lifecycle fits in a second or two. For end-to-end tests.
    pub fn compressed() -> Self {
        Latency {
            clone: Duration::from_millis(300),
            boot: Duration::from_millis(300),
            tools: Duration::from_millis(200),
            stop: Duration::from_millis(100),
            delete: Duration::from_millis(100),
            cdrom: Duration::from_millis(50),
            request: Duration::ZERO,
        }
    }

    /// Everything instant; for tests that do not care about timing.
    pub fn zero() -> Self {
        Latency {
            clone: Duration::ZERO,
            boot: Duration::ZERO,
            tools: Duration::ZERO,
            stop: Duration::ZERO,
            delete: Duration::ZERO,
            cdrom: Duration::ZERO,
            request: Duration::ZERO,
        }
    }
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            clone: Duration::from_secs(2),
            boot: Duration::from_secs(3),
            tools: Duration::from_secs(1),
            stop: Duration::from_secs(1),
            delete: Duration::from_secs(1),
            cdrom: Duration::from_millis(200),
            request: Duration::ZERO,
        }
    }
}

/// Behaviour that tests may change while the simulator runs ([`SimState::update_knobs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SimKnobs {
    pub latency: Latency,
    /// Probability that an authenticated request is answered with an injected HTTP 500.
    pub error_rate: f64,
    /// Probability that a clone task ends `failed`.
    pub task_failure_rate: f64,
    /// Tasks that may run at once; beyond it, task-creating calls get HTTP 503
    /// [`codes::TOO_MANY_TASKS`].
    pub max_concurrent_tasks: Option<usize>,
    /// Tokens older than this are rejected with 401.
    pub token_ttl: Option<Duration>,
    /// `Accept: ...;version=` values to accept (without a `v` prefix); `None` accepts any.
    pub supported_versions: Option<Vec<String>>,
    /// The guest ignores ACPI: a `safe` stop task fails and the VM keeps running.
    pub ignore_safe_stop: bool,
    /// Answer the next N requests of an operation (`detach_cdrom`, `remove_upload`, …) with an
    /// injected HTTP 500, for tests of one failure at one step.
    pub fail_next: BTreeMap<String, u32>,
    /// Base URL `applyUpload` names for the bytes instead of the simulator's own (a compromised
    /// or misconfigured VRM pointing clients elsewhere).
    pub upload_base_override: Option<String>,
    /// How long finished tasks stay queryable (then `GET` of the task is a 404, as on VRM).
    pub task_retention: Duration,
}

impl Default for SimKnobs {
    fn default() -> Self {
        SimKnobs {
            latency: Latency::default(),
            error_rate: 0.0,
            task_failure_rate: 0.0,
            max_concurrent_tasks: None,
            token_ttl: None,
            supported_versions: None,
            ignore_safe_stop: false,
            fail_next: BTreeMap::new(),
            upload_base_override: None,
            task_retention: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimTemplate {
    pub name: String,
    pub cpu: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
    pub os_version: i64,
    /// What the image boots with, which decides how its guest reads the bootstrap ISO
    /// (cloud-init's NoCloud seed, or MicroOS's Ignition volume).
    pub guest_os: capstan_guest::GuestOs,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimPortGroup {
    pub dvswitch_id: u32,
    pub dvswitch_name: String,
    pub id: u32,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free port. Always a loopback address in tests.
    pub bind: SocketAddr,
    /// Where the cluster's physical host listens for uploads (on DCS its management address,
    /// commonly port 8443): another address than VRM's, so a client that sends the bytes to
    /// VRM, or trusts only VRM's own certificate, fails here as it would on a real site.
    pub host_bind: SocketAddr,
    pub user: String,
    pub password: String,
    pub site_id: String,
    pub site_name: String,
    pub cluster_id: u32,
    pub cluster_name: String,
    /// The one host of the cluster (id 420 in its URN).
    pub host_name: String,
    pub datastore_id: u32,
    pub datastore_name: String,
    pub templates: Vec<SimTemplate>,
    pub port_groups: Vec<SimPortGroup>,
    /// Inclusive range DHCP hands out to NICs without a static address.
    pub dhcp_range: (Ipv4Addr, Ipv4Addr),
    pub seed: u64,
    pub knobs: SimKnobs,
    /// Guest emulation: powered-on VMs run the bootstrap data on their CD-ROM. `None` leaves
    /// guests inert (the VM only reports IPs).
    pub guests: Option<capstan_guest::Guests>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            host_bind: SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0)),
            user: "capstan".into(),
            password: "Sim-Passw0rd!".into(),
            site_id: "3F7B07E2".into(),
            site_name: "site-sim".into(),
            cluster_id: 117,
            cluster_name: "cluster-sim".into(),
            host_name: "cnahost-01".into(),
            datastore_id: 41,
            datastore_name: "ds1".into(),
            templates: vec![
                SimTemplate {
                    name: "ubuntu-2204-tmpl".into(),
                    cpu: 2,
                    memory_mb: 4096,
                    disk_gb: 40,
                    os_version: 301,
                    guest_os: capstan_guest::GuestOs::Ubuntu,
                },
                SimTemplate {
                    name: "microos-tmpl".into(),
                    cpu: 2,
                    memory_mb: 4096,
                    disk_gb: 40,
                    os_version: 301,
                    guest_os: capstan_guest::GuestOs::MicroOs,
                },
            ],
            port_groups: vec![SimPortGroup {
                dvswitch_id: 1,
                dvswitch_name: "ManagementDVS".into(),
                id: 1,
                name: "VLAN-329".into(),
            }],
            dhcp_range: (Ipv4Addr::new(192, 168, 50, 100), Ipv4Addr::new(192, 168, 50, 199)),
            seed: 0x5eed,
            knobs: SimKnobs::default(),
            guests: None,
        }
    }
}

pub struct Simulator;

impl Simulator {
    /// Starts the simulator (VRM on `config.bind`, the host's upload endpoint on
    /// `config.host_bind`) and returns once both accept connections.
    pub async fn start(config: SimConfig) -> io::Result<SimHandle> {
        let vrm_tcp = tokio::net::TcpListener::bind(config.bind).await?;
        let host_tcp = tokio::net::TcpListener::bind(config.host_bind).await?;
        let (vrm_addr, host_addr) = (vrm_tcp.local_addr()?, host_tcp.local_addr()?);
        let pki = capstan_simkit::tls::generate("Capstan VRM simulator CA", &[vrm_addr.ip(), host_addr.ip()])?;
        let [vrm_tls, host_tls] = <[_; 2]>::try_from(pki.servers).map_err(|_| io::Error::other("two certificates"))?;
        let url = format!("https://{vrm_addr}");
        let host_url = format!("https://{host_addr}");
        let shared = Shared::new(config, host_url.clone());
        let servers = vec![
            Server::start("VRM", vrm_tcp, vrm_tls, api::router(shared.clone()))?,
            Server::start("host", host_tcp, host_tls, api::host_router(shared.clone()))?,
        ];
        tracing::info!(%url, %host_url, "VRM simulator listening");
        Ok(SimHandle {
            url: Url::parse(&url).map_err(io::Error::other)?,
            host_url: Url::parse(&host_url).map_err(io::Error::other)?,
            ca_pem: pki.ca_pem,
            state: SimState { shared },
            servers,
        })
    }
}

/// A running simulator. Dropping it stops the servers.
pub struct SimHandle {
    url: Url,
    host_url: Url,
    ca_pem: String,
    state: SimState,
    servers: Vec<Server>,
}

impl SimHandle {
    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The physical host's management endpoint uploads go to (its own address, port and
    /// certificate; the host's `ip` in VRM's inventory).
    pub fn host_url(&self) -> &Url {
        &self.host_url
    }

    /// The PEM of the CA that signed both server certificates.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn state(&self) -> SimState {
        self.state.clone()
    }

    /// Stops accepting, lets in-flight requests finish (bounded), and waits for the servers.
    pub async fn shutdown(mut self) {
        self.servers.iter_mut().for_each(Server::signal_stop);
        for s in &mut self.servers {
            s.shutdown().await;
        }
    }
}

/// What a VM looks like inside the simulator, for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct SimVmView {
    pub id: String,
    pub urn: String,
    pub name: String,
    pub uuid: String,
    pub external_uuid: Option<String>,
    pub is_template: bool,
    pub status: String,
    pub hostname: Option<String>,
    pub cpu: u32,
    pub memory_mb: u64,
    pub ips: Vec<String>,
    /// Static addresses requested through guest customization, by NIC order.
    pub static_ips: Vec<Option<String>>,
    pub port_groups: Vec<String>,
    /// Disks as (sequence number, size in GB, datastore URN).
    pub disks: Vec<(u32, u64, String)>,
    /// The cluster or host URN the VM was placed on.
    pub location: String,
    /// The attached ISO's device path.
    pub cdrom: Option<String>,
    /// The attached ISO's volume label and files, parsed from the uploaded bytes.
    pub cdrom_label: Option<String>,
    pub cdrom_files: Vec<IsoFile>,
    /// What the guest is doing, when guest emulation is on.
    pub guest: Option<capstan_guest::GuestStatus>,
}

/// Inspection and control of a running simulator.
#[derive(Clone)]
pub struct SimState {
    shared: Arc<Shared>,
}

impl SimState {
    /// All VMs and templates.
    pub fn vms(&self) -> Vec<SimVmView> {
        let w = self.shared.lock();
        w.vms
            .values()
            .map(|vm| {
                let iso = vm
                    .cdrom
                    .as_ref()
                    .and_then(|p| w.uploads.get(p))
                    .and_then(|u| u.data.as_ref())
                    .and_then(|d| read_iso(d).ok());
                SimVmView {
                    id: vm.id.clone(),
                    urn: state::vm_urn(w.site(), &vm.id),
                    name: vm.name.clone(),
                    uuid: vm.uuid.clone(),
                    external_uuid: vm.external_uuid.clone(),
                    is_template: vm.is_template,
                    status: vm.status.clone(),
                    hostname: vm.hostname.clone(),
                    cpu: vm.cpu,
                    memory_mb: vm.memory_mb,
                    ips: vm
                        .nics
                        .iter()
                        .filter(|n| !n.ip.is_empty() && n.ip != "0.0.0.0")
                        .map(|n| n.ip.clone())
                        .collect(),
                    static_ips: vm.nics.iter().map(|n| n.static_ip.clone()).collect(),
                    port_groups: vm.nics.iter().map(|n| n.port_group_urn.clone()).collect(),
                    disks: vm.disks.clone(),
                    location: vm.location.clone(),
                    cdrom: vm.cdrom.clone(),
                    cdrom_label: iso.as_ref().map(|i| i.volume_label.clone()),
                    cdrom_files: iso.map(|i| i.files).unwrap_or_default(),
                    guest: w.config.guests.as_ref().and_then(|g| g.status(&vm.id)),
                }
            })
            .collect()
    }

    pub fn vm_by_name(&self, name: &str) -> Option<SimVmView> {
        self.vms().into_iter().find(|v| v.name == name && !v.is_template)
    }

    /// Requests received per operation (`login`, `list_vms`, `get_vm`, `clone_vm`, ...),
    /// including rejected ones.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.shared.calls.snapshot()
    }

    pub fn call_count(&self, operation: &str) -> u64 {
        self.shared.calls.get(operation)
    }

    /// Successful logins.
    pub fn login_count(&self) -> usize {
        self.shared.lock().logins.len()
    }

    pub fn logins(&self) -> Vec<LoginRecord> {
        self.shared.lock().logins.clone()
    }

    pub fn active_sessions(&self) -> usize {
        self.shared.lock().tokens.len()
    }

    /// Invalidates every session, as a VRM does when tokens time out.
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// The guest emulation, if on.
    pub fn guests(&self) -> Option<capstan_guest::Guests> {
        self.shared.lock().config.guests.clone()
    }

    pub fn knobs(&self) -> SimKnobs {
        self.shared.lock().knobs.clone()
    }

    pub fn update_knobs(&self, f: impl FnOnce(&mut SimKnobs)) {
        f(&mut self.shared.lock().knobs);
    }

    /// Uploaded images the simulator still stores, as (VM id, file name).
    pub fn uploaded_images(&self) -> Vec<(String, String)> {
        self.shared
            .lock()
            .uploads
            .values()
            .map(|u| (u.vm_id.clone(), u.file_name.clone()))
            .collect()
    }

    /// Adds a VM directly (no task), e.g. to create look-alike names for lookup tests.
    pub fn insert_vm(&self, name: &str, external_uuid: Option<&str>, is_template: bool) -> String {
        let mut w = self.shared.lock();
        let id = w.new_vm_id();
        let uuid = w.new_uuid();
        let location = w.cluster_urn();
        let vm = state::SimVm {
            id: id.clone(),
            uuid,
            name: name.to_string(),
            description: String::new(),
            is_template,
            status: "stopped".into(),
            pv_driver_status: "notRunning".into(),
            external_uuid: external_uuid.map(str::to_string),
            cpu: 1,
            memory_mb: 1024,
            disks: vec![(1, 10, w.datastore_urn())],
            nics: Vec::new(),
            hostname: None,
            location,
            create_time: state::now_string(),
            os_version: 301,
            guest_os: capstan_guest::GuestOs::default(),
            cdrom: None,
            epoch: 0,
        };
        w.vms.insert(id.clone(), vm);
        id
    }
}
