//! The image a simulated VM boots: which first-boot agent it runs and what the image already
//! carries, so that bootstrap data meant for one OS fails on another as it would for real.

use std::path::Path;

/// The first-boot agent an image runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootAgent {
    CloudInit,
    Ignition,
}

/// An OS image profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum GuestOs {
    /// Ubuntu cloud image: cloud-init.
    #[default]
    Ubuntu,
    /// openSUSE MicroOS: SUSE's Ignition build (reads an ISO labelled `ignition`).
    MicroOs,
    /// Flatcar Container Linux: Ignition that also translates spec 2.x.
    Flatcar,
    /// Fedora CoreOS: upstream Ignition.
    FedoraCoreOs,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown guest OS {0:?} (expected ubuntu, microos, flatcar or fcos)")]
pub struct UnknownOs(pub String);

impl std::str::FromStr for GuestOs {
    type Err = UnknownOs;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ubuntu" => Ok(GuestOs::Ubuntu),
            "microos" => Ok(GuestOs::MicroOs),
            "flatcar" => Ok(GuestOs::Flatcar),
            "fcos" => Ok(GuestOs::FedoraCoreOs),
            other => Err(UnknownOs(other.to_string())),
        }
    }
}

impl std::fmt::Display for GuestOs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where Ignition writes `passwd.users[].sshAuthorizedKeys`, relative to the home directory.
pub const UPSTREAM_KEYS: &str = ".ssh/authorized_keys.d/ignition";
/// SUSE builds Ignition with `writeAuthorizedKeysFragment=false`.
pub const SUSE_KEYS: &str = ".ssh/authorized_keys";

impl GuestOs {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestOs::Ubuntu => "ubuntu",
            GuestOs::MicroOs => "microos",
            GuestOs::Flatcar => "flatcar",
            GuestOs::FedoraCoreOs => "fcos",
        }
    }

    /// What the kubelet reports as `nodeInfo.osImage` (the image's PRETTY_NAME), marked as
    /// emulated so nobody mistakes a simulated node for a real one.
    pub fn os_image(self) -> &'static str {
        match self {
            GuestOs::Ubuntu => "Ubuntu 22.04.5 LTS (capstan guest emulation)",
            GuestOs::MicroOs => "openSUSE MicroOS (capstan guest emulation)",
            GuestOs::Flatcar => "Flatcar Container Linux by Kinvolk (capstan guest emulation)",
            GuestOs::FedoraCoreOs => "Fedora CoreOS (capstan guest emulation)",
        }
    }

    pub fn boot_agent(self) -> BootAgent {
        match self {
            GuestOs::Ubuntu => BootAgent::CloudInit,
            _ => BootAgent::Ignition,
        }
    }

    /// The highest 3.x minor the image's Ignition parses (3.0 is always the floor).
    pub fn max_v3_minor(self) -> u32 {
        5
    }

    /// Flatcar translates 2.x configs at runtime; FCOS and MicroOS refuse them.
    pub fn translates_v2(self) -> bool {
        self == GuestOs::Flatcar
    }

    /// `~/`-relative file Ignition writes SSH keys to.
    pub fn ssh_keys_file(self) -> &'static str {
        match self {
            GuestOs::MicroOs => SUSE_KEYS,
            _ => UPSTREAM_KEYS,
        }
    }

    /// Whether the image has afterburn (FCOS and Flatcar do; our MicroOS OpenStack image too).
    pub fn ships_afterburn(self) -> bool {
        !matches!(self, GuestOs::Ubuntu)
    }

    /// Only MicroOS reads a config from an attached volume (`ignition-setup-user.sh`).
    pub fn reads_ignition_iso(self) -> bool {
        self == GuestOs::MicroOs
    }

    /// Files the image ships under `/etc`, which an Ignition file with `overwrite: false` (the
    /// v3 default) collides with.
    pub fn image_files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            GuestOs::Ubuntu => &[],
            GuestOs::MicroOs => &[
                (
                    "/etc/os-release",
                    "NAME=\"openSUSE MicroOS\"\nID=\"opensuse-microos\"\n",
                ),
                ("/etc/ssh/sshd_config", "# openSUSE sshd_config\nUsePAM yes\n"),
                ("/etc/chrony.conf", "pool pool.ntp.org iburst\n"),
                ("/etc/hosts", "127.0.0.1 localhost\n"),
                // The kubelet package's sysconfig file: how RPM distros pass kubelet flags.
                ("/etc/sysconfig/kubelet", "KUBELET_EXTRA_ARGS=\n"),
            ],
            GuestOs::Flatcar => &[
                (
                    "/etc/os-release",
                    "NAME=\"Flatcar Container Linux by Kinvolk\"\nID=flatcar\n",
                ),
                ("/etc/ssh/sshd_config", "UsePAM yes\n"),
                ("/etc/ntp.conf", "server 0.flatcar.pool.ntp.org\n"),
                ("/etc/hosts", "127.0.0.1 localhost\n"),
            ],
            GuestOs::FedoraCoreOs => &[
                (
                    "/etc/os-release",
                    "NAME=\"Fedora Linux\"\nID=fedora\nVARIANT_ID=coreos\n",
                ),
                ("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n"),
                ("/etc/chrony.conf", "pool 2.fedora.pool.ntp.org iburst\n"),
                ("/etc/hosts", "127.0.0.1 localhost\n"),
            ],
        }
    }

    /// Lays the image's files into a fresh VM root.
    pub fn seed_root(self, root: &Path) -> std::io::Result<()> {
        // Every image has these (tmpfs or not); `mv /etc/kubeadm.yml /tmp/` relies on /tmp.
        for dir in ["tmp", "run", "root", "home", "var/lib"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        for (path, text) in self.image_files() {
            let host = root.join(path.trim_start_matches('/'));
            if let Some(parent) = host.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(host, text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for os in [
            GuestOs::Ubuntu,
            GuestOs::MicroOs,
            GuestOs::Flatcar,
            GuestOs::FedoraCoreOs,
        ] {
            assert_eq!(os.as_str().parse::<GuestOs>().unwrap(), os);
        }
        assert!("coreos".parse::<GuestOs>().is_err());
        assert_eq!(GuestOs::default(), GuestOs::Ubuntu);
    }
}
