//! Live progress of the Machines of a cluster: one line per Machine whenever its phase, address
//! or node changes (plain lines, so logs and CI output read as well as a terminal).

use std::collections::BTreeMap;
use std::time::Instant;

use capstan_api::core::{Machine, MachinePhase};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub phase: String,
    pub address: String,
    pub node: String,
    /// Why a Machine is stuck, when a condition says so.
    pub note: String,
}

/// `consoles`: VM name → console line from the simulator; a failed boot is the first thing a
/// user needs to see.
pub fn row(m: &Machine, consoles: &BTreeMap<String, String>) -> Row {
    let status = m.status.as_ref();
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or(MachinePhase::Pending)
        .to_string();
    let address = status
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.first())
        .map(|a| a.address.clone())
        .unwrap_or_else(|| "-".into());
    let node = status
        .and_then(|s| s.node_ref.as_ref())
        .map(|n| n.name.clone())
        .unwrap_or_else(|| "-".into());
    let note = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "NodeHealthy" && c.status == "False" && c.reason == "NodeProviderIDMissing")
        })
        .map(|c| c.message.clone())
        .or_else(|| {
            consoles
                .get(&m.spec.infrastructure_ref.name)
                .filter(|c| c.starts_with("boot failed"))
                .cloned()
        })
        .unwrap_or_default();
    Row {
        phase,
        address,
        node,
        note,
    }
}

#[derive(Default)]
pub struct Progress {
    last: BTreeMap<String, Row>,
}

impl Progress {
    /// Prints what changed since the last call.
    pub fn show(&mut self, start: Instant, machines: &[Machine], consoles: &BTreeMap<String, String>) {
        for m in machines {
            let name = m.metadata.name.clone().unwrap_or_default();
            let r = row(m, consoles);
            if self.last.get(&name) != Some(&r) {
                let t = start.elapsed().as_secs();
                let note = if r.note.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", r.note)
                };
                println!(
                    "[{:>3}:{:02}] {name:<36} {:<12} {:<16} {}{note}",
                    t / 60,
                    t % 60,
                    r.phase,
                    r.address,
                    r.node
                );
                self.last.insert(name, r);
            }
        }
    }
}
