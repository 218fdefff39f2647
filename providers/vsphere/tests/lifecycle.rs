//! The vSphere provider end to end: a real kube-apiserver with the upstream CAPI CRDs, the real
//! vcsim over HTTPS with a certificate of the test's own (verified by the provider), and the test
//! acting as CAPI core and as VMware Tools (it reports the guest's address through
//! `SET.guest.ipAddress`, which is how vcsim takes what Tools would say).

use std::time::Duration;

use base64::Engine;
use capstan_api::conditions;
use capstan_e2e::manager::RunningProvider;
use capstan_e2e::objects::capi::{self, Placement};
use capstan_e2e::{TestEnv, Vcsim, VcsimOptions, VcsimTls, vcsim_test_tls, wait_for, wait_for_value};
use capstan_vsphere::api::{VCenterCluster, VCenterMachine};
use capstan_vsphere::client::{
    ConfigSpec, MoRef, OptionValue, PowerState, TlsTrust, UuidKind, VsphereClient, VsphereConfig,
};
use capstan_vsphere::{Options, bootstrap};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
const TEMPLATE: &str = "DC0_H0_VM0";
/// The template's own port group: vcsim reports `SET.guest.ipAddress` on the NIC it has.
const NETWORK: &str = "DC0_DVPG0";

struct World {
    _env: TestEnv,
    client: Client,
    vcsim: Vcsim,
    tls: VcsimTls,
    /// The test's own view of vcsim, as an operator with govc would look.
    vc: VsphereClient,
    manager: RunningProvider,
}

impl World {
    async fn start(options: Options) -> World {
        let tls = vcsim_test_tls().unwrap();
        let vcsim = Vcsim::start_with(VcsimOptions {
            tls: Some(tls.clone()),
            credentials: Some(("capstan".into(), "vc-Passw0rd".into())),
        })
        .expect("vcsim (hack/testenv.sh builds it)");
        let env = TestEnv::start().await.unwrap();
        env.install_crds(&capstan_vsphere::api::crds()).await.unwrap();
        let client = env.client().await.unwrap();
        let mut config = VsphereConfig::new(vcsim.server().parse().unwrap(), "capstan", "vc-Passw0rd".to_string());
        config.tls = TlsTrust::CaBundle(tls.ca_pem.clone().into_bytes());
        let vc = VsphereClient::new(config).unwrap();
        let provider = capstan_vsphere::lifecycle_provider_with(options)
            .with_poll_interval(Duration::from_millis(200))
            .with_resync_interval(Duration::from_secs(2))
            .with_backoff(Duration::from_millis(100), Duration::from_secs(2));
        let manager = RunningProvider::start(provider, client.clone());
        World {
            _env: env,
            client,
            vcsim,
            tls,
            vc,
            manager,
        }
    }

    /// Cluster → VCenterCluster (owned) + credentials, endpoint the user's (kube-vip's VIP).
    async fn cluster(&self, name: &str) {
        capstan_e2e::objects::create::<Secret>(
            &self.client,
            json!({
                "metadata": {"name": format!("{name}-vc")},
                "stringData": {"username": "capstan", "password": "vc-Passw0rd"}
            }),
        )
        .await;
        let owner = capi::cluster(&self.client, name, "VCenterCluster", Some(("127.0.0.1", 6443))).await;
        capstan_e2e::objects::create::<VCenterCluster>(
            &self.client,
            json!({
                "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "VCenterCluster",
                "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": name}, "ownerReferences": [owner]},
                "spec": {
                    "server": self.vcsim.server(),
                    "datacenter": "DC0",
                    "credentialsSecretRef": {"name": format!("{name}-vc")},
                    "tls": {"caBundle": self.tls.ca_pem},
                    "controlPlaneEndpoint": {"host": "127.0.0.1", "port": 6443},
                    "failureDomains": [
                        {"name": "zone-a", "computeCluster": "DC0_C0", "datastore": "LocalDS_0", "networks": [NETWORK]}
                    ]
                }
            }),
        )
        .await;
        assert!(
            wait_for(WAIT, || async {
                self.vcenter_cluster(name)
                    .await
                    .and_then(|c| c.status?.initialization?.provisioned)
                    .unwrap_or(false)
            })
            .await,
            "VCenterCluster {name} never provisioned: {:?}",
            self.vcenter_cluster(name).await.and_then(|c| c.status)
        );
        capi::mark_infrastructure_provisioned(&self.client, name).await;
    }

    /// A Machine, its bootstrap data (`format`: cloud-config or ignition) and its VCenterMachine.
    async fn machine(&self, cluster: &str, name: &str, format: &str, placement: Placement<'_>, spec: Value) {
        let data = match format {
            "ignition" => json!({"ignition": {"version": "3.4.0"}}).to_string(),
            _ => format!("#cloud-config\nhostname: {name}\n"),
        };
        let owner = capi::machine(&self.client, cluster, name, "VCenterMachine", placement, &data).await;
        Api::<Secret>::namespaced(self.client.clone(), "default")
            .patch(
                &format!("{name}-boot"),
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"format": format}})),
            )
            .await
            .unwrap();
        let mut full = json!({
            "template": TEMPLATE, "cloneMode": "fullClone", "numCPUs": 2, "memoryMiB": 2048,
            "network": {"devices": [{"networkName": NETWORK, "dhcp4": true}]}
        });
        if let (Value::Object(a), Value::Object(b)) = (&mut full, spec) {
            a.extend(b);
        }
        capstan_e2e::objects::create::<VCenterMachine>(
            &self.client,
            json!({
                "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "VCenterMachine",
                "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": cluster}, "ownerReferences": [owner]},
                "spec": full
            }),
        )
        .await;
    }

    async fn vcenter_cluster(&self, name: &str) -> Option<VCenterCluster> {
        Api::<VCenterCluster>::namespaced(self.client.clone(), "default")
            .get_opt(name)
            .await
            .unwrap()
    }

    async fn vcenter_machine(&self, name: &str) -> Option<VCenterMachine> {
        Api::<VCenterMachine>::namespaced(self.client.clone(), "default")
            .get_opt(name)
            .await
            .unwrap()
    }

    async fn condition(&self, name: &str, condition: &str) -> Option<(String, String)> {
        let m = self.vcenter_machine(name).await?;
        conditions::get(&m.status?.conditions, condition).map(|c| (c.status.clone(), c.reason.clone()))
    }

    async fn provisioned(&self, name: &str) -> bool {
        self.vcenter_machine(name)
            .await
            .and_then(|m| m.status?.initialization?.provisioned)
            .unwrap_or(false)
    }

    /// The VM of the machine `name`, found the way an operator would: by its instance UUID,
    /// which Capstan sets to the VCenterMachine's UID.
    async fn vm_of(&self, name: &str) -> Option<MoRef> {
        let uid = self.vcenter_machine(name).await?.uid()?;
        self.vc.find_vm_by_uuid(&uid, UuidKind::Instance, None).await.unwrap()
    }

    /// The names of the VMs in the datacenter's VM folder, sorted.
    async fn vm_names(&self) -> Vec<String> {
        self.vc.vm_names_under("/DC0/vm").await.unwrap()
    }

    /// What VMware Tools do once the guest has an address: report it.
    async fn report_ip(&self, vm: &MoRef, ip: &str) {
        let spec = ConfigSpec {
            extra_config: vec![OptionValue::new("SET.guest.ipAddress", ip)],
            ..ConfigSpec::default()
        };
        let task = self.vc.reconfigure_vm(vm, &spec).await.unwrap();
        self.vc.wait_for_task(&task, WAIT).await.unwrap();
    }

    /// Waits for the machine's VM to be powered on, reports `ip` for it and waits for the
    /// machine to be provisioned.
    async fn boot(&self, name: &str, ip: &str) -> MoRef {
        let on = wait_for_value(WAIT, || async {
            let vm = self.vm_of(name).await?;
            (self.vc.vm_info(&vm).await.unwrap().power_state == PowerState::PoweredOn).then_some(vm)
        })
        .await;
        let Some(vm) = on else {
            panic!(
                "{name}: no powered-on VM: {:?}\n{}",
                self.vcenter_machine(name).await.and_then(|m| m.status),
                self.vcsim.log_tail(20)
            )
        };
        self.report_ip(&vm, ip).await;
        assert!(
            wait_for(WAIT, || self.provisioned(name)).await,
            "{name} never provisioned: {:?}",
            self.vcenter_machine(name).await.and_then(|m| m.status)
        );
        vm
    }

    async fn delete(&self, name: &str) {
        Api::<VCenterMachine>::namespaced(self.client.clone(), "default")
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        assert!(
            wait_for(WAIT, || async { self.vcenter_machine(name).await.is_none() }).await,
            "{name} never went: {:?}",
            self.vcenter_machine(name).await.and_then(|m| m.status)
        );
    }
}

fn decode(value: &str) -> String {
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(value).unwrap()).unwrap()
}

fn control_plane() -> Placement<'static> {
    Placement {
        control_plane: true,
        failure_domain: Some("zone-a"),
    }
}

#[tokio::test]
async fn clone_boot_report_address_clear_user_data_and_delete() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    let w = World::start(Options::default()).await;
    w.cluster("c1").await;
    let cluster = w.vcenter_cluster("c1").await.unwrap();
    let domains = cluster.status.unwrap().failure_domains.unwrap();
    assert_eq!(domains.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["zone-a"]);

    let before = w.vm_names().await;
    w.machine("c1", "cp-1", "cloud-config", control_plane(), json!({}))
        .await;
    w.machine("c1", "ign-1", "ignition", Placement::default(), json!({"diskGiB": 30}))
        .await;

    // Before Tools report an address, the user data and the MAC-keyed metadata are there.
    let ign_vm = wait_for_value(WAIT, || w.vm_of("ign-1"))
        .await
        .expect("ign-1 is cloned");
    let info = wait_for_value(WAIT, || async {
        let i = w.vc.vm_info(&ign_vm).await.unwrap();
        (i.extra_config_value(bootstrap::IGNITION).is_some() && i.extra_config_value(bootstrap::METADATA).is_some())
            .then_some(i)
    })
    .await;
    let info = info.unwrap_or_else(|| panic!("guestinfo never written"));
    // The bootstrap document inside a parent config that names the node (hostname, providerID).
    let parent = decode(info.extra_config_value(bootstrap::IGNITION).unwrap());
    let parsed: Value = serde_json::from_str(&parent).unwrap();
    assert_eq!(parsed["ignition"]["version"], "3.4.0");
    let env = capstan_lifecycle::ignition::provider_file(parent.as_bytes(), capstan_lifecycle::ignition::INSTANCE_ENV)
        .expect("a parent config that writes instance.env");
    let env = String::from_utf8(env).unwrap();
    assert!(
        env.contains(&format!(
            "CAPSTAN_PROVIDER_ID=vsphere://{}\n",
            info.bios_uuid.as_deref().unwrap()
        )),
        "{env}"
    );
    assert_eq!(info.extra_config_value(bootstrap::IGNITION_ENCODING), Some("base64"));
    assert_eq!(info.extra_config_value(bootstrap::USERDATA), None, "Ignition only");
    let metadata: Value = serde_json::from_str(&decode(info.extra_config_value(bootstrap::METADATA).unwrap())).unwrap();
    let mac = info.mac_addresses()[0].to_string();
    assert_eq!(
        metadata["network"]["ethernets"]["id0"]["match"]["macaddress"],
        json!(mac)
    );
    assert_eq!(metadata["local-hostname"], json!("ign-1"));
    assert_eq!(
        metadata["provider_id"],
        json!(format!("vsphere://{}", info.bios_uuid.clone().unwrap()))
    );
    assert_eq!(info.num_cpus, Some(2));
    assert_eq!(info.memory_mb, Some(2048));
    assert_eq!(
        info.disks().next().and_then(|d| d.capacity_kb()),
        Some(30 * 1024 * 1024),
        "diskGiB grows the template's disk"
    );

    let cp_vm = w.boot("cp-1", "10.0.0.11").await;
    w.boot("ign-1", "10.0.0.12").await;

    // providerID from the BIOS UUID, the address from Tools, the secrets gone from the VM.
    let cp = w.vcenter_machine("cp-1").await.unwrap();
    let cp_info = w.vc.vm_info(&cp_vm).await.unwrap();
    assert_eq!(
        cp.spec.provider_id,
        Some(format!("vsphere://{}", cp_info.bios_uuid.clone().unwrap()))
    );
    assert_eq!(cp_info.instance_uuid.as_deref(), cp.uid().as_deref());
    let status = cp.status.clone().unwrap();
    assert_eq!(status.failure_domain.as_deref(), Some("zone-a"));
    let addresses: Vec<(String, String)> = status
        .addresses
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|a| (format!("{:?}", a.type_), a.address.clone()))
        .collect();
    assert!(
        addresses.contains(&("InternalIP".into(), "10.0.0.11".into())),
        "{addresses:?}"
    );
    for name in ["cp-1", "ign-1"] {
        assert!(
            wait_for(WAIT, || async {
                w.condition(name, "BootstrapDataCleanedUp").await.map(|c| c.0) == Some("True".into())
            })
            .await,
            "{name}: {:?}",
            w.condition(name, "BootstrapDataCleanedUp").await
        );
        let info = w.vc.vm_info(&w.vm_of(name).await.unwrap()).await.unwrap();
        for key in bootstrap::SECRET_KEYS {
            assert_eq!(
                info.extra_config_value(key),
                None,
                "{name}: {key} left in the VM's configuration"
            );
        }
        assert!(info.extra_config_value(bootstrap::METADATA).is_some(), "metadata stays");
    }
    let mut names = w.vm_names().await;
    names.retain(|n| !before.contains(n));
    assert_eq!(names, ["cp-1", "ign-1"]);

    w.delete("cp-1").await;
    w.delete("ign-1").await;
    assert_eq!(w.vm_names().await, before, "nothing left in vcsim");
}

/// Killed anywhere from clone to power-on and on the way out: every restart finds the VM it
/// started by the UID it gave it, never clones a second one, and deletes leave nothing.
#[tokio::test]
async fn crashes_during_create_and_delete_neither_duplicate_nor_leak() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    let mut w = World::start(Options::default()).await;
    w.cluster("c1").await;
    let before = w.vm_names().await;
    let machines: Vec<String> = (1..=4).map(|i| format!("m-{i}")).collect();
    for m in &machines {
        w.machine("c1", m, "cloud-config", Placement::default(), json!({}))
            .await;
    }
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(rng.u64(50..400))).await;
        w.manager.crash_and_restart().await;
    }
    for (i, m) in machines.iter().enumerate() {
        w.boot(m, &format!("10.0.1.{}", i + 10)).await;
    }
    let mut names = w.vm_names().await;
    names.retain(|n| !before.contains(n));
    assert_eq!(names, machines, "one VM per machine");

    for m in &machines {
        Api::<VCenterMachine>::namespaced(w.client.clone(), "default")
            .delete(m, &DeleteParams::default())
            .await
            .unwrap();
    }
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(rng.u64(50..400))).await;
        w.manager.crash_and_restart().await;
    }
    for m in &machines {
        assert!(
            wait_for(WAIT, || async { w.vcenter_machine(m).await.is_none() }).await,
            "{m} never went"
        );
    }
    assert_eq!(w.vm_names().await, before, "nothing leaked");
}

/// A VM whose Tools never report an address is a condition the user can act on, not a hang;
/// a VM deleted in vCenter behind Capstan's back is reported, not silently recreated.
#[tokio::test]
async fn address_timeout_and_a_vm_deleted_outside_are_reported() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    let w = World::start(Options {
        ip_wait_timeout: Duration::from_secs(3),
    })
    .await;
    w.cluster("c1").await;
    w.machine("c1", "quiet", "cloud-config", Placement::default(), json!({}))
        .await;
    assert!(
        wait_for(WAIT, || async {
            w.vcenter_machine("quiet")
                .await
                .and_then(|m| m.status)
                .is_some_and(|s| s.conditions.iter().flatten().any(|c| c.reason == "IPAddressTimeout"))
        })
        .await,
        "no IPAddressTimeout: {:?}",
        w.vcenter_machine("quiet").await.and_then(|m| m.status)
    );
    // Tools report late: the machine recovers.
    let vm = w.boot("quiet", "10.0.2.10").await;

    // Destroyed in vCenter by someone else.
    let off = w.vc.power_off_vm(&vm).await.unwrap();
    w.vc.wait_for_task(&off, WAIT).await.unwrap();
    let gone = w.vc.destroy(&vm).await.unwrap();
    w.vc.wait_for_task(&gone, WAIT).await.unwrap();
    assert!(
        wait_for(WAIT, || async {
            w.vcenter_machine("quiet")
                .await
                .and_then(|m| m.status)
                .is_some_and(|s| s.conditions.iter().flatten().any(|c| c.reason == "InstanceNotFound"))
        })
        .await,
        "a vanished VM is not reported: {:?}",
        w.vcenter_machine("quiet").await.and_then(|m| m.status)
    );
    assert_eq!(w.vm_of("quiet").await, None, "not recreated on its own");
    w.delete("quiet").await;
}
