//! Running planned shell steps on the guest: what cloud-init's runcmd and a systemd unit's
//! script do with the commands the planner recognises.

use std::collections::BTreeMap;

use super::{BootContext, Guests};
use crate::cloudinit::{self, PlannedStep, RunIf, Step};
use crate::ignition::systemd::envsubst;
use crate::kubeadm::{self, KubeadmError};

/// How a failing command ends the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shell {
    /// The simulator's cloud-init: any failure fails the boot.
    CloudInit,
    /// bash: only with `set -e`, and never for a command that is not the last of an `&&` list.
    Bash,
}

impl Guests {
    /// Runs `steps` in order; returns the Node a kubeadm step registered. `env` is the process
    /// environment (`envsubst` reads it).
    pub(super) async fn run_steps(
        &self,
        ctx: &BootContext<'_>,
        steps: &[PlannedStep],
        env: &BTreeMap<String, String>,
        label: &str,
        shell: Shell,
    ) -> Result<Option<String>, String> {
        let mut node = None;
        let mut errexit = shell == Shell::CloudInit;
        let mut status: Result<(), String> = Ok(());
        for (i, planned) in steps.iter().enumerate() {
            if planned.run_if == RunIf::PreviousSucceeded && status.is_err() {
                continue;
            }
            if let Step::Recorded(cmd) = &planned.step
                && let Some(on) = set_errexit(cmd)
            {
                errexit = on;
            }
            status = self.step(ctx, &planned.step, env, label, &mut node).await;
            let in_and_list = steps.get(i + 1).is_some_and(|n| n.run_if == RunIf::PreviousSucceeded);
            if let Err(e) = &status {
                if errexit && (shell == Shell::CloudInit || !in_and_list) {
                    return Err(e.clone());
                }
                self.note(&ctx.vm.id, format!("{label}: command failed, script continues: {e}"));
            }
        }
        status.map(|()| node)
    }

    async fn step(
        &self,
        ctx: &BootContext<'_>,
        step: &Step,
        env: &BTreeMap<String, String>,
        label: &str,
        node: &mut Option<String>,
    ) -> Result<(), String> {
        let id = &ctx.vm.id;
        let file = |e: cloudinit::CloudInitError| format!("{label}: {e}");
        match step {
            Step::KubeadmInit { config } | Step::KubeadmJoin { config } => {
                let init = matches!(step, Step::KubeadmInit { .. });
                let verb = if init { "kubeadm init" } else { "kubeadm join" };
                self.note(id, format!("{label}: {verb} --config {config}"));
                let result = if init {
                    kubeadm::init(ctx, config).await
                } else {
                    kubeadm::join(ctx, config).await
                };
                let cluster = result.map_err(|e: KubeadmError| format!("{verb}: {e}"))?;
                self.0.clusters.add_member(&cluster.endpoint, id);
                *node = cluster.nodes().into_iter().find(|n| n.vm_id == *id).map(|n| n.name);
            }
            Step::WriteText { path, text, append } => {
                // echo adds the newline.
                cloudinit::write_bytes(ctx.root, path, format!("{text}\n").as_bytes(), *append).map_err(file)?;
                self.note(id, format!("{label}: echo > {path}"));
            }
            Step::MakeDirs { paths } => {
                for p in paths {
                    let host = cloudinit::guest_path(ctx.root, p).map_err(file)?;
                    std::fs::create_dir_all(host).map_err(|e| format!("{label}: mkdir -p {p}: {e}"))?;
                }
                self.note(id, format!("{label}: mkdir -p {}", paths.join(" ")));
            }
            Step::Move { from, to } => {
                let src = cloudinit::guest_path(ctx.root, from).map_err(file)?;
                let mut dst = cloudinit::guest_path(ctx.root, to).map_err(file)?;
                if dst.is_dir() {
                    dst.push(src.file_name().unwrap_or_default());
                } else if to.ends_with('/') {
                    return Err(format!("{label}: mv {from} {to}: Not a directory"));
                }
                std::fs::rename(&src, &dst).map_err(|e| format!("{label}: mv {from} {to}: {e}"))?;
                self.note(id, format!("{label}: mv {from} {to}"));
            }
            Step::Envsubst { input, output } => {
                let src = cloudinit::guest_path(ctx.root, input).map_err(file)?;
                let text = std::fs::read_to_string(&src).map_err(|e| format!("{label}: {input}: {e}"))?;
                cloudinit::write_bytes(ctx.root, output, envsubst(&text, env).as_bytes(), false).map_err(file)?;
                self.note(id, format!("{label}: envsubst < {input} > {output}"));
            }
            Step::Recorded(cmd) => self.note(id, format!("{label} (not executed): {cmd}")),
        }
        Ok(())
    }
}

/// `set -e`/`set +e` (also combined, `set -eu`, `set -o errexit`).
fn set_errexit(cmd: &str) -> Option<bool> {
    let mut words = cmd.split_whitespace();
    if words.next() != Some("set") {
        return None;
    }
    let words: Vec<&str> = words.collect();
    let mut result = None;
    for (i, w) in words.iter().enumerate() {
        if let Some(flags) = w.strip_prefix('-').filter(|f| !f.starts_with('-')) {
            if flags.contains('e') {
                result = Some(true);
            }
            if flags == "o" && words.get(i + 1) == Some(&"errexit") {
                result = Some(true);
            }
        } else if w.strip_prefix('+').is_some_and(|flags| flags.contains('e')) {
            result = Some(false);
        }
    }
    result
}
