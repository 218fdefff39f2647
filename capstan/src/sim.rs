//! `capstan sim dcs|hcs`: a cloud simulator as a process, for demos and for trying a provider
//! without the cloud. Built with the `sim` feature. Each prints `url=<endpoint>` first, then the
//! CA's PEM unless `--ca-file` takes it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use capstan_sim_dcs::{Latency, SimConfig, SimKnobs, Simulator};

#[derive(clap::Args)]
pub struct SimArgs {
    #[command(subcommand)]
    pub cloud: SimCloud,
}

#[derive(clap::Subcommand)]
pub enum SimCloud {
    /// Huawei DCS (FusionCompute VRM REST API) over HTTPS with its own CA.
    Dcs(DcsSimArgs),
    /// Huawei Cloud Stack over HTTPS with its own CA: IAM (Keystone v3 password tokens, AK/SK),
    /// ECS, jobs, IMS, VPC, EVS and ELB v3 (listeners forward real TCP on loopback VIPs).
    Hcs(HcsSimArgs),
}

#[derive(clap::Args)]
pub struct HcsSimArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub bind: SocketAddr,
    /// Where to write the PEM of the CA that signed the server certificate.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// The access key the simulator accepts.
    #[arg(long, default_value = "SIMACCESSKEY0000001")]
    pub access_key: String,
    /// Its secret key (env `CAPSTAN_SIM_SECRET_KEY`).
    #[arg(
        long,
        env = "CAPSTAN_SIM_SECRET_KEY",
        hide_default_value = true,
        default_value = "sim-secret-key-0000000000000000000000001"
    )]
    pub secret_key: String,
    /// The project (resource space) ID and region it serves.
    #[arg(long, default_value = "0b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e")]
    pub project_id: String,
    #[arg(long, default_value = "sim-region-1")]
    pub region: String,
    /// The subnet every server and VIP address comes from; keep it inside 127.0.0.0/8 so
    /// load-balancer listeners and guests can bind them.
    #[arg(long, default_value = "127.16.0.0/16")]
    pub subnet_cidr: capstan_sim_hcs::Cidr,
    /// How long builds, power actions, deletes and load balancers take.
    #[arg(long, value_enum, default_value = "default")]
    pub latency: HcsLatency,
    /// What ACTIVE servers do with their user_data: nothing, boot it for real (cloud-init,
    /// kubeadm with real workload API servers behind the ELB), or record nodes only.
    #[arg(long, alias = "guests", value_enum, default_value = "off")]
    pub guest_emulation: GuestEmulation,
    /// Where emulated guests keep their disks and workload clusters (default: a temporary
    /// directory removed on exit).
    #[arg(long)]
    pub guest_state_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HcsLatency {
    /// Seconds, roughly like a real region.
    Default,
    /// A few hundred milliseconds each (end-to-end tests).
    Compressed,
    /// Instant.
    Zero,
}

#[derive(clap::Args)]
pub struct DcsSimArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub bind: SocketAddr,
    /// Address of the simulated physical host, where clients push the bootstrap ISO (on DCS
    /// the host's management address, commonly port 8443; VRM's host list reports this IP).
    #[arg(long, default_value = "127.0.0.2:8443")]
    pub host_bind: SocketAddr,
    /// Where to write the PEM of the CA that signed the server certificate (put it in
    /// `DCSCluster.spec.tls.caBundle`).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// The user the simulator accepts.
    #[arg(long, default_value = "capstan")]
    pub user: String,
    /// Its password (env `CAPSTAN_SIM_PASSWORD`).
    #[arg(
        long,
        env = "CAPSTAN_SIM_PASSWORD",
        default_value = "Sim-Passw0rd!",
        hide_default_value = true
    )]
    pub password: String,
    /// Seconds a clone task takes.
    #[arg(long, default_value_t = 2.0)]
    pub clone_seconds: f64,
    /// Seconds a start task takes (stopped → running).
    #[arg(long, default_value_t = 3.0)]
    pub boot_seconds: f64,
    /// Seconds from running until the guest tools report the VM's IP addresses.
    #[arg(long, default_value_t = 1.0)]
    pub tools_seconds: f64,
    /// Fraction (0..1) of requests answered with an injected HTTP 5xx error.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Refuse new tasks beyond this many running at once, as a busy VRM does.
    #[arg(long)]
    pub max_concurrent_tasks: Option<usize>,
    /// What powered-on VMs do with their bootstrap ISO: nothing, boot it for real (cloud-init,
    /// kubeadm with real workload API servers), or record nodes only (benchmarks with many
    /// clusters).
    #[arg(long, value_enum, default_value = "off")]
    pub guest_emulation: GuestEmulation,
    /// Where emulated guests keep their disks and workload clusters (default: a temporary
    /// directory removed on exit).
    #[arg(long)]
    pub guest_state_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GuestEmulation {
    Off,
    Full,
    NodesOnly,
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    match args.cloud {
        SimCloud::Dcs(args) => run_dcs(args).await,
        SimCloud::Hcs(args) => run_hcs(args).await,
    }
}

fn guests(mode: GuestEmulation, dir: PathBuf, endpoint: capstan_guest::EndpointMode) -> Option<capstan_guest::Guests> {
    let mode = match mode {
        GuestEmulation::Off => return None,
        GuestEmulation::Full => capstan_guest::Mode::Full,
        GuestEmulation::NodesOnly => capstan_guest::Mode::NodesOnly,
    };
    Some(capstan_guest::Guests::new(capstan_guest::GuestOptions {
        mode,
        endpoint,
        ..capstan_guest::GuestOptions::new(dir)
    }))
}

async fn run_hcs(args: HcsSimArgs) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let latency = match args.latency {
        HcsLatency::Default => capstan_sim_hcs::Latency::default(),
        HcsLatency::Compressed => capstan_sim_hcs::Latency::compressed(),
        HcsLatency::Zero => capstan_sim_hcs::Latency::zero(),
    };
    let base = capstan_sim_hcs::SimConfig::with_subnet_cidr(args.subnet_cidr);
    let config = capstan_sim_hcs::SimConfig {
        bind: args.bind,
        access_key: args.access_key,
        secret_key: args.secret_key,
        project_id: args.project_id,
        region: args.region,
        // On HCS an ELB VIP fronts the control-plane endpoint.
        guests: guests(
            args.guest_emulation,
            args.guest_state_dir.unwrap_or_else(|| temp.path().to_path_buf()),
            capstan_guest::EndpointMode::LoadBalanced,
        ),
        knobs: capstan_sim_hcs::SimKnobs {
            latency,
            ..capstan_sim_hcs::SimKnobs::default()
        },
        ..base
    };
    let sim = capstan_sim_hcs::Simulator::start(config)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    announce(sim.url(), sim.ca_pem(), args.ca_file.as_deref())?;
    shutdown_signal().await;
    Ok(())
}

async fn run_dcs(args: DcsSimArgs) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let guests = match args.guest_emulation {
        GuestEmulation::Off => None,
        mode => Some(capstan_guest::Guests::new(capstan_guest::GuestOptions {
            mode: if mode == GuestEmulation::Full {
                capstan_guest::Mode::Full
            } else {
                capstan_guest::Mode::NodesOnly
            },
            ..capstan_guest::GuestOptions::new(
                args.guest_state_dir
                    .clone()
                    .unwrap_or_else(|| temp.path().to_path_buf()),
            )
        })),
    };
    let config = SimConfig {
        guests,
        bind: args.bind,
        host_bind: args.host_bind,
        user: args.user,
        password: args.password,
        knobs: SimKnobs {
            latency: Latency {
                clone: Duration::from_secs_f64(args.clone_seconds),
                boot: Duration::from_secs_f64(args.boot_seconds),
                tools: Duration::from_secs_f64(args.tools_seconds),
                ..Latency::default()
            },
            error_rate: args.error_rate,
            max_concurrent_tasks: args.max_concurrent_tasks,
            ..SimKnobs::default()
        },
        ..SimConfig::default()
    };
    let sim = Simulator::start(config)
        .await
        .with_context(|| format!("cannot listen on {} and {}", args.bind, args.host_bind))?;
    announce(sim.url(), sim.ca_pem(), args.ca_file.as_deref())?;
    shutdown_signal().await;
    Ok(())
}

/// One line a script can read (where to point the credentials), then the CA unless a file takes it.
fn announce(url: &impl std::fmt::Display, ca_pem: &str, ca_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(path) = ca_file {
        std::fs::write(path, ca_pem).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("url={url}");
    if ca_file.is_none() {
        print!("{ca_pem}");
    }
    std::io::stdout().flush()?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
