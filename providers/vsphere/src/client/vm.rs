//! Finding and changing virtual machines: `SearchIndex` look-ups, clone, reconfigure, power,
//! destroy, and a typed read of the properties a provider needs.

use super::soap::{self, Request};
use super::types::{CloneSpec, ConfigSpec, GuestNic, MoRef, OptionValue, PowerState, VirtualDevice};
use super::xml::Node;
use super::{ObjectContent, VsphereClient, VsphereError};

/// Which UUID `FindByUuid` matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UuidKind {
    /// `config.instanceUuid`: vCenter's id, which Capstan sets at clone time.
    Instance,
    /// `config.uuid`: the SMBIOS UUID the guest sees (the providerID).
    Bios,
}

/// The properties [`VsphereClient::vm_info`] reads.
pub const VM_PROPERTIES: &[&str] = &[
    "name",
    "runtime.powerState",
    "runtime.host",
    "config.uuid",
    "config.instanceUuid",
    "config.template",
    "config.hardware.device",
    "config.extraConfig",
    "snapshot",
    "guest.net",
    "guest.ipAddress",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "runtime.bootTime",
];

/// What a provider reads of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmInfo {
    pub vm: MoRef,
    pub name: String,
    pub power_state: PowerState,
    pub host: Option<MoRef>,
    pub bios_uuid: Option<String>,
    pub instance_uuid: Option<String>,
    pub template: bool,
    pub devices: Vec<VirtualDevice>,
    pub extra_config: Vec<OptionValue>,
    pub current_snapshot: Option<MoRef>,
    pub guest_nics: Vec<GuestNic>,
    /// `guest.ipAddress`: the guest's primary address, absent until Tools report one.
    pub guest_ip: Option<String>,
    pub num_cpus: Option<i64>,
    pub memory_mb: Option<i64>,
    /// `runtime.bootTime` (xsd:dateTime): when the VM last powered on; vcsim leaves it unset.
    pub boot_time: Option<String>,
    /// The raw `snapshot` property (`VirtualMachineSnapshotInfo`), for look-ups by name.
    pub snapshot_tree: Option<Node>,
}

impl VmInfo {
    fn from_content(c: &ObjectContent) -> VmInfo {
        let text = |p: &str| c.text(p).map(str::to_string);
        VmInfo {
            vm: c.obj.clone(),
            name: text("name").unwrap_or_default(),
            power_state: PowerState::parse(c.text("runtime.powerState").unwrap_or_default()),
            host: c.get("runtime.host").and_then(MoRef::from_node),
            bios_uuid: text("config.uuid"),
            instance_uuid: text("config.instanceUuid"),
            template: c.get("config.template").and_then(Node::parse_bool).unwrap_or(false),
            devices: c
                .get("config.hardware.device")
                .map(VirtualDevice::list_from_node)
                .unwrap_or_default(),
            extra_config: c
                .get("config.extraConfig")
                .map(OptionValue::list_from_node)
                .unwrap_or_default(),
            current_snapshot: c
                .get("snapshot")
                .and_then(|s| s.child("currentSnapshot"))
                .and_then(MoRef::from_node),
            guest_nics: c.get("guest.net").map(GuestNic::list_from_node).unwrap_or_default(),
            guest_ip: text("guest.ipAddress").filter(|s| !s.is_empty()),
            num_cpus: c.get("config.hardware.numCPU").and_then(Node::parse_i64),
            memory_mb: c.get("config.hardware.memoryMB").and_then(Node::parse_i64),
            boot_time: text("runtime.bootTime").filter(|s| !s.is_empty()),
            snapshot_tree: c.get("snapshot").cloned(),
        }
    }

    /// The value of an extraConfig key. The last entry wins: older vcsims append instead of
    /// replacing, and vCenter holds one entry per key anyway.
    pub fn extra_config_value(&self, key: &str) -> Option<&str> {
        self.extra_config
            .iter()
            .rev()
            .find(|o| o.key == key)
            .map(|o| o.value.as_str())
    }

    /// The MAC addresses of the NICs, in device order.
    pub fn mac_addresses(&self) -> Vec<&str> {
        self.devices.iter().filter_map(VirtualDevice::mac_address).collect()
    }

    pub fn disks(&self) -> impl Iterator<Item = &VirtualDevice> {
        self.devices.iter().filter(|d| d.is_disk())
    }

    /// The NICs (devices with a MAC address field), in device order.
    pub fn nics(&self) -> impl Iterator<Item = &VirtualDevice> {
        self.devices
            .iter()
            .filter(|d| d.raw.child("macAddress").is_some() || d.raw.child("addressType").is_some())
    }

    /// The snapshot named `name` anywhere in the VM's snapshot tree.
    pub fn snapshot_named(&self, name: &str) -> Option<MoRef> {
        fn walk(nodes: &Node, list: &str, name: &str) -> Option<MoRef> {
            nodes.children(list).find_map(|tree| {
                if tree.child_text("name") == Some(name) {
                    return tree.child("snapshot").and_then(MoRef::from_node);
                }
                walk(tree, "childSnapshotList", name)
            })
        }
        walk(self.snapshot_tree.as_ref()?, "rootSnapshotList", name)
    }
}

/// The `Task` a `*_Task` method answers.
fn task_ref(method: &'static str, resp: &Node) -> Result<MoRef, VsphereError> {
    soap::returnval(resp)
        .and_then(MoRef::from_node)
        .ok_or_else(|| VsphereError::Decode {
            method,
            message: "no task reference in the answer".into(),
        })
}

/// A look-up's reference, `None` when vim25 left `returnval` out (nothing found, no fault).
fn found(resp: &Node) -> Option<MoRef> {
    soap::returnval(resp).and_then(MoRef::from_node)
}

pub(crate) fn clone_request(vm: &MoRef, folder: &MoRef, name: &str, spec: &CloneSpec) -> Request {
    let mut req = Request::new("CloneVM_Task", vm);
    req.body().moref("folder", folder).text("name", name);
    spec.write(req.body());
    req
}

pub(crate) fn reconfigure_request(vm: &MoRef, spec: &ConfigSpec) -> Request {
    let mut req = Request::new("ReconfigVM_Task", vm);
    spec.write(req.body(), "spec");
    req
}

/// How long a placement look-up is trusted: a folder or pool replaced in vCenter (same path,
/// new object) is seen again within this, a stale reference meanwhile fails the reconcile with
/// `ManagedObjectNotFound` and is retried.
pub const PLACEMENT_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl VsphereClient {
    /// `FindByInventoryPath`: `/DC/vm/folder/name`, `/DC/host/cluster/Resources`,
    /// `/DC/datastore/ds`, `/DC/network/pg`.
    pub async fn find_by_inventory_path(&self, path: &str) -> Result<Option<MoRef>, VsphereError> {
        let si = self.service_content().await?.search_index.clone();
        let mut req = Request::new("FindByInventoryPath", &si);
        req.body().text("inventoryPath", path);
        Ok(found(&self.invoke(req).await?))
    }

    /// [`find_by_inventory_path`](Self::find_by_inventory_path) for what a machine is placed
    /// in (datacenter, folder, resource pool, datastore, network, template): that inventory does
    /// not move under a running cluster, and every reconcile of every machine asks for it (16
    /// look-ups per VM provisioned before this cache), so a found object is remembered for
    /// [`PLACEMENT_TTL`]. Not-found answers are not remembered (the user may be creating the
    /// folder right now), and VMs are never looked up through this.
    pub async fn find_placement(&self, path: &str) -> Result<Option<MoRef>, VsphereError> {
        let now = std::time::Instant::now();
        if let Some((at, moref)) = self.inner.placement.lock().expect("cache poisoned").get(path)
            && now.duration_since(*at) < PLACEMENT_TTL
        {
            return Ok(Some(moref.clone()));
        }
        let found = self.find_by_inventory_path(path).await?;
        if let Some(moref) = &found {
            self.inner
                .placement
                .lock()
                .expect("cache poisoned")
                .insert(path.to_string(), (now, moref.clone()));
        }
        Ok(found)
    }

    /// `FindByUuid` for a VM, optionally within one datacenter.
    pub async fn find_vm_by_uuid(
        &self,
        uuid: &str,
        kind: UuidKind,
        datacenter: Option<&MoRef>,
    ) -> Result<Option<MoRef>, VsphereError> {
        let si = self.service_content().await?.search_index.clone();
        let mut req = Request::new("FindByUuid", &si);
        req.body()
            .opt_moref("datacenter", datacenter)
            .text("uuid", uuid)
            .text("vmSearch", true)
            .text("instanceUuid", kind == UuidKind::Instance);
        Ok(found(&self.invoke(req).await?))
    }

    /// `FindChild`: the entity named `name` directly inside `entity` (a folder).
    pub async fn find_child(&self, entity: &MoRef, name: &str) -> Result<Option<MoRef>, VsphereError> {
        let si = self.service_content().await?.search_index.clone();
        let mut req = Request::new("FindChild", &si);
        req.body().moref("entity", entity).text("name", name);
        Ok(found(&self.invoke(req).await?))
    }

    /// The VMs in `folder` and its sub-folders (`childEntity`, walked), for inventories and tests.
    pub async fn vms_under(&self, folder: &MoRef) -> Result<Vec<MoRef>, VsphereError> {
        let mut vms = Vec::new();
        let mut folders = vec![folder.clone()];
        while let Some(f) = folders.pop() {
            let content = self.retrieve_properties(&f, &["childEntity"]).await?;
            let children = content
                .get("childEntity")
                .map(|n| n.children.iter().filter_map(MoRef::from_node).collect::<Vec<_>>())
                .unwrap_or_default();
            for child in children {
                match child.kind.as_str() {
                    "VirtualMachine" => vms.push(child),
                    "Folder" => folders.push(child),
                    _ => {}
                }
            }
        }
        Ok(vms)
    }

    /// The names of the VMs under the folder at inventory path `folder`, sorted.
    pub async fn vm_names_under(&self, folder: &str) -> Result<Vec<String>, VsphereError> {
        let Some(root) = self.find_by_inventory_path(folder).await? else {
            return Ok(Vec::new());
        };
        let vms = self.vms_under(&root).await?;
        let mut names: Vec<String> = self
            .retrieve_objects(&vms, &["name"], None)
            .await?
            .iter()
            .filter_map(|o| o.text("name").map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Reads [`VM_PROPERTIES`] of a VM.
    pub async fn vm_info(&self, vm: &MoRef) -> Result<VmInfo, VsphereError> {
        let content = self.retrieve_properties(vm, VM_PROPERTIES).await?;
        Ok(VmInfo::from_content(&content))
    }

    /// `CloneVM_Task` of `vm` (a VM or template) into `folder` as `name`.
    pub async fn clone_vm(
        &self,
        vm: &MoRef,
        folder: &MoRef,
        name: &str,
        spec: &CloneSpec,
    ) -> Result<MoRef, VsphereError> {
        let req = clone_request(vm, folder, name, spec);
        task_ref("CloneVM_Task", &self.invoke(req).await?)
    }

    /// `ReconfigVM_Task`.
    pub async fn reconfigure_vm(&self, vm: &MoRef, spec: &ConfigSpec) -> Result<MoRef, VsphereError> {
        task_ref("ReconfigVM_Task", &self.invoke(reconfigure_request(vm, spec)).await?)
    }

    pub async fn power_on_vm(&self, vm: &MoRef) -> Result<MoRef, VsphereError> {
        let resp = self.invoke(Request::new("PowerOnVM_Task", vm)).await?;
        task_ref("PowerOnVM_Task", &resp)
    }

    pub async fn power_off_vm(&self, vm: &MoRef) -> Result<MoRef, VsphereError> {
        let resp = self.invoke(Request::new("PowerOffVM_Task", vm)).await?;
        task_ref("PowerOffVM_Task", &resp)
    }

    /// `ShutdownGuest`: asks VMware Tools for a clean shutdown. No task: vCenter answers at
    /// once and the guest powers off later (poll `runtime.powerState`). Needs running Tools
    /// on vCenter (`ToolsUnavailable` otherwise).
    pub async fn shutdown_guest(&self, vm: &MoRef) -> Result<(), VsphereError> {
        self.invoke(Request::new("ShutdownGuest", vm)).await.map(|_| ())
    }

    /// `Destroy_Task`: the VM must be powered off (`InvalidPowerState` otherwise).
    pub async fn destroy(&self, obj: &MoRef) -> Result<MoRef, VsphereError> {
        let resp = self.invoke(Request::new("Destroy_Task", obj)).await?;
        task_ref("Destroy_Task", &resp)
    }
}
