//! The cloud-init emulation against real bootstrap data: documents rendered by Capstan's kubeadm
//! bootstrap provider (the same bytes CABPK would produce), carried on a real NoCloud ISO.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use capstan_api::core::{Cluster, Machine};
use capstan_guest::cloudinit::{self, CloudInitError, Command, Encoding, RunIf, Step};
use capstan_guest::nocloud::{self, NoCloudError};
use capstan_iso::{BootstrapVolume, IsoFile, NoCloudSeed};
use capstan_kubeadm::api::{EncryptionAlgorithm, KubeadmConfig};
use capstan_kubeadm::offline;
use capstan_kubeadm::pki::{self, KeyPair};
use capstan_kubeadm::render::DocumentKind;
use serde_json::json;

const SENTINEL: &str = "/run/cluster-api/bootstrap-success.complete";

fn objects(control_plane: bool, initialized: bool) -> (KubeadmConfig, Cluster, Machine) {
    // What a cluster template typically sets: the node is named after the VM's hostname, which
    // only cloud-init knows, hence the jinja expression CABPK passes through untouched.
    let node_registration = json!({
        "name": "{{ ds.meta_data.local_hostname }}",
        "kubeletExtraArgs": [{"name": "provider-id", "value": "{{ ds.meta_data.provider_id }}"}]
    });
    let config: KubeadmConfig = serde_json::from_value(json!({
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfig",
        "metadata": {"name": "m", "namespace": "default"},
        "spec": {
            "initConfiguration": {"nodeRegistration": node_registration},
            "joinConfiguration": {"nodeRegistration": node_registration},
            "files": [
                {"path": "/etc/capstan/b64.conf", "content": base64::engine::general_purpose::STANDARD.encode("from base64\n"),
                 "encoding": "base64", "permissions": "0600", "owner": "root:root"},
                {"path": "/etc/capstan/plain.conf", "content": "plain\n"}
            ],
            "preKubeadmCommands": ["echo pre > /run/capstan/pre"],
            "postKubeadmCommands": ["systemctl restart containerd"]
        }
    }))
    .unwrap();
    let mut cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": "c1", "namespace": "default"},
        "spec": {"controlPlaneEndpoint": {"host": "10.0.0.1", "port": 6443}}
    }))
    .unwrap();
    if initialized {
        cluster.status = serde_json::from_value(json!({"conditions": [{"type": "ControlPlaneInitialized",
            "status": "True", "reason": "Initialized", "message": "x", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}))
        .unwrap();
    }
    let labels = if control_plane {
        json!({"cluster.x-k8s.io/control-plane": ""})
    } else {
        json!({})
    };
    let machine: Machine = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
        "metadata": {"name": "m", "namespace": "default", "labels": labels},
        "spec": {"clusterName": "c1", "version": "v1.30.1", "bootstrap": {},
                 "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "X", "name": "m"}}
    }))
    .unwrap();
    (config, cluster, machine)
}

/// A cluster CA in a kubeadm-layout PKI directory, so the test knows what the node must receive.
fn pki_dir(dir: &Path) -> KeyPair {
    let ca = pki::new_ca(EncryptionAlgorithm::EcdsaP256, 10).unwrap();
    std::fs::write(dir.join("ca.crt"), &ca.cert).unwrap();
    std::fs::write(dir.join("ca.key"), &ca.key).unwrap();
    ca
}

fn iso(user_data: &[u8]) -> Vec<u8> {
    NoCloudSeed {
        instance_id: "vm-0001".into(),
        hostname: "cp-1".into(),
        user_data: user_data.to_vec(),
        network_config: None,
        provider_id: Some("dcs://vm-0001".into()),
    }
    .to_iso()
    .unwrap()
}

fn boot_iso(iso: &[u8]) -> (tempfile::TempDir, Result<cloudinit::Boot, CloudInitError>) {
    let root = tempfile::tempdir().unwrap();
    let seed = nocloud::read_seed(iso).unwrap();
    let boot = cloudinit::boot(root.path(), &seed);
    (root, boot)
}

fn boot_user_data(user_data: &str) -> (tempfile::TempDir, Result<cloudinit::Boot, CloudInitError>) {
    boot_iso(&iso(user_data.as_bytes()))
}

fn read(root: &Path, guest: &str) -> String {
    std::fs::read_to_string(cloudinit::guest_path(root, guest).unwrap()).unwrap_or_else(|e| panic!("{guest}: {e}"))
}

fn mode(root: &Path, guest: &str) -> u32 {
    std::fs::metadata(cloudinit::guest_path(root, guest).unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn sentinel() -> Step {
    Step::WriteText {
        path: SENTINEL.into(),
        text: "success".into(),
        append: false,
    }
}

#[test]
fn cabpk_init_document_boots() {
    let pki = tempfile::tempdir().unwrap();
    let ca = pki_dir(pki.path());
    let (config, cluster, machine) = objects(true, false);
    let rendered = offline::render(&config, &cluster, &machine, Some(pki.path()), None).unwrap();
    assert_eq!(rendered.kind, DocumentKind::InitControlPlane);
    assert!(rendered.document.starts_with("## template: jinja\n#cloud-config\n"));

    let (root, boot) = boot_iso(&iso(rendered.document.as_bytes()));
    let boot = boot.unwrap();
    let root = root.path();
    assert_eq!(boot.instance.instance_id(), "vm-0001");
    assert!(boot.warnings.is_empty(), "{:?}", boot.warnings);

    let kubeadm = read(root, "/run/kubeadm/kubeadm.yaml");
    assert_eq!(mode(root, "/run/kubeadm/kubeadm.yaml"), 0o640);
    assert!(kubeadm.starts_with("---\n"), "{kubeadm}");
    assert!(kubeadm.contains("kind: ClusterConfiguration"), "{kubeadm}");
    assert!(kubeadm.contains("kind: InitConfiguration"), "{kubeadm}");
    assert!(kubeadm.contains("controlPlaneEndpoint: 10.0.0.1:6443"), "{kubeadm}");
    assert!(kubeadm.contains("kubernetesVersion: v1.30.1"), "{kubeadm}");
    // The jinja expressions the user put into nodeRegistration are rendered by cloud-init.
    let node_name = kubeadm
        .lines()
        .skip_while(|l| !l.starts_with("nodeRegistration:"))
        .find_map(|l| l.trim().strip_prefix("name: "))
        .unwrap_or_else(|| panic!("no nodeRegistration.name in {kubeadm}"));
    assert_eq!(node_name.trim_matches('\''), "cp-1", "{kubeadm}");
    assert!(kubeadm.contains("dcs://vm-0001"), "{kubeadm}");
    assert!(!kubeadm.contains("{{"), "{kubeadm}");

    // The CA is the one from the PKI directory; the other CAs and the SA key were generated.
    assert_eq!(read(root, "/etc/kubernetes/pki/ca.crt").as_bytes(), ca.cert.as_slice());
    assert_eq!(read(root, "/etc/kubernetes/pki/ca.key").as_bytes(), ca.key.as_slice());
    assert_eq!(mode(root, "/etc/kubernetes/pki/ca.crt"), 0o640);
    assert_eq!(mode(root, "/etc/kubernetes/pki/ca.key"), 0o600);
    for f in [
        "etcd/ca.crt",
        "etcd/ca.key",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "sa.pub",
        "sa.key",
    ] {
        let text = read(root, &format!("/etc/kubernetes/pki/{f}"));
        assert!(text.starts_with("-----BEGIN "), "{f}: {text}");
    }
    // The user's files: base64 decoded, modes as given (0644 by default).
    assert_eq!(read(root, "/etc/capstan/b64.conf"), "from base64\n");
    assert_eq!(mode(root, "/etc/capstan/b64.conf"), 0o600);
    assert_eq!(read(root, "/etc/capstan/plain.conf"), "plain\n");
    assert_eq!(mode(root, "/etc/capstan/plain.conf"), 0o644);
    assert!(
        cloudinit::guest_path(root, "/run/cluster-api/placeholder")
            .unwrap()
            .is_file()
    );
    assert_eq!(boot.written.len(), boot.config.write_files.len());

    assert_eq!(
        boot.steps,
        [
            Step::WriteText {
                path: "/run/capstan/pre".into(),
                text: "pre".into(),
                append: false
            },
            Step::KubeadmInit {
                config: "/run/kubeadm/kubeadm.yaml".into()
            },
            sentinel(),
            Step::Recorded("systemctl restart containerd".into()),
        ]
    );
    let planned = cloudinit::plan_detailed(&boot.config.runcmd);
    assert_eq!(
        planned[2].run_if,
        RunIf::PreviousSucceeded,
        "the sentinel depends on kubeadm init"
    );
    assert_eq!(planned[3].run_if, RunIf::Always);
}

#[test]
fn cabpk_join_documents_boot() {
    let pki = tempfile::tempdir().unwrap();
    let ca = pki_dir(pki.path());
    for (control_plane, kind) in [
        (true, DocumentKind::JoinControlPlane),
        (false, DocumentKind::JoinWorker),
    ] {
        let (config, cluster, machine) = objects(control_plane, true);
        let rendered = offline::render(&config, &cluster, &machine, Some(pki.path()), None).unwrap();
        assert_eq!(rendered.kind, kind);
        let (root, boot) = boot_user_data(&rendered.document);
        let boot = boot.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let root = root.path();

        let join = read(root, "/run/kubeadm/kubeadm-join-config.yaml");
        assert_eq!(mode(root, "/run/kubeadm/kubeadm-join-config.yaml"), 0o640);
        assert!(join.contains("kind: JoinConfiguration"), "{join}");
        assert!(join.contains("apiServerEndpoint: 10.0.0.1:6443"), "{join}");
        assert!(join.contains(&pki::ca_cert_hashes(&ca.cert).unwrap()[0]), "{join}");
        assert!(join.contains("cp-1"), "{join}");
        assert!(!join.contains("{{"), "{join}");
        // Control-plane joins get the shared CAs; workers get none (they discover the CA).
        let ca_file = cloudinit::guest_path(root, "/etc/kubernetes/pki/ca.crt").unwrap();
        if control_plane {
            assert_eq!(std::fs::read(&ca_file).unwrap(), ca.cert);
            assert!(
                cloudinit::guest_path(root, "/etc/kubernetes/pki/etcd/ca.key")
                    .unwrap()
                    .is_file()
            );
        } else {
            assert!(!ca_file.exists(), "{kind:?}");
        }
        assert_eq!(
            boot.steps,
            [
                Step::WriteText {
                    path: "/run/capstan/pre".into(),
                    text: "pre".into(),
                    append: false
                },
                Step::KubeadmJoin {
                    config: "/run/kubeadm/kubeadm-join-config.yaml".into()
                },
                sentinel(),
                Step::Recorded("systemctl restart containerd".into()),
            ],
            "{kind:?}"
        );
    }
}

#[test]
fn not_cloud_config() {
    let (_root, boot) = boot_user_data("#!/bin/bash\nkubeadm init\n");
    let e = boot.unwrap_err();
    assert_eq!(
        e,
        CloudInitError::NotCloudConfig {
            first_line: "#!/bin/bash".into()
        }
    );
    assert!(
        e.to_string()
            .contains("user-data does not start with #cloud-config (first line: \"#!/bin/bash\")"),
        "{e}"
    );
    // The jinja header alone is not enough: what it renders to must be cloud-config.
    let (_root, boot) = boot_user_data("## template: jinja\nruncmd: [ls]\n");
    assert!(matches!(boot, Err(CloudInitError::NotCloudConfig { .. })), "{boot:?}");
}

#[test]
fn broken_yaml() {
    let (root, boot) = boot_user_data("#cloud-config\nwrite_files:\n- path: /a\n  content: |\n    x\n - path: /b\n");
    let e = boot.unwrap_err();
    assert!(matches!(e, CloudInitError::Yaml { line: Some(_), .. }), "{e:?}");
    assert!(
        std::fs::read_dir(root.path()).unwrap().next().is_none(),
        "nothing is written"
    );

    let (_root, boot) = boot_user_data("#cloud-config\nwrite_files:\n  path: /a\n");
    let e = boot.unwrap_err();
    let CloudInitError::Yaml { message, line, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(message.contains("list of files"), "{message}");
    assert_eq!(*line, Some(3), "{e}");
}

#[test]
fn jinja_syntax_error() {
    let (_root, boot) = boot_user_data("## template: jinja\n#cloud-config\nruncmd:\n  - echo {{ v1.local_hostname }\n");
    let e = boot.unwrap_err();
    let CloudInitError::Template { line, message } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*line, Some(4), "{message}");
    assert!(e.to_string().contains("user-data line 4"), "{e}");
}

#[test]
fn bad_base64_content() {
    let (_root, boot) = boot_user_data(
        "#cloud-config\nwrite_files:\n- path: /etc/x\n  encoding: b64\n  content: this is not base64!\n",
    );
    let e = boot.unwrap_err();
    assert_eq!(
        e,
        CloudInitError::Decode {
            path: "/etc/x".into(),
            encoding: "base64",
            message: "Incorrect padding".into()
        }
    );
}

#[test]
fn dot_dot_paths_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("vm");
    let seed = nocloud::read_seed(&iso(
        b"#cloud-config\nwrite_files:\n- path: /etc/../../escaped\n  content: x\n",
    ))
    .unwrap();
    let e = cloudinit::boot(&root, &seed).unwrap_err();
    assert!(
        matches!(e, CloudInitError::BadPath { ref path, .. } if path == "/etc/../../escaped"),
        "{e:?}"
    );
    assert!(!outer.path().join("escaped").exists());
}

#[test]
fn wrong_label_and_missing_files() {
    let files = |names: &[&str]| -> Vec<IsoFile> {
        names
            .iter()
            .map(|n| IsoFile::new(*n, "instance-id: a\n#cloud-config\n"))
            .collect()
    };
    let img = capstan_iso::build_iso("config-2", &files(&["user-data", "meta-data"])).unwrap();
    let e = nocloud::read_seed(&img).unwrap_err();
    assert_eq!(
        e,
        NoCloudError::WrongLabel {
            found: "config-2".into()
        }
    );
    assert!(e.to_string().contains("\"cidata\""), "{e}");
    // cloud-init also finds the upper-case label.
    let img = capstan_iso::build_iso("CIDATA", &files(&["user-data", "meta-data"])).unwrap();
    assert!(nocloud::read_seed(&img).is_ok());

    let img = capstan_iso::build_iso("cidata", &files(&["user-data"])).unwrap();
    assert_eq!(
        nocloud::read_seed(&img).unwrap_err(),
        NoCloudError::MissingFile { name: "meta-data" }
    );
    let img = capstan_iso::build_iso("cidata", &files(&["meta-data"])).unwrap();
    assert_eq!(
        nocloud::read_seed(&img).unwrap_err(),
        NoCloudError::MissingFile { name: "user-data" }
    );
    assert!(matches!(
        nocloud::read_seed(b"not an iso"),
        Err(NoCloudError::NotIso(_))
    ));
}

#[test]
fn meta_data_shapes() {
    let img = |meta: &str| {
        capstan_iso::build_iso(
            "cidata",
            &[
                IsoFile::new("user-data", "#cloud-config\n"),
                IsoFile::new("meta-data", meta),
            ],
        )
        .unwrap()
    };
    let seed = nocloud::read_seed(&img("")).unwrap();
    assert_eq!(seed.meta_data, json!({}));
    assert_eq!(seed.network_config, None);
    assert!(matches!(
        nocloud::read_seed(&img("instance-id: [unclosed\n")),
        Err(NoCloudError::BadMetaData { .. })
    ));
    assert!(matches!(
        nocloud::read_seed(&img("- a\n- b\n")),
        Err(NoCloudError::MetaDataNotMapping { found: "a list" })
    ));
    // The NoCloudSeed writer's meta-data and network-config come back as written.
    let seed = nocloud::read_seed(&iso(b"#cloud-config\n")).unwrap();
    assert_eq!(
        seed.meta_data,
        json!({"instance-id": "vm-0001", "local-hostname": "cp-1", "provider-id": "dcs://vm-0001"})
    );
    assert_eq!(seed.network_config, Some(capstan_iso::dhcp_network_config()));
}

#[test]
fn encodings_append_and_permissions() {
    let gz_b64 = {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"#!/bin/sh\necho gzipped\n").unwrap();
        base64::engine::general_purpose::STANDARD.encode(enc.finish().unwrap())
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode("line one\n");
    let doc = format!(
        "#cloud-config
write_files:
- path: /usr/local/bin/hello
  encoding: gzip+base64
  permissions: '0755'
  content: {gz_b64}
- path: /etc/log.conf
  encoding: b64
  content: {b64}
  permissions: 0600
- path: /etc/log.conf
  append: true
  content: |
    line two
- path: /etc/deferred
  defer: true
  owner: nobody:nogroup
  content: late
- path: /etc/empty
"
    );
    let (root, boot) = boot_user_data(&doc);
    let boot = boot.unwrap();
    let root = root.path();
    let files = &boot.config.write_files;
    assert_eq!(files[0].encoding, Encoding::GzipBase64);
    assert_eq!(
        files[1].permissions.as_deref(),
        Some("0600"),
        "unquoted 0600 is YAML 1.1 octal"
    );
    assert_eq!(files[3].owner.as_deref(), Some("nobody:nogroup"));

    assert_eq!(read(root, "/usr/local/bin/hello"), "#!/bin/sh\necho gzipped\n");
    assert_eq!(mode(root, "/usr/local/bin/hello"), 0o755);
    assert_eq!(read(root, "/etc/log.conf"), "line one\nline two\n");
    // The appending entry has no permissions, so cloud-init chmods to the default.
    assert_eq!(mode(root, "/etc/log.conf"), 0o644);
    assert_eq!(read(root, "/etc/deferred"), "late");
    assert_eq!(read(root, "/etc/empty"), "");
    // Deferred files are written last.
    assert!(
        boot.written.last().unwrap().ends_with("etc/deferred"),
        "{:?}",
        boot.written
    );

    let (_root, boot) =
        boot_user_data("#cloud-config\nwrite_files:\n- path: /x\n  permissions: '0899'\n  content: x\n");
    assert!(matches!(boot, Err(CloudInitError::Yaml { .. })), "{boot:?}");
}

#[test]
fn missing_jinja_variables_render_as_placeholders() {
    let (root, boot) = boot_user_data(
        "## template: jinja
#cloud-config
write_files:
- path: /etc/hostinfo
  content: |
    {{ ds.meta_data.local_hostname }} {{ local_hostname }} {{ v1.cloud_id }}
    {{ ds.meta_data.no_such_key }} {{ no_such_var }}
runcmd:
- echo {{ v1.instance_id }} > /run/id
",
    );
    let boot = boot.unwrap();
    assert_eq!(
        read(root.path(), "/etc/hostinfo"),
        "cp-1 cp-1 nocloud\nCI_MISSING_JINJA_VAR/no_such_key CI_MISSING_JINJA_VAR/no_such_var\n"
    );
    assert_eq!(boot.warnings.len(), 2, "{:?}", boot.warnings);
    assert!(boot.warnings[0].contains("no_such_key"), "{:?}", boot.warnings);
    assert_eq!(
        boot.steps,
        [Step::WriteText {
            path: "/run/id".into(),
            text: "vm-0001".into(),
            append: false
        }]
    );
}

#[test]
fn plan_respects_quoting() {
    let steps = cloudinit::plan(&[
        Command::Shell(
            "echo 'kubeadm init && echo x > /y' > /run/note; kubeadm init --config=\"/run/a b.yaml\"".into(),
        ),
        Command::Argv(vec![
            "kubeadm".into(),
            "join".into(),
            "--v=5".into(),
            "--config".into(),
            "/j".into(),
        ]),
        Command::Shell("\"kubeadm\" join --ignore-preflight-errors=all && echo \"done;\" >> /run/log".into()),
    ]);
    assert_eq!(
        steps,
        [
            Step::WriteText {
                path: "/run/note".into(),
                text: "kubeadm init && echo x > /y".into(),
                append: false
            },
            Step::KubeadmInit {
                config: "/run/a b.yaml".into()
            },
            Step::KubeadmJoin { config: "/j".into() },
            Step::KubeadmJoin { config: String::new() },
            Step::WriteText {
                path: "/run/log".into(),
                text: "done;".into(),
                append: true
            },
        ]
    );
}
