//! The simulated region's state behind one lock, and the timers that move it on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use capstan_simkit::faults::{Rng, TokenBucket};
use serde_json::Value;
use tokio::time::Instant;

use crate::elb::Elb;
use crate::jobs::Job;
use crate::seed::{SimFlavor, SimSubnet};
use crate::{SimConfig, SimKnobs};

#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub vm_state: &'static str,
    pub task_state: &'static str,
    pub az: String,
    pub flavor: SimFlavor,
    pub image_id: String,
    pub image_name: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub port_id: String,
    /// Base64, exactly as given (ECS keeps it and shows it to the owner).
    pub user_data: Option<String>,
    pub metadata: serde_json::Map<String, Value>,
    pub tags: Vec<(String, String)>,
    pub group: Option<String>,
    pub security_groups: Vec<String>,
    pub key_name: Option<String>,
    pub volumes: Vec<String>,
    pub created: String,
    pub updated: String,
    /// Hidden from GET and list until then.
    pub visible_at: Instant,
    /// Bumped on every transition, so a timer of an earlier one does not apply after a later.
    pub epoch: u64,
}

impl Server {
    pub fn power_state(&self) -> u8 {
        match self.status {
            "ACTIVE" | "REBOOT" | "HARD_REBOOT" => 1,
            "SHUTOFF" => 4,
            _ => 0,
        }
    }

    pub fn decoded_user_data(&self) -> Vec<u8> {
        use base64::Engine;
        self.user_data
            .as_deref()
            .and_then(|u| base64::engine::general_purpose::STANDARD.decode(u).ok())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Volume {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub volume_type: String,
    pub bootable: bool,
    pub az: String,
    /// (server id, device)
    pub attachment: Option<(String, String)>,
    pub created: String,
}

/// A create request remembered under its `X-Client-Token`.
#[derive(Debug, Clone)]
pub(crate) struct ClientToken {
    pub body: Value,
    pub job_id: String,
    pub server_ids: Vec<String>,
    pub at: Instant,
}

pub(crate) struct World {
    pub config: SimConfig,
    pub knobs: SimKnobs,
    pub rng: Rng,
    pub bucket: TokenBucket,
    pub tokens: HashSet<String>,
    pub servers: BTreeMap<String, Server>,
    pub volumes: BTreeMap<String, Volume>,
    pub jobs: BTreeMap<String, Job>,
    pub client_tokens: HashMap<String, ClientToken>,
    /// Per subnet id: where the sequential allocator continues.
    pub next_ip: HashMap<String, u32>,
    pub elb: Elb,
}

pub(crate) struct Shared {
    world: Mutex<World>,
    /// Outside the world's lock: counting never waits for the world.
    pub calls: capstan_simkit::CallCounts,
}

pub(crate) type Sh = Arc<Shared>;

impl Shared {
    pub fn new(config: SimConfig) -> Sh {
        let knobs = config.knobs.clone();
        Arc::new(Shared {
            world: Mutex::new(World {
                rng: Rng::new(config.seed),
                config,
                knobs,
                bucket: TokenBucket::default(),
                tokens: HashSet::new(),
                servers: BTreeMap::new(),
                volumes: BTreeMap::new(),
                jobs: BTreeMap::new(),
                client_tokens: HashMap::new(),
                next_ip: HashMap::new(),
                elb: Elb::default(),
            }),
            calls: Default::default(),
        })
    }

    /// Never held across an await, so a std mutex is enough.
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `f` on the world after `delay` (tokio's clock).
pub(crate) fn after(sh: &Sh, delay: Duration, f: impl FnOnce(&mut World, &Sh) + Send + 'static) {
    let sh = sh.clone();
    tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut w = sh.lock();
        f(&mut w, &sh);
    });
}

pub(crate) fn now_string() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl World {
    pub fn subnet(&self, id: &str) -> Option<&SimSubnet> {
        self.config.subnets.iter().find(|s| s.id == id)
    }

    pub fn subnet_by_neutron(&self, id: &str) -> Option<&SimSubnet> {
        self.config.subnets.iter().find(|s| s.neutron_subnet_id == id)
    }

    /// Addresses of the subnet held by servers and load balancers.
    pub fn used_ips(&self, subnet_id: &str) -> HashSet<Ipv4Addr> {
        let servers = self.servers.values().filter(|s| s.subnet_id == subnet_id).map(|s| s.ip);
        let vips = self
            .elb
            .lbs
            .values()
            .filter(|l| l.subnet_id == subnet_id)
            .map(|l| l.vip);
        servers.chain(vips).collect()
    }

    /// The next free address of the subnet, round the range (freed ones are reused last).
    pub fn allocate_ip(&mut self, subnet_id: &str) -> Option<Ipv4Addr> {
        let (lo, hi) = self.subnet(subnet_id)?.cidr.assignable();
        let used = self.used_ips(subnet_id);
        let size = hi.checked_sub(lo)? + 1;
        let next = self.next_ip.entry(subnet_id.to_string()).or_insert(0);
        for _ in 0..size {
            let ip = Ipv4Addr::from(lo + *next % size);
            *next = next.wrapping_add(1);
            if !used.contains(&ip) {
                return Some(ip);
            }
        }
        None
    }

    /// Why `ip` cannot be taken in the subnet, if it cannot.
    pub fn check_fixed_ip(&self, subnet_id: &str, ip: Ipv4Addr) -> Result<(), String> {
        let Some(subnet) = self.subnet(subnet_id) else {
            return Err(format!("subnet {subnet_id} does not exist"));
        };
        let (lo, hi) = subnet.cidr.assignable();
        if !subnet.cidr.contains(ip) || !(lo..=hi).contains(&u32::from(ip)) {
            return Err(format!(
                "ip_address {ip} is not an assignable address of subnet {}",
                subnet.cidr
            ));
        }
        if self.used_ips(subnet_id).contains(&ip) {
            return Err(format!("ip_address {ip} is already in use"));
        }
        Ok(())
    }

    pub fn new_mac(&mut self) -> String {
        let n = self.rng.next_u64();
        format!(
            "fa:16:3e:{:02x}:{:02x}:{:02x}",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        )
    }

    /// (instances, cores, RAM MiB) held by servers that exist, building ones included.
    pub fn usage(&self) -> (u64, u64, u64) {
        self.servers.values().fold((0, 0, 0), |(n, c, r), s| {
            (n + 1, c + u64::from(s.flavor.vcpus), r + s.flavor.ram_mib)
        })
    }

    /// Whether a new server is visible yet.
    pub fn visible(&self, id: &str) -> Option<&Server> {
        self.servers.get(id).filter(|s| s.visible_at <= Instant::now())
    }
}
