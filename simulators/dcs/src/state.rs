//! The simulated VRM inventory and the state machines of tasks and VMs.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{SimConfig, SimKnobs};

/// Error codes the simulator answers with. Public sources document only the body shape
/// (`{errorCode, errorDes}`) and `10000022`; the other values are the simulator's own choice.
pub mod codes {
    pub const VERSION_NOT_SUPPORTED: &str = "10000022";
    pub const AUTH_FAILED: &str = "10000040";
    pub const TOKEN_INVALID: &str = "10000041";
    pub const BAD_REQUEST: &str = "10000100";
    pub const SITE_NOT_FOUND: &str = "10300001";
    pub const VM_NOT_FOUND: &str = "10400001";
    pub const TASK_NOT_FOUND: &str = "10400002";
    pub const NOT_A_TEMPLATE: &str = "10400003";
    pub const BAD_VM_STATE: &str = "10400004";
    pub const UPLOAD_NOT_FOUND: &str = "10400005";
    pub const PORT_GROUP_NOT_FOUND: &str = "10400006";
    /// Too many concurrent tasks (answered with HTTP 503).
    pub const TOO_MANY_TASKS: &str = "10420001";
    /// An injected internal error (answered with HTTP 500).
    pub const INJECTED: &str = "10500001";
}

#[derive(Debug, Clone)]
pub(crate) struct SimNic {
    pub seq: u32,
    pub port_group_urn: String,
    pub port_group_name: String,
    pub mac: String,
    /// Requested by guest customization.
    pub static_ip: Option<String>,
    /// What DHCP handed out; kept across reboots like a real lease.
    pub lease: Option<String>,
    /// What the tools report now.
    pub ip: String,
}

#[derive(Debug, Clone)]
pub(crate) struct SimVm {
    pub id: String,
    pub uuid: String,
    pub name: String,
    pub description: String,
    pub is_template: bool,
    pub status: String,
    pub pv_driver_status: String,
    pub external_uuid: Option<String>,
    pub cpu: u32,
    pub memory_mb: u64,
    pub disks: Vec<(u32, u64, String)>,
    pub nics: Vec<SimNic>,
    pub hostname: Option<String>,
    pub location: String,
    pub create_time: String,
    pub os_version: i64,
    pub guest_os: capstan_guest::GuestOs,
    /// Attached ISO (`devicePath`).
    pub cdrom: Option<String>,
    /// Bumped on every power transition, so a timer started for an earlier transition does
    /// not apply after a later one.
    pub epoch: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct SimTask {
    pub id: u64,
    pub kind: String,
    pub entity_urn: String,
    pub entity_name: String,
    pub status: &'static str,
    pub started: Instant,
    pub expected: Duration,
    pub start_time: String,
    pub finish_time: Option<String>,
    pub reason_des: String,
    /// When it reached a terminal state; VRM forgets finished tasks after a while.
    pub finished: Option<Instant>,
}

#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub vm_id: String,
    pub file_name: String,
    pub size: usize,
    pub data: Option<Vec<u8>>,
}

/// How a client logged in, for tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    pub user: String,
    /// `plain` or `sha256`.
    pub encoding: &'static str,
    pub user_type: Option<String>,
    pub algorithm_header: Option<String>,
    pub accept: Option<String>,
}

pub(crate) struct World {
    pub config: SimConfig,
    pub knobs: SimKnobs,
    pub tokens: HashMap<String, Instant>,
    pub vms: BTreeMap<String, SimVm>,
    pub tasks: BTreeMap<u64, SimTask>,
    pub uploads: HashMap<String, Upload>,
    /// Upload ticket → device path.
    pub tickets: HashMap<String, String>,
    pub logins: Vec<LoginRecord>,
    pub next_vm: u32,
    pub next_task: u64,
    pub next_dhcp: u32,
    rng: capstan_simkit::faults::Rng,
}

pub(crate) struct Shared {
    world: Mutex<World>,
    /// Outside the world's lock: counting never waits for a long simulated operation.
    pub calls: capstan_simkit::CallCounts,
    /// The host's upload endpoint, `https://<host ip>:<port>`.
    pub host_url: String,
}

impl Shared {
    pub fn new(config: SimConfig, host_url: String) -> Arc<Self> {
        let knobs = config.knobs.clone();
        let mut w = World {
            rng: capstan_simkit::faults::Rng::new(config.seed),
            config,
            knobs,
            tokens: HashMap::new(),
            vms: BTreeMap::new(),
            tasks: BTreeMap::new(),
            uploads: HashMap::new(),
            tickets: HashMap::new(),
            logins: Vec::new(),
            next_vm: 0x100,
            next_task: 1,
            next_dhcp: 0,
        };
        for t in w.config.templates.clone() {
            let id = w.new_vm_id();
            let uuid = w.new_uuid();
            let location = w.cluster_urn();
            let pg = w.config.port_groups.first().cloned().unwrap_or_default();
            let mac = w.new_mac();
            w.vms.insert(
                id.clone(),
                SimVm {
                    id,
                    uuid,
                    name: t.name,
                    description: String::new(),
                    is_template: true,
                    status: "stopped".into(),
                    pv_driver_status: "notRunning".into(),
                    external_uuid: None,
                    cpu: t.cpu,
                    memory_mb: t.memory_mb,
                    disks: vec![(1, t.disk_gb, w.datastore_urn())],
                    nics: vec![SimNic {
                        seq: 0,
                        port_group_urn: w.port_group_urn(pg.dvswitch_id, pg.id),
                        port_group_name: pg.name,
                        mac,
                        static_ip: None,
                        lease: None,
                        ip: String::new(),
                    }],
                    hostname: None,
                    location,
                    create_time: now_string(),
                    os_version: t.os_version,
                    guest_os: t.guest_os,
                    cdrom: None,
                    epoch: 0,
                },
            );
        }
        Arc::new(Shared {
            world: Mutex::new(w),
            calls: Default::default(),
            host_url,
        })
    }

    /// The lock is never held across an await, so a std mutex is enough.
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn now_string() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

impl World {
    pub fn site(&self) -> &str {
        &self.config.site_id
    }

    pub fn cluster_urn(&self) -> String {
        format!("urn:sites:{}:clusters:{}", self.site(), self.config.cluster_id)
    }

    pub fn host_urn(&self) -> String {
        format!("urn:sites:{}:hosts:420", self.site())
    }

    pub fn datastore_urn(&self) -> String {
        format!("urn:sites:{}:datastores:{}", self.site(), self.config.datastore_id)
    }

    pub fn port_group_urn(&self, dvswitch: u32, id: u32) -> String {
        format!("urn:sites:{}:dvswitchs:{dvswitch}:portgroups:{id}", self.site())
    }

    /// True with probability `p` (the kit's seeded source: failure injection is reproducible).
    pub fn roll(&mut self, p: f64) -> bool {
        self.rng.roll(p)
    }

    pub fn new_uuid(&mut self) -> String {
        self.rng.uuid()
    }

    pub fn new_token(&mut self) -> String {
        self.rng.hex(16)
    }

    pub fn new_vm_id(&mut self) -> String {
        let id = format!("i-{:08X}", self.next_vm);
        self.next_vm += 1;
        id
    }

    pub fn new_mac(&mut self) -> String {
        let n = self.rng.next_u64();
        format!(
            "28:6e:d4:{:02x}:{:02x}:{:02x}",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        )
    }

    /// The next free address of the DHCP range, or `None` when it is exhausted.
    pub fn dhcp_lease(&mut self) -> Option<String> {
        let (start, end) = self.config.dhcp_range;
        let (start, end) = (u32::from(start), u32::from(end));
        let size = end.checked_sub(start)? + 1;
        for _ in 0..size {
            let ip = Ipv4Addr::from(start + self.next_dhcp % size).to_string();
            self.next_dhcp = self.next_dhcp.wrapping_add(1);
            let used = self
                .vms
                .values()
                .flat_map(|v| v.nics.iter())
                .any(|n| n.lease.as_deref() == Some(&ip) || n.static_ip.as_deref() == Some(&ip));
            if !used {
                return Some(ip);
            }
        }
        None
    }

    pub fn running_tasks(&self) -> usize {
        self.tasks.values().filter(|t| t.status == "running").count()
    }

    pub fn new_task(&mut self, kind: &str, vm: &SimVm, expected: Duration) -> u64 {
        let id = self.next_task;
        self.next_task += 1;
        let entity_urn = vm_urn(self.site(), &vm.id);
        self.tasks.insert(
            id,
            SimTask {
                id,
                kind: kind.to_string(),
                entity_urn,
                entity_name: vm.name.clone(),
                status: "running",
                started: Instant::now(),
                expected,
                start_time: now_string(),
                finish_time: None,
                finished: None,
                reason_des: String::new(),
            },
        );
        id
    }

    pub fn finish_task(&mut self, id: u64, failure: Option<String>) {
        if let Some(t) = self.tasks.get_mut(&id) {
            t.status = if failure.is_some() { "failed" } else { "success" };
            t.reason_des = failure.unwrap_or_default();
            t.finish_time = Some(now_string());
            t.finished = Some(Instant::now());
        }
    }

    /// Forgets tasks finished longer than the retention ago, as VRM does.
    pub fn purge_tasks(&mut self) {
        let keep = self.knobs.task_retention;
        self.tasks.retain(|_, t| t.finished.is_none_or(|f| f.elapsed() < keep));
    }

    pub fn task_ref(&self, id: u64) -> Value {
        json!({
            "taskUrn": format!("urn:sites:{}:tasks:{id}", self.site()),
            "taskUri": format!("/service/sites/{}/tasks/{id}", self.site()),
        })
    }

    pub fn task_json(&self, t: &SimTask) -> Value {
        let site = self.site();
        // Progress reaches 100 only together with a terminal status (clients that wait for
        // progress == 100 depend on it).
        let progress = if t.status == "running" {
            let total = t.expected.as_millis().max(1);
            (t.started.elapsed().as_millis() * 100 / total).min(99) as u64
        } else {
            100
        };
        json!({
            "urn": format!("urn:sites:{site}:tasks:{}", t.id),
            "uri": format!("/service/sites/{site}/tasks/{}", t.id),
            "taskId": t.id,
            "type": t.kind,
            "entityUrn": t.entity_urn,
            "entityName": t.entity_name,
            "user": self.config.user,
            "status": t.status,
            "progress": progress,
            "startTime": t.start_time,
            "finishTime": t.finish_time,
            "reason": if t.reason_des.is_empty() { "" } else { "SIMULATED" },
            "reasonDes": t.reason_des,
        })
    }

    pub fn vm_json(&self, vm: &SimVm) -> Value {
        let site = self.site();
        let urn = vm_urn(site, &vm.id);
        let nics: Vec<Value> = vm
            .nics
            .iter()
            .map(|n| {
                json!({
                    "name": format!("Network Adapter {}", n.seq),
                    "urn": format!("{urn}:nics:{}", n.seq),
                    "uri": format!("/service/sites/{site}/vms/{}/nics/{}", vm.id, n.seq),
                    "portGroupUrn": n.port_group_urn,
                    "portGroupName": n.port_group_name,
                    "mac": n.mac,
                    "ip": n.ip,
                    "ips6": [],
                    "ipList": n.ip,
                    "sequenceNum": n.seq,
                    "virtIo": 1,
                    "nicType": 0,
                })
            })
            .collect();
        let disks: Vec<Value> = vm
            .disks
            .iter()
            .map(|(seq, gb, ds)| {
                json!({
                    "pciType": "VIRTIO", "sequenceNum": seq, "quantityGB": gb, "datastoreUrn": ds,
                    "volumeUrn": format!("urn:sites:{site}:volumes:{}{seq}", &vm.id[2..]),
                    "isThin": true, "indepDisk": false, "persistentDisk": true, "type": "normal",
                    "diskName": format!("{}-disk{seq}", vm.id),
                })
            })
            .collect();
        let mut params = json!({"vmSubStatus": "0", "cdromSequenceNum": "1003"});
        if let Some(e) = &vm.external_uuid {
            params["externalUuid"] = json!(e);
        }
        json!({
            "uri": format!("/service/sites/{site}/vms/{}", vm.id),
            "urn": urn,
            "uuid": vm.uuid,
            "name": vm.name,
            "description": vm.description,
            "group": "",
            "location": vm.location,
            "clusterUrn": self.cluster_urn(),
            "hostUrn": self.host_urn(),
            "dataStoreUrns": [self.datastore_urn()],
            "status": vm.status,
            "pvDriverStatus": vm.pv_driver_status,
            "toolInstallStatus": "empty",
            "cdRomStatus": if vm.cdrom.is_some() { "occupied" } else { "empty" },
            "isTemplate": vm.is_template,
            "isLinkClone": false,
            "createTime": vm.create_time,
            "vmConfig": {
                "cpu": {"quantity": vm.cpu, "coresPerSocket": 1, "reservation": 0, "weight": 1000, "limit": 0},
                "memory": {"quantityMB": vm.memory_mb, "reservation": 0, "limit": vm.memory_mb},
                "disks": disks,
                "nics": nics,
                "properties": {"bootOption": "disk", "bootFirmware": "BIOS"},
            },
            "osOptions": {"osType": "Linux", "osVersion": vm.os_version, "hostname": vm.hostname},
            "vmType": 0,
            "params": params,
        })
    }
}

pub(crate) fn vm_urn(site: &str, id: &str) -> String {
    format!("urn:sites:{site}:vms:{id}")
}
