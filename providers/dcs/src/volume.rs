//! The bootstrap volume a DCS VM boots with. FusionCompute has no user-data field, so the
//! bootstrap data goes on an ISO attached before the first power-on, in the layout the image's
//! first-boot agent reads:
//! - cloud-config: a NoCloud seed (label `cidata`) whose meta-data carries the instance id,
//!   hostname and providerID, and a network-config for a static address;
//! - Ignition: a config at `spec.ignition.configPath` on a volume labelled
//!   `spec.ignition.volumeLabel` (MicroOS: `ignition` + `ignition/config.ign`). Ignition has no
//!   meta-data, so the provider wraps the bootstrap config in a parent config that writes what
//!   only it knows — `/etc/hostname`, `/etc/capstan/instance.env` (for templates to substitute,
//!   see the README) and a NetworkManager profile for a static address — and merges the
//!   bootstrap config over it, so a file the user's config also writes is theirs.

use capstan_lifecycle::ignition::{self, IgnitionError, ProviderFile};
use capstan_lifecycle::provider::{BootstrapData, BootstrapFormat};

use crate::api::IgnitionVolumeSpec;
use crate::client::StaticIpv4;
use crate::iso::{BootstrapVolume, IGNITION_LABEL, IGNITION_PATH, IgnitionVolume, NoCloudSeed, static_network_config};

/// The file Ignition-booted nodes read their identity from.
pub use capstan_lifecycle::ignition::INSTANCE_ENV;
const NM_PROFILE: &str = "/etc/NetworkManager/system-connections/capstan-nic0.nmconnection";

/// What the volume says about the VM.
pub struct VolumeInput<'a> {
    /// The InfraMachine's UID: cloud-init's instance-id.
    pub instance_id: &'a str,
    pub hostname: &'a str,
    pub provider_id: &'a str,
    /// The first NIC's static address; DHCP when `None`.
    pub address: Option<&'a StaticIpv4>,
    pub ignition: Option<&'a IgnitionVolumeSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("cannot build the bootstrap ISO: {0}")]
    Iso(#[from] crate::iso::IsoError),
    #[error("{0}")]
    Ignition(#[from] IgnitionError),
}

/// The ISO image for `bootstrap`.
pub fn bootstrap_iso(input: &VolumeInput<'_>, bootstrap: &BootstrapData) -> Result<Vec<u8>, VolumeError> {
    match bootstrap.format {
        BootstrapFormat::CloudConfig => Ok(NoCloudSeed {
            instance_id: input.instance_id.to_string(),
            hostname: input.hostname.to_string(),
            user_data: bootstrap.value.clone(),
            network_config: input
                .address
                .map(|a| static_network_config(a.address, a.prefix_len, a.gateway, &a.dns)),
            provider_id: Some(input.provider_id.to_string()),
        }
        .to_iso()?),
        BootstrapFormat::Ignition => {
            let spec = input.ignition.cloned().unwrap_or_default();
            let volume = IgnitionVolume {
                label: spec.volume_label.unwrap_or_else(|| IGNITION_LABEL.into()),
                path: spec.config_path.unwrap_or_else(|| IGNITION_PATH.into()),
                config: ignition::with_provider_files(&bootstrap.value, &provider_files(input))?,
            };
            Ok(volume.to_iso()?)
        }
    }
}

/// Refuses, before any VM exists, bootstrap data this provider could not deliver.
pub fn check_deliverable(bootstrap: &BootstrapData) -> Result<(), IgnitionError> {
    if bootstrap.format == BootstrapFormat::Ignition {
        ignition::with_provider_files(&bootstrap.value, &[])?;
    }
    Ok(())
}

fn provider_files(input: &VolumeInput<'_>) -> Vec<ProviderFile> {
    let mut files = ignition::identity_files(input.instance_id, input.hostname, input.provider_id);
    if let Some(a) = input.address {
        files.push(ProviderFile {
            path: NM_PROFILE.into(),
            // NetworkManager ignores keyfiles other users can read.
            mode: 0o600,
            contents: network_manager_profile(a).into_bytes(),
        });
    }
    files
}

/// A NetworkManager keyfile for the static address. No `interface-name`: the profile applies to
/// whichever ethernet device comes up first, as the NoCloud network-config matches `e*`.
fn network_manager_profile(a: &StaticIpv4) -> String {
    let mut out = format!(
        "[connection]\nid=capstan-nic0\ntype=ethernet\nautoconnect=true\n\n[ipv4]\nmethod=manual\naddress1={}/{}",
        a.address, a.prefix_len
    );
    if let Some(gw) = a.gateway {
        out.push_str(&format!(",{gw}"));
    }
    out.push('\n');
    if !a.dns.is_empty() {
        let dns: Vec<String> = a.dns.iter().map(|d| format!("{d};")).collect();
        out.push_str(&format!("dns={}\n", dns.join("")));
    }
    out.push_str("\n[ipv6]\nmethod=disabled\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignition_volume_carries_identity_and_the_static_address() {
        let doc = br#"{"ignition":{"version":"3.4.0"}}"#;
        let address = StaticIpv4 {
            address: "10.0.0.11".parse().unwrap(),
            prefix_len: 24,
            gateway: Some("10.0.0.1".parse().unwrap()),
            dns: vec!["10.0.0.2".parse().unwrap()],
        };
        let input = VolumeInput {
            instance_id: "uid-1",
            hostname: "cp-1",
            provider_id: "dcs://4a1f",
            address: Some(&address),
            ignition: None,
        };
        let bootstrap = BootstrapData {
            value: doc.to_vec(),
            format: BootstrapFormat::Ignition,
        };
        let iso = crate::iso::read_iso(&bootstrap_iso(&input, &bootstrap).unwrap()).unwrap();
        assert_eq!(iso.volume_label, "ignition");
        let config: serde_json::Value = serde_json::from_slice(iso.file("ignition/config.ign").unwrap()).unwrap();
        let paths: Vec<&str> = config["storage"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["/etc/hostname", INSTANCE_ENV, NM_PROFILE]);
        assert_eq!(
            network_manager_profile(&address),
            "[connection]\nid=capstan-nic0\ntype=ethernet\nautoconnect=true\n\n[ipv4]\nmethod=manual\naddress1=10.0.0.11/24,10.0.0.1\ndns=10.0.0.2;\n\n[ipv6]\nmethod=disabled\n"
        );
    }

    #[test]
    fn label_and_path_follow_the_template() {
        let spec = IgnitionVolumeSpec {
            volume_label: Some("config-2".into()),
            config_path: Some("config.ign".into()),
        };
        let input = VolumeInput {
            instance_id: "uid-1",
            hostname: "cp-1",
            provider_id: "dcs://4a1f",
            address: None,
            ignition: Some(&spec),
        };
        let bootstrap = BootstrapData {
            value: br#"{"ignition":{"version":"3.0.0"}}"#.to_vec(),
            format: BootstrapFormat::Ignition,
        };
        let iso = crate::iso::read_iso(&bootstrap_iso(&input, &bootstrap).unwrap()).unwrap();
        assert_eq!(iso.volume_label, "config-2");
        assert!(iso.file("config.ign").is_some());
    }

    #[test]
    fn a_2x_config_is_refused_before_any_vm_exists() {
        let bootstrap = BootstrapData {
            value: br#"{"ignition":{"version":"2.3.0"}}"#.to_vec(),
            format: BootstrapFormat::Ignition,
        };
        let e = check_deliverable(&bootstrap).unwrap_err();
        assert!(e.to_string().contains("2.3.0"), "{e}");
    }
}
