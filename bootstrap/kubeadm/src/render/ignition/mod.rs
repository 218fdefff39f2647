//! Ignition documents for `spec.format: ignition`: the same content as the cloud-config path
//! (certificates, user files, users, NTP, the kubeadm config and a run-once `kubeadm.service`)
//! in Ignition spec **3.x** (3.4.0 unless the KubeadmConfig's
//! `bootstrap.capstan.dev/ignition-version` annotation says otherwise). Upstream CABPK emits
//! 2.3.0, which Fedora CoreOS, MicroOS and SLE Micro refuse (reference `ignition.md` §1.6).
//!
//! The JSON is built as `serde_json::Value` rather than with the `ignition-config` crate: that
//! crate serialises `null` for every unset optional field, and a `Value` makes the v3 merge
//! of `additionalConfig` a generic tree walk. Keys come out sorted (serde_json's map without
//! `preserve_order`), so the output is deterministic.
//!
//! NTP: 3.x OSes run chronyd, so servers go to `/etc/chrony.conf` and `chronyd.service` is
//! enabled. `lockPassword: false` writes an sshd drop-in under `/etc/ssh/sshd_config.d/`
//! instead of CABPK's full replacement, which would clobber the image's own sshd_config.

mod additional;
mod dataurl;
mod merge;
mod v2;

use serde_json::{Value, json};

use super::cloudinit::{CloudInitInput, SENTINEL_FILE};
use super::{DocumentKind, RenderError};

/// KubeadmConfig annotation choosing the Ignition spec version.
pub const VERSION_ANNOTATION: &str = "bootstrap.capstan.dev/ignition-version";
pub const DEFAULT_VERSION: &str = "3.4.0";
/// 2.3.0 is CABPK's exact output (module [`v2`]), for old Flatcar images only.
const SUPPORTED: &[&str] = &["2.3.0", "3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0"];

/// The spec version for this annotation value (`None`: the default).
pub fn spec_version(annotation: Option<&str>) -> Result<&'static str, RenderError> {
    match annotation {
        None => Ok(DEFAULT_VERSION),
        Some(v) => SUPPORTED
            .iter()
            .find(|s| **s == v.trim())
            .copied()
            .ok_or_else(|| RenderError::InvalidIgnitionVersion(v.to_string())),
    }
}

const KUBEADM_UNIT: &str = "[Unit]
Description=kubeadm
# Run only once: the script moves the config away after kubeadm succeeds.
ConditionPathExists=/etc/kubeadm.yml
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
# Through bash: /etc may be mounted noexec.
ExecStart=/bin/bash /etc/kubeadm.sh

[Install]
WantedBy=multi-user.target
";

/// Files of one document, unique by path: a later entry replaces an earlier one in place.
#[derive(Default)]
struct Files(Vec<Value>);

impl Files {
    fn put(&mut self, entry: Value) {
        match self.0.iter_mut().find(|e| e["path"] == entry["path"]) {
            Some(e) => *e = entry,
            None => self.0.push(entry),
        }
    }

    /// A generated file, unless the user already wrote one at that path (the user's wins).
    fn generated(&mut self, path: &str, mode: u32, bytes: &[u8], user_paths: &[String]) {
        if !user_paths.iter().any(|p| p == path) {
            self.put(json!({"path": path, "mode": mode, "overwrite": true, "contents": dataurl::contents(bytes)}));
        }
    }
}

/// `permissions` (octal string, empty = 0644) as Ignition's decimal mode.
fn mode(path: &str, permissions: &str) -> Result<u32, RenderError> {
    if permissions.is_empty() {
        return Ok(0o644);
    }
    u32::from_str_radix(permissions.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| RenderError::InvalidFile {
            path: path.into(),
            problem: format!("permissions {permissions:?} are not an octal mode like 0644"),
        })
}

fn user_file(f: &crate::api::File) -> Result<Value, RenderError> {
    let bytes = dataurl::decode(&f.content, f.encoding).map_err(|problem| RenderError::InvalidFile {
        path: f.path.clone(),
        problem,
    })?;
    let mut e = json!({"path": f.path, "mode": mode(&f.path, &f.permissions)?});
    if f.append == Some(true) {
        e["append"] = json!([dataurl::contents(&bytes)]);
    } else {
        e["overwrite"] = json!(true);
        e["contents"] = dataurl::contents(&bytes);
    }
    if let Some((user, group)) = f
        .owner
        .split_once(':')
        .or((!f.owner.is_empty()).then_some((f.owner.as_str(), "")))
    {
        if !user.is_empty() {
            e["user"] = json!({"name": user});
        }
        if !group.is_empty() {
            e["group"] = json!({"name": group});
        }
    }
    Ok(e)
}

/// The script kubeadm.service runs: pre commands, kubeadm, the sentinel, the run-once move,
/// post commands.
fn script(kind: DocumentKind, input: &CloudInitInput) -> String {
    let verb = kind.kubeadm_verb();
    let verbosity = input.verbosity.map(|v| format!(" --v {v}")).unwrap_or_default();
    let mut s = String::from("#!/bin/bash\nset -e\n");
    for c in &input.pre_kubeadm_commands {
        s.push_str(&format!("{c}\n"));
    }
    s.push_str(&format!("kubeadm {verb} --config /etc/kubeadm.yml{verbosity}\n"));
    s.push_str(&format!(
        "mkdir -p /run/cluster-api && echo success > {SENTINEL_FILE}\n"
    ));
    s.push_str("mv /etc/kubeadm.yml /tmp/\n");
    for c in &input.post_kubeadm_commands {
        s.push_str(&format!("{c}\n"));
    }
    s
}

fn kubeadm_yaml(kind: DocumentKind, input: &CloudInitInput) -> String {
    match kind {
        DocumentKind::InitControlPlane => {
            format!("---\n{}---\n{}", input.cluster_configuration, input.init_configuration)
        }
        _ => format!("---\n{}", input.join_configuration),
    }
}

fn users(input: &CloudInitInput) -> Vec<Value> {
    input
        .users
        .iter()
        .map(|u| {
            let mut e = json!({"name": u.name});
            let set = |e: &mut Value, k: &str, v: &str| {
                if !v.is_empty() {
                    e[k] = json!(v);
                }
            };
            set(&mut e, "gecos", &u.gecos);
            set(&mut e, "homeDir", &u.home_dir);
            set(&mut e, "shell", &u.shell);
            set(&mut e, "passwordHash", &u.passwd);
            set(&mut e, "primaryGroup", &u.primary_group);
            let groups: Vec<&str> = u.groups.split(',').map(str::trim).filter(|g| !g.is_empty()).collect();
            if !groups.is_empty() {
                e["groups"] = json!(groups);
            }
            if let Some(keys) = u.ssh_authorized_keys.as_ref().filter(|k| !k.is_empty()) {
                e["sshAuthorizedKeys"] = json!(keys);
            }
            e
        })
        .collect()
}

/// sudoers and sshd drop-in files for the users (CABPK's layout, a drop-in for sshd).
fn user_files(input: &CloudInitInput, files: &mut Files, user_paths: &[String]) {
    for u in input.users.iter().filter(|u| !u.sudo.is_empty()) {
        let text = format!("{} {}\n", u.name, u.sudo);
        files.generated(
            &format!("/etc/sudoers.d/{}", u.name),
            0o600,
            text.as_bytes(),
            user_paths,
        );
    }
    let unlocked: Vec<&str> = input
        .users
        .iter()
        .filter(|u| u.lock_password == Some(false))
        .map(|u| u.name.as_str())
        .collect();
    if !unlocked.is_empty() {
        let text = format!(
            "Match User {}\n  PasswordAuthentication yes\nMatch all\n",
            unlocked.join(",")
        );
        files.generated(
            "/etc/ssh/sshd_config.d/60-capstan-passwords.conf",
            0o600,
            text.as_bytes(),
            user_paths,
        );
    }
}

/// Renders one Ignition document. `additional_config` is the spec's
/// `ignition.containerLinuxConfig.additionalConfig`, merged over the generated config (3.x) or
/// appended to it (2.3.0).
pub fn render(
    kind: DocumentKind,
    input: &CloudInitInput,
    version: &str,
    additional_config: &str,
) -> Result<String, RenderError> {
    // Dropping them silently would boot a node without its disks.
    if input.disk_setup.partitions.as_ref().is_some_and(|p| !p.is_empty())
        || input.disk_setup.filesystems.as_ref().is_some_and(|f| !f.is_empty())
    {
        return Err(RenderError::UnsupportedInIgnition("diskSetup"));
    }
    if !input.mounts.is_empty() {
        return Err(RenderError::UnsupportedInIgnition("mounts"));
    }
    if version == v2::VERSION {
        return v2::render(kind, input, additional_config);
    }
    let extra = additional::parse(additional_config).map_err(RenderError::AdditionalConfig)?;
    let user_paths: Vec<String> = input.files.iter().map(|f| f.path.clone()).collect();
    let mut files = Files::default();
    user_files(input, &mut files, &user_paths);
    if kind != DocumentKind::JoinWorker {
        for c in &input.certificates {
            let m = mode(&c.path, c.permissions)?;
            files.generated(&c.path, m, c.content.as_bytes(), &user_paths);
        }
    }
    for f in &input.files {
        files.put(user_file(f)?);
    }
    files.generated("/etc/kubeadm.sh", 0o700, script(kind, input).as_bytes(), &user_paths);
    files.generated(
        "/etc/kubeadm.yml",
        0o600,
        kubeadm_yaml(kind, input).as_bytes(),
        &user_paths,
    );
    let mut units = vec![json!({"name": "kubeadm.service", "enabled": true, "contents": KUBEADM_UNIT})];
    ntp(input, &mut files, &mut units, &user_paths);
    let mut doc = json!({"ignition": {"version": version}, "storage": {"files": files.0}, "systemd": {"units": units}});
    let users = users(input);
    if !users.is_empty() {
        doc["passwd"] = json!({"users": users});
    }
    merge::merge(&mut doc, extra);
    Ok(serde_json::to_string(&doc).expect("a JSON value serialises"))
}

/// chrony on 3.x OSes: `/etc/chrony.conf` and `chronyd.service` enabled.
fn ntp(input: &CloudInitInput, files: &mut Files, units: &mut Vec<Value>, user_paths: &[String]) {
    let servers = input.ntp.servers.as_deref().unwrap_or_default();
    if input.ntp.enabled != Some(true) || servers.is_empty() {
        return;
    }
    let text: String = servers.iter().map(|s| format!("server {s} iburst\n")).collect();
    let text = format!("# Common pool\n{text}driftfile /var/lib/chrony/drift\nmakestep 1.0 3\nrtcsync\n");
    files.generated("/etc/chrony.conf", 0o644, text.as_bytes(), user_paths);
    units.push(json!({"name": "chronyd.service", "enabled": true}));
}
