//! `capstan sim dcs|hcs` run the simulators as processes their clients reach over verified TLS,
//! and stop cleanly on SIGTERM.

#![cfg(feature = "sim")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use capstan_dcs::{DcsClient, DcsConfig};

/// Starts `capstan sim <args…> --ca-file <dir>/ca.pem` with `env`; returns the child, the URL it
/// printed first, the CA's PEM and the directory.
async fn spawn_sim(args: &[&str], env: (&str, &str)) -> (std::process::Child, String, Vec<u8>, tempfile::TempDir) {
    capstan_runtime::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .arg("sim")
        .args(args)
        .arg("--ca-file")
        .arg(&ca_file)
        .env(env.0, env.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("url=")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_string();
    let ca = std::fs::read(&ca_file).unwrap();
    (child, url, ca, dir)
}

/// SIGTERM, then the process must exit successfully within 10 s.
async fn stops_on_sigterm(mut child: std::process::Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}

/// Starts `capstan sim dcs` with `extra` flags; returns the child, a logged-in client's config
/// and the CA file's directory.
async fn start_sim(extra: &[&str], user: &str) -> (std::process::Child, DcsConfig, tempfile::TempDir) {
    let mut args = vec!["dcs", "--bind", "127.0.0.1:0", "--host-bind", "127.0.0.2:0"];
    args.extend_from_slice(extra);
    let (child, url, ca, dir) = spawn_sim(&args, ("CAPSTAN_SIM_PASSWORD", "Another-Passw0rd")).await;
    let mut config = DcsConfig::new(url.parse().unwrap(), user, "Another-Passw0rd");
    config.ca_bundle_pem = Some(ca);
    (child, config, dir)
}

#[tokio::test]
async fn dcs_simulator_serves_a_client_and_stops_on_sigterm() {
    let (child, config, _dir) = start_sim(&[], "capstan").await;
    let client = DcsClient::new(config).unwrap();
    let template = client.find_template("ubuntu-2204-tmpl").await.unwrap();
    assert!(template.urn.contains(":vms:"), "{template:?}");
    stops_on_sigterm(child).await;
}

/// README `sim dcs` flags: `--user`, `--clone-seconds` (a clone task runs that long) and
/// `--max-concurrent-tasks` (beyond it new tasks are refused with HTTP 503, as a busy VRM does).
#[tokio::test]
async fn dcs_simulator_flags_shape_its_behaviour() {
    use capstan_dcs::client::CloneSpec;
    let (mut child, config, _dir) = start_sim(
        &[
            "--user",
            "tester",
            "--clone-seconds",
            "3",
            "--max-concurrent-tasks",
            "1",
            "--error-rate",
            "0",
        ],
        "tester",
    )
    .await;
    let client = DcsClient::new(config).unwrap();
    let template = client.find_template("ubuntu-2204-tmpl").await.unwrap();
    let started = Instant::now();
    let first = client.clone_vm(&template, &CloneSpec::new("one")).await.unwrap();
    let busy = client.clone_vm(&template, &CloneSpec::new("two")).await.unwrap_err();
    assert_eq!(busy.status(), Some(503), "{busy:?}");
    assert!(busy.is_retryable());
    client
        .wait_task(&first.task(), Duration::from_millis(100), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the clone took --clone-seconds"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// README `sim dcs` flags: `--boot-seconds` (a start task takes that long), `--tools-seconds`
/// (the VM reports its IP that long after it runs) and
/// `--guest-emulation nodes-only` with `--guest-state-dir` (the VM boots the ISO in its drive:
/// its cloud-config's files land on the VM's disk under the state directory).
#[tokio::test]
async fn dcs_simulator_boots_guests_after_boot_seconds() {
    use capstan_dcs::client::CloneSpec;
    use capstan_dcs::iso::{BootstrapVolume, NoCloudSeed};
    let state = tempfile::tempdir().unwrap();
    let flags = [
        "--clone-seconds",
        "0",
        "--boot-seconds",
        "2",
        "--tools-seconds",
        "1",
        "--guest-emulation",
        "nodes-only",
        "--guest-state-dir",
        state.path().to_str().unwrap(),
    ];
    let (mut child, config, _dir) = start_sim(&flags, "capstan").await;
    let c = DcsClient::new(config).unwrap();
    let (poll, wait) = (Duration::from_millis(50), Duration::from_secs(30));
    let template = c.find_template("ubuntu-2204-tmpl").await.unwrap();
    let vm = c.clone_vm(&template, &CloneSpec::new("booted")).await.unwrap();
    c.wait_task(&vm.task(), poll, wait).await.unwrap();
    let seed = NoCloudSeed {
        instance_id: "uid-booted".into(),
        hostname: "booted".into(),
        user_data: b"#cloud-config\nwrite_files:\n- path: /etc/booted\n  content: from-the-iso\n".to_vec(),
        ..Default::default()
    };
    let iso = c
        .upload_iso(&vm.uri, "booted.iso", seed.to_iso().unwrap())
        .await
        .unwrap();
    let attach = c.attach_cdrom(&vm.uri, &iso.device_path).await.unwrap();
    c.wait_task(&attach, poll, wait).await.unwrap();
    let powered_on = Instant::now();
    let start = c.start_vm(&vm.uri).await.unwrap();
    c.wait_task(&start, poll, wait).await.unwrap();
    let booted_after = powered_on.elapsed();
    assert!(
        booted_after >= Duration::from_millis(1900),
        "running {booted_after:?} after power-on, --boot-seconds is 2"
    );

    let running = loop {
        let got = c.get_vm(&vm.uri).await.unwrap();
        if !got.ipv4_addresses().is_empty() {
            break got;
        }
        assert!(powered_on.elapsed() < wait, "no IP after {wait:?}");
        tokio::time::sleep(poll).await;
    };
    let ip_after = powered_on.elapsed();
    assert!(
        ip_after >= Duration::from_millis(2900),
        "IP reported {ip_after:?} after power-on, --boot-seconds 2 + --tools-seconds 1"
    );
    let booted = state.path().join("vms").join(running.id()).join("etc/booted");
    while !booted.exists() {
        assert!(powered_on.elapsed() < wait, "the guest never ran its cloud-config");
        tokio::time::sleep(poll).await;
    }
    assert_eq!(std::fs::read_to_string(&booted).unwrap().trim(), "from-the-iso");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// `capstan sim hcs`: the HCS simulator as a process; the HCS client signs its calls with the
/// access key and the secret key from `CAPSTAN_SIM_SECRET_KEY`, over TLS verified with the CA
/// file, and a wrong secret is refused; SIGTERM stops it cleanly.
#[tokio::test]
async fn hcs_simulator_serves_signed_calls_and_stops_on_sigterm() {
    use capstan_hcs::client::{HcsClient, HcsConfig, HcsError};
    let (child, url, ca, _dir) = spawn_sim(
        &[
            "hcs",
            "--bind",
            "127.0.0.1:0",
            "--access-key",
            "TESTAK",
            "--project-id",
            "p-1",
        ],
        ("CAPSTAN_SIM_SECRET_KEY", "test-secret-key"),
    )
    .await;
    let url: reqwest::Url = url.parse().unwrap();
    let config = |secret: &str| {
        let mut c = HcsConfig::new("sim.invalid", "sim-region-1", "p-1", "TESTAK", secret);
        c.endpoints.insert("iam".into(), url.clone());
        c.ca_bundle_pem = Some(ca.clone());
        c
    };
    let projects = HcsClient::new(config("test-secret-key"))
        .unwrap()
        .list_projects()
        .await
        .unwrap();
    assert_eq!(projects[0].id, "p-1");
    let err = HcsClient::new(config("wrong"))
        .unwrap()
        .list_projects()
        .await
        .unwrap_err();
    assert!(matches!(err, HcsError::Auth { .. }), "{err:?}");
    stops_on_sigterm(child).await;
}
