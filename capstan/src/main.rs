//! `capstan`: the one binary. `capstan manager` runs controllers, `capstan crds` prints the CRDs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod crds;
mod manager;
mod registry;
mod render;
#[cfg(feature = "sim")]
mod sim;
mod telemetry;

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
    /// Print the bootstrap data (cloud-config) of a KubeadmConfig, computed offline.
    Render(render::RenderArgs),
    /// Run a cloud simulator (`capstan sim dcs`), for demos and tests without the real cloud.
    #[cfg(feature = "sim")]
    Sim(sim::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    capstan_runtime::install_crypto_provider();
    let result = match cli.command {
        Command::Crds(args) => crds::run(&args),
        Command::Render(args) => render::run(&args),
        #[cfg(feature = "sim")]
        Command::Sim(args) => {
            telemetry::init(telemetry::LogFormat::Text);
            match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt.block_on(sim::run(args)),
                Err(e) => Err(anyhow::anyhow!("cannot start the async runtime: {e}")),
            }
        }
        Command::Manager(args) => {
            telemetry::init(args.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(manager::run(*args))
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
