//! The vim25 client against the real vcsim (govmomi's simulator, built by `hack/testenv.sh`),
//! over HTTPS with a certificate of the test's own that the client verifies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_e2e::{Vcsim, VcsimOptions, VcsimTls, vcsim_test_tls};
use capstan_vsphere::client::*;

const WAIT: Duration = Duration::from_secs(30);

struct Sim {
    vcsim: Vcsim,
    certs: VcsimTls,
}

impl Sim {
    fn start(credentials: Option<(&str, &str)>) -> Sim {
        let certs = vcsim_test_tls().unwrap();
        let vcsim = Vcsim::start_with(VcsimOptions {
            tls: Some(certs.clone()),
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
        })
        .expect("vcsim (hack/testenv.sh builds it)");
        Sim { vcsim, certs }
    }

    /// A client config trusting the test CA, with the credentials from vcsim's URL.
    fn config(&self) -> VsphereConfig {
        let url: Url = self.vcsim.url().parse().unwrap();
        let (user, pass) = (
            url.username().to_string(),
            url.password().unwrap_or_default().to_string(),
        );
        let mut c = VsphereConfig::new(url, user, pass);
        c.tls = TlsTrust::CaBundle(self.certs.ca_pem.clone().into_bytes());
        c.request_timeout = Duration::from_secs(20);
        c
    }
}

/// Every call the client reported: (operation, outcome).
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<(String, CallOutcome)>>>);

impl Calls {
    fn observer(&self) -> Arc<dyn ApiObserver> {
        let calls = self.0.clone();
        Arc::new(move |c: &ApiCall<'_>| calls.lock().unwrap().push((c.operation.to_string(), c.outcome)))
    }

    fn count(&self, op: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|(o, _)| o == op).count()
    }
}

fn client(sim: &Sim, calls: &Calls) -> VsphereClient {
    VsphereClient::with_observer(sim.config(), calls.observer()).unwrap()
}

async fn find(c: &VsphereClient, path: &str) -> MoRef {
    c.find_by_inventory_path(path)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path} is in vcsim's default inventory"))
}

async fn run(c: &VsphereClient, task: Result<MoRef, VsphereError>) -> Result<TaskInfo, VsphereError> {
    c.wait_for_task(&task?, WAIT).await
}

#[tokio::test]
async fn login_service_content_and_default_inventory() {
    let sim = Sim::start(None);
    let calls = Calls::default();
    let c = client(&sim, &calls);
    c.login().await.unwrap();
    let content = c.service_content().await.unwrap();
    assert_eq!(content.api_type, "VirtualCenter");
    assert_eq!(content.session_manager, MoRef::new("SessionManager", "SessionManager"));
    let kinds = [
        ("/DC0", "Datacenter"),
        ("/DC0/vm", "Folder"),
        ("/DC0/vm/DC0_H0_VM0", "VirtualMachine"),
        ("/DC0/host/DC0_C0", "ClusterComputeResource"),
        ("/DC0/host/DC0_C0/Resources", "ResourcePool"),
        ("/DC0/datastore/LocalDS_0", "Datastore"),
        ("/DC0/network/DC0_DVPG0", "DistributedVirtualPortgroup"),
    ];
    for (path, kind) in kinds {
        assert_eq!(find(&c, path).await.kind, kind, "{path}");
    }
    assert_eq!(c.find_by_inventory_path("/DC0/vm/nope").await.unwrap(), None);
    let folder = find(&c, "/DC0/vm").await;
    let vm = find(&c, "/DC0/vm/DC0_H0_VM0").await;
    assert_eq!(c.find_child(&folder, "DC0_H0_VM0").await.unwrap(), Some(vm.clone()));
    let info = c.vm_info(&vm).await.unwrap();
    assert_eq!(info.name, "DC0_H0_VM0");
    assert_eq!(info.power_state, PowerState::PoweredOn, "vcsim autostarts its VMs");
    assert!(info.bios_uuid.is_some() && info.instance_uuid.is_some());
    assert_eq!(info.mac_addresses().len(), 1);
    assert_eq!(info.disks().count(), 1);
    // One login for all of it; every call reported under its SOAP method.
    assert_eq!(calls.count("Login"), 1);
    assert_eq!(calls.count("RetrieveServiceContent"), 1);
    assert!(calls.count("FindByInventoryPath") >= 8);
    assert!(calls.count("RetrievePropertiesEx") >= 1 && calls.count("FindChild") == 1);
    c.logout().await.unwrap();
    assert_eq!(calls.count("Logout"), 1);
}

#[tokio::test]
async fn property_pages_are_followed_with_continue() {
    let sim = Sim::start(None);
    let calls = Calls::default();
    let c = client(&sim, &calls);
    let mut vms = Vec::new();
    for p in ["/DC0/vm/DC0_H0_VM0", "/DC0/vm/DC0_H0_VM1", "/DC0/vm/DC0_C0_RP0_VM0"] {
        vms.push(find(&c, p).await);
    }
    let all = c
        .retrieve_objects(&vms, &["name", "runtime.powerState"], Some(1))
        .await
        .unwrap();
    let mut names: Vec<_> = all.iter().map(|o| o.text("name").unwrap().to_string()).collect();
    names.sort();
    assert_eq!(names, ["DC0_C0_RP0_VM0", "DC0_H0_VM0", "DC0_H0_VM1"]);
    assert_eq!(calls.count("ContinueRetrievePropertiesEx"), 2, "one page per object");
}

/// Everything a machine's life takes: clone with an instance UUID of ours, find it both ways,
/// read and rewrite its extraConfig, resize its disk, power it, destroy it.
#[tokio::test]
async fn clone_find_reconfigure_power_destroy() {
    let sim = Sim::start(None);
    let calls = Calls::default();
    let c = client(&sim, &calls);
    let template = find(&c, "/DC0/vm/DC0_H0_VM0").await;
    let folder = find(&c, "/DC0/vm").await;
    let uuid = "5c2a0b8e-6f1d-4c39-9a57-0d3e7b1f2a64";
    let spec = CloneSpec {
        location: RelocateSpec {
            datastore: Some(find(&c, "/DC0/datastore/LocalDS_0").await),
            pool: Some(find(&c, "/DC0/host/DC0_C0/Resources").await),
            disk_move_type: Some(DiskMoveType::MoveAllDiskBackingsAndConsolidate),
            ..RelocateSpec::default()
        },
        config: Some(ConfigSpec {
            instance_uuid: Some(uuid.into()),
            num_cpus: Some(2),
            memory_mb: Some(2048),
            extra_config: vec![
                OptionValue::new("guestinfo.userdata", "I2Nsb3VkLWNvbmZpZwo="),
                OptionValue::new("guestinfo.userdata.encoding", "base64"),
            ],
            ..ConfigSpec::default()
        }),
        ..CloneSpec::default()
    };
    let done = run(&c, c.clone_vm(&template, &folder, "capi-m1", &spec).await)
        .await
        .unwrap();
    let vm = done.result_moref().expect("a clone's result is its VM");
    // vcsim 0.46.3 quirk: CloneVM_Task ignores `spec.config` (instanceUuid, numCPUs, memoryMB,
    // extraConfig; its CloneVMTask copies them into a copy of the config it then drops), so
    // the same config goes in a ReconfigVM_Task, which vcsim honours. vCenter takes it at clone.
    let cloned = c.vm_info(&vm).await.unwrap();
    assert_ne!(
        cloned.instance_uuid.as_deref(),
        Some(uuid),
        "vcsim honours clone config now"
    );
    assert_eq!(cloned.extra_config_value("guestinfo.userdata"), None);
    run(&c, c.reconfigure_vm(&vm, spec.config.as_ref().unwrap()).await)
        .await
        .unwrap();
    assert_eq!(
        c.find_vm_by_uuid(uuid, UuidKind::Instance, None).await.unwrap(),
        Some(vm.clone())
    );
    let info = c.vm_info(&vm).await.unwrap();
    assert_eq!(info.instance_uuid.as_deref(), Some(uuid));
    let bios = info.bios_uuid.clone().unwrap();
    assert_ne!(bios, uuid);
    let dc = find(&c, "/DC0").await;
    assert_eq!(
        c.find_vm_by_uuid(&bios, UuidKind::Bios, Some(&dc)).await.unwrap(),
        Some(vm.clone())
    );
    assert_eq!(c.find_vm_by_uuid(uuid, UuidKind::Bios, None).await.unwrap(), None);
    assert_eq!(info.power_state, PowerState::PoweredOff, "powerOn=false is honoured");
    assert_eq!(info.mac_addresses().len(), 1);
    assert_eq!(
        info.extra_config_value("guestinfo.userdata"),
        Some("I2Nsb3VkLWNvbmZpZwo=")
    );
    let hw = c
        .retrieve_properties(&vm, &["config.hardware.numCPU", "config.hardware.memoryMB"])
        .await
        .unwrap();
    assert_eq!(
        (hw.text("config.hardware.numCPU"), hw.text("config.hardware.memoryMB")),
        (Some("2"), Some("2048"))
    );

    // A second clone of that name into the same folder: the task fails with DuplicateName.
    let dup = run(&c, c.clone_vm(&template, &folder, "capi-m1", &spec).await)
        .await
        .unwrap_err();
    match dup.fault() {
        Some(Fault::DuplicateName { object, .. }) => assert_eq!(object.as_ref(), Some(&vm)),
        other => panic!("expected DuplicateName, got {other:?} ({dup})"),
    }
    assert!(matches!(dup, VsphereError::Task { .. }) && !dup.is_retryable());

    reconfigure_extra_config_and_disk(&c, &vm, &info).await;
    power_cycle(&c, &vm).await;
    destroy(&c, &vm, uuid).await;
}

async fn reconfigure_extra_config_and_disk(c: &VsphereClient, vm: &MoRef, info: &VmInfo) {
    let disk = info.disks().next().expect("the clone has the template's disk").clone();
    let grown = disk.capacity_kb().unwrap() + 1024 * 1024;
    let spec = ConfigSpec {
        extra_config: vec![
            OptionValue::new("guestinfo.userdata", "c2Vjb25k"),
            OptionValue::new("guestinfo.metadata", "e30K"),
        ],
        device_change: vec![disk.resized(grown)],
        num_cpus: Some(4),
        ..ConfigSpec::default()
    };
    run(c, c.reconfigure_vm(vm, &spec).await).await.unwrap();
    let after = c.vm_info(vm).await.unwrap();
    assert_eq!(after.extra_config_value("guestinfo.userdata"), Some("c2Vjb25k"));
    assert_eq!(
        after
            .extra_config
            .iter()
            .filter(|o| o.key == "guestinfo.userdata")
            .count(),
        1,
        "replaced, not appended"
    );
    assert_eq!(after.extra_config_value("guestinfo.metadata"), Some("e30K"));
    assert_eq!(after.disks().next().unwrap().capacity_kb(), Some(grown));

    // Clearing: an empty value removes the key (vcsim 0.46 as vCenter; 0.24 kept it).
    let clear = ConfigSpec {
        extra_config: vec![
            OptionValue::clear("guestinfo.userdata"),
            OptionValue::clear("guestinfo.never-set"),
        ],
        ..ConfigSpec::default()
    };
    run(c, c.reconfigure_vm(vm, &clear).await).await.unwrap();
    let cleared = c.vm_info(vm).await.unwrap();
    assert_eq!(
        cleared.extra_config_value("guestinfo.userdata"),
        None,
        "{:?}",
        cleared.extra_config
    );
    assert_eq!(cleared.extra_config_value("guestinfo.metadata"), Some("e30K"));
    // vcsim quirk: clearing a key that was never set adds it with an empty value.
    assert_eq!(cleared.extra_config_value("guestinfo.never-set"), Some(""));

    // How Tools would report an address, the way vcsim takes it (`SET.guest.ipAddress`).
    let ip = ConfigSpec {
        extra_config: vec![OptionValue::new("SET.guest.ipAddress", "10.0.0.7")],
        ..ConfigSpec::default()
    };
    run(c, c.reconfigure_vm(vm, &ip).await).await.unwrap();
    let reported = c.vm_info(vm).await.unwrap();
    assert_eq!(reported.guest_ip.as_deref(), Some("10.0.0.7"));
    assert_eq!(
        reported.guest_nics.first().map(|n| n.ip_addresses.clone()),
        Some(vec!["10.0.0.7".to_string()])
    );
    assert_eq!(
        reported.guest_nics[0].mac_address.as_deref(),
        reported.mac_addresses().first().copied()
    );
    assert_eq!(
        reported.extra_config_value("SET.guest.ipAddress"),
        None,
        "not stored as a key"
    );
}

async fn power_state(c: &VsphereClient, vm: &MoRef) -> PowerState {
    c.vm_info(vm).await.unwrap().power_state
}

async fn power_cycle(c: &VsphereClient, vm: &MoRef) {
    run(c, c.power_on_vm(vm).await).await.unwrap();
    assert_eq!(power_state(c, vm).await, PowerState::PoweredOn);
    let again = run(c, c.power_on_vm(vm).await).await.unwrap_err();
    match again.fault() {
        Some(Fault::InvalidPowerState { existing, .. }) => assert_eq!(existing.as_deref(), Some("poweredOn")),
        other => panic!("expected InvalidPowerState, got {other:?}"),
    }
    // ShutdownGuest has no task; vcsim powers the VM off on its own (no Tools check).
    c.shutdown_guest(vm).await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while power_state(c, vm).await != PowerState::PoweredOff {
        assert!(std::time::Instant::now() < deadline, "ShutdownGuest never powered off");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let off = c.shutdown_guest(vm).await.unwrap_err();
    assert!(matches!(off.fault(), Some(Fault::InvalidPowerState { .. })), "{off}");
    assert!(matches!(
        off,
        VsphereError::Fault {
            method: "ShutdownGuest",
            ..
        }
    ));
}

async fn destroy(c: &VsphereClient, vm: &MoRef, uuid: &str) {
    run(c, c.power_on_vm(vm).await).await.unwrap();
    let on = run(c, c.destroy(vm).await).await.unwrap_err();
    assert!(matches!(on.fault(), Some(Fault::InvalidPowerState { .. })), "{on}");
    run(c, c.power_off_vm(vm).await).await.unwrap();
    run(c, c.destroy(vm).await).await.unwrap();
    let gone = c.vm_info(vm).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    match gone.fault() {
        Some(Fault::ManagedObjectNotFound { obj, .. }) => assert_eq!(obj.as_ref(), Some(vm)),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.find_vm_by_uuid(uuid, UuidKind::Instance, None).await.unwrap(), None);
    let stale = c.power_on_vm(vm).await.unwrap_err();
    assert!(stale.is_not_found() && !stale.is_retryable(), "{stale}");
}

/// The session ends behind the client's back (another session terminates it): the next call
/// logs in again, once, and succeeds.
#[tokio::test]
async fn an_ended_session_is_re_established_exactly_once() {
    let sim = Sim::start(None);
    let calls = Calls::default();
    let c = client(&sim, &calls);
    let admin = VsphereClient::new(sim.config()).unwrap();
    let vm = find(&c, "/DC0/vm/DC0_H0_VM0").await;
    let mine = c.current_session().await.unwrap().expect("logged in");
    assert!(
        !format!("{mine:?}").contains(mine.key.expose()),
        "the key stays out of Debug"
    );
    admin.terminate_sessions(&[&mine.key]).await.unwrap();
    assert_eq!(calls.count("Login"), 1);
    let info = c.vm_info(&vm).await.unwrap();
    assert_eq!(info.name, "DC0_H0_VM0");
    assert_eq!(calls.count("Login"), 2, "exactly one re-login");
    let now = c.current_session().await.unwrap().unwrap();
    assert_ne!(now.key, mine.key);
    assert_eq!(calls.count("Login"), 2);
    // Again, on a method that faults (the collector above answered with missing properties).
    admin.terminate_sessions(&[&now.key]).await.unwrap();
    find(&c, "/DC0/vm/DC0_H0_VM0").await;
    assert_eq!(calls.count("Login"), 3, "exactly one re-login");
    // Logged out by the client itself: the next call logs in again too.
    c.logout().await.unwrap();
    c.vm_info(&vm).await.unwrap();
    assert_eq!(calls.count("Login"), 4);
}

#[tokio::test]
async fn the_pool_shares_one_session_and_logs_it_out_on_eviction() {
    let sim = Sim::start(None);
    let calls = Calls::default();
    let pool = VsphereClientPool::new(calls.observer());
    let a = pool.client(sim.config()).unwrap();
    let b = pool.client(sim.config()).unwrap();
    find(&a, "/DC0").await;
    find(&b, "/DC0").await;
    assert_eq!((pool.len(), calls.count("Login")), (1, 1));
    let admin = VsphereClient::new(sim.config()).unwrap();
    let key = a.current_session().await.unwrap().unwrap().key;
    assert_eq!(pool.evict_idle(Duration::ZERO).await, 1);
    assert_eq!(calls.count("Logout"), 1);
    // The evicted session is gone on vcsim: terminating it again finds nothing.
    let gone = admin.terminate_sessions(&[&key]).await.unwrap_err();
    assert_eq!(gone.fault().map(Fault::fault_type), Some("NotFound"), "{gone}");
}

#[tokio::test]
async fn a_wrong_password_is_invalid_login_without_a_retry_storm() {
    let sim = Sim::start(Some(("capstan", "right-password")));
    let calls = Calls::default();
    let mut config = sim.config();
    assert_eq!(config.username, "capstan");
    config.password = "wrong-password".into();
    let c = VsphereClient::with_observer(config, calls.observer()).unwrap();
    for attempt in 1..=2 {
        let e = c.find_by_inventory_path("/DC0").await.unwrap_err();
        assert!(matches!(e.fault(), Some(Fault::InvalidLogin { .. })), "{e}");
        assert!(!e.is_retryable());
        assert!(!format!("{e} {e:?}").contains("wrong-password"));
        assert_eq!(calls.count("Login"), attempt, "one login per call, no retries");
    }
    assert_eq!(calls.count("FindByInventoryPath"), 2, "the call is reported as failed");
    let right = client(&sim, &Calls::default());
    find(&right, "/DC0").await;
}

#[tokio::test]
async fn tls_is_verified_by_ca_or_pinned_thumbprint_and_off_only_when_asked() {
    let sim = Sim::start(None);
    let with = |trust: TlsTrust| {
        let mut c = sim.config();
        c.tls = trust;
        VsphereClient::new(c).unwrap()
    };
    let works = |c: VsphereClient| async move { c.service_content().await.map(|_| ()) };
    works(with(TlsTrust::CaBundle(sim.certs.ca_pem.clone().into_bytes())))
        .await
        .unwrap();
    let pin: Thumbprint = sim.certs.thumbprint.parse().unwrap();
    works(with(TlsTrust::Thumbprint(pin))).await.unwrap();
    works(with(TlsTrust::Insecure)).await.unwrap();

    let other_ca = vcsim_test_tls().unwrap().ca_pem.into_bytes();
    let mut wrong_pin = pin;
    wrong_pin.0[0] ^= 1;
    for (what, trust) in [
        ("another CA", TlsTrust::CaBundle(other_ca)),
        ("a wrong thumbprint", TlsTrust::Thumbprint(wrong_pin)),
        ("the system roots", TlsTrust::System),
    ] {
        let e = works(with(trust)).await.unwrap_err();
        assert!(matches!(e, VsphereError::Transport { .. }), "{what}: {e}");
        assert!(!e.is_retryable(), "{what}: a refused certificate is not retried");
    }
    // The default is verification, never "no thumbprint means insecure".
    assert_eq!(TlsTrust::default(), TlsTrust::System);
}

#[tokio::test]
async fn placement_is_looked_up_once_and_a_missing_folder_is_asked_again() {
    let sim = Sim::start(None);
    let calls = Calls::default();
    let c = VsphereClient::with_observer(sim.config(), calls.observer()).unwrap();
    let first = c.find_placement("/DC0/vm").await.unwrap();
    assert!(first.is_some());
    assert_eq!(c.find_placement("/DC0/vm").await.unwrap(), first);
    assert_eq!(calls.count("FindByInventoryPath"), 1, "a found folder is remembered");
    // Not found is not remembered: the user may be creating it right now.
    assert!(c.find_placement("/DC0/vm/not-yet").await.unwrap().is_none());
    assert!(c.find_placement("/DC0/vm/not-yet").await.unwrap().is_none());
    assert_eq!(calls.count("FindByInventoryPath"), 3);
}
