//! The vim25 data types the client sends and reads. Request types write themselves in WSDL
//! element order (the field order of govmomi's generated `vim25/types/types.go`); only the
//! fields a provider needs are modelled.

use std::fmt;

use super::soap::Xml;
use super::xml::Node;

/// A managed object reference: `<x type="VirtualMachine">vm-42</x>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MoRef {
    pub kind: String,
    pub value: String,
}

impl MoRef {
    pub fn new(kind: impl Into<String>, value: impl Into<String>) -> Self {
        MoRef {
            kind: kind.into(),
            value: value.into(),
        }
    }

    /// Reads a reference element; one without a `type` attribute is not a reference.
    pub fn from_node(n: &Node) -> Option<MoRef> {
        Some(MoRef::new(n.attr("type")?, n.text.trim()))
    }
}

impl fmt::Display for MoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

/// The references of `RetrieveServiceContent` a client needs, and who answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceContent {
    pub root_folder: MoRef,
    pub property_collector: MoRef,
    pub session_manager: MoRef,
    pub search_index: MoRef,
    /// `VirtualCenter` for vCenter, `HostAgent` for a standalone ESXi (CAPV requires the former).
    pub api_type: String,
    pub api_version: String,
    pub instance_uuid: Option<String>,
}

impl ServiceContent {
    pub(crate) fn from_node(n: &Node) -> Option<ServiceContent> {
        let r = |name: &str| n.child(name).and_then(MoRef::from_node);
        let about = n.child("about")?;
        Some(ServiceContent {
            root_folder: r("rootFolder")?,
            property_collector: r("propertyCollector")?,
            session_manager: r("sessionManager")?,
            search_index: r("searchIndex")?,
            api_type: about.child_text("apiType").unwrap_or_default().to_string(),
            api_version: about.child_text("apiVersion").unwrap_or_default().to_string(),
            instance_uuid: about.child_text("instanceUuid").map(str::to_string),
        })
    }
}

/// An `extraConfig` entry. vim25 declares `value` as `anyType`; VMX keys are strings, sent as
/// `xsd:string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionValue {
    pub key: String,
    pub value: String,
}

impl OptionValue {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        OptionValue {
            key: key.into(),
            value: value.into(),
        }
    }

    /// The entry that removes `key`: vCenter deletes an extraConfig key set to the empty string.
    pub fn clear(key: impl Into<String>) -> Self {
        OptionValue::new(key, "")
    }

    fn write(&self, x: &mut Xml) {
        x.open_typed("extraConfig", "OptionValue")
            .text("key", &self.key)
            .typed_text("value", "xsd:string", &self.value)
            .close("extraConfig");
    }

    /// Reads `config.extraConfig` (an `ArrayOfOptionValue`).
    pub(crate) fn list_from_node(n: &Node) -> Vec<OptionValue> {
        n.children("OptionValue")
            .filter_map(|o| {
                Some(OptionValue::new(
                    o.child_text("key")?,
                    o.child_text("value").unwrap_or_default(),
                ))
            })
            .collect()
    }
}

/// `VirtualMachineRelocateSpec.diskMoveType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskMoveType {
    /// A full clone (CAPV's `fullClone`).
    MoveAllDiskBackingsAndConsolidate,
    MoveAllDiskBackingsAndDisallowSharing,
    /// A linked clone; needs `CloneSpec::snapshot`.
    CreateNewChildDiskBacking,
}

impl DiskMoveType {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskMoveType::MoveAllDiskBackingsAndConsolidate => "moveAllDiskBackingsAndConsolidate",
            DiskMoveType::MoveAllDiskBackingsAndDisallowSharing => "moveAllDiskBackingsAndDisallowSharing",
            DiskMoveType::CreateNewChildDiskBacking => "createNewChildDiskBacking",
        }
    }
}

/// Where a clone goes (`VirtualMachineRelocateSpec`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelocateSpec {
    pub folder: Option<MoRef>,
    pub datastore: Option<MoRef>,
    pub disk_move_type: Option<DiskMoveType>,
    /// Required when the source is a template (vCenter and vcsim: `InvalidArgument spec.location.pool`).
    pub pool: Option<MoRef>,
    pub host: Option<MoRef>,
}

impl RelocateSpec {
    fn write(&self, x: &mut Xml) {
        x.open_typed("location", "VirtualMachineRelocateSpec")
            .opt_moref("folder", self.folder.as_ref())
            .opt_moref("datastore", self.datastore.as_ref())
            .opt_text("diskMoveType", self.disk_move_type.map(DiskMoveType::as_str))
            .opt_moref("pool", self.pool.as_ref())
            .opt_moref("host", self.host.as_ref())
            .close("location");
    }
}

/// `VirtualMachineCloneSpec`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloneSpec {
    pub location: RelocateSpec,
    /// Mark the clone as a template.
    pub template: bool,
    pub config: Option<ConfigSpec>,
    /// CAPV clones powered off: the MACs must exist before the metadata is written.
    pub power_on: bool,
    /// The source snapshot of a linked clone.
    pub snapshot: Option<MoRef>,
}

impl CloneSpec {
    pub(crate) fn write(&self, x: &mut Xml) {
        x.open("spec");
        self.location.write(x);
        x.text("template", self.template);
        if let Some(c) = &self.config {
            c.write(x, "config");
        }
        x.text("powerOn", self.power_on)
            .opt_moref("snapshot", self.snapshot.as_ref())
            .close("spec");
    }
}

/// `VirtualMachineConfigSpec`: what a clone or a reconfigure changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSpec {
    /// vCenter's own id of the VM; Capstan sets it to the machine's UID to find the VM again.
    pub instance_uuid: Option<String>,
    pub annotation: Option<String>,
    /// `flags.diskUuidEnabled` (CAPV sets it: Kubernetes CSI needs stable disk ids).
    pub disk_uuid_enabled: Option<bool>,
    pub num_cpus: Option<i32>,
    pub num_cores_per_socket: Option<i32>,
    pub memory_mb: Option<i64>,
    pub device_change: Vec<DeviceChange>,
    pub extra_config: Vec<OptionValue>,
    /// Drops the template's vApp options so cloud-init does not prefer the OVF datasource.
    pub vapp_config_removed: Option<bool>,
}

impl ConfigSpec {
    pub(crate) fn write(&self, x: &mut Xml, name: &str) {
        x.open(name)
            .opt_text("instanceUuid", self.instance_uuid.as_deref())
            .opt_text("annotation", self.annotation.as_deref());
        if let Some(d) = self.disk_uuid_enabled {
            x.open("flags").text("diskUuidEnabled", d).close("flags");
        }
        x.opt_text("numCPUs", self.num_cpus)
            .opt_text("numCoresPerSocket", self.num_cores_per_socket)
            .opt_text("memoryMB", self.memory_mb);
        for d in &self.device_change {
            d.write(x);
        }
        for o in &self.extra_config {
            o.write(x);
        }
        x.opt_text("vAppConfigRemoved", self.vapp_config_removed).close(name);
    }
}

/// How an added NIC is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicBacking {
    /// A standard port group, by name (`VirtualEthernetCardNetworkBackingInfo`).
    Network { name: String, network: Option<MoRef> },
    /// A distributed port group: the switch's `uuid` and the port group's `key`.
    DistributedPort { switch_uuid: String, portgroup_key: String },
}

/// One `VirtualDeviceConfigSpec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChange {
    /// Changes a device as it was read: vcsim (and vCenter) want the whole device back,
    /// `deviceInfo` included, not just the changed fields.
    Edit(VirtualDevice),
    Remove(VirtualDevice),
    /// Adds a `VirtualVmxnet3`; `key` is a temporary negative key (CAPV uses -100, -101, ...).
    AddVmxnet3 {
        key: i32,
        backing: NicBacking,
        /// A manual MAC address (`addressType=manual`); else vCenter generates one.
        mac: Option<String>,
    },
}

impl DeviceChange {
    fn write(&self, x: &mut Xml) {
        x.open_typed("deviceChange", "VirtualDeviceConfigSpec");
        match self {
            DeviceChange::Edit(d) => x.text("operation", "edit").node("device", &d.raw),
            DeviceChange::Remove(d) => x.text("operation", "remove").node("device", &d.raw),
            DeviceChange::AddVmxnet3 { key, backing, mac } => {
                x.text("operation", "add")
                    .open_typed("device", "VirtualVmxnet3")
                    .text("key", key);
                write_backing(x, backing);
                // Unconnected at power-on otherwise (govmomi's CreateEthernetCard sets the same).
                x.open("connectable")
                    .text("startConnected", true)
                    .text("allowGuestControl", true)
                    .text("connected", true)
                    .close("connectable");
                // VirtualEthernetCard's own fields come after VirtualDevice's.
                match mac {
                    Some(m) => x.text("addressType", "manual").text("macAddress", m),
                    None => x.text("addressType", "generated"),
                };
                x.close("device")
            }
        };
        x.close("deviceChange");
    }
}

fn write_backing(x: &mut Xml, backing: &NicBacking) {
    match backing {
        NicBacking::Network { name, network } => x
            .open_typed("backing", "VirtualEthernetCardNetworkBackingInfo")
            .text("deviceName", name)
            .opt_moref("network", network.as_ref()),
        NicBacking::DistributedPort {
            switch_uuid,
            portgroup_key,
        } => x
            .open_typed("backing", "VirtualEthernetCardDistributedVirtualPortBackingInfo")
            .open("port")
            .text("switchUuid", switch_uuid)
            .text("portgroupKey", portgroup_key)
            .close("port"),
    };
    x.close("backing");
}

/// A device of `config.hardware.device`, kept whole so it can be sent back in an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualDevice {
    pub key: i32,
    /// The concrete type (`VirtualDisk`, `VirtualVmxnet3`, `VirtualE1000`, ...).
    pub device_type: String,
    pub label: Option<String>,
    pub raw: Node,
}

impl VirtualDevice {
    pub(crate) fn list_from_node(n: &Node) -> Vec<VirtualDevice> {
        n.children("VirtualDevice")
            .filter_map(|d| {
                Some(VirtualDevice {
                    key: d.child("key")?.parse_i64()? as i32,
                    device_type: d.type_name().unwrap_or("VirtualDevice").to_string(),
                    label: d.path("deviceInfo.label").map(|l| l.text.clone()),
                    raw: d.clone(),
                })
            })
            .collect()
    }

    /// The MAC of a NIC (any `VirtualEthernetCard`).
    pub fn mac_address(&self) -> Option<&str> {
        self.raw.child_text("macAddress")
    }

    pub fn is_disk(&self) -> bool {
        self.device_type == "VirtualDisk"
    }

    pub fn capacity_kb(&self) -> Option<i64> {
        self.raw.child("capacityInKB").and_then(Node::parse_i64)
    }

    /// The disk's file (`[datastore] dir/disk.vmdk`).
    pub fn file_name(&self) -> Option<&str> {
        self.raw.path("backing.fileName").map(|n| n.text.as_str())
    }

    /// An edit that grows this disk to `capacity_kb`. Both capacity fields are set: vCenter
    /// refuses an edit whose `capacityInKB` and `capacityInBytes` disagree.
    pub fn resized(&self, capacity_kb: i64) -> DeviceChange {
        let mut d = self.clone();
        for c in &mut d.raw.children {
            match c.name.as_str() {
                "capacityInKB" => c.text = capacity_kb.to_string(),
                "capacityInBytes" => c.text = (capacity_kb * 1024).to_string(),
                _ => {}
            }
        }
        DeviceChange::Edit(d)
    }
}

/// One entry of `guest.net`, as VMware Tools report it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestNic {
    pub network: Option<String>,
    pub mac_address: Option<String>,
    pub ip_addresses: Vec<String>,
    pub connected: bool,
    /// The `key` of the NIC device this entry belongs to.
    pub device_config_id: Option<i32>,
}

impl GuestNic {
    pub(crate) fn list_from_node(n: &Node) -> Vec<GuestNic> {
        n.children("GuestNicInfo")
            .map(|g| GuestNic {
                network: g.child_text("network").map(str::to_string),
                mac_address: g.child_text("macAddress").map(str::to_string),
                ip_addresses: g.children("ipAddress").map(|i| i.text.clone()).collect(),
                connected: g.child("connected").and_then(Node::parse_bool).unwrap_or(false),
                device_config_id: g.child("deviceConfigId").and_then(Node::parse_i64).map(|k| k as i32),
            })
            .collect()
    }
}

/// `runtime.powerState`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerState {
    PoweredOn,
    PoweredOff,
    Suspended,
    Other(String),
}

impl PowerState {
    pub(crate) fn parse(s: &str) -> PowerState {
        match s.trim() {
            "poweredOn" => PowerState::PoweredOn,
            "poweredOff" => PowerState::PoweredOff,
            "suspended" => PowerState::Suspended,
            other => PowerState::Other(other.to_string()),
        }
    }
}
