//! The boot of an Ignition image: the platform's config source, Ignition's stages, then
//! systemd starting `multi-user.target`.

use std::collections::BTreeMap;
use std::path::Path;

use super::exec::Shell;
use super::{BootContext, Datasource, Guests, VmInfo, guestinfo};
use crate::cloudinit::{guest_path, plan_unit_script, write_bytes};
use crate::ignition::{self, apply, systemd};
use crate::nocloud::Seed;
use crate::os::GuestOs;

/// What the platform provider found (`internal/providers/*`).
struct Offered {
    config: Option<Vec<u8>>,
    /// Why there is no config, for the log.
    why_none: String,
    platform: &'static str,
    metadata: Option<Seed>,
}

fn offered(os: GuestOs, source: Datasource) -> Result<Offered, String> {
    let none = |why: String, platform| Offered {
        config: None,
        why_none: why,
        platform,
        metadata: None,
    };
    Ok(match source {
        Datasource::None => none("no config source attached".into(), "metal"),
        Datasource::Cdrom(_) if !os.reads_ignition_iso() => {
            none(format!("{os} has no attached-ISO config source"), "qemu")
        }
        Datasource::Cdrom(iso) => match capstan_iso::read_iso(&iso) {
            // ignition-setup-user.sh mounts /dev/disk/by-label/ignition: lower case only.
            Ok(c) if c.volume_label == capstan_iso::IGNITION_LABEL => match c.file(capstan_iso::IGNITION_PATH) {
                Some(data) => Offered {
                    config: Some(data.to_vec()),
                    ..none(String::new(), "qemu")
                },
                None => none(
                    format!("the ignition volume has no {}", capstan_iso::IGNITION_PATH),
                    "qemu",
                ),
            },
            Ok(c) => none(
                format!(
                    "no volume labelled \"ignition\" (the CD-ROM is labelled {:?})",
                    c.volume_label
                ),
                "qemu",
            ),
            Err(e) => none(format!("the CD-ROM is not readable: {e}"), "qemu"),
        },
        // The openstack provider hands user_data over as is: no gunzip.
        Datasource::Metadata(seed) => Offered {
            config: Some(seed.user_data.clone()),
            why_none: "empty user_data".into(),
            platform: "openstack",
            metadata: Some(seed),
        },
        Datasource::Guestinfo(keys) => match guestinfo::ignition_config(&keys).map_err(|e| format!("ignition: {e}"))? {
            Some(c) => Offered {
                config: Some(c),
                ..none("empty guestinfo.ignition.config.data".into(), "vmware")
            },
            None => none("no guestinfo.ignition.config.data".into(), "vmware"),
        },
    })
}

impl Guests {
    pub(super) async fn run_ignition(&self, vm: &VmInfo, source: Datasource) -> Result<Option<String>, String> {
        let root = self.root(&vm.id);
        std::fs::create_dir_all(&root).map_err(|e| format!("guest disk: {e}"))?;
        vm.os.seed_root(&root).map_err(|e| format!("guest disk: {e}"))?;
        let keys = match &source {
            Datasource::Guestinfo(k) => Some(k.clone()),
            _ => None,
        };
        let offer = offered(vm.os, source)?;
        let rendered = match offer.config.as_deref() {
            Some(bytes) => ignition::render(bytes, vm.os).map_err(|e| format!("ignition: {e}"))?,
            None => None,
        };
        let Some(rendered) = rendered else {
            let why = if offer.config.is_some() {
                "the config is empty"
            } else {
                &offer.why_none
            };
            self.note(
                &vm.id,
                format!("ignition: no config provided ({why}); booting without one, so the node never joins a cluster"),
            );
            return Ok(None);
        };
        for w in &rendered.warnings {
            self.note(&vm.id, format!("ignition: warning: {w}"));
        }
        let written = apply::files_stage(&root, &rendered.config, vm.os).map_err(|e| format!("ignition: {e}"))?;
        self.note(&vm.id, format!("ignition: files stage wrote {} entries", written.len()));
        if let Some(keys) = keys {
            let after = guestinfo::deleted_config(keys);
            self.update(&vm.id, |r| r.guestinfo = Some(after));
        }
        let hostname = hostname(&root, vm, offer.metadata.as_ref());
        let ctx = self.context(&root, vm, &hostname);
        self.multi_user(&ctx, offer.platform, offer.metadata.as_ref()).await
    }

    /// systemd reaching `multi-user.target`: the enabled units it wants, in preset order.
    async fn multi_user(
        &self,
        ctx: &BootContext<'_>,
        platform: &str,
        metadata: Option<&Seed>,
    ) -> Result<Option<String>, String> {
        let mut node = None;
        for name in systemd::enabled_units(ctx.root) {
            let Some(unit) = systemd::load(ctx.root, &name)? else {
                self.note(&ctx.vm.id, format!("systemd: {name} is enabled but not found"));
                continue;
            };
            if !systemd::wanted_by_multi_user(&unit) {
                continue;
            }
            if !systemd::conditions_hold(ctx.root, &unit) {
                self.note(
                    &ctx.vm.id,
                    format!("systemd: condition check resulted in {name} being skipped"),
                );
                continue;
            }
            self.afterburn(ctx, &unit, &name, platform, metadata)?;
            if let Some(n) = self.start_unit(ctx, &unit, &name).await? {
                node = Some(n);
            }
        }
        if node.is_some() && guest_path(ctx.root, "/etc/kubeadm.yml").is_ok_and(|p| p.exists()) {
            self.note(
                &ctx.vm.id,
                "systemd: /etc/kubeadm.yml is still there after kubeadm ran: the next boot would run it again".into(),
            );
        }
        Ok(node)
    }

    /// afterburn (`afterburn.service`) pulled in by a unit: on OpenStack it writes the metadata
    /// attributes for `EnvironmentFile=/run/metadata/afterburn`.
    fn afterburn(
        &self,
        ctx: &BootContext<'_>,
        unit: &systemd::UnitFile,
        name: &str,
        platform: &str,
        metadata: Option<&Seed>,
    ) -> Result<(), String> {
        if !unit.wants_afterburn() {
            return Ok(());
        }
        let fail = |why: String| {
            if unit.requires_afterburn() {
                Err(format!("{name}: dependency failed: afterburn.service: {why}"))
            } else {
                Ok(())
            }
        };
        if !ctx.vm.os.ships_afterburn() {
            return fail(format!("Unit afterburn.service not found on {}", ctx.vm.os));
        }
        let (Some(seed), "openstack") = (metadata, platform) else {
            return fail(format!("afterburn has no metadata attributes for platform {platform}"));
        };
        let attrs = afterburn_attributes(seed, ctx.vm);
        write_bytes(ctx.root, systemd::AFTERBURN_ENV, attrs.as_bytes(), false).map_err(|e| e.to_string())?;
        self.note(&ctx.vm.id, format!("afterburn: wrote {}", systemd::AFTERBURN_ENV));
        Ok(())
    }

    async fn start_unit(
        &self,
        ctx: &BootContext<'_>,
        unit: &systemd::UnitFile,
        name: &str,
    ) -> Result<Option<String>, String> {
        let failed = |e: String| format!("{name}: {e}");
        let env = systemd::environment(ctx.root, unit).map_err(failed)?;
        let Some(exec) = unit.last("Service", "ExecStart") else {
            self.note(&ctx.vm.id, format!("systemd: started {name} (no ExecStart)"));
            return Ok(None);
        };
        let script = match systemd::exec_start(ctx.root, exec).map_err(failed)? {
            systemd::Exec::Script(s) => s,
            systemd::Exec::Recorded(cmd) => {
                self.note(&ctx.vm.id, format!("{name} (not executed): {cmd}"));
                return Ok(None);
            }
        };
        let host = guest_path(ctx.root, &script).map_err(|e| failed(e.to_string()))?;
        let text = std::fs::read_to_string(&host).map_err(|e| failed(format!("{script}: {e}")))?;
        self.note(&ctx.vm.id, format!("systemd: starting {name} ({script})"));
        let steps = plan_unit_script(&text);
        self.run_steps(ctx, &steps, &env, name, Shell::Bash)
            .await
            .map_err(|e| format!("{name} failed: {e}"))
    }
}

/// The node's hostname: what Ignition wrote to /etc/hostname, else the platform's.
fn hostname(root: &Path, vm: &VmInfo, metadata: Option<&Seed>) -> String {
    let written = guest_path(root, "/etc/hostname")
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    written
        .or_else(|| metadata.and_then(|s| s.meta_str("hostname").or(s.meta_str("name")).map(str::to_string)))
        .unwrap_or_else(|| vm.name.clone())
}

/// afterburn's OpenStack attributes (`src/providers/openstack`).
fn afterburn_attributes(seed: &Seed, vm: &VmInfo) -> String {
    let mut attrs = BTreeMap::new();
    let meta = |k: &str| seed.meta_str(k).map(str::to_string);
    if let Some(h) = meta("hostname").or(meta("name")) {
        attrs.insert("AFTERBURN_OPENSTACK_HOSTNAME", h);
    }
    if let Some(id) = meta("uuid").or(meta("instance-id")) {
        attrs.insert("AFTERBURN_OPENSTACK_INSTANCE_ID", id.clone());
        attrs.insert("AFTERBURN_OPENSTACK_INSTANCE_UUID", id);
    }
    if let Some(t) = meta("instance_type").or(meta("flavor")) {
        attrs.insert("AFTERBURN_OPENSTACK_INSTANCE_TYPE", t);
    }
    if let Some(ip) = vm.ips.first() {
        attrs.insert("AFTERBURN_OPENSTACK_IPV4_LOCAL", ip.clone());
    }
    attrs.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}
