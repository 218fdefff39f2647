//! The VRM client against the simulator over real HTTPS (the simulator's CA is trusted via the
//! client's CA bundle; nothing runs with verification off).

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_dcs::client::{ApiCall, CallOutcome, CloneSpec, NicSpec, StaticIpv4, TaskStatus, Vm, VmState};
use capstan_dcs::iso::{BootstrapVolume, NoCloudSeed};
use capstan_dcs::{DcsClient, DcsClientPool, DcsConfig, DcsError, PasswordEncoding};
use capstan_sim_dcs::{Latency, SimConfig, SimHandle, SimKnobs, Simulator, codes};

const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

fn fast() -> Latency {
    Latency {
        clone: Duration::from_millis(150),
        boot: Duration::from_millis(150),
        tools: Duration::from_millis(150),
        stop: Duration::from_millis(50),
        delete: Duration::from_millis(50),
        cdrom: Duration::from_millis(50),
        request: Duration::ZERO,
    }
}

async fn start_sim() -> SimHandle {
    Simulator::start(SimConfig {
        knobs: SimKnobs {
            latency: fast(),
            ..SimKnobs::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn config(sim: &SimHandle, password: &str) -> DcsConfig {
    let mut cfg = DcsConfig::new(sim.url().clone(), SimConfig::default().user, password);
    cfg.ca_bundle_pem = Some(sim.ca_pem().as_bytes().to_vec());
    cfg
}

fn client(sim: &SimHandle) -> DcsClient {
    DcsClient::new(config(sim, &SimConfig::default().password)).unwrap()
}

async fn eventually<F, Fut>(what: &str, mut f: F) -> Vm
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Vm>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn login_with_both_password_encodings() {
    let sim = start_sim().await;
    let plain = client(&sim);
    plain.login().await.unwrap();
    let mut cfg = config(&sim, &SimConfig::default().password);
    cfg.password_encoding = PasswordEncoding::Sha256Hex;
    let hashed = DcsClient::new(cfg).unwrap();
    hashed.login().await.unwrap();
    assert_eq!(hashed.site().await.unwrap().id(), "3F7B07E2");

    let logins = sim.state().logins();
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0].encoding, "plain");
    assert_eq!(logins[0].algorithm_header.as_deref(), Some("1"));
    assert_eq!(logins[1].encoding, "sha256");
    assert_eq!(logins[1].algorithm_header, None);
    for l in &logins {
        assert_eq!(l.user_type.as_deref(), Some("2"));
        assert_eq!(l.accept.as_deref(), Some("application/json;version=6.0;charset=UTF-8"));
    }

    plain.logout().await.unwrap();
    assert_eq!(sim.state().active_sessions(), 1);
}

#[tokio::test]
async fn wrong_password_is_terminal_and_never_printed() {
    let sim = start_sim().await;
    let secret = "Wr0ng-Secret-Value-42";
    for encoding in [PasswordEncoding::Plain, PasswordEncoding::Sha256Hex] {
        let mut cfg = config(&sim, secret);
        cfg.password_encoding = encoding;
        let c = DcsClient::new(cfg.clone()).unwrap();
        let err = c.list_sites().await.unwrap_err();
        assert!(matches!(err, DcsError::Auth { status: 401, .. }), "{err:?}");
        assert!(!err.is_retryable());
        for text in [
            format!("{err}"),
            format!("{err:?}"),
            format!("{c:?}"),
            format!("{cfg:?}"),
        ] {
            assert!(!text.contains(secret), "password leaked in {text}");
        }
        assert!(format!("{cfg:?}").contains("***"));
    }
    assert_eq!(sim.state().login_count(), 0);
}

#[tokio::test]
async fn tls_is_verified_by_default() {
    let sim = start_sim().await;
    let mut cfg = config(&sim, &SimConfig::default().password);
    cfg.ca_bundle_pem = None;
    let err = DcsClient::new(cfg).unwrap().login().await.unwrap_err();
    assert!(matches!(err, DcsError::Transport { .. }), "{err:?}");
    assert_eq!(
        sim.state().call_count("login"),
        0,
        "no request may pass an untrusted TLS handshake"
    );
}

#[tokio::test]
async fn expired_token_triggers_exactly_one_relogin() {
    let sim = start_sim().await;
    let c = client(&sim);
    c.list_sites().await.unwrap();
    assert_eq!(sim.state().login_count(), 1);

    sim.state().expire_tokens();
    // Many callers sharing the session hit the expired token at once: one login serves all.
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.list_vms(&[]).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(sim.state().login_count(), 2);

    // A token lifetime enforced by the server behaves the same. Long enough that the re-login
    // and the retried call fit in it on a loaded machine.
    sim.state().update_knobs(|k| k.token_ttl = Some(Duration::from_secs(2)));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    c.list_sites().await.unwrap();
    assert_eq!(sim.state().login_count(), 3);
}

#[tokio::test]
async fn clone_start_and_static_ip() {
    let sim = start_sim().await;
    let c = client(&sim);
    let template = c.find_template("ubuntu-2204-tmpl").await.unwrap();
    assert!(template.is_template);
    let pg = template.vm_config.nics[0].port_group_urn.clone();

    let spec = CloneSpec {
        hostname: Some("cp-1".into()),
        external_uuid: Some("6a1c9a8e-uid-cp-1".into()),
        cpu: Some(4),
        memory_mib: Some(8192),
        nics: vec![NicSpec {
            port_group_urn: pg,
            ipv4: Some(StaticIpv4 {
                address: Ipv4Addr::new(10, 243, 166, 41),
                prefix_len: 26,
                gateway: Some(Ipv4Addr::new(10, 243, 166, 1)),
                dns: vec![Ipv4Addr::new(10, 243, 132, 38)],
            }),
        }],
        ..CloneSpec::new("cp-1")
    };
    // Slow enough that the task is still running when asked, however loaded the machine.
    sim.state().update_knobs(|k| k.latency.clone = Duration::from_secs(3));
    let cloned = c.clone_vm(&template, &spec).await.unwrap();
    sim.state().update_knobs(|k| k.latency.clone = fast().clone);
    assert!(cloned.urn.starts_with("urn:sites:3F7B07E2:vms:i-"), "{}", cloned.urn);
    assert!(cloned.task_uri.starts_with("/service/sites/3F7B07E2/tasks/"));

    let task = c.get_task(&cloned.task_uri).await.unwrap();
    assert_eq!(task.status(), TaskStatus::Running);
    assert!(task.progress.unwrap() < 100);
    assert_eq!(c.get_vm(&cloned.uri).await.unwrap().state(), VmState::Creating);

    let done = c.wait_task(&cloned.task(), POLL, WAIT).await.unwrap();
    assert_eq!(done.progress, Some(100));
    assert_eq!(done.entity_urn.as_deref(), Some(cloned.urn.as_str()));
    // The task can also be read by URN.
    assert_eq!(
        c.get_task(&cloned.task_urn).await.unwrap().status(),
        TaskStatus::Success
    );

    let vm = c.get_vm(&cloned.urn).await.unwrap();
    assert_eq!(vm.state(), VmState::Stopped, "autoBoot was off");
    assert_eq!(vm.vm_config.cpu.as_ref().unwrap().quantity, 4);
    assert_eq!(vm.vm_config.memory.as_ref().unwrap().quantity_mb, 8192);
    assert_eq!(vm.external_uuid(), Some("6a1c9a8e-uid-cp-1"));
    assert!(vm.ipv4_addresses().is_empty());

    let start = c.start_vm(vm.id()).await.unwrap();
    c.wait_task(&start, POLL, WAIT).await.unwrap();
    let running = eventually("IP of cp-1", || async {
        let v = c.get_vm(&cloned.urn).await.unwrap();
        (!v.ipv4_addresses().is_empty()).then_some(v)
    })
    .await;
    assert_eq!(running.state(), VmState::Running);
    assert_eq!(running.ipv4_addresses(), vec![Ipv4Addr::new(10, 243, 166, 41)]);
    assert_eq!(running.pv_driver_status.as_deref(), Some("running"));

    let view = sim.state().vm_by_name("cp-1").unwrap();
    assert_eq!(view.hostname.as_deref(), Some("cp-1"));
    assert_eq!(view.static_ips, vec![Some("10.243.166.41".to_string())]);
}

#[tokio::test]
async fn auto_boot_with_dhcp_then_stop_and_delete() {
    let sim = start_sim().await;
    let c = client(&sim);
    let template = c.find_template("ubuntu-2204-tmpl").await.unwrap();
    let spec = CloneSpec {
        auto_boot: true,
        nics: vec![NicSpec {
            port_group_urn: template.vm_config.nics[0].port_group_urn.clone(),
            ipv4: None,
        }],
        ..CloneSpec::new("worker-a")
    };
    let cloned = c.clone_vm(&template, &spec).await.unwrap();
    let vm = eventually("DHCP address", || async {
        let v = c.get_vm(&cloned.uri).await.unwrap();
        (!v.ipv4_addresses().is_empty()).then_some(v)
    })
    .await;
    assert_eq!(vm.state(), VmState::Running);
    let ip = vm.ipv4_addresses()[0];
    let (lo, hi) = SimConfig::default().dhcp_range;
    assert!(ip >= lo && ip <= hi, "{ip} outside the DHCP range");

    // The guest ignores the ACPI request, so power_off has to fall back to force.
    sim.state().update_knobs(|k| k.ignore_safe_stop = true);
    c.power_off(&cloned.uri, Duration::from_millis(500), POLL)
        .await
        .unwrap();
    let stopped = c.get_vm(&cloned.uri).await.unwrap();
    assert_eq!(stopped.state(), VmState::Stopped);
    assert!(
        stopped.ipv4_addresses().is_empty(),
        "tools stop reporting when the guest is off"
    );

    let del = c.delete_vm(&cloned.uri).await.unwrap();
    c.wait_task(&del, POLL, WAIT).await.unwrap();
    let err = c.get_vm(&cloned.uri).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(sim.state().vm_by_name("worker-a").is_none());
}

#[tokio::test]
async fn lookups_match_exactly() {
    let sim = start_sim().await;
    let state = sim.state();
    state.insert_vm("web-10", Some("uid-10"), false);
    let web1 = state.insert_vm("web-1", Some("uid-1"), false);
    state.insert_vm("old-web-1", Some("uid-1-old"), false);
    state.insert_vm("web-1", None, true);
    let c = client(&sim);

    // The server-side name filter is fuzzy ...
    let fuzzy = c.list_vms(&[("name", "web-1")]).await.unwrap();
    assert_eq!(fuzzy.len(), 4);
    // ... the client's answer is not.
    let found = c.find_vm_by_name("web-1").await.unwrap().unwrap();
    assert_eq!(found.id(), web1);
    assert!(!found.is_template);
    assert!(c.find_vm_by_name("web").await.unwrap().is_none());

    let by_uid = c.find_vm_by_external_uuid("uid-1").await.unwrap().unwrap();
    assert_eq!(by_uid.id(), web1);
    assert!(c.find_vm_by_external_uuid("uid-404").await.unwrap().is_none());

    state.insert_vm("twin", None, false);
    state.insert_vm("twin", None, false);
    let err = c.find_vm_by_name("twin").await.unwrap_err();
    assert!(matches!(err, DcsError::Ambiguous { count: 2, .. }), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn lookups_follow_pagination() {
    let sim = start_sim().await;
    for i in 0..230 {
        sim.state()
            .insert_vm(&format!("bulk-{i:03}"), Some(&format!("bulk-uid-{i}")), false);
    }
    let c = client(&sim);
    assert_eq!(c.list_vms(&[("name", "bulk-")]).await.unwrap().len(), 230);
    assert_eq!(sim.state().call_count("list_vms"), 3);
    let v = c.find_vm_by_name("bulk-229").await.unwrap().unwrap();
    assert_eq!(v.external_uuid(), Some("bulk-uid-229"));
}

#[tokio::test]
async fn missing_objects_are_terminal_not_found() {
    let sim = start_sim().await;
    let c = client(&sim);
    let err = c.delete_vm("i-7FFFFFFF").await.unwrap_err();
    assert!(err.is_not_found() && !err.is_retryable(), "{err:?}");
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.error_code(), Some(codes::VM_NOT_FOUND));

    let err = c.find_template("no-such-template").await.unwrap_err();
    assert!(err.is_not_found() && !err.is_retryable(), "{err:?}");

    let err = c.get_task("/service/sites/3F7B07E2/tasks/999999").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");

    let mut cfg = config(&sim, &SimConfig::default().password);
    cfg.site = Some("DEADBEEF".into());
    let err = DcsClient::new(cfg).unwrap().site().await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

type Observed = (String, CallOutcome, Option<u16>);

#[tokio::test]
async fn injected_server_errors_are_retryable_and_reported() {
    let sim = start_sim().await;
    let seen: Arc<Mutex<Vec<Observed>>> = Arc::default();
    let sink = seen.clone();
    let observer = move |call: &ApiCall<'_>| {
        sink.lock()
            .unwrap()
            .push((call.operation.to_string(), call.outcome, call.status));
    };
    let c = DcsClient::with_observer(config(&sim, &SimConfig::default().password), Arc::new(observer)).unwrap();
    c.login().await.unwrap();

    sim.state().update_knobs(|k| k.error_rate = 1.0);
    let err = c.list_sites().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.error_code(), Some(codes::INJECTED));

    sim.state().update_knobs(|k| k.error_rate = 0.0);
    c.list_sites().await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            ("login".to_string(), CallOutcome::Success, None),
            ("list_sites".to_string(), CallOutcome::RetryableError, Some(500)),
            ("list_sites".to_string(), CallOutcome::Success, None),
        ]
    );
    assert_eq!(sim.state().call_count("list_sites"), 2);
}

#[tokio::test]
async fn concurrent_task_limit_is_retryable() {
    let sim = start_sim().await;
    sim.state().update_knobs(|k| {
        k.max_concurrent_tasks = Some(1);
        k.latency.clone = Duration::from_secs(30);
    });
    let c = client(&sim);
    let template = c.find_template("ubuntu-2204-tmpl").await.unwrap();
    c.clone_vm(&template, &CloneSpec::new("first")).await.unwrap();
    let err = c.clone_vm(&template, &CloneSpec::new("second")).await.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err:?}");
    assert_eq!(err.error_code(), Some(codes::TOO_MANY_TASKS));
    assert!(err.is_retryable());
    assert!(sim.state().vm_by_name("second").is_none());
}

#[tokio::test]
async fn failed_clone_task_is_reported() {
    let sim = start_sim().await;
    sim.state().update_knobs(|k| k.task_failure_rate = 1.0);
    let c = client(&sim);
    let template = c.find_template("ubuntu-2204-tmpl").await.unwrap();
    let cloned = c.clone_vm(&template, &CloneSpec::new("doomed")).await.unwrap();
    let err = c.wait_task(&cloned.task(), POLL, WAIT).await.unwrap_err();
    assert!(
        matches!(&err, DcsError::TaskFailed { reason, .. } if reason.contains("Simulated clone failure")),
        "{err:?}"
    );
    let task = c.get_task(&cloned.task_uri).await.unwrap();
    assert_eq!(task.status(), TaskStatus::Failed);
    assert_eq!(task.progress, Some(100));
    // As on VRM, the failed clone leaves a broken VM behind for the caller to delete.
    let broken = c.find_vm_by_name("doomed").await.unwrap().expect("a broken VM");
    assert_eq!(broken.status, "unknown");
    let del = c.delete_vm(&broken.uri).await.unwrap();
    c.wait_task(&del, POLL, WAIT).await.unwrap();
    assert!(c.find_vm_by_name("doomed").await.unwrap().is_none());
}

/// Issue 10 §5: the simulator refuses what VRM refuses, so the client cannot rely on leniency:
/// deleting a running VM, cloning with zero CPUs, to an unknown location or datastore.
#[tokio::test]
async fn simulator_refuses_what_vrm_refuses() {
    let sim = start_sim().await;
    let c = client(&sim);
    let template = c.find_template("ubuntu-2204-tmpl").await.unwrap();
    let mut spec = CloneSpec::new("running");
    spec.auto_boot = true;
    let cloned = c.clone_vm(&template, &spec).await.unwrap();
    c.wait_task(&cloned.task(), POLL, WAIT).await.unwrap();
    eventually("running", || async {
        c.get_vm(&cloned.uri).await.ok().filter(|v| v.status == "running")
    })
    .await;
    let err = c.delete_vm(&cloned.uri).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err:?}");
    assert!(err.to_string().contains("stop it before deleting it"), "{err}");

    let mut zero = CloneSpec::new("zero");
    zero.cpu = Some(0);
    assert_eq!(c.clone_vm(&template, &zero).await.unwrap_err().status(), Some(400));
    let mut nowhere = CloneSpec::new("nowhere");
    nowhere.location = Some("urn:sites:S:clusters:999".into());
    assert_eq!(c.clone_vm(&template, &nowhere).await.unwrap_err().status(), Some(404));
    let mut no_ds = CloneSpec::new("nods");
    no_ds.disks.push(capstan_dcs::client::DiskSpec {
        sequence_num: 2,
        size_gb: 10,
        datastore_urn: Some("urn:sites:S:datastores:999".into()),
        thin: true,
    });
    assert_eq!(c.clone_vm(&template, &no_ds).await.unwrap_err().status(), Some(404));
    assert!(sim.state().vm_by_name("zero").is_none() && sim.state().vm_by_name("nods").is_none());
}

#[tokio::test]
async fn iso_upload_and_cdrom_attach() {
    let sim = start_sim().await;
    let c = client(&sim);
    let template = c.find_template("ubuntu-2204-tmpl").await.unwrap();
    let cloned = c.clone_vm(&template, &CloneSpec::new("cp-iso")).await.unwrap();
    c.wait_task(&cloned.task(), POLL, WAIT).await.unwrap();

    let seed = NoCloudSeed {
        instance_id: "uid-cp-iso".into(),
        hostname: "cp-iso".into(),
        user_data: b"#cloud-config\nruncmd:\n  - kubeadm init\n".to_vec(),
        network_config: None,
        provider_id: None,
    };
    let uploaded = c
        .upload_iso(&cloned.uri, "cp-iso-cidata.iso", seed.to_iso().unwrap())
        .await
        .unwrap();
    let attach = c.attach_cdrom(&cloned.uri, &uploaded.device_path).await.unwrap();
    c.wait_task(&attach, POLL, WAIT).await.unwrap();

    let view = sim.state().vm_by_name("cp-iso").unwrap();
    assert_eq!(view.cdrom.as_deref(), Some(uploaded.device_path.as_str()));
    assert_eq!(view.cdrom_label.as_deref(), Some("cidata"));
    let mut names: Vec<&str> = view.cdrom_files.iter().map(|f| f.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["meta-data", "network-config", "user-data"]);
    for f in seed.files() {
        let got = view.cdrom_files.iter().find(|g| g.name == f.name).unwrap();
        assert_eq!(got.data, f.data, "{}", f.name);
    }
    assert!(c.get_vm(&cloned.uri).await.unwrap().cdrom_loaded());

    let detach = c.detach_cdrom(&cloned.uri).await.unwrap();
    c.wait_task(&detach, POLL, WAIT).await.unwrap();
    assert_eq!(sim.state().vm_by_name("cp-iso").unwrap().cdrom, None);

    // Attaching something never uploaded is refused.
    let err = c.attach_cdrom(&cloned.uri, "i-00000001@other.iso").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(sim.state().call_count("upload_iso"), 1);

    // The image goes from VRM storage once detached; removing it again is no error.
    assert_eq!(sim.state().uploaded_images().len(), 1);
    c.remove_uploaded_iso(&cloned.uri, "cp-iso-cidata.iso").await.unwrap();
    assert!(sim.state().uploaded_images().is_empty());
    c.remove_uploaded_iso(&cloned.uri, "cp-iso-cidata.iso").await.unwrap();
}

/// Issue 10 §1: the upload carries the session token, so it goes only to VRM or a host in VRM's
/// own inventory: an answer naming any other address is refused before a byte (or the token)
/// is sent.
/// Issue 10 §5: the bytes go to the physical host (its own address, port and certificate, the
/// `ip` VRM's host inventory lists), not to VRM; VRM itself takes no upload.
#[tokio::test]
async fn iso_bytes_go_to_the_host_not_to_vrm() {
    let sim = start_sim().await;
    assert_ne!(sim.host_url().host_str(), sim.url().host_str());
    assert_ne!(sim.host_url().port(), sim.url().port());
    let c = client(&sim);
    let hosts = c.host_addresses().await.unwrap();
    assert_eq!(hosts, [sim.host_url().host_str().unwrap()]);
    let template = c.find_template("ubuntu-2204-tmpl").await.unwrap();
    let cloned = c.clone_vm(&template, &CloneSpec::new("cp-host")).await.unwrap();
    c.wait_task(&cloned.task(), POLL, WAIT).await.unwrap();
    c.upload_iso(&cloned.uri, "cp-host.iso", b"iso bytes".to_vec())
        .await
        .unwrap();
    let id = sim.state().vm_by_name("cp-host").unwrap().id;
    assert_eq!(sim.state().uploaded_images(), [(id, "cp-host.iso".to_string())]);

    // VRM's own address serves no upload path, and the host serves no VRM API.
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    for (base, path) in [(sim.url(), "/upload/anything"), (sim.host_url(), "/service/sites")] {
        let status = http
            .request(reqwest::Method::PUT, base.join(path).unwrap())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{base}{path}");
    }
}

#[tokio::test]
async fn iso_upload_to_an_address_outside_the_inventory_is_refused() {
    let sim = start_sim().await;
    let c = client(&sim);
    let template = c.find_template("ubuntu-2204-tmpl").await.unwrap();
    let cloned = c.clone_vm(&template, &CloneSpec::new("cp-evil")).await.unwrap();
    c.wait_task(&cloned.task(), POLL, WAIT).await.unwrap();
    sim.state()
        .update_knobs(|k| k.upload_base_override = Some("https://collector.example:8443".into()));
    let err = c
        .upload_iso(&cloned.uri, "cp-evil.iso", b"iso bytes".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(err, DcsError::UntrustedUploadTarget { .. }), "{err:?}");
    assert!(err.to_string().contains("collector.example"), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(sim.state().call_count("upload_iso"), 0, "nothing was sent");
}

#[tokio::test]
async fn pool_shares_one_session() {
    let sim = start_sim().await;
    let pool = DcsClientPool::default();
    let a = pool.client(config(&sim, &SimConfig::default().password)).unwrap();
    let b = pool.client(config(&sim, &SimConfig::default().password)).unwrap();
    a.list_sites().await.unwrap();
    b.list_vms(&[]).await.unwrap();
    assert_eq!(sim.state().login_count(), 1);

    // A rotated password gives a fresh client (and session) instead of the stale one.
    let rotated = pool.client(config(&sim, "rotated-but-wrong")).unwrap();
    assert!(matches!(rotated.login().await.unwrap_err(), DcsError::Auth { .. }));
}

/// Issue 10 §2: two InfraClusters with the same user but different TLS settings used to replace
/// each other's client on every call (a login per call); evicted sessions were never logged out.
#[tokio::test]
async fn pool_keys_by_every_setting_and_logs_out_what_it_evicts() {
    let sim = start_sim().await;
    let pool = DcsClientPool::default();
    let pinned = config(&sim, &SimConfig::default().password);
    let mut other = pinned.clone();
    other.request_timeout = pinned.request_timeout + std::time::Duration::from_secs(1);
    for _ in 0..5 {
        pool.client(pinned.clone()).unwrap().list_sites().await.unwrap();
        pool.client(other.clone()).unwrap().list_sites().await.unwrap();
    }
    assert_eq!(sim.state().login_count(), 2, "one session per distinct setting, reused");
    assert_eq!(pool.len(), 2);
    assert_eq!(sim.state().active_sessions(), 2);
    assert_eq!(pool.evict_idle(std::time::Duration::ZERO).await, 2);
    assert!(pool.is_empty());
    assert_eq!(
        sim.state().active_sessions(),
        0,
        "evicted sessions are logged out on VRM"
    );
}

#[tokio::test]
async fn unsupported_api_version_is_terminal() {
    let sim = start_sim().await;
    sim.state()
        .update_knobs(|k| k.supported_versions = Some(vec!["8.0".into()]));
    let c = client(&sim);
    let err = c.login().await.unwrap_err();
    assert_eq!(err.error_code(), Some(codes::VERSION_NOT_SUPPORTED), "{err:?}");
    assert!(!err.is_retryable());

    let mut cfg = config(&sim, &SimConfig::default().password);
    cfg.api_version = "8.0".into();
    DcsClient::new(cfg).unwrap().login().await.unwrap();
}

#[tokio::test]
async fn inventory_names_resolve_to_urns() {
    let sim = start_sim().await;
    let c = client(&sim);
    let pg = c.find_port_group("ManagementDVS", "VLAN-329").await.unwrap();
    assert_eq!(pg.urn, "urn:sites:3F7B07E2:dvswitchs:1:portgroups:1");
    let ds = c.find_datastore("ds1").await.unwrap();
    assert_eq!(ds.urn, "urn:sites:3F7B07E2:datastores:41");
    let cluster = c.find_cluster("cluster-sim").await.unwrap();
    assert_eq!(cluster.urn, "urn:sites:3F7B07E2:clusters:117");

    // A wave of machines asks the same questions: answered once a minute, not once per machine.
    let calls = sim.state().call_counts();
    for _ in 0..3 {
        assert_eq!(c.find_port_group("ManagementDVS", "VLAN-329").await.unwrap(), pg);
        assert_eq!(c.find_datastore("ds1").await.unwrap(), ds);
    }
    assert_eq!(sim.state().call_counts(), calls, "resolved names are remembered");

    // A miss is never remembered.
    let err = c.find_port_group("ManagementDVS", "VLAN-999").await.unwrap_err();
    assert!(err.is_not_found() && !err.is_retryable(), "{err:?}");
    let err = c.find_port_group("ManagementDVS", "VLAN-999").await.unwrap_err();
    assert!(err.is_not_found() && !err.is_retryable(), "{err:?}");
    let err = c.find_port_group("NoSuchDVS", "VLAN-329").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");

    // A port group URN the VRM does not know makes the clone fail with a 404, not a bad VM.
    let template = c.find_template("ubuntu-2204-tmpl").await.unwrap();
    let spec = CloneSpec {
        nics: vec![NicSpec {
            port_group_urn: "urn:sites:3F7B07E2:dvswitchs:1:portgroups:99".into(),
            ipv4: None,
        }],
        ..CloneSpec::new("bad-net")
    };
    let err = c.clone_vm(&template, &spec).await.unwrap_err();
    assert_eq!(err.error_code(), Some(codes::PORT_GROUP_NOT_FOUND), "{err:?}");
    assert!(sim.state().vm_by_name("bad-net").is_none());
}

/// With guest emulation on, a VM powered on with a NoCloud ISO boots it: what it did and why a
/// boot failed show in the simulator's VM view, and a deleted VM's guest is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powered_on_vms_boot_the_iso_in_their_drive() {
    use capstan_guest::{GuestOptions, GuestStatus, Guests, Mode};
    let disks = tempfile::tempdir().unwrap();
    let guests = Guests::new(GuestOptions {
        mode: Mode::NodesOnly,
        ..GuestOptions::new(disks.path())
    });
    let sim = Simulator::start(SimConfig {
        knobs: SimKnobs {
            latency: fast(),
            ..SimKnobs::default()
        },
        guests: Some(guests.clone()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = client(&sim);
    let template = c.find_template("ubuntu-2204-tmpl").await.unwrap();
    let boot = |name: &'static str, user_data: &'static [u8]| {
        let c = c.clone();
        let template = template.clone();
        async move {
            let cloned = c.clone_vm(&template, &CloneSpec::new(name)).await.unwrap();
            c.wait_task(&cloned.task(), POLL, WAIT).await.unwrap();
            let seed = NoCloudSeed {
                instance_id: format!("uid-{name}"),
                hostname: name.into(),
                user_data: user_data.to_vec(),
                ..Default::default()
            };
            let up = c
                .upload_iso(&cloned.uri, &format!("{name}.iso"), seed.to_iso().unwrap())
                .await
                .unwrap();
            let t = c.attach_cdrom(&cloned.uri, &up.device_path).await.unwrap();
            c.wait_task(&t, POLL, WAIT).await.unwrap();
            let t = c.start_vm(&cloned.uri).await.unwrap();
            c.wait_task(&t, POLL, WAIT).await.unwrap();
            cloned.uri
        }
    };
    let settled = |name: &'static str| {
        let sim = &sim;
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                match sim.state().vm_by_name(name).and_then(|v| v.guest) {
                    Some(GuestStatus::Booting) | None if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(POLL).await
                    }
                    other => return other,
                }
            }
        }
    };
    let ok = boot(
        "vm-ok",
        b"## template: jinja\n#cloud-config\nwrite_files:\n- path: /etc/hostname-seen\n  content: \"{{ ds.meta_data.local_hostname }}\"\nruncmd:\n- systemctl restart chronyd\n",
    )
    .await;
    assert_eq!(settled("vm-ok").await, Some(GuestStatus::Running { node: None }));
    let id = sim.state().vm_by_name("vm-ok").unwrap().id;
    assert!(
        guests.log(&id).iter().any(|l| l.contains("systemctl restart chronyd")),
        "{:?}",
        guests.log(&id)
    );
    let seen = std::fs::read_to_string(disks.path().join("vms").join(&id).join("etc/hostname-seen")).unwrap();
    assert_eq!(seen.trim(), "vm-ok");

    boot("vm-bad", b"runcmd:\n- kubeadm init\n").await;
    match settled("vm-bad").await {
        Some(GuestStatus::Failed { reason }) => assert!(reason.contains("#cloud-config"), "{reason}"),
        other => panic!("expected a failed boot, got {other:?}"),
    }

    // VRM deletes stopped VMs only.
    let t = c.stop_vm(&ok, capstan_dcs::client::StopMode::Force).await.unwrap();
    c.wait_task(&t, POLL, WAIT).await.unwrap();
    let t = c.delete_vm(&ok).await.unwrap();
    c.wait_task(&t, POLL, WAIT).await.unwrap();
    assert_eq!(guests.status(&id), None);
    assert!(!disks.path().join("vms").join(&id).exists());
}
