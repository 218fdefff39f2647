//! Spec 2.3.0 documents against upstream CABPK itself: each case renders the same input with
//! Capstan and with CABPK's own Ignition renderer (`clc.Render` from the sigs.k8s.io/cluster-api
//! module, behind `hack/peers/cluster-api/cabpk-ignition`, built by the test bed as
//! `CAPSTAN_CABPK_IGNITION`) and compares the JSON documents value for value (CABPK's keys come
//! in Go struct order, Capstan's sorted; nothing else may differ).

use std::io::Write;
use std::process::{Command, Stdio};

use capstan_kubeadm::api::{Encoding, File, Ntp, User};
use capstan_kubeadm::render::ignition;
use capstan_kubeadm::render::{CloudInitInput, DocumentKind};
use serde_json::{Value, json};

mod support;

/// CABPK's rendering of `input`, as its controller calls it.
fn cabpk(kind: DocumentKind, input: &CloudInitInput, additional_config: &str) -> Value {
    let oracle = std::env::var("CAPSTAN_CABPK_IGNITION")
        .expect("CAPSTAN_CABPK_IGNITION is unset: run the tests through hack/test.sh (hack/testenv.sh builds it)");
    let verb = if kind == DocumentKind::InitControlPlane {
        "init"
    } else {
        "join"
    };
    let verbosity = input.verbosity.map(|v| format!("--v {v}")).unwrap_or_default();
    let mut write_files: Vec<Value> = Vec::new();
    if kind != DocumentKind::JoinWorker {
        // As CABPK's Certificates.AsFiles gives them.
        for c in &input.certificates {
            write_files.push(
                json!({"path": c.path, "owner": "root:root", "permissions": c.permissions, "content": c.content}),
            );
        }
    }
    write_files.extend(input.files.iter().map(|f| serde_json::to_value(f).unwrap()));
    let kubeadm_config = match kind {
        DocumentKind::InitControlPlane => format!("{}\n---\n{}", input.cluster_configuration, input.init_configuration),
        _ => input.join_configuration.clone(),
    };
    let request = json!({
        "preKubeadmCommands": input.pre_kubeadm_commands,
        "postKubeadmCommands": input.post_kubeadm_commands,
        "writeFiles": write_files,
        "users": input.users,
        "ntp": input.ntp,
        "kubeadmCommand": format!("kubeadm {verb} --config /etc/kubeadm.yml {verbosity}"),
        "kubeadmConfig": kubeadm_config,
        "additionalConfig": additional_config,
    });
    let mut child = Command::new(&oracle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{oracle}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "CABPK refused the input: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn capstan(kind: DocumentKind, input: &CloudInitInput, additional_config: &str) -> Value {
    let out = ignition::render(kind, input, "2.3.0", additional_config).unwrap();
    serde_json::from_str(&out).unwrap()
}

fn same_as_cabpk(kind: DocumentKind, input: &CloudInitInput, additional_config: &str) {
    let ours = capstan(kind, input, additional_config);
    let theirs = cabpk(kind, input, additional_config);
    assert_eq!(
        ours,
        theirs,
        "\nCapstan: {}\nCABPK:   {}",
        serde_json::to_string_pretty(&ours).unwrap(),
        serde_json::to_string_pretty(&theirs).unwrap()
    );
}

fn base() -> CloudInitInput {
    let mut i = support::input(
        "v1beta4",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n",
    );
    i.cluster_configuration.push_str("kubernetesVersion: v1.34.4\n");
    i
}

fn file(path: &str, permissions: &str, owner: &str, encoding: Option<Encoding>, content: &str) -> File {
    File {
        path: path.into(),
        permissions: permissions.into(),
        owner: owner.into(),
        encoding,
        content: content.into(),
        ..Default::default()
    }
}

#[test]
fn init_with_commands_and_verbosity_is_cabpks_document() {
    let mut i = base();
    i.pre_kubeadm_commands = vec!["echo pre".into(), "sysctl -w net.ipv4.ip_forward=1".into()];
    i.post_kubeadm_commands = vec!["echo post".into()];
    i.verbosity = Some(5);
    same_as_cabpk(DocumentKind::InitControlPlane, &i, "");
}

#[test]
fn control_plane_and_worker_joins_are_cabpks_documents() {
    same_as_cabpk(DocumentKind::JoinControlPlane, &base(), "");
    same_as_cabpk(DocumentKind::JoinWorker, &base(), "");
}

#[test]
fn files_owners_and_base64_are_cabpks() {
    let mut i = base();
    i.files = vec![
        file("/etc/a.conf", "0644", "root:root", None, "line 1\n\nline 3\n\n\n"),
        file("/etc/b.bin", "0600", "core", Some(Encoding::Base64), "AAEC/w=="),
        file("/etc/c", "0750", ":wheel", None, "no newline; & < > % é"),
        file("/etc/empty", "0400", "", None, ""),
    ];
    same_as_cabpk(DocumentKind::JoinWorker, &i, "");
}

#[test]
fn users_sudo_passwords_and_ntp_are_cabpks() {
    let mut i = base();
    i.users = vec![
        User {
            name: "ops".into(),
            gecos: "Operator".into(),
            groups: "wheel, docker,adm".into(),
            home_dir: "/home/ops".into(),
            shell: "/bin/bash".into(),
            passwd: "$6$salt$hash".into(),
            primary_group: "ops".into(),
            lock_password: Some(false),
            sudo: "ALL=(ALL) NOPASSWD:ALL".into(),
            ssh_authorized_keys: Some(vec!["ssh-ed25519 AAAA ops".into()]),
            ..Default::default()
        },
        User {
            name: "dev".into(),
            lock_password: Some(false),
            ..Default::default()
        },
    ];
    i.ntp = Ntp {
        enabled: Some(true),
        servers: Some(vec!["0.pool.example".into(), "1.pool.example".into()]),
    };
    same_as_cabpk(DocumentKind::InitControlPlane, &i, "");
    // Enabled without servers: ntpd is enabled, no ntp.conf.
    i.ntp.servers = None;
    same_as_cabpk(DocumentKind::JoinWorker, &i, "");
}

#[test]
fn additional_clc_is_appended_as_cabpk_appends_it() {
    let extra = "storage:\n  files:\n  - path: /etc/kubeadm.sh\n    filesystem: root\n    mode: 0700\n    contents:\n      inline: |\n        echo mine\n  - path: /etc/motd\n    filesystem: root\n    contents:\n      inline: hello\n  directories:\n  - path: /opt/data\n    filesystem: root\n    mode: 0750\n  - path: /opt/default\n    filesystem: root\nsystemd:\n  units:\n  - name: kubeadm.service\n    dropins:\n    - name: 10-env.conf\n      contents: |\n        [Service]\n        Environment=A=1\n  - name: docker.service\n    mask: true\n  - name: extra.service\n    enable: true\n    contents: |\n      [Service]\n      ExecStart=/bin/true\npasswd:\n  users:\n  - name: core\n    ssh_authorized_keys: [\"ssh-ed25519 AAAA core\"]\n    groups: [sudo]\n";
    same_as_cabpk(DocumentKind::JoinWorker, &base(), extra);
}

/// Where CABPK's output is wrong, Capstan's is not: `append` is kept, gzip contents are decoded
/// and a file without permissions gets 0644 (CABPK refuses it).
#[test]
fn where_cabpk_loses_input_capstan_does_not() {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"zipped\n").unwrap();
    let gzb64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, gz.finish().unwrap());
    let mut i = base();
    i.files = vec![
        File {
            append: Some(true),
            ..file("/etc/hosts", "0644", "", None, "10.0.0.1 api\n")
        },
        file("/etc/z", "0644", "", Some(Encoding::GzipBase64), &gzb64),
        file("/etc/nomode", "", "", None, "x\n"),
    ];
    let doc = capstan(DocumentKind::JoinWorker, &i, "");
    let files = doc["storage"]["files"].as_array().unwrap();
    let by_path = |p: &str| files.iter().find(|f| f["path"] == p).unwrap().clone();
    assert_eq!(by_path("/etc/hosts")["append"], json!(true));
    assert_eq!(by_path("/etc/z")["contents"]["source"], "data:,zipped%0A");
    assert_eq!(by_path("/etc/nomode")["mode"], 420);
}
