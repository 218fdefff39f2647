//! Ignition spec **2.3.0**, as upstream CABPK emits it (its CLC template in
//! `bootstrap/kubeadm/pkg/ignition/clc`, transpiled by the Container Linux Config transpiler),
//! for users whose old Flatcar images need exactly that. Every field CABPK writes is written the
//! same way, and `additionalConfig` (CLC YAML) is appended the 2.x way (lists concatenated, so an
//! override is a second entry with the same path or name): a test compares the JSON with
//! CABPK's own renderer built from its module.
//!
//! Where CABPK's output would be wrong, it is not copied: a file with `append: true` gets
//! `append: true` (CABPK drops the flag and overwrites), `gzip`/`gzip+base64` contents are
//! decoded (CABPK writes the encoded text), and a file without `permissions` gets 0644 (CABPK
//! fails on it).
//!
//! The CLC template writes text into YAML literal blocks, whose "clip" chomping leaves exactly
//! one final newline on non-empty text; [`block`] reproduces that. The transpiler's `data:`
//! URLs escape everything but RFC 2396's unreserved characters ([`source`]).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use serde_json::{Value, json};

use super::super::cloudinit::{CloudInitInput, SENTINEL_FILE};
use super::super::{DocumentKind, RenderError};
use super::{additional, dataurl, mode};

pub const VERSION: &str = "2.3.0";

/// RFC 2396 unreserved: alphanumerics and `-_.!~*'()` stay literal.
const UNRESERVED_2396: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

const KUBEADM_UNIT: &str = "[Unit]
Description=kubeadm
# Run only once. After successful run, this file is moved to /tmp/.
ConditionPathExists=/etc/kubeadm.yml
After=network.target
[Service]
# To not restart the unit when it exits, as it is expected.
Type=oneshot
ExecStart=/bin/bash /etc/kubeadm.sh
[Install]
WantedBy=multi-user.target
";

const SSHD_CONFIG: &str = "# Use most defaults for sshd configuration.
Subsystem sftp internal-sftp
ClientAliveInterval 180
UseDNS no
UsePAM yes
PrintLastLog no # handled by PAM
PrintMotd no # handled by PAM

Match User ";

const NTP_TAIL: &str = "
# Warning: Using default NTP settings will leave your NTP
# server accessible to all hosts on the Internet.

# If you want to deny all machines (including your own)
# from accessing the NTP server, uncomment:
#restrict default ignore

# Default configuration:
# - Allow only time queries, at a limited rate, sending KoD when in excess.
# - Allow all local queries (IPv4, IPv6)
restrict default nomodify nopeer noquery notrap limited kod
restrict 127.0.0.1
restrict [::1]
";

/// A 2.x `contents` object for these bytes, as the transpiler writes it.
pub(super) fn source(bytes: &[u8]) -> Value {
    json!({"source": format!("data:,{}", percent_encode(bytes, UNRESERVED_2396)), "verification": {}})
}

/// Text as a YAML literal block with clip chomping returns it: one final newline, or none when
/// the text is empty.
fn block(text: &str) -> String {
    let t = text.trim_end_matches('\n');
    if t.is_empty() { String::new() } else { format!("{t}\n") }
}

/// A file entry: `owner` is `user[:group]`, each part trimmed, empty parts left out.
fn file(path: &str, permissions: &str, owner: &str, bytes: &[u8]) -> Result<Value, RenderError> {
    let mut e =
        json!({"filesystem": "root", "path": path, "contents": source(bytes), "mode": mode(path, permissions)?});
    let mut parts = owner.splitn(2, ':').map(str::trim);
    if let Some(u) = parts.next().filter(|u| !u.is_empty()) {
        e["user"] = json!({"name": u});
    }
    if let Some(g) = parts.next().filter(|g| !g.is_empty()) {
        e["group"] = json!({"name": g});
    }
    Ok(e)
}

fn user_file(f: &crate::api::File) -> Result<Value, RenderError> {
    use crate::api::Encoding;
    let bytes = match f.encoding {
        // Decoded by the transpiler (`!!binary`), so the bytes are exact.
        Some(Encoding::Base64) | Some(Encoding::Gzip) | Some(Encoding::GzipBase64) => {
            dataurl::decode(&f.content, f.encoding).map_err(|problem| RenderError::InvalidFile {
                path: f.path.clone(),
                problem,
            })?
        }
        None => block(&f.content).into_bytes(),
    };
    let mut e = file(&f.path, &f.permissions, &f.owner, &bytes)?;
    if f.append == Some(true) {
        e["append"] = json!(true);
    }
    Ok(e)
}

/// `/etc/kubeadm.sh` as CABPK's template lays it out (blank lines included).
fn script(kind: DocumentKind, input: &CloudInitInput) -> String {
    let verb = kind.kubeadm_verb();
    let verbosity = input.verbosity.map(|v| format!("--v {v}")).unwrap_or_default();
    let mut s = String::from("#!/bin/bash\nset -e\n");
    for c in &input.pre_kubeadm_commands {
        s.push_str(&format!("\n{c}"));
    }
    s.push_str(&format!(
        "\n\nkubeadm {verb} --config /etc/kubeadm.yml {verbosity}\nmkdir -p /run/cluster-api && echo success > {SENTINEL_FILE}\nmv /etc/kubeadm.yml /tmp/\n"
    ));
    for c in &input.post_kubeadm_commands {
        s.push_str(&format!("\n{c}"));
    }
    block(&s)
}

fn kubeadm_yaml(kind: DocumentKind, input: &CloudInitInput) -> String {
    let config = match kind {
        DocumentKind::InitControlPlane => {
            format!("{}\n---\n{}", input.cluster_configuration, input.init_configuration)
        }
        _ => input.join_configuration.clone(),
    };
    block(&format!("---\n{config}"))
}

fn users(input: &CloudInitInput) -> Vec<Value> {
    input
        .users
        .iter()
        .map(|u| {
            let mut e = json!({"name": u.name});
            for (k, v) in [
                ("gecos", &u.gecos),
                ("homeDir", &u.home_dir),
                ("shell", &u.shell),
                ("passwordHash", &u.passwd),
                ("primaryGroup", &u.primary_group),
            ] {
                if !v.is_empty() {
                    e[k] = json!(v);
                }
            }
            // The template splits on ", " exactly.
            if !u.groups.is_empty() {
                e["groups"] = json!(u.groups.split(", ").collect::<Vec<_>>());
            }
            if let Some(keys) = u.ssh_authorized_keys.as_ref().filter(|k| !k.is_empty()) {
                e["sshAuthorizedKeys"] = json!(keys);
            }
            e
        })
        .collect()
}

fn files(kind: DocumentKind, input: &CloudInitInput) -> Result<Vec<Value>, RenderError> {
    let mut out = Vec::new();
    for u in input.users.iter().filter(|u| !u.sudo.is_empty()) {
        let text = format!("{} {}\n", u.name, u.sudo);
        out.push(file(
            &format!("/etc/sudoers.d/{}", u.name),
            "0600",
            "",
            text.as_bytes(),
        )?);
    }
    let unlocked: Vec<&str> = input
        .users
        .iter()
        .filter(|u| u.lock_password == Some(false))
        .map(|u| u.name.as_str())
        .collect();
    if !unlocked.is_empty() {
        let text = format!("{SSHD_CONFIG}{}\n  PasswordAuthentication yes\n", unlocked.join(","));
        out.push(file("/etc/ssh/sshd_config", "0600", "", text.as_bytes())?);
    }
    if kind != DocumentKind::JoinWorker {
        for c in &input.certificates {
            out.push(file(&c.path, c.permissions, "root:root", block(&c.content).as_bytes())?);
        }
    }
    for f in &input.files {
        out.push(user_file(f)?);
    }
    out.push(file("/etc/kubeadm.sh", "0700", "", script(kind, input).as_bytes())?);
    out.push(file(
        "/etc/kubeadm.yml",
        "0600",
        "",
        kubeadm_yaml(kind, input).as_bytes(),
    )?);
    let servers = input.ntp.servers.as_deref().unwrap_or_default();
    if input.ntp.enabled == Some(true) && !servers.is_empty() {
        let list: String = servers.iter().map(|s| format!("\nserver {s}")).collect();
        let text = format!("# Common pool{list}\n{NTP_TAIL}");
        out.push(file("/etc/ntp.conf", "0644", "", text.as_bytes())?);
    }
    Ok(out)
}

/// Renders one Ignition 2.3.0 document, CABPK's way.
pub fn render(kind: DocumentKind, input: &CloudInitInput, additional_config: &str) -> Result<String, RenderError> {
    let extra = additional::parse_v2(additional_config).map_err(RenderError::AdditionalConfig)?;
    let mut units = vec![json!({"name": "kubeadm.service", "enabled": true, "contents": KUBEADM_UNIT})];
    if input.ntp.enabled == Some(true) {
        units.push(json!({"name": "ntpd.service", "enabled": true}));
    }
    let mut doc = json!({
        "ignition": {"config": {}, "security": {"tls": {}}, "timeouts": {}, "version": VERSION},
        "networkd": {},
        "passwd": {},
        "storage": {"files": files(kind, input)?},
        "systemd": {"units": units},
    });
    let users = users(input);
    if !users.is_empty() {
        doc["passwd"]["users"] = json!(users);
    }
    append(&mut doc, extra);
    Ok(serde_json::to_string(&doc).expect("a JSON value serialises"))
}

/// Ignition 2.x `Append`: lists are concatenated, objects merged key by key, scalars replaced.
fn append(parent: &mut Value, child: Value) {
    match (parent, child) {
        (Value::Object(p), Value::Object(c)) => {
            for (k, v) in c {
                match p.get_mut(&k) {
                    Some(existing) => append(existing, v),
                    None => {
                        p.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(p), Value::Array(c)) => p.extend(c),
        (p, c) => *p = c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_blocks_keep_one_final_newline() {
        assert_eq!(block("x\n\n\n"), "x\n");
        assert_eq!(block("no-newline"), "no-newline\n");
        assert_eq!(block(""), "");
        assert_eq!(block("a\n\nb"), "a\n\nb\n");
    }

    #[test]
    fn data_urls_escape_all_but_rfc2396_unreserved() {
        assert_eq!(source(b"foo\n")["source"], "data:,foo%0A");
        assert_eq!(source(b"#!/a(b)*~'")["source"], "data:,%23!%2Fa(b)*~'");
    }

    #[test]
    fn append_concatenates_lists_and_child_scalars_win() {
        let mut p = json!({"storage": {"files": [{"path": "/a"}]}, "x": 1});
        append(&mut p, json!({"storage": {"files": [{"path": "/a"}]}, "x": 2}));
        assert_eq!(
            p,
            json!({"storage": {"files": [{"path": "/a"}, {"path": "/a"}]}, "x": 2})
        );
    }
}
