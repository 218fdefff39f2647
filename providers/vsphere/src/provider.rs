//! The vSphere implementation of the lifecycle core's [`InfraProvider`], after CAPV's
//! govmomi service:
//!
//! - **create**: `CloneVM_Task` powered off, with `instanceUuid` = the VCenterMachine's UID (and
//!   the UID in extraConfig `capstan.machine.uid`), the sizing, NICs and user data. The task's
//!   reference is the core's pending operation, written to status at once.
//! - **find**: by the VM seen before, `FindByUuid(instance UUID)`, the BIOS UUID of
//!   `spec.providerID` (a moved cluster), then by name in the folder, adopted only if it carries
//!   the UID. A clone that did not take its config (vcsim's `CloneVM_Task` ignores
//!   `spec.config`) gets its identity when the core polls the finished clone task, which is in
//!   status before the clone starts, so a crash in between still finds it.
//! - **first start**: what the clone should have set and has not (vcsim), then
//!   `guestinfo.metadata` with the generated MACs, then `PowerOnVM_Task`: one reconfigure per
//!   pass, each a task the core polls, until nothing differs.
//! - **running**: addresses from `guest.net` matched by the NICs' MACs, link-local and loopback
//!   ignored; a wait longer than the IP timeout becomes `IPAddressTimeout`. Then the bootstrap
//!   guestinfo keys are cleared (see [`crate::bootstrap`]).
//! - **delete**: power off per `powerOffMode`, then `Destroy_Task`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use capstan_api::core::{FailureDomain, MachineAddress, MachineAddressType};
use capstan_lifecycle::ipam::{self, ClaimedAddress};
use capstan_lifecycle::status::PendingOperation;
use capstan_lifecycle::{
    Boot, BootstrapData, Cleanup, ClusterInfra, ClusterProgress, ClusterScope, Credentials, InfraProvider, Instance,
    InstanceState, MachineScope, NoResources, Operation, OperationState, Removal,
};
use capstan_runtime::metrics::Metrics;
use k8s_openapi::jiff::Timestamp;

use crate::api::{CloneMode, PowerOffMode, VCenterCluster, VCenterMachine};
use crate::bootstrap::{self, NicConfig};
use crate::client::{
    CloneSpec, ConfigSpec, DeviceChange, DiskMoveType, Fault, MoRef, OptionValue, PowerState, RelocateSpec, TaskState,
    VmInfo, VsphereClient, VsphereClientPool,
};
use crate::error::{Inventory, ProviderError};
use crate::placement::{self, Network};

const FIELD_MANAGER: &str = "capstan-vsphere";
/// The prefix of the pending operation of a guest shutdown (it has no vCenter task).
const SHUTDOWN: &str = "shutdown:";
/// When the metadata (and so the boot) was written: the IP wait's start where vCenter does not
/// report `runtime.bootTime` (vcsim).
const BOOT_WRITTEN_AT: &str = "capstan.bootstrap.writtenAt";
const DEFAULT_SOFT_TIMEOUT: Duration = Duration::from_secs(300);

/// The `vsphere://` providerID of a VM: its BIOS UUID (`config.uuid`), lower-case, which is what
/// the vSphere cloud-controller-manager writes on the Node.
pub fn provider_id(bios_uuid: &str) -> String {
    format!("vsphere://{}", bios_uuid.to_lowercase())
}

/// Settings of the provider that are not per object.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a powered-on VM may go without VMware Tools reporting an address on every NIC
    /// before the machine says `IPAddressTimeout` (it keeps waiting).
    pub ip_wait_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ip_wait_timeout: Duration::from_secs(600),
        }
    }
}

pub struct VsphereProvider {
    pool: VsphereClientPool,
    /// For IPAddressClaims.
    kube: kube::Client,
    options: Options,
}

fn vm_ref(id: &str) -> MoRef {
    MoRef::new("VirtualMachine", id)
}

fn task_op(task: MoRef) -> Operation {
    Operation { id: task.value }
}

impl VsphereProvider {
    pub fn new(kube: kube::Client, metrics: Arc<Metrics>, options: Options) -> Self {
        VsphereProvider {
            pool: VsphereClientPool::new(Arc::new(capstan_cloudkit::MetricsObserver::new("vsphere", metrics))),
            kube,
            options,
        }
    }

    /// The client pool, for idle eviction.
    pub fn pool(&self) -> &VsphereClientPool {
        &self.pool
    }

    fn client(&self, cluster: &VCenterCluster, creds: &Credentials) -> Result<VsphereClient, ProviderError> {
        Ok(self.pool.client(crate::settings::config(cluster, creds)?)?)
    }

    fn scope_client(&self, scope: &MachineScope<'_, Self>) -> Result<VsphereClient, ProviderError> {
        self.client(scope.cluster, scope.credentials)
    }

    /// The addresses the machine's devices hold from IP pools, per device (claimed on first use).
    async fn claimed(&self, scope: &MachineScope<'_, Self>) -> Result<Vec<Vec<ClaimedAddress>>, ProviderError> {
        let mut index = 0;
        let mut out = Vec::new();
        for device in &scope.machine.spec.network.devices {
            let mut mine = Vec::new();
            for pool in &device.addresses_from_pools {
                let claim_ref = pool.to_claim_ref();
                mine.push(
                    ipam::claim(
                        &self.kube,
                        scope.machine,
                        &scope.identity.cluster_name,
                        index,
                        &claim_ref,
                    )
                    .await?,
                );
                index += 1;
            }
            out.push(mine);
        }
        Ok(out)
    }
}

fn vm_name(scope: &MachineScope<'_, VsphereProvider>) -> Result<String, ProviderError> {
    let template = scope.machine.spec.naming.as_ref().map(|n| n.template.as_str());
    crate::naming::vm_name(template, &scope.identity.name, &scope.identity.cluster_name)
}

/// Whether `vm` is this machine's: it carries the UID, or it is the VM `spec.providerID` names.
fn ours(machine: &VCenterMachine, uid: &str, vm: &VmInfo) -> bool {
    let uid = uid.to_lowercase();
    vm.instance_uuid.as_deref().map(str::to_lowercase).as_deref() == Some(uid.as_str())
        || vm.extra_config_value(bootstrap::IDENTITY) == Some(uid.as_str())
        || (machine.spec.provider_id.is_some()
            && vm.bios_uuid.as_deref().map(provider_id).as_deref() == machine.spec.provider_id.as_deref())
}

/// Addresses a guest may be reached on: not the loopback interface's own (127.0.0.1, ::1), not
/// link-local. Other 127/8 addresses count: they only ever come from a NIC matched by MAC (`lo`
/// has none), and a simulated VM holds one as its address, as with the DCS and HCS simulators.
fn usable(ip: &str) -> Option<IpAddr> {
    let ip: IpAddr = ip.parse().ok()?;
    let local = match ip {
        IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unicast_link_local() || v6.is_unspecified(),
    };
    (!local).then_some(ip)
}

/// The guest's addresses on the VM's NICs, matched by MAC; empty until every NIC has one.
fn addresses(vm: &VmInfo) -> Vec<MachineAddress> {
    let mut out = Vec::new();
    for mac in vm.mac_addresses() {
        let ips: Vec<IpAddr> = vm
            .guest_nics
            .iter()
            .filter(|g| g.mac_address.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(mac)))
            .flat_map(|g| g.ip_addresses.iter())
            .filter_map(|ip| usable(ip))
            .collect();
        if ips.is_empty() {
            return Vec::new();
        }
        out.extend(ips.into_iter().map(|ip| MachineAddress {
            type_: MachineAddressType::InternalIP,
            address: ip.to_string(),
        }));
    }
    if !out.is_empty() {
        out.push(MachineAddress {
            type_: MachineAddressType::Hostname,
            address: vm.name.clone(),
        });
    }
    out
}

fn instance(vm: &VmInfo, failure_domain: Option<String>) -> Instance {
    let state = match &vm.power_state {
        PowerState::PoweredOn => InstanceState::Running,
        PowerState::PoweredOff | PowerState::Suspended => InstanceState::Stopped,
        PowerState::Other(s) => InstanceState::Unknown(s.clone()),
    };
    let raw_state = match &vm.power_state {
        PowerState::PoweredOn => "poweredOn".to_string(),
        PowerState::PoweredOff => "poweredOff".to_string(),
        PowerState::Suspended => "suspended".to_string(),
        PowerState::Other(s) => s.clone(),
    };
    Instance {
        id: vm.vm.value.clone(),
        provider_id: vm.bios_uuid.as_deref().map(provider_id).unwrap_or_default(),
        state,
        raw_state,
        addresses: addresses(vm),
        failure_domain,
    }
}

/// The NIC and disk changes that make `vm` (the template at clone time, the clone after) match
/// the spec: the template's NICs are replaced unless they already are the spec's, in order.
fn device_changes(
    vm: &VmInfo,
    networks: &[Network],
    disk_gib: Option<i32>,
) -> Result<Vec<DeviceChange>, ProviderError> {
    let mut changes = Vec::new();
    let nics: Vec<_> = vm.nics().collect();
    let same = nics.len() == networks.len() && nics.iter().zip(networks).all(|(nic, net)| net.carries(nic));
    if !same {
        changes.extend(nics.into_iter().map(|n| DeviceChange::Remove(n.clone())));
        changes.extend(networks.iter().enumerate().map(|(i, net)| DeviceChange::AddVmxnet3 {
            key: -100 - i as i32,
            backing: net.backing.clone(),
            mac: None,
        }));
    }
    if let Some(gib) = disk_gib {
        let wanted = i64::from(gib) * 1024 * 1024;
        let disk = vm
            .disks()
            .next()
            .ok_or_else(|| ProviderError::Spec("diskGiB is set but the template has no disk".into()))?;
        match disk.capacity_kb() {
            Some(kb) if kb < wanted => changes.push(disk.resized(wanted)),
            Some(kb) if kb > wanted => {
                return Err(ProviderError::Spec(format!(
                    "diskGiB {gib} is smaller than the template's disk ({} GiB); disks only grow",
                    (kb + 1024 * 1024 - 1) / (1024 * 1024)
                )));
            }
            _ => {}
        }
    }
    Ok(changes)
}

/// The guest's network per device: the spec's settings, the pool addresses, the MAC.
fn nic_configs(
    scope: &MachineScope<'_, VsphereProvider>,
    vm: &VmInfo,
    claims: &[Vec<ClaimedAddress>],
) -> Result<Vec<NicConfig>, ProviderError> {
    let macs = vm.mac_addresses();
    let devices = &scope.machine.spec.network.devices;
    if macs.len() != devices.len() {
        return Err(ProviderError::Spec(format!(
            "the VM has {} NICs with a MAC address, the spec {} devices",
            macs.len(),
            devices.len()
        )));
    }
    let mut out = Vec::new();
    for ((device, mac), claimed) in devices.iter().zip(macs).zip(claims) {
        let mut nic = NicConfig {
            mac: mac.to_string(),
            dhcp4: device.dhcp4.unwrap_or(false),
            dhcp6: device.dhcp6.unwrap_or(false),
            addresses: device.ip_addrs.clone(),
            gateway4: device.gateway4.clone(),
            nameservers: device.nameservers.clone(),
            search_domains: device.search_domains.clone(),
            ..NicConfig::default()
        };
        for c in claimed {
            nic.addresses.push(format!("{}/{}", c.address, c.prefix));
            let slot = if c.address.is_ipv4() {
                &mut nic.gateway4
            } else {
                &mut nic.gateway6
            };
            if slot.is_none() {
                *slot = c.gateway.map(|g| g.to_string());
            }
            nic.nameservers.extend(c.dns.iter().map(IpAddr::to_string));
        }
        out.push(nic);
    }
    Ok(out)
}

/// The snapshot a linked clone grows from.
fn linked_snapshot(template: &VmInfo, name: Option<&str>) -> Result<MoRef, ProviderError> {
    let found = match name {
        Some(n) => template.snapshot_named(n),
        None => template.current_snapshot.clone(),
    };
    found.ok_or_else(|| {
        ProviderError::not_found(
            Inventory::Snapshot,
            format!("{} of template {}", name.unwrap_or("current snapshot"), template.name),
        )
    })
}

impl VsphereProvider {
    /// The clone spec for this machine from `template`.
    fn clone_spec(
        &self,
        scope: &MachineScope<'_, Self>,
        template: &VmInfo,
        place: &placement::Placement,
        bootstrap: &BootstrapData,
    ) -> Result<CloneSpec, ProviderError> {
        let spec = &scope.machine.spec;
        let linked = spec.clone_mode == Some(CloneMode::LinkedClone);
        let snapshot = linked
            .then(|| linked_snapshot(template, spec.snapshot.as_deref()))
            .transpose()?;
        let mut extra_config = vec![OptionValue::new(bootstrap::IDENTITY, &scope.identity.uid)];
        extra_config.extend(bootstrap::userdata_at_clone(bootstrap));
        let config = ConfigSpec {
            instance_uuid: Some(scope.identity.uid.clone()),
            annotation: Some(format!(
                "Capstan machine {}/{} of cluster {}",
                scope.identity.namespace, scope.identity.name, scope.identity.cluster_name
            )),
            disk_uuid_enabled: Some(true),
            num_cpus: Some(spec.num_cpus),
            memory_mb: Some(spec.memory_mib),
            device_change: device_changes(template, &place.networks, spec.disk_gib)?,
            extra_config,
            vapp_config_removed: Some(true),
            ..ConfigSpec::default()
        };
        Ok(CloneSpec {
            location: RelocateSpec {
                datastore: place.datastore.clone(),
                pool: place.pool.clone(),
                disk_move_type: Some(if linked {
                    DiskMoveType::CreateNewChildDiskBacking
                } else {
                    DiskMoveType::MoveAllDiskBackingsAndConsolidate
                }),
                ..RelocateSpec::default()
            },
            config: Some(config),
            power_on: false,
            snapshot,
            ..CloneSpec::default()
        })
    }

    /// What the clone was to set and the VM lacks (vcsim drops the clone's config): identity,
    /// sizing, NICs, disk, user data. `None` when nothing differs.
    async fn missing_config(
        &self,
        client: &VsphereClient,
        scope: &MachineScope<'_, Self>,
        vm: &VmInfo,
        bootstrap: &BootstrapData,
    ) -> Result<Option<ConfigSpec>, ProviderError> {
        let spec = &scope.machine.spec;
        let fd = placement::failure_domain(scope.cluster, scope.failure_domain.as_deref())?;
        let place = placement::resolve(client, scope.cluster, spec, fd).await?;
        let disk = (spec.clone_mode != Some(CloneMode::LinkedClone))
            .then_some(spec.disk_gib)
            .flatten();
        let device_change = device_changes(vm, &place.networks, disk)?;
        let mut wanted = vec![OptionValue::new(bootstrap::IDENTITY, &scope.identity.uid)];
        wanted.extend(bootstrap::userdata_at_clone(bootstrap));
        let extra_config = bootstrap::missing(vm, wanted);
        let uid = &scope.identity.uid;
        let config = ConfigSpec {
            instance_uuid: (vm.instance_uuid.as_deref() != Some(uid.as_str())).then(|| uid.clone()),
            num_cpus: (vm.num_cpus != Some(i64::from(spec.num_cpus))).then_some(spec.num_cpus),
            memory_mb: (vm.memory_mb != Some(spec.memory_mib)).then_some(spec.memory_mib),
            device_change,
            extra_config,
            ..ConfigSpec::default()
        };
        Ok((config != ConfigSpec::default()).then_some(config))
    }

    /// The metadata keys (and an Ignition config, which names the node) the VM lacks, now that
    /// its NICs have MACs and it has a BIOS UUID; `None` when it has them.
    async fn missing_metadata(
        &self,
        scope: &MachineScope<'_, Self>,
        vm: &VmInfo,
        bootstrap: &BootstrapData,
    ) -> Result<Option<ConfigSpec>, ProviderError> {
        let claims = self.claimed(scope).await?;
        let nics = nic_configs(scope, vm, &claims)?;
        let provider_id = vm.bios_uuid.as_deref().map(provider_id);
        let document = bootstrap::metadata(&vm.name, &vm.name, provider_id.as_deref(), &nics);
        let mut wanted = bootstrap::metadata_options(&document);
        wanted.extend(bootstrap::ignition_with_identity(
            bootstrap,
            &vm.name,
            provider_id.as_deref().unwrap_or_default(),
        ));
        let missing = bootstrap::missing(vm, wanted);
        if missing.is_empty() && vm.extra_config_value(BOOT_WRITTEN_AT).is_some() {
            return Ok(None);
        }
        let mut extra_config = missing;
        extra_config.push(OptionValue::new(
            BOOT_WRITTEN_AT,
            Timestamp::now().as_second().to_string(),
        ));
        Ok(Some(ConfigSpec {
            extra_config,
            ..ConfigSpec::default()
        }))
    }

    /// Gives a cloned VM its identity if the clone did not (vcsim), before anything else can
    /// lose track of it. Waits for the (short) reconfigure: the next pass looks for the VM by it.
    async fn ensure_identity(
        &self,
        client: &VsphereClient,
        scope: &MachineScope<'_, Self>,
        vm: &MoRef,
    ) -> Result<(), ProviderError> {
        let info = client.vm_info(vm).await?;
        let uid = &scope.identity.uid;
        let identity = vec![OptionValue::new(bootstrap::IDENTITY, uid)];
        let extra_config = bootstrap::missing(&info, identity);
        let has_uuid = info.instance_uuid.as_deref() == Some(uid.as_str());
        if has_uuid && extra_config.is_empty() {
            return Ok(());
        }
        let spec = ConfigSpec {
            instance_uuid: (!has_uuid).then(|| uid.clone()),
            extra_config,
            ..ConfigSpec::default()
        };
        let task = client.reconfigure_vm(vm, &spec).await?;
        client.wait_for_task(&task, Duration::from_secs(60)).await?;
        Ok(())
    }

    /// A guest shutdown in progress: done once the VM is off; `trySoft` cuts the power after
    /// its timeout.
    async fn poll_shutdown(
        &self,
        client: &VsphereClient,
        scope: &MachineScope<'_, Self>,
        vm: &MoRef,
        operation: &PendingOperation,
    ) -> Result<OperationState, ProviderError> {
        let info = match client.vm_info(vm).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Ok(OperationState::Succeeded),
            Err(e) => return Err(e.into()),
        };
        if info.power_state != PowerState::PoweredOn {
            return Ok(OperationState::Succeeded);
        }
        let spec = &scope.machine.spec;
        if spec.power_off_mode == Some(PowerOffMode::TrySoft) && elapsed(operation) > soft_timeout(spec)? {
            tracing::info!(vm = %vm, "the guest did not shut down in time; powering off");
            match client.power_off_vm(vm).await {
                Ok(_) => {}
                Err(e) if matches!(e.fault(), Some(Fault::InvalidPowerState { .. })) => {}
                Err(e) if e.is_retryable() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(OperationState::Running)
    }

    /// Powers a running VM off per `powerOffMode`: a task, or a guest shutdown polled as
    /// `shutdown:<vm>`.
    async fn power_off(
        &self,
        client: &VsphereClient,
        scope: &MachineScope<'_, Self>,
        vm: &MoRef,
    ) -> Result<Operation, ProviderError> {
        let mode = scope.machine.spec.power_off_mode.unwrap_or_default();
        if mode == PowerOffMode::Hard {
            return Ok(task_op(client.power_off_vm(vm).await?));
        }
        match client.shutdown_guest(vm).await {
            Ok(()) => Ok(Operation {
                id: format!("{SHUTDOWN}{}", vm.value),
            }),
            // No Tools to ask (ToolsUnavailable and the like): trySoft does not wait for nothing.
            Err(e) if mode == PowerOffMode::TrySoft && e.fault().is_some() => {
                tracing::info!(vm = %vm, error = %e, "no guest shutdown possible; powering off");
                Ok(task_op(client.power_off_vm(vm).await?))
            }
            Err(e) => Err(ProviderError::SoftPowerOff(e.to_string())),
        }
    }
}

fn elapsed(op: &PendingOperation) -> Duration {
    Timestamp::now()
        .duration_since(op.started_at.0)
        .try_into()
        .unwrap_or_default()
}

/// `guestSoftPowerOffTimeout` (`1h30m`, `90s`), 5 minutes when unset.
fn soft_timeout(spec: &crate::api::VCenterMachineSpec) -> Result<Duration, ProviderError> {
    let Some(text) = &spec.guest_soft_power_off_timeout else {
        return Ok(DEFAULT_SOFT_TIMEOUT);
    };
    parse_duration(text).ok_or_else(|| {
        ProviderError::Spec(format!(
            "guestSoftPowerOffTimeout {text:?} is not a duration like 5m or 90s"
        ))
    })
}

fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => number.push(c),
            'h' | 'm' | 's' => {
                let n: u64 = number.parse().ok()?;
                total += n * match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                number.clear();
            }
            _ => return None,
        }
    }
    (number.is_empty() && !text.is_empty()).then_some(Duration::from_secs(total))
}

/// When the IP wait started: the VM's boot (vCenter), else when Capstan wrote its boot config.
fn wait_started(vm: &VmInfo) -> Option<Timestamp> {
    if let Some(t) = vm.boot_time.as_deref().and_then(|t| t.parse::<Timestamp>().ok()) {
        return Some(t);
    }
    let secs: i64 = vm.extra_config_value(BOOT_WRITTEN_AT)?.parse().ok()?;
    Timestamp::from_second(secs).ok()
}

/// The cluster's failure domains as CAPI reads them.
fn failure_domains(cluster: &VCenterCluster) -> Vec<FailureDomain> {
    cluster
        .spec
        .failure_domains
        .iter()
        .map(|f| {
            let mut attributes = std::collections::BTreeMap::from([
                (
                    "datacenter".to_string(),
                    f.datacenter.clone().unwrap_or_else(|| cluster.spec.datacenter.clone()),
                ),
                ("computeCluster".to_string(), f.compute_cluster.clone()),
            ]);
            if let Some(ds) = &f.datastore {
                attributes.insert("datastore".into(), ds.clone());
            }
            FailureDomain {
                name: f.name.clone(),
                control_plane: Some(f.control_plane.unwrap_or(true)),
                attributes: Some(attributes),
            }
        })
        .collect()
}

impl InfraProvider for VsphereProvider {
    type Cluster = VCenterCluster;
    type Machine = VCenterMachine;
    type ClusterResources = NoResources;
    type MachineResources = NoResources;
    type Error = ProviderError;

    fn name(&self) -> &'static str {
        "vsphere"
    }

    async fn ensure_cluster_infra(
        &self,
        scope: &ClusterScope<'_, Self>,
        _resources: &mut NoResources,
    ) -> Result<ClusterProgress, ProviderError> {
        // vSphere has no load balancer: the endpoint is the user's (a kube-vip VIP). Provisioned
        // means vCenter answers with these credentials and every named inventory item exists.
        let client = self.client(scope.infra, scope.credentials)?;
        placement::datacenter(&client, &placement::datacenter_path(&scope.infra.spec.datacenter)).await?;
        for fd in &scope.infra.spec.failure_domains {
            placement::check_failure_domain(&client, scope.infra, fd).await?;
        }
        Ok(ClusterProgress::Ready(ClusterInfra {
            control_plane_endpoint: None,
            failure_domains: failure_domains(scope.infra),
        }))
    }

    async fn delete_cluster_infra(
        &self,
        _scope: &ClusterScope<'_, Self>,
        _resources: &mut NoResources,
    ) -> Result<Removal, ProviderError> {
        // Nothing cluster-level is created in vCenter.
        Ok(Removal::Done)
    }

    async fn find_instance(&self, scope: &MachineScope<'_, Self>) -> Result<Option<Instance>, ProviderError> {
        let client = self.scope_client(scope)?;
        let (machine, uid) = (scope.machine, scope.identity.uid.as_str());
        let found = |vm: VmInfo| ours(machine, uid, &vm).then(|| instance(&vm, scope.failure_domain.clone()));
        if let Some(id) = &scope.known_instance {
            match client.vm_info(&vm_ref(id)).await {
                Ok(vm) if ours(machine, uid, &vm) => return Ok(found(vm)),
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let fd = placement::failure_domain(scope.cluster, scope.failure_domain.as_deref()).unwrap_or(None);
        let dc_path = placement::machine_datacenter(scope.cluster, fd);
        let dc = placement::datacenter(&client, &dc_path).await?;
        let bios = machine
            .spec
            .provider_id
            .as_deref()
            .and_then(|p| p.strip_prefix("vsphere://"));
        let by_uuid = [
            (Some(uid), crate::client::UuidKind::Instance),
            (bios, crate::client::UuidKind::Bios),
        ];
        for (uuid, kind) in by_uuid {
            let Some(uuid) = uuid else { continue };
            if let Some(vm) = client.find_vm_by_uuid(uuid, kind, Some(&dc)).await?
                && let Some(i) = found(client.vm_info(&vm).await?)
            {
                return Ok(Some(i));
            }
        }
        // vCenter may give a clone another instance UUID on a conflict: the name in the folder,
        // if that VM carries the UID in its extraConfig.
        let folder = placement::folder(&client, &dc_path, machine.spec.folder.as_deref()).await?;
        match client.find_child(&folder, &vm_name(scope)?).await? {
            Some(vm) => Ok(found(client.vm_info(&vm).await?)),
            None => Ok(None),
        }
    }

    async fn create_instance(
        &self,
        scope: &MachineScope<'_, Self>,
        bootstrap: &BootstrapData,
    ) -> Result<Operation, ProviderError> {
        // Pool addresses first: no VM is cloned before its addresses are bound.
        self.claimed(scope).await?;
        let client = self.scope_client(scope)?;
        let spec = &scope.machine.spec;
        let fd = placement::failure_domain(scope.cluster, scope.failure_domain.as_deref())?;
        let place = placement::resolve(&client, scope.cluster, spec, fd).await?;
        let dc_path = placement::machine_datacenter(scope.cluster, fd);
        let template_ref = placement::template(&client, &dc_path, &place.datacenter, &spec.template).await?;
        let template = client.vm_info(&template_ref).await?;
        let clone = self.clone_spec(scope, &template, &place, bootstrap)?;
        let name = vm_name(scope)?;
        match client.clone_vm(&template_ref, &place.folder, &name, &clone).await {
            Ok(task) => Ok(task_op(task)),
            Err(e) if matches!(e.fault(), Some(Fault::DuplicateName { .. })) => Err(ProviderError::NameTaken { name }),
            Err(e) => Err(e.into()),
        }
    }

    async fn start_instance(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: &Instance,
        boot: Boot<'_>,
    ) -> Result<Option<Operation>, ProviderError> {
        let client = self.scope_client(scope)?;
        let vm = vm_ref(&instance.id);
        // A later start (stopped by hand, host failure) boots as the VM is: its user data was
        // cleared after the first boot and stays cleared.
        if let Boot::First(bootstrap) = boot {
            let info = client.vm_info(&vm).await?;
            if let Some(spec) = self.missing_config(&client, scope, &info, bootstrap).await? {
                return Ok(Some(task_op(client.reconfigure_vm(&vm, &spec).await?)));
            }
            if let Some(spec) = self.missing_metadata(scope, &info, bootstrap).await? {
                return Ok(Some(task_op(client.reconfigure_vm(&vm, &spec).await?)));
            }
        }
        Ok(Some(task_op(client.power_on_vm(&vm).await?)))
    }

    async fn poll_operation(
        &self,
        scope: &MachineScope<'_, Self>,
        operation: &PendingOperation,
    ) -> Result<OperationState, ProviderError> {
        let client = self.scope_client(scope)?;
        if let Some(vm) = operation.id.strip_prefix(SHUTDOWN) {
            return self.poll_shutdown(&client, scope, &vm_ref(vm), operation).await;
        }
        let task = MoRef::new("Task", &operation.id);
        let info = match client.task_info(&task).await {
            Ok(i) => i,
            // vCenter forgets finished tasks after a while: the VM's state decides then.
            Err(e) if e.is_not_found() => return Ok(OperationState::Succeeded),
            Err(e) => return Err(e.into()),
        };
        match info.state {
            TaskState::Queued | TaskState::Running => Ok(OperationState::Running),
            TaskState::Success => {
                if operation.kind == capstan_lifecycle::OperationKind::Create
                    && let Some(vm) = info.result_moref()
                {
                    self.ensure_identity(&client, scope, &vm).await?;
                }
                Ok(OperationState::Succeeded)
            }
            TaskState::Error => match info.error {
                // Already in the state asked for (powered on twice, off twice): done.
                Some(Fault::InvalidPowerState {
                    requested, existing, ..
                }) if requested == existing => Ok(OperationState::Succeeded),
                Some(fault) => Ok(OperationState::Failed {
                    message: fault.to_string(),
                }),
                None => Ok(OperationState::Failed {
                    message: format!("task {} failed without saying why", operation.id),
                }),
            },
        }
    }

    async fn delete_instance(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: &Instance,
    ) -> Result<Option<Operation>, ProviderError> {
        let client = self.scope_client(scope)?;
        let vm = vm_ref(&instance.id);
        if instance.state == InstanceState::Running {
            return Ok(Some(self.power_off(&client, scope, &vm).await?));
        }
        match client.destroy(&vm).await {
            Ok(task) => Ok(Some(task_op(task))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn after_deleted(&self, scope: &MachineScope<'_, Self>) -> Result<(), ProviderError> {
        ipam::release(&self.kube, scope.machine, FIELD_MANAGER).await?;
        Ok(())
    }

    async fn check_address_wait(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: &Instance,
    ) -> Result<(), ProviderError> {
        let client = self.scope_client(scope)?;
        let vm = client.vm_info(&vm_ref(&instance.id)).await?;
        let Some(started) = wait_started(&vm) else {
            return Ok(());
        };
        let waited: Duration = Timestamp::now().duration_since(started).try_into().unwrap_or_default();
        if waited <= self.options.ip_wait_timeout {
            return Ok(());
        }
        Err(ProviderError::AddressTimeout {
            macs: vm.mac_addresses().join(", "),
            seconds: self.options.ip_wait_timeout.as_secs(),
        })
    }

    async fn clean_up_bootstrap(
        &self,
        scope: &MachineScope<'_, Self>,
        instance: &Instance,
    ) -> Result<Cleanup, ProviderError> {
        // The user data holds the join token and, on control planes, the cluster's keys:
        // cleared once the machine runs (see crate::bootstrap for how cloud-init takes it).
        let client = self.scope_client(scope)?;
        let vm = vm_ref(&instance.id);
        let clearing = bootstrap::clearing(&client.vm_info(&vm).await?);
        if clearing.is_empty() {
            return Ok(Cleanup::Done);
        }
        let spec = ConfigSpec {
            extra_config: clearing,
            ..ConfigSpec::default()
        };
        Ok(Cleanup::Started(task_op(client.reconfigure_vm(&vm, &spec).await?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_addresses() {
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration(""), None);
        assert!(usable("10.0.0.7").is_some());
        assert!(usable("169.254.1.1").is_none());
        assert!(usable("fe80::1").is_none());
        assert!(usable("127.0.0.1").is_none());
        assert!(usable("::1").is_none());
        assert!(usable("127.0.60.10").is_some(), "a simulated VM's address");
        assert!(usable("2001:db8::5").is_some());
        assert_eq!(
            provider_id("4215A1B2-0000-1111-2222-333344445555"),
            "vsphere://4215a1b2-0000-1111-2222-333344445555"
        );
    }
}
