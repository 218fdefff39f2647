//! cloud-config documents byte-compatible with CABPK's `pkg/cloudinit`: control-plane init,
//! control-plane join and worker join. The layout lives in `templates/kubeadm/*.j2` (minijinja);
//! this module prepares the values and provides the Go-compatible filters.

use std::sync::LazyLock;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Value};
use serde::Serialize;

use super::{RenderError, goformat};
use crate::api::{DiskSetup, File, Ntp, User, is_default};
use crate::pki::NodeFile;

/// Infrastructure providers look for this file to tell bootstrap success (CAPI contract).
pub const SENTINEL_FILE: &str = "/run/cluster-api/bootstrap-success.complete";
const SENTINEL_COMMAND: &str = "echo success > /run/cluster-api/bootstrap-success.complete";

const MAIN: &str = include_str!("../../../../templates/kubeadm/cloud-config.yaml.j2");
const SECTIONS: &str = include_str!("../../../../templates/kubeadm/sections.yaml.j2");

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("static syntax config"),
    );
    // YAML, not HTML: never escape.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("goquote", |s: String| goformat::quote(&s));
    env.add_filter("goindent", |s: String, n: usize| goformat::indent(&s, n));
    // Go prints booleans lowercase; Jinja would print `True`.
    env.add_filter("gobool", |b: bool| if b { "true" } else { "false" });
    env.add_filter("partition_type", |s: String| partition_type(&s).to_string());
    // `x is set`: present and not null, Go's "non-nil pointer".
    env.add_test("set", |v: Value| !v.is_undefined() && !v.is_none());
    env.add_template("cloud-config.yaml.j2", MAIN)
        .expect("cloud-config template parses");
    env.add_template("sections.yaml.j2", SECTIONS)
        .expect("sections template parses");
    env
});

/// cloud-init partition type codes for the names the API accepts; anything else (a GPT GUID)
/// passes through. Upstream's code spells the RAID name `LinuxRaid` while its CRD validation
/// spells it `LinuxRAID`; both are mapped here.
pub fn partition_type(name: &str) -> &str {
    match name {
        "Linux" => "83",
        "LinuxSwap" => "82",
        "LinuxRAID" | "LinuxRaid" => "fd",
        "LVM" => "8e",
        "Fat32" => "0c",
        "NTFS" => "07",
        "LinuxExtended" => "85",
        other => other,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentKind {
    InitControlPlane,
    JoinControlPlane,
    JoinWorker,
}

impl DocumentKind {
    /// The kubeadm subcommand the node runs.
    pub fn kubeadm_verb(self) -> &'static str {
        if self == DocumentKind::InitControlPlane {
            "init"
        } else {
            "join"
        }
    }
}

/// Files may hold secrets (contentFrom), users their passwords and the kubeadm documents the
/// bootstrap token: `Debug` names them and shows sizes only.
impl std::fmt::Debug for CloudInitInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use capstan_runtime::secret::Redacted;
        f.debug_struct("CloudInitInput")
            .field("certificates", &self.certificates)
            .field("files", &self.files.iter().map(|x| &x.path).collect::<Vec<_>>())
            .field("boot_commands", &self.boot_commands.len())
            .field("pre_kubeadm_commands", &self.pre_kubeadm_commands.len())
            .field("post_kubeadm_commands", &self.post_kubeadm_commands.len())
            .field("users", &self.users.iter().map(|u| &u.name).collect::<Vec<_>>())
            .field("ntp", &self.ntp)
            .field("disk_setup", &self.disk_setup)
            .field("mounts", &self.mounts)
            .field("verbosity", &self.verbosity)
            .field("cluster_configuration", &Redacted(self.cluster_configuration.len()))
            .field("init_configuration", &Redacted(self.init_configuration.len()))
            .field("join_configuration", &Redacted(self.join_configuration.len()))
            .finish()
    }
}

/// Everything a cloud-config document is made of, already resolved: files have their content
/// (contentFrom read, templates rendered), users their password.
#[derive(Clone, Default)]
pub struct CloudInitInput {
    /// Certificates as node files (control-plane documents only).
    pub certificates: Vec<NodeFile>,
    pub files: Vec<File>,
    pub boot_commands: Vec<String>,
    pub pre_kubeadm_commands: Vec<String>,
    pub post_kubeadm_commands: Vec<String>,
    pub users: Vec<User>,
    pub ntp: Ntp,
    pub disk_setup: DiskSetup,
    pub mounts: Vec<Vec<String>>,
    pub verbosity: Option<i32>,
    /// kubeadm YAML documents (init: cluster + init; joins: join).
    pub cluster_configuration: String,
    pub init_configuration: String,
    pub join_configuration: String,
}

#[derive(Serialize)]
struct FileView {
    path: String,
    encoding: Option<&'static str>,
    owner: String,
    permissions: String,
    append: Option<bool>,
    content: String,
}

#[derive(Serialize)]
struct Context<'a> {
    kind: &'static str,
    write_files: Vec<FileView>,
    cluster_configuration: &'a str,
    init_configuration: &'a str,
    join_configuration: &'a str,
    boot_commands: &'a [String],
    pre_kubeadm_commands: &'a [String],
    post_kubeadm_commands: &'a [String],
    kubeadm_command: String,
    ntp: Option<&'a Ntp>,
    users: &'a [User],
    disk_setup: Option<&'a DiskSetup>,
    mounts: &'a [Vec<String>],
}

/// Renders one cloud-config document.
pub fn render(kind: DocumentKind, input: &CloudInitInput) -> Result<String, RenderError> {
    let verbosity = input.verbosity.map(|v| format!("--v {v}")).unwrap_or_default();
    // The space before the verbosity stays when it is empty: upstream prints two spaces there.
    let kubeadm_command = match kind {
        DocumentKind::InitControlPlane => {
            format!("'kubeadm init --config /run/kubeadm/kubeadm.yaml {verbosity} && {SENTINEL_COMMAND}'")
        }
        DocumentKind::JoinControlPlane | DocumentKind::JoinWorker => {
            format!("kubeadm join --config /run/kubeadm/kubeadm-join-config.yaml {verbosity} && {SENTINEL_COMMAND}")
        }
    };
    let mut write_files: Vec<FileView> = Vec::new();
    if kind != DocumentKind::JoinWorker {
        write_files.extend(input.certificates.iter().map(|c| FileView {
            path: c.path.clone(),
            encoding: None,
            owner: "root:root".into(),
            permissions: c.permissions.into(),
            append: None,
            content: c.content.clone(),
        }));
    }
    write_files.extend(input.files.iter().map(|f| FileView {
        path: f.path.clone(),
        encoding: f.encoding.map(|e| e.as_str()),
        owner: f.owner.clone(),
        permissions: f.permissions.clone(),
        append: f.append,
        content: f.content.clone(),
    }));
    let ctx = Context {
        kind: match kind {
            DocumentKind::InitControlPlane => "init",
            DocumentKind::JoinControlPlane => "controlplane-join",
            DocumentKind::JoinWorker => "worker",
        },
        write_files,
        cluster_configuration: &input.cluster_configuration,
        init_configuration: &input.init_configuration,
        join_configuration: &input.join_configuration,
        boot_commands: &input.boot_commands,
        pre_kubeadm_commands: &input.pre_kubeadm_commands,
        post_kubeadm_commands: &input.post_kubeadm_commands,
        kubeadm_command,
        ntp: (!is_default(&input.ntp)).then_some(&input.ntp),
        users: &input.users,
        disk_setup: (!is_default(&input.disk_setup)).then_some(&input.disk_setup),
        mounts: &input.mounts,
    };
    Ok(ENV
        .get_template("cloud-config.yaml.j2")?
        .render(minijinja::value::Serde(&ctx))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 §1: neither a private key in a node file nor a token in a kubeadm document may
    /// show up in `Debug` output (a `{:?}` in a log line would publish it).
    #[test]
    fn debug_shows_no_key_or_token() {
        let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
        let token = "abcdef.0123456789abcdef";
        let input = CloudInitInput {
            certificates: vec![NodeFile {
                path: "/etc/kubernetes/pki/ca.key".into(),
                permissions: "0600",
                content: key.into(),
            }],
            join_configuration: format!("discovery:\n  bootstrapToken:\n    token: {token}\n"),
            ..Default::default()
        };
        let shown = format!("{input:?} {:?}", input.certificates[0]);
        assert!(!shown.contains("MIIEvQ") && !shown.contains("PRIVATE KEY"), "{shown}");
        assert!(!shown.contains(token), "{shown}");
        assert!(
            shown.contains("/etc/kubernetes/pki/ca.key"),
            "paths stay visible: {shown}"
        );
    }
}
