//! VMware Tools for vcsim's VMs: vcsim runs no guests, so the bridge watches the VMs of a
//! datacenter's VM folder and, for each one powered on with bootstrap data in its guestinfo
//! (`guestinfo.userdata` or `guestinfo.ignition.config.data`), boots a guest through
//! `capstan-guest` on an address of its own (a loopback address from the bridge's range) and
//! reports that address into vcsim the way Tools would (`SET.guest.ipAddress` in a reconfigure,
//! which vcsim turns into `guest.ipAddress` and `guest.net` on the VM's first NIC).
//!
//! A VM powered off stops its guest; a VM destroyed destroys it. VMs without bootstrap data
//! (vcsim's own inventory, templates) are left alone. The guest reads the guestinfo keys as they
//! were at power-on: the provider removes the user data after provisioning, as the real OS
//! would have read it by then.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_guest::{Datasource, GuestOs, Guests};
use capstan_vsphere::bootstrap;
use capstan_vsphere::client::{ConfigSpec, OptionValue, PowerState, VmInfo, VsphereClient, VsphereError};
use tokio::task::JoinHandle;

/// Where the bridge looks and which addresses it hands out.
#[derive(Clone, Debug)]
pub struct BridgeOptions {
    /// The folder whose VMs (and sub-folders' VMs) are watched, e.g. `/DC0/vm`.
    pub folder: String,
    /// The first guest address; each booted VM takes the next one.
    pub first_address: Ipv4Addr,
    pub poll_interval: Duration,
}

impl Default for BridgeOptions {
    fn default() -> Self {
        BridgeOptions {
            folder: "/DC0/vm".into(),
            first_address: Ipv4Addr::new(127, 0, 60, 10),
            poll_interval: Duration::from_millis(300),
        }
    }
}

/// What the bridge knows of one VM.
enum Seen {
    /// Booted on this address (reported to vcsim).
    Booted { ip: Ipv4Addr },
    /// Powered off after a boot: its guest is stopped, its address kept for the next start.
    Off { ip: Ipv4Addr },
    /// Not a machine of ours (no bootstrap data at power-on).
    Ignored,
}

/// The running bridge; dropping it stops watching (the guests stay with their [`Guests`]).
pub struct Bridge {
    task: JoinHandle<()>,
    addresses: Arc<Mutex<BTreeMap<String, (String, Ipv4Addr)>>>,
}

impl Bridge {
    pub fn start(client: VsphereClient, guests: Guests, options: BridgeOptions) -> Bridge {
        let addresses = Arc::new(Mutex::new(BTreeMap::new()));
        let mut state = State {
            client,
            guests,
            seen: HashMap::new(),
            next: u32::from(options.first_address),
            addresses: addresses.clone(),
        };
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = state.poll(&options.folder).await {
                    tracing::debug!(error = %e, "vcsim bridge poll failed; retrying");
                }
                tokio::time::sleep(options.poll_interval).await;
            }
        });
        Bridge { task, addresses }
    }

    /// VM name → (the VM's managed object id, which keys its guest; the address it runs on).
    pub fn booted(&self) -> BTreeMap<String, (String, Ipv4Addr)> {
        self.addresses.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Stops watching and waits until the bridge has let go of the guests.
    pub async fn stop(mut self) {
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        task.abort();
        let _ = task.await;
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct State {
    client: VsphereClient,
    guests: Guests,
    /// By the VM's managed object id, which is what the guests are keyed by.
    seen: HashMap<String, Seen>,
    next: u32,
    addresses: Arc<Mutex<BTreeMap<String, (String, Ipv4Addr)>>>,
}

impl State {
    async fn poll(&mut self, folder: &str) -> Result<(), VsphereError> {
        let Some(root) = self.client.find_by_inventory_path(folder).await? else {
            return Ok(());
        };
        let vms = self.client.vms_under(&root).await?;
        let present: HashSet<String> = vms.iter().map(|v| v.value.clone()).collect();
        for gone in self
            .seen
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect::<Vec<_>>()
        {
            self.guests.destroy(&gone);
            self.seen.remove(&gone);
            if let Ok(mut a) = self.addresses.lock() {
                a.retain(|_, (id, _)| *id != gone);
            }
        }
        for vm in vms {
            match self.client.vm_info(&vm).await {
                Ok(info) => self.observe(info).await?,
                // Destroyed between the listing and now: the next poll sees it gone.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn observe(&mut self, vm: VmInfo) -> Result<(), VsphereError> {
        let id = vm.vm.value.clone();
        let on = vm.power_state == PowerState::PoweredOn;
        match (self.seen.get(&id), on) {
            (Some(Seen::Ignored), _) => {}
            (Some(Seen::Booted { ip }), false) => {
                let ip = *ip;
                self.guests.power_off(&id);
                self.seen.insert(id, Seen::Off { ip });
            }
            (Some(Seen::Off { ip }), true) => {
                let ip = *ip;
                self.boot(&vm, ip).await?;
            }
            (None, true) => {
                let keys = guestinfo(&vm);
                if !keys.contains_key(bootstrap::USERDATA) && !keys.contains_key(bootstrap::IGNITION) {
                    self.seen.insert(id, Seen::Ignored);
                    return Ok(());
                }
                let ip = Ipv4Addr::from(self.next);
                self.next += 1;
                self.boot(&vm, ip).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Boots the guest on `ip`, then reports the address, as Tools do once the guest is up.
    async fn boot(&mut self, vm: &VmInfo, ip: Ipv4Addr) -> Result<(), VsphereError> {
        let keys = guestinfo(vm);
        // The image decides how the config is read; a VM given Ignition runs an Ignition OS.
        let os = if keys.contains_key(bootstrap::IGNITION) {
            GuestOs::MicroOs
        } else {
            GuestOs::Ubuntu
        };
        let info = capstan_guest::VmInfo {
            id: vm.vm.value.clone(),
            uuid: vm.bios_uuid.clone().unwrap_or_default(),
            name: vm.name.clone(),
            ips: vec![ip.to_string()],
            os,
        };
        self.guests.power_on(info, Datasource::Guestinfo(keys));
        let spec = ConfigSpec {
            extra_config: vec![OptionValue::new("SET.guest.ipAddress", ip.to_string())],
            ..ConfigSpec::default()
        };
        let task = self.client.reconfigure_vm(&vm.vm, &spec).await?;
        self.client.wait_for_task(&task, Duration::from_secs(30)).await?;
        if let Ok(mut a) = self.addresses.lock() {
            a.insert(vm.name.clone(), (vm.vm.value.clone(), ip));
        }
        self.seen.insert(vm.vm.value.clone(), Seen::Booted { ip });
        Ok(())
    }
}

/// The VM's `guestinfo.*` keys, as the guest reads them through the backdoor.
fn guestinfo(vm: &VmInfo) -> BTreeMap<String, String> {
    vm.extra_config
        .iter()
        .filter(|o| o.key.starts_with("guestinfo."))
        .map(|o| (o.key.clone(), o.value.clone()))
        .collect()
}
