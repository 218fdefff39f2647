//! Ignition documents byte for byte: each case renders a fixed input and compares the compact
//! output with `tests/ignition/<case>.json` (stored pretty for review; the renderer's keys are
//! sorted, so re-serialising the fixture compactly gives the exact expected bytes). Every
//! document also passes the real `ignition-validate` (`CAPSTAN_IGNITION_VALIDATE`).
//! `CAPSTAN_BLESS=1` rewrites the fixtures.

use capstan_kubeadm::api::{Encoding, File, Ntp, User};
use capstan_kubeadm::render::ignition::{self, spec_version};
use capstan_kubeadm::render::{CloudInitInput, DocumentKind, RenderError};

mod support;

/// The real validator; any output (warnings too) fails the test.
fn validate(json: &str) {
    capstan_e2e::ignition::assert_valid(json.as_bytes());
}

fn check(case: &str, out: &str) {
    validate(out);
    let path = format!("{}/tests/ignition/{case}.json", env!("CARGO_MANIFEST_DIR"));
    let value: serde_json::Value = serde_json::from_str(out).unwrap();
    if std::env::var_os("CAPSTAN_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap() + "\n").unwrap();
    }
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(out, serde_json::to_string(&fixture).unwrap(), "{case}");
}

fn base() -> CloudInitInput {
    support::input("v1beta3", "CA CERT\n", "CA KEY\n")
}

fn render(kind: DocumentKind, input: &CloudInitInput, extra: &str) -> String {
    ignition::render(kind, input, "3.4.0", extra).unwrap()
}

#[test]
fn init_control_plane() {
    let mut i = base();
    i.pre_kubeadm_commands = vec!["echo pre".into()];
    i.post_kubeadm_commands = vec!["echo post".into()];
    i.verbosity = Some(5);
    check("init", &render(DocumentKind::InitControlPlane, &i, ""));
}

#[test]
fn join_control_plane() {
    check(
        "join-control-plane",
        &render(DocumentKind::JoinControlPlane, &base(), ""),
    );
}

#[test]
fn worker_join_has_no_certificates() {
    let out = render(DocumentKind::JoinWorker, &base(), "");
    assert!(!out.contains("/etc/kubernetes/pki/ca.key"));
    check("worker", &out);
}

fn file(path: &str, encoding: Option<Encoding>, content: &str) -> File {
    File {
        path: path.into(),
        encoding,
        content: content.into(),
        ..Default::default()
    }
}

#[test]
fn user_files_in_every_encoding() {
    let mut i = base();
    i.files = vec![
        File {
            owner: "app:wheel".into(),
            permissions: "0755".into(),
            ..file("/opt/plain.sh", None, "#!/bin/sh\necho hi\n")
        },
        file("/opt/b64", Some(Encoding::Base64), "Zm9vCg=="),
        // gzip of "foo\n", base64 ("gzip" content is binary, so the API carries it in YAML as bytes).
        file(
            "/opt/gzb64",
            Some(Encoding::GzipBase64),
            "H4sIAAAAAAAAA0vLz+cCAKhlMn4EAAAA",
        ),
        File {
            append: Some(true),
            ..file("/etc/hosts", None, "10.0.0.1 api\n")
        },
        // A user file at a generated path wins, once.
        file("/etc/kubernetes/pki/ca.crt", None, "MY CA\n"),
    ];
    let out = render(DocumentKind::JoinWorker, &i, "");
    check("files", &out);
    let err = ignition::render(
        DocumentKind::JoinWorker,
        &CloudInitInput {
            files: vec![File {
                permissions: "rwx".into(),
                ..file("/x", None, "")
            }],
            ..base()
        },
        "3.4.0",
        "",
    );
    assert!(matches!(err, Err(RenderError::InvalidFile { .. })), "{err:?}");
}

#[test]
fn users_ntp_and_sudo() {
    let mut i = base();
    i.users = vec![User {
        name: "ops".into(),
        gecos: "Ops".into(),
        groups: "wheel, docker".into(),
        home_dir: "/home/ops".into(),
        shell: "/bin/bash".into(),
        passwd: "$6$salt$hash".into(),
        primary_group: "ops".into(),
        sudo: "ALL=(ALL) NOPASSWD:ALL".into(),
        lock_password: Some(false),
        ssh_authorized_keys: Some(vec!["ssh-ed25519 AAAA ops".into()]),
        ..Default::default()
    }];
    i.ntp = Ntp {
        servers: Some(vec!["0.pool.ntp.org".into(), "ntp.example".into()]),
        enabled: Some(true),
    };
    check("users-ntp", &render(DocumentKind::JoinWorker, &i, ""));
}

#[test]
fn additional_config_json_overrides_file_and_unit() {
    let extra = r#"{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/kubeadm.sh","mode":448,"overwrite":true,"contents":{"source":"data:,echo%20mine%0A"}}]},"systemd":{"units":[{"name":"kubeadm.service","enabled":false},{"name":"extra.service","enabled":true,"contents":"[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"}]}}"#;
    let out = render(DocumentKind::JoinWorker, &base(), extra);
    assert_eq!(
        out.matches("/etc/kubeadm.sh").count(),
        2,
        "one entry (plus the unit's ExecStart)"
    );
    check("additional-json", &out);
}

#[test]
fn additional_config_clc_yaml_overrides_file_and_unit() {
    let extra = "storage:\n  files:\n    - path: /etc/kubeadm.sh\n      filesystem: root\n      mode: 0700\n      contents:\n        inline: |\n          echo mine\n  directories:\n    - path: /opt/data\n      mode: 0750\n  links:\n    - path: /usr/local/bin/k\n      target: /usr/bin/kubectl\nsystemd:\n  units:\n    - name: kubeadm.service\n      dropins:\n        - name: 10-env.conf\n          contents: \"[Service]\\nEnvironment=A=1\\n\"\n    - name: docker.service\n      mask: true\npasswd:\n  users:\n    - name: core\n      ssh_authorized_keys: [\"ssh-ed25519 AAAA core\"]\n";
    check("additional-clc", &render(DocumentKind::JoinWorker, &base(), extra));
    let err = ignition::render(DocumentKind::JoinWorker, &base(), "3.4.0", "networkd:\n  units: []\n").unwrap_err();
    assert!(
        err.to_string().contains("additionalConfig.networkd is not supported"),
        "{err}"
    );
}

#[test]
fn version_annotation() {
    assert_eq!(spec_version(None).unwrap(), "3.4.0");
    for v in ["3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.5.0"] {
        assert_eq!(spec_version(Some(v)).unwrap(), v);
        validate(&ignition::render(DocumentKind::JoinWorker, &base(), v, "").unwrap());
    }
    // CABPK's spec, compared with CABPK itself in ignition_cabpk.rs.
    assert_eq!(spec_version(Some("2.3.0")).unwrap(), "2.3.0");
    let err = spec_version(Some("3.6.0")).unwrap_err();
    assert!(matches!(err, RenderError::InvalidIgnitionVersion(_)));
    assert!(
        err.to_string().contains("bootstrap.capstan.dev/ignition-version"),
        "{err}"
    );
}

/// Ignition has no cloud-init `disk_setup`/`mounts`; dropping them would boot a node without its
/// disks, so the renderer refuses them with a reason the user can act on.
#[test]
fn disk_setup_and_mounts_are_refused() {
    let mut i = base();
    i.disk_setup = serde_json::from_value(serde_json::json!({
        "filesystems": [{"device": "/dev/sdb1", "filesystem": "ext4", "label": "etcd"}]
    }))
    .unwrap();
    for version in ["3.4.0", "2.3.0"] {
        let err = ignition::render(DocumentKind::InitControlPlane, &i, version, "").unwrap_err();
        assert_eq!(err.reason(), "UnsupportedInIgnition", "{version}");
        assert!(err.to_string().contains("spec.diskSetup"), "{err}");
        assert!(err.to_string().contains("additionalConfig"), "{err}");
    }
    let mut i = base();
    i.mounts = vec![vec!["LABEL=etcd".into(), "/var/lib/etcd".into()]];
    let err = ignition::render(DocumentKind::JoinWorker, &i, "3.4.0", "").unwrap_err();
    assert_eq!(err.reason(), "UnsupportedInIgnition");
    assert!(err.to_string().contains("spec.mounts"), "{err}");
    // An empty diskSetup is no disk setup.
    let mut i = base();
    i.disk_setup = serde_json::from_value(serde_json::json!({"partitions": []})).unwrap();
    ignition::render(DocumentKind::JoinWorker, &i, "3.4.0", "").unwrap();
}
