//! `capstan`: the one binary. `capstan manager` runs controllers, `capstan crds` prints the CRDs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod crds;
mod manager;
mod registry;
mod release;
mod render;
#[cfg(feature = "sim")]
mod sim;
mod telemetry;
#[cfg(feature = "sim")]
mod up;

#[derive(Parser)]
#[command(
    name = "capstan",
    version,
    about = "Cluster API providers for Huawei DCS, Huawei Cloud Stack and vSphere"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers of one or more providers.
    Manager(Box<manager::ManagerArgs>),
    /// Print every CRD Capstan defines, as multi-document YAML.
    Crds(crds::CrdsArgs),
    /// Write a clusterctl provider repository (components, metadata, cluster templates and a
    /// clusterctl.yaml) for `clusterctl init --config <output>/clusterctl.yaml`.
    Release(release::ReleaseArgs),
    /// Print the bootstrap data (cloud-config) of a KubeadmConfig, computed offline.
    Render(render::RenderArgs),
    /// Run a cloud simulator (`capstan sim dcs`), for demos and tests without the real cloud.
    #[cfg(feature = "sim")]
    Sim(sim::SimArgs),
    /// Bring up a whole cluster on this machine: management plane, DCS simulator with guest
    /// emulation, the manager, and a cluster of 3 control-plane and 2 worker machines.
    #[cfg(feature = "sim")]
    Up(Box<up::UpArgs>),
    /// Remove everything `capstan up` created.
    #[cfg(feature = "sim")]
    Down(up::DownArgs),
    /// The background half of `capstan up` (started by it).
    #[cfg(feature = "sim")]
    #[command(hide = true)]
    UpDaemon(up::daemon::DaemonArgs),
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => Err(anyhow::anyhow!("cannot start the async runtime: {e}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    capstan_runtime::install_crypto_provider();
    let result = match cli.command {
        Command::Crds(args) => crds::run(&args),
        Command::Render(args) => render::run(&args),
        Command::Release(args) => release::run(&args),
        #[cfg(feature = "sim")]
        Command::Sim(args) => {
            telemetry::init(telemetry::LogFormat::Text);
            block_on(sim::run(args))
        }
        #[cfg(feature = "sim")]
        Command::Up(args) => {
            // Progress goes to stdout; library logs only when asked for (RUST_LOG).
            if std::env::var_os("RUST_LOG").is_some() {
                telemetry::init(telemetry::LogFormat::Text);
            }
            block_on(up::up(*args))
        }
        #[cfg(feature = "sim")]
        Command::Down(args) => block_on(up::down(args)),
        #[cfg(feature = "sim")]
        Command::UpDaemon(args) => {
            // Waiting for a workload API server to come up is expected to fail a few times.
            if std::env::var_os("RUST_LOG").is_none() {
                // SAFETY: no other thread exists yet.
                unsafe { std::env::set_var("RUST_LOG", "info,kube_client::client::builder=off") };
            }
            telemetry::init(telemetry::LogFormat::Text);
            block_on(up::daemon::run(args))
        }
        Command::Manager(args) => {
            telemetry::init(args.log_format);
            block_on(manager::run(*args))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line a user can act on; the chain of causes joined with ": ", no backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
