//! Bootstrap data and instance metadata as VMX `guestinfo.*` keys, the way cloud-init's VMware
//! datasource and Ignition's `vmware` platform read them (and CAPV writes them):
//!
//! - cloud-config: `guestinfo.userdata` + `guestinfo.userdata.encoding=base64`;
//! - Ignition: `guestinfo.ignition.config.data` + `guestinfo.ignition.config.data.encoding=base64`;
//! - both: `guestinfo.metadata` + `guestinfo.metadata.encoding=base64`, a document with
//!   `instance-id`, `local-hostname` and a netplan v2 `network` keyed by the NICs' MAC
//!   addresses, so it is written once the VM exists and vCenter has generated the MACs.
//!
//! Every value is base64-encoded exactly once (CAPV decodes until it fails, then encodes, which
//! mangles a payload that happens to be valid base64).
//!
//! ## Clearing the bootstrap data after provisioning
//! The user data holds the join token and, on control-plane machines, the cluster's private
//! keys; anyone who can read the VM's configuration in vCenter (or run `vmware-rpctool` in the
//! guest) can read it. CAPV leaves it there (CAPV #582). Capstan removes `guestinfo.userdata`,
//! `guestinfo.ignition.config.data` and their encodings once the machine runs with an address
//! (the core's `clean_up_bootstrap`). That is safe for cloud-init: its VMware datasource reads
//! guestinfo only while the instance boots, in the `init-local` stage before the network is up,
//! and caches what it read in `/var/lib/cloud/instance` (`obj.pkl`, `user-data.txt`); by the time
//! VMware Tools report an address that stage is long over. Later boots see an unchanged
//! `instance-id` (the metadata stays, it holds no secret) and run from the cache, so the missing
//! user data is not noticed, and per-instance modules do not run again. Ignition runs once, in
//! the initramfs of the first boot, and never reads the config again. What a clear cannot undo:
//! a copy the guest made itself, and vCenter's task history, which does not include
//! extraConfig values.

use base64::Engine;
use capstan_lifecycle::{BootstrapData, BootstrapFormat};
use serde_json::{Map, Value, json};

use crate::client::{OptionValue, VmInfo};

pub const USERDATA: &str = "guestinfo.userdata";
pub const USERDATA_ENCODING: &str = "guestinfo.userdata.encoding";
pub const IGNITION: &str = "guestinfo.ignition.config.data";
pub const IGNITION_ENCODING: &str = "guestinfo.ignition.config.data.encoding";
pub const METADATA: &str = "guestinfo.metadata";
pub const METADATA_ENCODING: &str = "guestinfo.metadata.encoding";
/// Not a guestinfo key (the guest cannot read it): the VCenterMachine's UID, so a VM whose
/// instance UUID vCenter reassigned, or a clone that lost its config, is still recognised.
pub const IDENTITY: &str = "capstan.machine.uid";

/// The keys that carry secrets and are removed after provisioning.
pub const SECRET_KEYS: [&str; 4] = [USERDATA, USERDATA_ENCODING, IGNITION, IGNITION_ENCODING];

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The user-data keys for the bootstrap document, by its format.
pub fn userdata(bootstrap: &BootstrapData) -> Vec<OptionValue> {
    let (key, encoding) = match bootstrap.format {
        BootstrapFormat::CloudConfig => (USERDATA, USERDATA_ENCODING),
        BootstrapFormat::Ignition => (IGNITION, IGNITION_ENCODING),
    };
    vec![
        OptionValue::new(key, encode(&bootstrap.value)),
        OptionValue::new(encoding, "base64"),
    ]
}

/// What the clone carries: the cloud-config user data. An Ignition config waits for the VM to
/// exist ([`ignition_with_identity`]).
pub fn userdata_at_clone(bootstrap: &BootstrapData) -> Vec<OptionValue> {
    match bootstrap.format {
        BootstrapFormat::CloudConfig => userdata(bootstrap),
        BootstrapFormat::Ignition => Vec::new(),
    }
}

/// The Ignition keys once the VM exists: the document inside a parent config that writes
/// `/etc/hostname` and `/etc/capstan/instance.env` with the providerID (`vsphere://<BIOS
/// UUID>`, known only after the clone). Ignition has no template engine to take it from the
/// metadata, so this is how a MicroOS node learns it, as on DCS. A 2.x config (Flatcar) cannot
/// be wrapped and goes as it is, as does a document that is not a 3.x config at all: the node's
/// Ignition refuses that at boot, visibly. Nothing for cloud-config.
pub fn ignition_with_identity(bootstrap: &BootstrapData, hostname: &str, provider_id: &str) -> Vec<OptionValue> {
    if bootstrap.format != BootstrapFormat::Ignition {
        return Vec::new();
    }
    let files = capstan_lifecycle::ignition::identity_files(hostname, hostname, provider_id);
    match capstan_lifecycle::ignition::with_provider_files(&bootstrap.value, &files) {
        Ok(wrapped) => userdata(&BootstrapData {
            value: wrapped,
            format: BootstrapFormat::Ignition,
        }),
        Err(_) => userdata(bootstrap),
    }
}

/// One NIC as the metadata's netplan describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicConfig {
    pub mac: String,
    pub dhcp4: bool,
    pub dhcp6: bool,
    /// CIDR notation.
    pub addresses: Vec<String>,
    pub gateway4: Option<String>,
    pub gateway6: Option<String>,
    pub nameservers: Vec<String>,
    pub search_domains: Vec<String>,
}

/// The metadata document (JSON, which cloud-init reads as the YAML it also accepts).
/// `provider_id` (`vsphere://<BIOS UUID>`) is there for the kubelet's `provider-id` flag
/// (`{{ ds.meta_data.provider_id }}` in the templates, as on DCS): without a vSphere cloud
/// controller manager nothing else tells the Node which VM it is.
pub fn metadata(instance_id: &str, hostname: &str, provider_id: Option<&str>, nics: &[NicConfig]) -> String {
    let mut ethernets = Map::new();
    for (i, nic) in nics.iter().enumerate() {
        let mut eth = json!({
            "match": {"macaddress": nic.mac},
            "set-name": format!("eth{i}"),
            "wakeonlan": true,
            "dhcp4": nic.dhcp4,
            "dhcp6": nic.dhcp6,
        });
        if nic.dhcp6 {
            eth["accept-ra"] = json!(true);
        }
        if !nic.addresses.is_empty() {
            eth["addresses"] = json!(nic.addresses);
        }
        if let Some(g) = &nic.gateway4 {
            eth["gateway4"] = json!(g);
        }
        if let Some(g) = &nic.gateway6 {
            eth["gateway6"] = json!(g);
        }
        if !nic.nameservers.is_empty() || !nic.search_domains.is_empty() {
            eth["nameservers"] = json!({"addresses": nic.nameservers, "search": nic.search_domains});
        }
        ethernets.insert(format!("id{i}"), eth);
    }
    let ipv4 = nics
        .iter()
        .any(|n| n.dhcp4 || n.addresses.iter().any(|a| !a.contains(':')));
    let ipv6 = nics
        .iter()
        .any(|n| n.dhcp6 || n.addresses.iter().any(|a| a.contains(':')));
    let mut doc = json!({
        "instance-id": instance_id,
        "local-hostname": hostname,
        "wait-on-network": {"ipv4": ipv4, "ipv6": ipv6},
        "network": {"version": 2, "ethernets": ethernets},
    });
    if let Some(p) = provider_id {
        doc["provider_id"] = json!(p);
    }
    doc.to_string()
}

/// The metadata keys for `document`.
pub fn metadata_options(document: &str) -> Vec<OptionValue> {
    vec![
        OptionValue::new(METADATA, encode(document.as_bytes())),
        OptionValue::new(METADATA_ENCODING, "base64"),
    ]
}

/// The entries of `wanted` the VM does not hold with that value yet.
pub fn missing(vm: &VmInfo, wanted: Vec<OptionValue>) -> Vec<OptionValue> {
    wanted
        .into_iter()
        .filter(|o| vm.extra_config_value(&o.key) != Some(o.value.as_str()))
        .collect()
}

/// The entries that clear the secret keys the VM still holds. Keys it never had are left
/// alone: clearing a key that is not set makes vcsim add it, empty.
pub fn clearing(vm: &VmInfo) -> Vec<OptionValue> {
    SECRET_KEYS
        .iter()
        .filter(|k| vm.extra_config_value(k).is_some_and(|v| !v.is_empty()))
        .map(|k| OptionValue::clear(*k))
        .collect()
}

/// Whether the VM still holds bootstrap data (for tests and diagnostics).
pub fn holds_secrets(vm: &VmInfo) -> bool {
    !clearing(vm).is_empty()
}

/// The decoded metadata document a VM holds, if any.
pub fn decoded_metadata(vm: &VmInfo) -> Option<Value> {
    let raw = vm.extra_config_value(METADATA)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userdata_by_format_encoded_once() {
        let cc = BootstrapData {
            value: b"#cloud-config\n".to_vec(),
            format: BootstrapFormat::CloudConfig,
        };
        let o = userdata(&cc);
        assert_eq!(o[0].key, USERDATA);
        assert_eq!(o[0].value, "I2Nsb3VkLWNvbmZpZwo=");
        assert_eq!((o[1].key.as_str(), o[1].value.as_str()), (USERDATA_ENCODING, "base64"));
        // A payload that is itself base64 is not decoded first (CAPV's encoder would).
        let b64 = BootstrapData {
            value: b"e30K".to_vec(),
            format: BootstrapFormat::Ignition,
        };
        let o = userdata(&b64);
        assert_eq!((o[0].key.as_str(), o[0].value.as_str()), (IGNITION, "ZTMwSw=="));
        assert_eq!(o[1].key, IGNITION_ENCODING);
    }

    #[test]
    fn ignition_waits_for_the_vm_and_then_names_the_node() {
        let ign = BootstrapData {
            value: br#"{"ignition":{"version":"3.4.0"}}"#.to_vec(),
            format: BootstrapFormat::Ignition,
        };
        assert!(userdata_at_clone(&ign).is_empty());
        let o = ignition_with_identity(&ign, "m-1", "vsphere://4223-abcd");
        assert_eq!(o[0].key, IGNITION);
        let parent = base64::engine::general_purpose::STANDARD.decode(&o[0].value).unwrap();
        let env =
            capstan_lifecycle::ignition::provider_file(&parent, capstan_lifecycle::ignition::INSTANCE_ENV).unwrap();
        let text = String::from_utf8(env).unwrap();
        assert!(text.contains("CAPSTAN_PROVIDER_ID=vsphere://4223-abcd\n"), "{text}");
        // 2.x (Flatcar) goes unwrapped; cloud-config is the clone's business.
        let flatcar = BootstrapData {
            value: br#"{"ignition":{"version":"2.3.0"}}"#.to_vec(),
            format: BootstrapFormat::Ignition,
        };
        assert_eq!(ignition_with_identity(&flatcar, "m", "p"), userdata(&flatcar));
        let cc = BootstrapData {
            value: b"#cloud-config\n".to_vec(),
            format: BootstrapFormat::CloudConfig,
        };
        assert!(ignition_with_identity(&cc, "m", "p").is_empty());
        assert_eq!(userdata_at_clone(&cc), userdata(&cc));
    }

    #[test]
    fn metadata_has_netplan_by_mac() {
        let nics = [
            NicConfig {
                mac: "00:50:56:aa:bb:01".into(),
                dhcp4: true,
                ..Default::default()
            },
            NicConfig {
                mac: "00:50:56:aa:bb:02".into(),
                addresses: vec!["10.0.0.5/24".into()],
                gateway4: Some("10.0.0.1".into()),
                nameservers: vec!["10.0.0.2".into()],
                ..Default::default()
            },
        ];
        let doc: Value = serde_json::from_str(&metadata("m1", "m1", Some("vsphere://4211-bios"), &nics)).unwrap();
        assert_eq!(doc["instance-id"], "m1");
        assert_eq!(doc["local-hostname"], "m1");
        assert_eq!(doc["provider_id"], "vsphere://4211-bios");
        assert_eq!(doc["wait-on-network"], json!({"ipv4": true, "ipv6": false}));
        let eth = &doc["network"]["ethernets"];
        assert_eq!(doc["network"]["version"], 2);
        assert_eq!(eth["id0"]["match"]["macaddress"], "00:50:56:aa:bb:01");
        assert_eq!(eth["id0"]["dhcp4"], true);
        assert_eq!(eth["id1"]["set-name"], "eth1");
        assert_eq!(eth["id1"]["addresses"], json!(["10.0.0.5/24"]));
        assert_eq!(eth["id1"]["gateway4"], "10.0.0.1");
        assert_eq!(eth["id1"]["nameservers"]["addresses"], json!(["10.0.0.2"]));
        assert!(eth["id0"].get("nameservers").is_none());
    }
}
