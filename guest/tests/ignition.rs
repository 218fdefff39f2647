//! Ignition images (MicroOS, Flatcar, FCOS) as the simulated guests boot them: configs written by
//! hand here (never by the bootstrap renderer, whose bugs these tests must catch), each refusal
//! Ignition makes, the platform sources, and a full boot that runs kubeadm from a systemd unit.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use capstan_guest::ignition::{self, IgnitionError, apply};
use capstan_guest::{Datasource, GuestOptions, GuestOs, GuestStatus, Guests, Mode, VmInfo};
use capstan_iso::{IsoFile, build_iso};
use serde_json::{Value, json};

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn data_url(b: &[u8]) -> String {
    format!("data:;base64,{}", b64(b))
}

fn v3(rest: Value) -> Value {
    let mut c = json!({"ignition": {"version": "3.4.0"}});
    if let (Value::Object(a), Value::Object(b)) = (&mut c, rest) {
        a.extend(b);
    }
    c
}

fn render(cfg: &Value, os: GuestOs) -> Result<ignition::config::Rendered, IgnitionError> {
    ignition::render(&serde_json::to_vec(cfg).unwrap(), os).map(|r| r.expect("not empty"))
}

fn refused(cfg: Value) -> IgnitionError {
    match render(&cfg, GuestOs::MicroOs) {
        Err(e) => e,
        Ok(_) => panic!("accepted: {cfg}"),
    }
}

fn file(path: &str, source: &str) -> Value {
    json!({"path": path, "contents": {"source": source}})
}

fn files(list: Vec<Value>) -> Value {
    v3(json!({"storage": {"files": list}}))
}

// ---------------------------------------------------------------------------------------------
// Refusals, one each.

#[test]
fn refuses_non_json() {
    let e = ignition::render(b"#cloud-config\n", GuestOs::MicroOs).err().unwrap();
    assert!(matches!(e, IgnitionError::NotJson(_)), "{e}");
}

#[test]
fn refuses_a_missing_version() {
    assert_eq!(refused(json!({"ignition": {}})), IgnitionError::MissingVersion);
}

#[test]
fn refuses_an_unknown_version() {
    for v in ["3.6.0", "4.0.0", "3.4", "3.4.1", "banana"] {
        let e = refused(json!({"ignition": {"version": v}}));
        assert!(matches!(e, IgnitionError::UnsupportedVersion { .. }), "{v}: {e}");
    }
}

#[test]
fn spec_2_is_refused_on_microos_and_fcos_and_translated_on_flatcar() {
    let v2 = json!({"ignition": {"version": "2.3.0"}, "networkd": {},
        "storage": {"files": [{"filesystem": "root", "path": "/etc/kubeadm.yml", "mode": 384,
                               "contents": {"source": "data:,x%0A", "verification": {}}}]}});
    for os in [GuestOs::MicroOs, GuestOs::FedoraCoreOs] {
        let e = render(&v2, os).err().unwrap();
        assert!(matches!(e, IgnitionError::UnsupportedVersion { .. }), "{e}");
    }
    let r = render(&v2, GuestOs::Flatcar).unwrap();
    assert_eq!(r.config.storage.files[0].path, "/etc/kubeadm.yml");
    // 2.x files always replaced what was there.
    assert_eq!(r.config.storage.files[0].overwrite, Some(true));
}

#[test]
fn refuses_an_undecodable_data_url() {
    let e = refused(files(vec![file("/etc/x", "data:;base64,@@@")]));
    assert!(matches!(e, IgnitionError::DataUrl { .. }), "{e}");
    let e = refused(files(vec![file("/etc/x", "data:,%zz")]));
    assert!(matches!(e, IgnitionError::DataUrl { .. }), "{e}");
}

#[test]
fn refuses_an_unknown_scheme() {
    let e = refused(files(vec![file("/etc/x", "ftp://host/x")]));
    assert!(matches!(e, IgnitionError::UnknownScheme { .. }), "{e}");
}

#[test]
fn says_http_sources_cannot_be_fetched_here() {
    let cfg = v3(json!({"storage": {"files": [file("/etc/x", "https://example.com/x")]}}));
    let r = render(&cfg, GuestOs::MicroOs).unwrap();
    let root = tempfile::tempdir().unwrap();
    let e = apply::files_stage(root.path(), &r.config, GuestOs::MicroOs).unwrap_err();
    assert!(matches!(e, IgnitionError::UnfetchableScheme { .. }), "{e}");
    assert!(e.to_string().contains("no network access"), "{e}");
    let merge = v3(json!({"ignition": {"version": "3.4.0", "config": {"merge": [{"source": "http://x/c.ign"}]}}}));
    assert!(matches!(
        render(&merge, GuestOs::MicroOs),
        Err(IgnitionError::UnfetchableScheme { .. })
    ));
}

#[test]
fn refuses_unsupported_compression() {
    let e = refused(files(vec![
        json!({"path": "/etc/x", "contents": {"source": "data:,x", "compression": "xz"}}),
    ]));
    assert!(matches!(e, IgnitionError::Compression { .. }), "{e}");
}

#[test]
fn refuses_bad_gzip() {
    let cfg = files(vec![
        json!({"path": "/etc/x", "contents": {"source": "data:,notgzip", "compression": "gzip"}}),
    ]);
    let r = render(&cfg, GuestOs::MicroOs).unwrap();
    let root = tempfile::tempdir().unwrap();
    let e = apply::files_stage(root.path(), &r.config, GuestOs::MicroOs).unwrap_err();
    assert!(matches!(e, IgnitionError::Gzip { .. }), "{e}");
}

#[test]
fn refuses_a_hash_mismatch_on_the_decompressed_bytes() {
    use sha2::Digest;
    let body = b"hello\n";
    let good: String = sha2::Sha512::digest(body).iter().map(|b| format!("{b:02x}")).collect();
    let entry = |hash: &str| {
        json!({"path": "/etc/x", "overwrite": true, "contents": {"source": data_url(&gzip(body)),
            "compression": "gzip", "verification": {"hash": format!("sha512-{hash}")}}})
    };
    let root = tempfile::tempdir().unwrap();
    let ok = render(&files(vec![entry(&good)]), GuestOs::MicroOs).unwrap();
    apply::files_stage(root.path(), &ok.config, GuestOs::MicroOs).unwrap();
    assert_eq!(std::fs::read(root.path().join("etc/x")).unwrap(), body);
    let bad = render(&files(vec![entry(&"0".repeat(128))]), GuestOs::MicroOs).unwrap();
    let e = apply::files_stage(root.path(), &bad.config, GuestOs::MicroOs).unwrap_err();
    assert!(matches!(e, IgnitionError::HashMismatch { .. }), "{e}");
}

#[test]
fn refuses_relative_paths() {
    let e = refused(files(vec![file("etc/x", "data:,x")]));
    assert!(matches!(e, IgnitionError::RelativePath(_)), "{e}");
}

#[test]
fn refuses_unclean_paths() {
    for p in ["/etc/../x", "/etc//x", "/etc/./x", "/etc/x/"] {
        let e = refused(files(vec![file(p, "data:,x")]));
        assert!(matches!(e, IgnitionError::DirtyPath(_)), "{p}: {e}");
    }
}

#[test]
fn refuses_duplicate_paths_across_files_dirs_and_links() {
    let e = refused(v3(json!({"storage": {"files": [file("/etc/x", "data:,a")],
        "links": [{"path": "/etc/x", "target": "/y"}]}})));
    assert_eq!(e, IgnitionError::DuplicatePath("/etc/x".into()));
    let e = refused(files(vec![file("/etc/x", "data:,a"), file("/etc/x", "data:,b")]));
    assert!(matches!(e, IgnitionError::DuplicatePath(_)), "{e}");
}

#[test]
fn refuses_a_file_on_a_unit_path() {
    let e = refused(v3(json!({
        "storage": {"files": [file("/etc/systemd/system/kubeadm.service", "data:,x")]},
        "systemd": {"units": [{"name": "kubeadm.service", "contents": "[Service]\nType=oneshot\n"}]}})));
    assert!(matches!(e, IgnitionError::PathConflictsSystemd(_)), "{e}");
    let e = refused(v3(json!({
        "storage": {"files": [file("/etc/systemd/system/a.service.d/10.conf", "data:,x")]},
        "systemd": {"units": [{"name": "a.service", "dropins": [{"name": "10.conf", "contents": "[Unit]\n"}]}]}})));
    assert!(matches!(e, IgnitionError::PathConflictsSystemd(_)), "{e}");
}

#[test]
fn refuses_duplicate_units() {
    let e = refused(v3(
        json!({"systemd": {"units": [{"name": "a.service"}, {"name": "a.service"}]}}),
    ));
    assert_eq!(e, IgnitionError::DuplicateUnit("a.service".into()));
}

#[test]
fn refuses_duplicate_dropins() {
    let e = refused(v3(json!({"systemd": {"units": [{"name": "a.service",
        "dropins": [{"name": "1.conf"}, {"name": "1.conf"}]}]}})));
    assert!(matches!(e, IgnitionError::DuplicateDropin { .. }), "{e}");
}

#[test]
fn refuses_an_illegal_mode_and_warns_on_special_bits() {
    let e = refused(files(vec![json!({"path": "/etc/x", "mode": 0o10000})]));
    assert!(matches!(e, IgnitionError::IllegalMode { .. }), "{e}");
    let e = refused(files(vec![json!({"path": "/etc/x", "mode": -1})]));
    assert!(matches!(e, IgnitionError::IllegalMode { .. }), "{e}");
    // An octal-looking string is not a mode.
    let e = refused(files(vec![json!({"path": "/etc/x", "mode": "0644"})]));
    assert!(matches!(e, IgnitionError::Schema(_)), "{e}");
    let r = render(
        &files(vec![json!({"path": "/usr/local/bin/x", "mode": 0o4755})]),
        GuestOs::MicroOs,
    )
    .unwrap();
    assert!(r.warnings.iter().any(|w| w.contains("setuid")), "{:?}", r.warnings);
}

#[test]
fn refuses_overwriting_a_file_the_image_has() {
    let root = tempfile::tempdir().unwrap();
    GuestOs::MicroOs.seed_root(root.path()).unwrap();
    let r = render(
        &files(vec![file("/etc/chrony.conf", "data:,server%20x%0A")]),
        GuestOs::MicroOs,
    )
    .unwrap();
    let e = apply::files_stage(root.path(), &r.config, GuestOs::MicroOs).unwrap_err();
    assert_eq!(e, IgnitionError::FileExists("/etc/chrony.conf".into()));
    let r = render(
        &files(vec![
            json!({"path": "/etc/chrony.conf", "overwrite": true, "contents": {"source": "data:,server%20x%0A"}}),
        ]),
        GuestOs::MicroOs,
    )
    .unwrap();
    apply::files_stage(root.path(), &r.config, GuestOs::MicroOs).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/chrony.conf")).unwrap(),
        "server x\n"
    );
}

#[test]
fn refuses_a_bad_unit_suffix() {
    let e = refused(v3(json!({"systemd": {"units": [{"name": "kubeadm"}]}})));
    assert!(matches!(e, IgnitionError::UnitSuffix(_)), "{e}");
}

#[test]
fn refuses_a_dropin_not_ending_in_conf() {
    let e = refused(v3(
        json!({"systemd": {"units": [{"name": "a.service", "dropins": [{"name": "10-env"}]}]}}),
    ));
    assert!(matches!(e, IgnitionError::DropinSuffix { .. }), "{e}");
}

#[test]
fn refuses_duplicate_users() {
    let e = refused(v3(json!({"passwd": {"users": [{"name": "core"}, {"name": "core"}]}})));
    assert_eq!(e, IgnitionError::DuplicateUser("core".into()));
}

#[test]
fn enabled_without_install_is_a_warning() {
    let r = render(
        &v3(json!({"systemd": {"units": [{"name": "a.service", "enabled": true, "contents": "[Service]\nExecStart=/x\n"}]}})),
        GuestOs::MicroOs,
    )
    .unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("no install section")),
        "{:?}",
        r.warnings
    );
}

// ---------------------------------------------------------------------------------------------
// Merging and data URLs.

#[test]
fn merge_child_wins_and_replace_swaps() {
    let child = files(vec![
        json!({"path": "/etc/hostname", "overwrite": true, "contents": {"source": "data:,child%0A"}}),
    ]);
    let child_bytes = serde_json::to_vec(&child).unwrap();
    let parent = json!({"ignition": {"version": "3.4.0", "config": {"merge": [
            {"source": data_url(&gzip(&child_bytes)), "compression": "gzip"}]}},
        "storage": {"files": [
            {"path": "/etc/hostname", "mode": 384, "overwrite": true, "contents": {"source": "data:,parent%0A"}},
            file("/etc/capstan/instance.env", "data:,A=1%0A")]}});
    let r = render(&parent, GuestOs::MicroOs).unwrap();
    let root = tempfile::tempdir().unwrap();
    apply::files_stage(root.path(), &r.config, GuestOs::MicroOs).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/hostname")).unwrap(),
        "child\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.path().join("etc/hostname"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the parent's mode stays where the child sets none");
    assert!(root.path().join("etc/capstan/instance.env").exists());

    let stub = json!({"ignition": {"version": "3.4.0", "config": {"replace":
        {"source": data_url(&gzip(&child_bytes)), "compression": "gzip"}}},
        "storage": {"files": [file("/etc/ignored", "data:,x")]}});
    let r = render(&stub, GuestOs::MicroOs).unwrap();
    assert_eq!(r.config.storage.files.len(), 1);
    assert_eq!(r.config.storage.files[0].path, "/etc/hostname");
}

#[test]
fn data_urls_in_both_forms_and_gzip() {
    let cfg = files(vec![
        file("/etc/a", "data:,hello%20world%0A"),
        file("/etc/b", &data_url(b"base64 form\n")),
        json!({"path": "/etc/c", "contents": {"source": data_url(&gzip(b"gzipped\n")), "compression": "gzip"},
               "append": [{"source": "data:,more%0A"}]}),
        json!({"path": "/etc/d", "mode": 493}),
    ]);
    let r = render(&cfg, GuestOs::FedoraCoreOs).unwrap();
    let root = tempfile::tempdir().unwrap();
    apply::files_stage(root.path(), &r.config, GuestOs::FedoraCoreOs).unwrap();
    let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
    assert_eq!(read("etc/a"), "hello world\n");
    assert_eq!(read("etc/b"), "base64 form\n");
    assert_eq!(read("etc/c"), "gzipped\nmore\n");
    assert_eq!(read("etc/d"), "");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(root.path().join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("etc/a"), 0o644);
    assert_eq!(mode("etc/d"), 0o755);
}

#[test]
fn ssh_keys_go_where_the_profile_writes_them() {
    let cfg = v3(json!({"passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAA k"]}]}}));
    for (os, path) in [
        (GuestOs::MicroOs, "home/core/.ssh/authorized_keys"),
        (GuestOs::FedoraCoreOs, "home/core/.ssh/authorized_keys.d/ignition"),
    ] {
        let root = tempfile::tempdir().unwrap();
        let r = render(&cfg, os).unwrap();
        apply::files_stage(root.path(), &r.config, os).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join(path)).unwrap(),
            "ssh-ed25519 AAAA k\n"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Boots.

fn guests(state: &Path) -> Guests {
    Guests::new(GuestOptions {
        state_dir: state.to_path_buf(),
        mode: Mode::NodesOnly,
        boot_delay: Duration::ZERO,
        join_timeout: Duration::from_secs(5),
        endpoint: capstan_guest::EndpointMode::Vip,
    })
}

fn vm(n: u32, os: GuestOs) -> VmInfo {
    VmInfo {
        id: format!("vm-{n}"),
        uuid: format!("42100000-0000-0000-0000-{n:012}"),
        name: format!("node-{n}"),
        ips: vec![format!("10.0.0.{}", 10 + n)],
        os,
    }
}

async fn settled(g: &Guests, id: &str) -> GuestStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match g.status(id) {
            Some(GuestStatus::Booting) if Instant::now() < deadline => {}
            Some(s) => return s,
            None => panic!("{id} unknown"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Booted, without a Node (the config ran but did not bootstrap).
async fn running_unjoined(g: &Guests, id: &str) {
    assert_eq!(
        settled(g, id).await,
        GuestStatus::Running { node: None },
        "{:#?}",
        g.log(id)
    );
}

async fn never_joins(g: &Guests, id: &str) {
    assert_eq!(
        settled(g, id).await,
        GuestStatus::Running { node: None },
        "{:#?}",
        g.log(id)
    );
    assert!(
        g.log(id)
            .iter()
            .any(|l| l.contains("no config") && l.contains("never joins")),
        "{:#?}",
        g.log(id)
    );
}

fn ignition_iso(label: &str, cfg: &[u8]) -> Vec<u8> {
    build_iso(label, &[IsoFile::new("ignition/config.ign", cfg.to_vec())]).unwrap()
}

fn tiny_config() -> Vec<u8> {
    serde_json::to_vec(&files(vec![
        json!({"path": "/etc/hostname", "contents": {"source": "data:,from-iso%0A"}}),
    ]))
    .unwrap()
}

#[tokio::test]
async fn an_empty_config_boots_a_node_that_never_joins() {
    let state = tempfile::tempdir().unwrap();
    let g = guests(state.path());
    let a = vm(1, GuestOs::FedoraCoreOs);
    g.power_on(a.clone(), Datasource::Metadata(seed(b"")));
    never_joins(&g, &a.id).await;
    let b = vm(2, GuestOs::MicroOs);
    g.power_on(b.clone(), Datasource::None);
    never_joins(&g, &b.id).await;
}

#[tokio::test]
async fn microos_reads_the_iso_labelled_ignition_in_lower_case_only() {
    let state = tempfile::tempdir().unwrap();
    let g = guests(state.path());
    let good = vm(1, GuestOs::MicroOs);
    g.power_on(
        good.clone(),
        Datasource::Cdrom(ignition_iso("ignition", &tiny_config())),
    );
    assert_eq!(settled(&g, &good.id).await, GuestStatus::Running { node: None });
    let written = state.path().join("vms").join(&good.id).join("etc/hostname");
    assert_eq!(std::fs::read_to_string(written).unwrap(), "from-iso\n");

    let upper = vm(2, GuestOs::MicroOs);
    g.power_on(
        upper.clone(),
        Datasource::Cdrom(ignition_iso("IGNITION", &tiny_config())),
    );
    never_joins(&g, &upper.id).await;
    assert!(!state.path().join("vms").join(&upper.id).join("etc/hostname").exists());
}

#[tokio::test]
async fn flatcar_ignores_the_iso() {
    let state = tempfile::tempdir().unwrap();
    let g = guests(state.path());
    let f = vm(1, GuestOs::Flatcar);
    g.power_on(f.clone(), Datasource::Cdrom(ignition_iso("ignition", &tiny_config())));
    never_joins(&g, &f.id).await;
    assert!(!state.path().join("vms").join(&f.id).join("etc/hostname").exists());
}

#[tokio::test]
async fn guestinfo_is_decoded_and_replaced_with_an_empty_config() {
    let state = tempfile::tempdir().unwrap();
    let g = guests(state.path());
    for (n, encoding, data) in [
        (1, "base64", b64(&tiny_config())),
        (2, "gzip+base64", b64(&gzip(&tiny_config()))),
        (3, "", String::from_utf8(tiny_config()).unwrap()),
    ] {
        let v = vm(n, GuestOs::Flatcar);
        let keys = BTreeMap::from([
            ("guestinfo.ignition.config.data".to_string(), data),
            (
                "guestinfo.ignition.config.data.encoding".to_string(),
                encoding.to_string(),
            ),
        ]);
        g.power_on(v.clone(), Datasource::Guestinfo(keys));
        running_unjoined(&g, &v.id).await;
        let root = state.path().join("vms").join(&v.id);
        assert_eq!(
            std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
            "from-iso\n"
        );
        let after = g.guestinfo(&v.id).unwrap();
        assert_eq!(after["guestinfo.ignition.config.data"], "e30K");
        assert_eq!(after["guestinfo.ignition.config.data.encoding"], "base64");
    }
}

fn seed(user_data: &[u8]) -> capstan_guest::nocloud::Seed {
    capstan_guest::nocloud::Seed {
        user_data: user_data.to_vec(),
        meta_data: json!({"uuid": "0d5f7c1e-1111-2222-3333-444455556666", "instance-id": "0d5f7c1e-1111-2222-3333-444455556666",
            "name": "hcs-worker-1", "hostname": "hcs-worker-1"}),
        network_config: None,
    }
}

const KUBEADM_SH: &str = "#!/bin/bash\nset -e\nenvsubst < /etc/kubeadm.yml > /etc/kubeadm.yml.tmp\nmv /etc/kubeadm.yml.tmp /etc/kubeadm.yml\nkubeadm init --config /etc/kubeadm.yml\nmkdir -p /run/cluster-api && echo success > /run/cluster-api/bootstrap-success.complete\nmv /etc/kubeadm.yml /tmp/\n";

const KUBEADM_UNIT: &str = "[Unit]\nDescription=kubeadm\nConditionPathExists=/etc/kubeadm.yml\nAfter=network.target\n[Service]\nType=oneshot\nExecStart=/bin/bash /etc/kubeadm.sh\n[Install]\nWantedBy=multi-user.target\n";

fn kubeadm_yml(port: u16, endpoint_host: &str) -> String {
    let endpoint = if endpoint_host.is_empty() {
        String::new()
    } else {
        format!("controlPlaneEndpoint: {endpoint_host}:{port}\n")
    };
    format!(
        "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.4\n{endpoint}---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n  - name: provider-id\n    value: hcs://${{AFTERBURN_OPENSTACK_INSTANCE_ID}}\n"
    )
}

/// The config CABPK-style bootstrap data would be, in spec 3.4, with afterburn's environment.
fn kubeadm_config(port: u16, endpoint_host: &str) -> Vec<u8> {
    kubeadm_config_with(port, endpoint_host, KUBEADM_SH, vec![])
}

fn kubeadm_config_with(port: u16, endpoint_host: &str, script: &str, extra: Vec<Value>) -> Vec<u8> {
    let ca = capstan_kubeadm::pki::new_ca(capstan_kubeadm::api::EncryptionAlgorithm::EcdsaP256, 10).unwrap();
    let f = |path: &str, mode: u32, body: &[u8]| json!({"path": path, "mode": mode, "overwrite": true, "contents": {"source": data_url(body)}});
    let mut files = vec![
        f("/etc/kubernetes/pki/ca.crt", 0o644, &ca.cert),
        f("/etc/kubernetes/pki/ca.key", 0o600, &ca.key),
        f("/etc/kubeadm.sh", 0o700, script.as_bytes()),
        f("/etc/kubeadm.yml", 0o600, kubeadm_yml(port, endpoint_host).as_bytes()),
    ];
    files.extend(extra);
    let cfg = v3(json!({
        "storage": {"files": files},
        "systemd": {"units": [{"name": "kubeadm.service", "enabled": true, "contents": KUBEADM_UNIT,
            "dropins": [{"name": "10-afterburn.conf",
                "contents": "[Unit]\nRequires=afterburn.service\nAfter=afterburn.service\n[Service]\nEnvironmentFile=/run/metadata/afterburn\n"}]}]}
    }));
    serde_json::to_vec(&cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_boot_runs_kubeadm_from_the_unit_with_afterburn_identity() {
    let state = tempfile::tempdir().unwrap();
    let g = guests(state.path());
    let port = capstan_localplane::free_port();
    let v = vm(1, GuestOs::MicroOs);
    g.power_on(
        v.clone(),
        Datasource::Metadata(seed(&kubeadm_config(port, "127.0.0.1"))),
    );
    let status = settled(&g, &v.id).await;
    assert_eq!(
        status,
        GuestStatus::Running {
            node: Some("hcs-worker-1".into())
        },
        "{:#?}",
        g.log(&v.id)
    );
    let clusters = g.clusters();
    let node = &clusters[0].nodes[0];
    assert_eq!(
        node.provider_id.as_deref(),
        Some("hcs://0d5f7c1e-1111-2222-3333-444455556666")
    );
    let root = state.path().join("vms").join(&v.id);
    assert!(root.join("run/cluster-api/bootstrap-success.complete").exists());
    assert!(!root.join("etc/kubeadm.yml").exists());
    let moved = std::fs::read_to_string(root.join("tmp/kubeadm.yml")).unwrap();
    assert!(moved.contains("hcs://0d5f7c1e-"), "{moved}");
    assert!(root.join("etc/systemd/system-preset/20-ignition.preset").exists());
    assert!(
        std::fs::read_to_string(root.join("run/metadata/afterburn"))
            .unwrap()
            .contains("AFTERBURN_OPENSTACK_INSTANCE_ID=")
    );

    // A second power-on runs neither Ignition nor kubeadm.
    let log = g.log(&v.id);
    g.power_off(&v.id);
    g.power_on(
        v.clone(),
        Datasource::Metadata(seed(&kubeadm_config(port, "127.0.0.1"))),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(g.log(&v.id), log);
    assert_eq!(g.clusters()[0].nodes.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_kubeadm_writes_no_sentinel() {
    let state = tempfile::tempdir().unwrap();
    let g = guests(state.path());
    let port = capstan_localplane::free_port();
    let v = vm(1, GuestOs::MicroOs);
    // No controlPlaneEndpoint: kubeadm init fails.
    g.power_on(v.clone(), Datasource::Metadata(seed(&kubeadm_config(port, ""))));
    let GuestStatus::Failed { reason } = settled(&g, &v.id).await else {
        panic!("{:#?}", g.log(&v.id))
    };
    assert!(
        reason.contains("kubeadm.service") && reason.contains("kubeadm init"),
        "{reason}"
    );
    let root = state.path().join("vms").join(&v.id);
    assert!(!root.join("run/cluster-api/bootstrap-success.complete").exists());
    assert!(root.join("etc/kubeadm.yml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn afterburn_is_only_on_openstack_and_a_required_one_fails_the_unit() {
    let state = tempfile::tempdir().unwrap();
    let g = guests(state.path());
    let v = vm(1, GuestOs::MicroOs);
    let port = capstan_localplane::free_port();
    g.power_on(
        v.clone(),
        Datasource::Cdrom(ignition_iso("ignition", &kubeadm_config(port, "127.0.0.1"))),
    );
    let GuestStatus::Failed { reason } = settled(&g, &v.id).await else {
        panic!("{:#?}", g.log(&v.id))
    };
    assert!(reason.contains("afterburn"), "{reason}");
}

/// A config whose kubeadm.service runs `exec_start` with the given script and unit extras.
fn unit_config(
    exec_start: &str,
    script: &str,
    script_mode: u32,
    service_extra: &str,
    extra_files: Vec<Value>,
) -> Vec<u8> {
    let unit = format!(
        "[Unit]\nConditionPathExists=/etc/kubeadm.yml\n[Service]\nType=oneshot\n{service_extra}ExecStart={exec_start}\n[Install]\nWantedBy=multi-user.target\n"
    );
    let mut list = vec![
        json!({"path": "/etc/kubeadm.sh", "mode": script_mode, "contents": {"source": data_url(script.as_bytes())}}),
        json!({"path": "/etc/kubeadm.yml", "mode": 384, "contents": {"source": "data:,x%0A"}}),
    ];
    list.extend(extra_files);
    serde_json::to_vec(&v3(json!({"storage": {"files": list},
        "systemd": {"units": [{"name": "kubeadm.service", "enabled": true, "contents": unit}]}})))
    .unwrap()
}

async fn boot_config(os: GuestOs, cfg: Vec<u8>) -> (GuestStatus, std::path::PathBuf, Vec<String>, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let g = guests(state.path());
    let v = vm(1, os);
    g.power_on(v.clone(), Datasource::Metadata(seed(&cfg)));
    let status = settled(&g, &v.id).await;
    let root = state.path().join("vms").join(&v.id);
    (status, root, g.log(&v.id), state)
}

const SENTINEL_SH: &str = "#!/bin/bash\nset -e\nmkdir -p /run/cluster-api && echo success > /run/cluster-api/bootstrap-success.complete\nmv /etc/kubeadm.yml /tmp/\n";

#[tokio::test]
async fn a_script_run_directly_needs_its_exec_bit() {
    let (status, root, log, _s) = boot_config(
        GuestOs::FedoraCoreOs,
        unit_config("/etc/kubeadm.sh", SENTINEL_SH, 0o600, "", vec![]),
    )
    .await;
    let GuestStatus::Failed { reason } = status else {
        panic!("{log:#?}")
    };
    assert!(reason.contains("Permission denied"), "{reason}");
    assert!(!root.join("run/cluster-api/bootstrap-success.complete").exists());

    let (status, root, log, _s) = boot_config(
        GuestOs::FedoraCoreOs,
        unit_config("/etc/kubeadm.sh", SENTINEL_SH, 0o700, "", vec![]),
    )
    .await;
    assert_eq!(status, GuestStatus::Running { node: None }, "{log:#?}");
    assert!(root.join("run/cluster-api/bootstrap-success.complete").exists());
    assert!(root.join("tmp/kubeadm.yml").exists());
}

#[tokio::test]
async fn a_missing_environment_file_fails_the_unit_unless_optional() {
    let cfg = unit_config(
        "/bin/bash /etc/kubeadm.sh",
        SENTINEL_SH,
        0o600,
        "EnvironmentFile=/etc/nope.env\n",
        vec![],
    );
    let (status, _root, log, _s) = boot_config(GuestOs::MicroOs, cfg).await;
    let GuestStatus::Failed { reason } = status else {
        panic!("{log:#?}")
    };
    assert!(reason.contains("/etc/nope.env"), "{reason}");

    let cfg = unit_config(
        "/bin/bash /etc/kubeadm.sh",
        SENTINEL_SH,
        0o600,
        "EnvironmentFile=-/etc/nope.env\n",
        vec![],
    );
    let (status, root, log, _s) = boot_config(GuestOs::MicroOs, cfg).await;
    assert_eq!(status, GuestStatus::Running { node: None }, "{log:#?}");
    assert!(root.join("run/cluster-api/bootstrap-success.complete").exists());
}

#[tokio::test]
async fn environment_and_envsubst_leave_unset_variables_empty() {
    let script = "#!/bin/bash\nset -e\nenvsubst < /etc/in > /etc/out\n";
    let input = json!({"path": "/etc/in", "contents": {"source": "data:,a=$A%20b=${B}%20c=$C%0A"}});
    let env_file = json!({"path": "/etc/capstan/instance.env", "contents": {"source": "data:,B=%22from%20file%22%0A"}});
    let cfg = unit_config(
        "/bin/bash /etc/kubeadm.sh",
        script,
        0o600,
        "Environment=A=one\nEnvironmentFile=/etc/capstan/instance.env\n",
        vec![input, env_file],
    );
    let (status, root, log, _s) = boot_config(GuestOs::MicroOs, cfg).await;
    assert_eq!(status, GuestStatus::Running { node: None }, "{log:#?}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/out")).unwrap(),
        "a=one b=from file c=\n"
    );
}

#[tokio::test]
async fn a_false_condition_skips_the_unit() {
    let cfg = serde_json::to_vec(&v3(json!({"storage": {"files": [
            {"path": "/etc/kubeadm.sh", "contents": {"source": data_url(SENTINEL_SH.as_bytes())}}]},
        "systemd": {"units": [{"name": "kubeadm.service", "enabled": true,
            "contents": "[Unit]\nConditionPathExists=/etc/kubeadm.yml\n[Service]\nExecStart=/bin/bash /etc/kubeadm.sh\n[Install]\nWantedBy=multi-user.target\n"}]}})))
    .unwrap();
    let (status, root, log, _s) = boot_config(GuestOs::MicroOs, cfg).await;
    assert_eq!(status, GuestStatus::Running { node: None });
    assert!(log.iter().any(|l| l.contains("being skipped")), "{log:#?}");
    assert!(!root.join("run/cluster-api").exists());
}

#[tokio::test]
async fn openstack_user_data_is_not_gunzipped() {
    let cfg = gzip(&tiny_config());
    let (status, _root, log, _s) = boot_config(GuestOs::MicroOs, cfg).await;
    let GuestStatus::Failed { reason } = status else {
        panic!("{log:#?}")
    };
    assert!(reason.contains("not valid JSON"), "{reason}");
}

#[tokio::test]
async fn spec_2_boots_on_flatcar_and_fails_on_microos() {
    let v2 = serde_json::to_vec(&json!({"ignition": {"version": "2.3.0"},
        "storage": {"files": [{"filesystem": "root", "path": "/etc/hostname", "mode": 420, "contents": {"source": "data:,v2%0A"}}]}}))
    .unwrap();
    let (status, root, log, _s) = boot_config(GuestOs::Flatcar, v2.clone()).await;
    assert_eq!(status, GuestStatus::Running { node: None }, "{log:#?}");
    assert_eq!(std::fs::read_to_string(root.join("etc/hostname")).unwrap(), "v2\n");
    let (status, _root, _log, _s) = boot_config(GuestOs::MicroOs, v2).await;
    assert!(matches!(status, GuestStatus::Failed { reason } if reason.contains("2.3.0")));
}

#[tokio::test]
async fn ubuntu_reads_cloud_init_guestinfo() {
    let state = tempfile::tempdir().unwrap();
    let g = guests(state.path());
    let v = vm(1, GuestOs::Ubuntu);
    let user_data = "#cloud-config\nwrite_files:\n- path: /etc/from-guestinfo\n  content: hi\n";
    let keys = BTreeMap::from([
        ("guestinfo.userdata".to_string(), b64(&gzip(user_data.as_bytes()))),
        ("guestinfo.userdata.encoding".to_string(), "gzip+base64".to_string()),
        (
            "guestinfo.metadata".to_string(),
            b64(b"{\"instance-id\": \"i-1\", \"local-hostname\": \"u1\"}"),
        ),
        ("guestinfo.metadata.encoding".to_string(), "base64".to_string()),
    ]);
    g.power_on(v.clone(), Datasource::Guestinfo(keys));
    running_unjoined(&g, &v.id).await;
    let root = state.path().join("vms").join(&v.id);
    assert_eq!(std::fs::read_to_string(root.join("etc/from-guestinfo")).unwrap(), "hi");
    assert_eq!(g.guestinfo(&v.id), None, "cloud-init leaves guestinfo alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_and_provider_id_from_what_ignition_wrote() {
    let port = capstan_localplane::free_port();
    let f = |path: &str, body: &str| json!({"path": path, "overwrite": true, "contents": {"source": data_url(body.as_bytes())}});
    let extra = vec![
        f("/etc/hostname", "cp-from-ignition\n"),
        f(
            "/etc/sysconfig/kubelet",
            "KUBELET_EXTRA_ARGS=\"--provider-id=hcs://from-sysconfig --v=2\"\n",
        ),
    ];
    let cfg = kubeadm_config_with(port, "127.0.0.1", KUBEADM_SH, extra);
    let state = tempfile::tempdir().unwrap();
    let g = guests(state.path());
    let v = vm(1, GuestOs::MicroOs);
    g.power_on(v.clone(), Datasource::Metadata(seed(&cfg)));
    let status = settled(&g, &v.id).await;
    assert_eq!(
        status,
        GuestStatus::Running {
            node: Some("cp-from-ignition".into())
        },
        "{:#?}",
        g.log(&v.id)
    );
    assert_eq!(
        g.clusters()[0].nodes[0].provider_id.as_deref(),
        Some("hcs://from-sysconfig")
    );
}

/// Without `set -e` bash carries on after kubeadm fails, and the sentinel lies: the emulation
/// shows it as the real boot would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_set_e_a_failed_kubeadm_still_writes_the_sentinel() {
    let port = capstan_localplane::free_port();
    let script = KUBEADM_SH.replace("set -e\n", "");
    let state = tempfile::tempdir().unwrap();
    let g = guests(state.path());
    let v = vm(1, GuestOs::MicroOs);
    g.power_on(
        v.clone(),
        Datasource::Metadata(seed(&kubeadm_config_with(port, "", &script, vec![]))),
    );
    let status = settled(&g, &v.id).await;
    assert_eq!(status, GuestStatus::Running { node: None }, "{:#?}", g.log(&v.id));
    assert!(
        g.log(&v.id)
            .iter()
            .any(|l| l.contains("command failed, script continues"))
    );
    let root = state.path().join("vms").join(&v.id);
    assert!(root.join("run/cluster-api/bootstrap-success.complete").exists());
}
