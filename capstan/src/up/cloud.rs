//! The simulated cloud `capstan up` runs the cluster on (`--infrastructure dcs|hcs|vsphere`): which
//! simulator, the credentials Secret the provider reads, the templates and their variables, and
//! what each VM's console shows. Everything else in `up` is the same for every cloud.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use capstan_guest::{EndpointMode, GuestOptions, GuestStatus, Guests};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Infrastructure {
    /// Huawei DCS (no load balancer: the endpoint is a VIP the guests serve).
    #[default]
    Dcs,
    /// Huawei Cloud Stack (a managed ELB in front of the control plane, three zones).
    Hcs,
    /// VMware vSphere (the real vcsim, built by `hack/testenv.sh`; the endpoint is a VIP the
    /// guests serve, as kube-vip would).
    Vsphere,
}

impl Infrastructure {
    /// The `--provider` name of its infrastructure provider.
    pub fn provider(self) -> &'static str {
        match self {
            Infrastructure::Dcs => "dcs",
            Infrastructure::Hcs => "hcs",
            Infrastructure::Vsphere => "vsphere",
        }
    }

    /// The built-in cluster template and control-plane machine template for the nodes' OS.
    pub fn templates(self, os: NodeOs) -> (&'static str, &'static str) {
        match (self, os) {
            (Infrastructure::Dcs, NodeOs::Ubuntu) => (
                include_str!("../../../templates/dcs/cluster-template.yaml"),
                include_str!("../../../templates/dcs/control-plane-machine.yaml"),
            ),
            (Infrastructure::Dcs, NodeOs::Microos) => (
                include_str!("../../../templates/dcs/cluster-template-microos.yaml"),
                include_str!("../../../templates/dcs/control-plane-machine-microos.yaml"),
            ),
            (Infrastructure::Hcs, NodeOs::Ubuntu) => (
                include_str!("../../../templates/hcs/cluster-template.yaml"),
                include_str!("../../../templates/hcs/control-plane-machine.yaml"),
            ),
            (Infrastructure::Hcs, NodeOs::Microos) => (
                include_str!("../../../templates/hcs/cluster-template-microos.yaml"),
                include_str!("../../../templates/hcs/control-plane-machine-microos.yaml"),
            ),
            (Infrastructure::Vsphere, NodeOs::Ubuntu) => (
                include_str!("../../../templates/vsphere/cluster-template.yaml"),
                include_str!("../../../templates/vsphere/control-plane-machine.yaml"),
            ),
            (Infrastructure::Vsphere, NodeOs::Microos) => (
                include_str!("../../../templates/vsphere/cluster-template-microos.yaml"),
                include_str!("../../../templates/vsphere/control-plane-machine-microos.yaml"),
            ),
        }
    }

    /// The zones control-plane machine `index` goes to, when the cloud has any.
    pub fn control_plane_failure_domain(self, index: u32) -> Option<String> {
        match self {
            Infrastructure::Dcs | Infrastructure::Vsphere => None,
            Infrastructure::Hcs => Some(format!("az{}", index % 3 + 1)),
        }
    }

    pub fn credentials_secret(self) -> &'static str {
        match self {
            Infrastructure::Dcs => "capstan-up-dcs",
            Infrastructure::Hcs => "capstan-up-hcs",
            Infrastructure::Vsphere => "capstan-up-vsphere",
        }
    }
}

/// The operating system of the simulated images the nodes boot, which decides the bootstrap
/// format: the built-in templates' flavor and the image the machines clone.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeOs {
    /// Ubuntu with cloud-init (cloud-config bootstrap data).
    #[default]
    Ubuntu,
    /// openSUSE MicroOS, immutable, bootstrapped by Ignition (spec 3.4.0).
    Microos,
}

/// A running simulator.
pub enum Cloud {
    Dcs(capstan_sim_dcs::SimHandle),
    Hcs {
        sim: capstan_sim_hcs::SimHandle,
        /// The subnet machines and the ELB use.
        subnet_id: String,
    },
    Vsphere(Box<Vsphere>),
}

/// vcsim, the bridge that boots its VMs, and their guests.
pub struct Vsphere {
    vcsim: capstan_sim_vsphere::Vcsim,
    tls: capstan_sim_vsphere::VcsimTls,
    bridge: capstan_sim_vsphere::Bridge,
    guests: Guests,
}

impl Vsphere {
    async fn start(guests: Guests) -> anyhow::Result<(Self, Value)> {
        let password = random_secret("Up-")?;
        let tls = capstan_sim_vsphere::test_tls()?;
        let vcsim = capstan_sim_vsphere::Vcsim::start_with(capstan_sim_vsphere::VcsimOptions {
            tls: Some(tls.clone()),
            credentials: Some(("capstan".into(), password.clone())),
        })
        .context("starting vcsim (`hack/testenv.sh` builds it into ~/.cache/capstan)")?;
        let mut config =
            capstan_vsphere::client::VsphereConfig::new(vcsim.server().parse()?, "capstan", password.clone());
        config.tls = capstan_vsphere::client::TlsTrust::CaBundle(tls.ca_pem.clone().into_bytes());
        let client = capstan_vsphere::client::VsphereClient::new(config)?;
        let bridge = capstan_sim_vsphere::Bridge::start(client, guests.clone(), Default::default());
        let data = json!({"username": "capstan", "password": password});
        Ok((
            Vsphere {
                vcsim,
                tls,
                bridge,
                guests,
            },
            data,
        ))
    }
}

fn random_secret(prefix: &str) -> anyhow::Result<String> {
    let mut b = [0u8; 18];
    openssl::rand::rand_bytes(&mut b)?;
    Ok(format!(
        "{prefix}{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

impl Cloud {
    /// Starts the simulator with guest emulation under `guests_dir`; the Secret's `stringData`.
    pub async fn start(
        infra: Infrastructure,
        guests_dir: &Path,
        boot_delay: Duration,
    ) -> anyhow::Result<(Self, Value)> {
        let guests = |endpoint| {
            Guests::new(GuestOptions {
                boot_delay,
                endpoint,
                ..GuestOptions::new(guests_dir)
            })
        };
        match infra {
            Infrastructure::Dcs => {
                let password = random_secret("Up-")?;
                let sim = capstan_sim_dcs::Simulator::start(capstan_sim_dcs::SimConfig {
                    password: password.clone(),
                    knobs: capstan_sim_dcs::SimKnobs {
                        latency: capstan_sim_dcs::Latency::compressed(),
                        ..Default::default()
                    },
                    guests: Some(guests(EndpointMode::Vip)),
                    ..Default::default()
                })
                .await
                .context("starting the DCS simulator")?;
                let data = json!({"endpoint": sim.url().to_string(), "authUser": "capstan", "authKey": password});
                Ok((Cloud::Dcs(sim), data))
            }
            Infrastructure::Hcs => {
                let config = capstan_sim_hcs::SimConfig {
                    secret_key: random_secret("")?,
                    knobs: capstan_sim_hcs::SimKnobs {
                        latency: capstan_sim_hcs::Latency::compressed(),
                        health_interval_override: Some(Duration::from_millis(500)),
                        ..Default::default()
                    },
                    guests: Some(guests(EndpointMode::LoadBalanced)),
                    ..Default::default()
                };
                let sim = capstan_sim_hcs::Simulator::start(config.clone())
                    .await
                    .context("starting the HCS simulator")?;
                let url = sim.url().to_string();
                let data = json!({
                    "accessKey": config.access_key, "secretKey": config.secret_key,
                    "projectID": config.project_id, "region": config.region,
                    "externalGlobalDomain": "sim.invalid",
                    "iamEndpoint": url, "ecsEndpoint": url, "vpcEndpoint": url, "imsEndpoint": url, "evsEndpoint": url
                });
                let subnet_id = config.subnets[0].id.clone();
                Ok((Cloud::Hcs { sim, subnet_id }, data))
            }
            Infrastructure::Vsphere => {
                let (v, data) = Vsphere::start(guests(EndpointMode::Vip)).await?;
                Ok((Cloud::Vsphere(Box::new(v)), data))
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            Cloud::Dcs(s) => s.url().to_string(),
            Cloud::Hcs { sim, .. } => sim.url().to_string(),
            Cloud::Vsphere(v) => v.vcsim.server(),
        }
    }

    pub fn ca_pem(&self) -> String {
        match self {
            Cloud::Dcs(s) => s.ca_pem().to_string(),
            Cloud::Hcs { sim, .. } => sim.ca_pem().to_string(),
            Cloud::Vsphere(v) => v.tls.ca_pem.clone(),
        }
    }

    /// The template variables only this cloud knows (its CA, the credentials Secret, its network).
    pub fn template_vars(&self, secret: &str) -> BTreeMap<String, String> {
        let ca = self.ca_pem().replace('\n', "\\n");
        match self {
            Cloud::Dcs(_) => BTreeMap::from([
                ("DCS_CREDENTIALS_SECRET".into(), secret.into()),
                ("DCS_CA_BUNDLE".into(), ca),
            ]),
            Cloud::Hcs { subnet_id, .. } => BTreeMap::from([
                ("HCS_CREDENTIALS_SECRET".into(), secret.into()),
                ("HCS_CA_BUNDLE".into(), ca),
                ("HCS_SUBNET_ID".into(), subnet_id.clone()),
            ]),
            Cloud::Vsphere(v) => BTreeMap::from([
                ("VSPHERE_CREDENTIALS_SECRET".into(), secret.into()),
                ("VSPHERE_CA_BUNDLE".into(), ca),
                ("VSPHERE_SERVER".into(), v.vcsim.server()),
            ]),
        }
    }

    /// VM name → what its guest shows on the console.
    pub fn consoles(&self) -> BTreeMap<String, String> {
        match self {
            Cloud::Dcs(s) => s
                .state()
                .vms()
                .into_iter()
                .filter_map(|v| v.guest.map(|g| (v.name, console_line(&g))))
                .collect(),
            Cloud::Hcs { sim, .. } => sim
                .state()
                .servers()
                .into_iter()
                .filter_map(|v| v.guest.map(|g| (v.name, console_line(&g))))
                .collect(),
            Cloud::Vsphere(v) => v
                .bridge
                .booted()
                .into_iter()
                .filter_map(|(name, (id, _))| v.guests.status(&id).map(|g| (name, console_line(&g))))
                .collect(),
        }
    }

    /// Stops the simulator; its guests, and the workload clusters' processes, go with it.
    pub async fn shutdown(self) {
        match self {
            Cloud::Dcs(s) => s.shutdown().await,
            // Dropping it stops its server, its load balancers' listeners and its guests.
            Cloud::Hcs { sim, .. } => drop(sim),
            // The guests go with the last handle on them, then vcsim.
            Cloud::Vsphere(v) => {
                let Vsphere {
                    vcsim, bridge, guests, ..
                } = *v;
                bridge.stop().await;
                drop(guests);
                drop(vcsim);
            }
        }
    }
}

fn console_line(g: &GuestStatus) -> String {
    match g {
        GuestStatus::Booting => "booting".into(),
        GuestStatus::Running { node: Some(n) } => format!("running, node {n}"),
        GuestStatus::Running { node: None } => "running".into(),
        GuestStatus::Failed { reason } => format!("boot failed: {reason}"),
        GuestStatus::Off => "off".into(),
    }
}
