//! Bootstrap volumes as ISO 9660 images, and the reader a (simulated) guest uses to find its
//! NoCloud seed.
//!
//! FusionCompute's public API has no user-data field, so bootstrap data reaches the guest on a
//! CD-ROM. For cloud-init that is a NoCloud seed: volume label `cidata` with `user-data`,
//! `meta-data` and `network-config` in the root directory.
//!
//! The writer is our own (the only published Rust ISO writer, `hadris-iso`, is a release
//! candidate): a single root directory, ISO 9660 level 1 names in the primary tree (which
//! cannot hold lowercase or `-`) plus a Joliet tree with the real names, which is what Linux
//! (`isofs`) and blkid read. Output is deterministic: same input, same bytes.

use std::net::Ipv4Addr;

mod read;
mod write;

pub use read::{IsoContents, read_iso};
pub use write::build_iso;

const SECTOR: usize = 2048;
/// Sectors 0..16 are the system area.
const FIRST_DESCRIPTOR: usize = 16;
/// Fixed timestamp (2020-01-01T00:00:00Z) so identical input gives identical images.
const STAMP_YEAR: u16 = 2020;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IsoError {
    #[error(
        "file path {0:?} has an empty, `.`/`..` or too long (max 64) component, or contains ';' or a control character"
    )]
    BadName(String),
    #[error("duplicate path {0:?} (twice, or both a file and a directory)")]
    Duplicate(String),
    #[error("volume label {0:?} must be 1-16 ASCII characters")]
    BadLabel(String),
    #[error("image too large")]
    TooLarge,
    #[error("not an ISO 9660 image: {0}")]
    Malformed(&'static str),
}

/// One file of a volume; `name` is its path (`user-data`, `ignition/config.ign`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoFile {
    pub name: String,
    pub data: Vec<u8>,
}

impl IsoFile {
    pub fn new(name: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        IsoFile {
            name: name.into(),
            data: data.into(),
        }
    }
}

/// A bootstrap layout (NoCloud, Ignition): a volume label and the files it carries.
pub trait BootstrapVolume {
    fn volume_label(&self) -> &str;
    fn files(&self) -> Vec<IsoFile>;

    fn to_iso(&self) -> Result<Vec<u8>, IsoError> {
        build_iso(self.volume_label(), &self.files())
    }
}

/// A cloud-init NoCloud seed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NoCloudSeed {
    /// cloud-init re-runs per-instance modules when this changes; use the VM's stable identity.
    pub instance_id: String,
    pub hostname: String,
    pub user_data: Vec<u8>,
    /// A network-config (v2) document; `None` writes [`dhcp_network_config`].
    pub network_config: Option<String>,
    /// The Node's providerID, as meta-data key `provider-id`: cloud-init exposes it to jinja
    /// templates as `{{ ds.meta_data.provider_id }}`, which is how a cluster template hands it to
    /// the kubelet (`--provider-id`) when no cloud-controller-manager sets it.
    pub provider_id: Option<String>,
}

/// The user data is bootstrap data (join tokens, private keys): `Debug` shows its size only.
impl std::fmt::Debug for NoCloudSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoCloudSeed")
            .field("instance_id", &self.instance_id)
            .field("hostname", &self.hostname)
            .field("user_data", &format_args!("<redacted, {} bytes>", self.user_data.len()))
            .field("network_config", &self.network_config)
            .field("provider_id", &self.provider_id)
            .finish()
    }
}

pub const NOCLOUD_LABEL: &str = "cidata";

impl NoCloudSeed {
    pub fn meta_data(&self) -> String {
        let mut out = format!(
            "instance-id: {}\nlocal-hostname: {}\n",
            yaml_scalar(&self.instance_id),
            yaml_scalar(&self.hostname)
        );
        if let Some(id) = &self.provider_id {
            out.push_str(&format!("provider-id: {}\n", yaml_scalar(id)));
        }
        out
    }
}

impl BootstrapVolume for NoCloudSeed {
    fn volume_label(&self) -> &str {
        NOCLOUD_LABEL
    }

    fn files(&self) -> Vec<IsoFile> {
        let network = self.network_config.clone().unwrap_or_else(dhcp_network_config);
        vec![
            IsoFile::new("user-data", self.user_data.clone()),
            IsoFile::new("meta-data", self.meta_data()),
            IsoFile::new("network-config", network),
        ]
    }
}

/// The volume openSUSE MicroOS and SLE Micro read an Ignition config from: their
/// `ignition-setup-user` mounts `/dev/disk/by-label/ignition` (lowercase only) and copies
/// `ignition/config.ign` to `/usr/lib/ignition/user.ign`, which Ignition reads before any
/// platform source. Label and path are fields because the layout a given image expects (ACP's
/// DCS images) is configured per machine template; the defaults are MicroOS's.
#[derive(Clone, PartialEq, Eq)]
pub struct IgnitionVolume {
    pub label: String,
    /// Path of the config on the volume.
    pub path: String,
    /// The Ignition JSON document.
    pub config: Vec<u8>,
}

pub const IGNITION_LABEL: &str = "ignition";
pub const IGNITION_PATH: &str = "ignition/config.ign";

impl IgnitionVolume {
    /// MicroOS's layout.
    pub fn new(config: impl Into<Vec<u8>>) -> Self {
        IgnitionVolume {
            label: IGNITION_LABEL.into(),
            path: IGNITION_PATH.into(),
            config: config.into(),
        }
    }
}

/// The config carries the bootstrap secrets: `Debug` shows its size only.
impl std::fmt::Debug for IgnitionVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IgnitionVolume")
            .field("label", &self.label)
            .field("path", &self.path)
            .field("config", &format_args!("<redacted, {} bytes>", self.config.len()))
            .finish()
    }
}

impl BootstrapVolume for IgnitionVolume {
    fn volume_label(&self) -> &str {
        &self.label
    }

    fn files(&self) -> Vec<IsoFile> {
        vec![IsoFile::new(self.path.clone(), self.config.clone())]
    }
}

/// DHCP on every ethernet NIC. Written instead of leaving `network-config` out because an absent
/// file lets the image's own fallback decide, which differs between distributions.
pub fn dhcp_network_config() -> String {
    "version: 2\nethernets:\n  all-en:\n    match:\n      name: \"e*\"\n    dhcp4: true\n".to_string()
}

/// A static address on the first ethernet NIC (network-config v2).
pub fn static_network_config(address: Ipv4Addr, prefix_len: u8, gateway: Option<Ipv4Addr>, dns: &[Ipv4Addr]) -> String {
    let mut s = format!(
        "version: 2\nethernets:\n  primary:\n    match:\n      name: \"e*\"\n    addresses:\n      - {address}/{prefix_len}\n"
    );
    if let Some(gw) = gateway {
        s.push_str(&format!("    routes:\n      - to: default\n        via: {gw}\n"));
    }
    if !dns.is_empty() {
        let list: Vec<String> = dns.iter().map(ToString::to_string).collect();
        s.push_str(&format!("    nameservers:\n      addresses: [{}]\n", list.join(", ")));
    }
    s
}

/// Quotes a YAML scalar when it could be read as something other than a plain string.
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 §1: the user data (join tokens, private keys) never shows in `Debug`.
    #[test]
    fn debug_hides_the_user_data() {
        let seed = NoCloudSeed {
            user_data: b"#cloud-config\nwrite_files: [{content: SECRET-KEY-MATERIAL}]\n".to_vec(),
            ..Default::default()
        };
        let shown = format!("{seed:?}");
        assert!(!shown.contains("SECRET-KEY-MATERIAL"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn round_trip_and_determinism() {
        let seed = NoCloudSeed {
            instance_id: "3f0c-uid".into(),
            hostname: "cp-1".into(),
            user_data: b"#cloud-config\nruncmd: [echo hi]\n".to_vec(),
            network_config: None,
            provider_id: Some("dcs://4a1f".into()),
        };
        let a = seed.to_iso().unwrap();
        assert_eq!(a, seed.to_iso().unwrap());
        assert_eq!(a.len() % SECTOR, 0);
        let c = read_iso(&a).unwrap();
        assert_eq!(c.volume_label, "cidata");
        let mut names: Vec<&str> = c.files.iter().map(|f| f.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["meta-data", "network-config", "user-data"]);
        assert_eq!(c.file("user-data").unwrap(), seed.user_data.as_slice());
        assert_eq!(
            c.file("meta-data").unwrap(),
            b"instance-id: \"3f0c-uid\"\nlocal-hostname: cp-1\nprovider-id: \"dcs://4a1f\"\n"
        );
    }

    #[test]
    fn many_and_large_files() {
        let files: Vec<IsoFile> = (0..80)
            .map(|i| IsoFile::new(format!("some-rather-long-file-name-{i:03}.txt"), vec![i as u8; i * 700]))
            .collect();
        let img = build_iso("TEST", &files).unwrap();
        let c = read_iso(&img).unwrap();
        assert_eq!(c.files.len(), 80);
        for f in &files {
            assert_eq!(c.file(&f.name).unwrap(), f.data.as_slice(), "{}", f.name);
        }
    }

    #[test]
    fn subdirectories_round_trip() {
        let files = vec![
            IsoFile::new("ignition/config.ign", br#"{"ignition":{"version":"3.4.0"}}"#.to_vec()),
            IsoFile::new("combustion/script", b"#!/bin/sh\n".to_vec()),
            IsoFile::new("a/b/c/deep.txt", vec![7u8; 5000]),
            IsoFile::new("top", b"x".to_vec()),
        ];
        let img = build_iso("ignition", &files).unwrap();
        assert_eq!(img, build_iso("ignition", &files).unwrap(), "deterministic");
        let c = read_iso(&img).unwrap();
        assert_eq!(c.volume_label, "ignition");
        assert_eq!(c.files.len(), files.len());
        for f in &files {
            assert_eq!(c.file(&f.name).unwrap(), f.data.as_slice(), "{}", f.name);
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(build_iso("", &[]), Err(IsoError::BadLabel(_))));
        for bad in ["a//b", "/a", "a/../b", "a/./b", "a/"] {
            assert!(
                matches!(build_iso("x", &[IsoFile::new(bad, "")]), Err(IsoError::BadName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            build_iso("x", &[IsoFile::new("a", ""), IsoFile::new("a/b", "")]),
            Err(IsoError::Duplicate(_))
        ));
        assert!(matches!(
            build_iso("x", &[IsoFile::new("a", ""), IsoFile::new("a", "")]),
            Err(IsoError::Duplicate(_))
        ));
        assert!(read_iso(&[0u8; 100]).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(yaml_scalar("cp-1"), "cp-1");
        assert_eq!(yaml_scalar("1234"), "\"1234\"");
        assert_eq!(yaml_scalar("a: b"), "\"a: b\"");
    }
}
