//! What `capstan up` leaves on disk for `capstan down` and for the user.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Written by the background process once the management plane, simulator and manager run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    pub pid: u32,
    pub mgmt_kubeconfig: PathBuf,
    /// Whether the management cluster is the local one `up` started (else `--kubeconfig`).
    pub local_plane: bool,
    pub namespace: String,
    pub credentials_secret: String,
    pub sim_url: String,
    pub sim_ca_pem: String,
    pub infrastructure: super::cloud::Infrastructure,
    /// Template variables only the cloud knows (credentials Secret, CA, network ids).
    pub template_vars: std::collections::BTreeMap<String, String>,
    /// CRDs that did not exist before: `down` removes exactly these from a foreign cluster.
    pub created_crds: Vec<String>,
}

/// Written by the foreground `up` once the cluster is applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub cluster_name: String,
    pub namespace: String,
    pub workload_kubeconfig: PathBuf,
}

pub struct StateDir(pub PathBuf);

impl StateDir {
    pub fn default_path() -> PathBuf {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        home.join(".capstan").join("up")
    }

    pub fn ready_path(&self) -> PathBuf {
        self.0.join("ready.json")
    }
    pub fn applied_path(&self) -> PathBuf {
        self.0.join("applied.json")
    }
    pub fn log_path(&self) -> PathBuf {
        self.0.join("daemon.log")
    }
    pub fn mgmt_dir(&self) -> PathBuf {
        self.0.join("management")
    }
    pub fn guests_dir(&self) -> PathBuf {
        self.0.join("guests")
    }
    /// VM name → what its guest is doing, refreshed by the background process.
    pub fn consoles_path(&self) -> PathBuf {
        self.0.join("consoles.json")
    }

    pub fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    pub fn write<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// Whether `pid` is a live process (signal 0 probes without sending anything).
pub fn alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks for existence and permission.
    pid > 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

pub fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
