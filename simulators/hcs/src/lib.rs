//! A Huawei Cloud Stack region simulator on the shared simulator kit, over one HTTPS listener
//! with a CA generated at start-up: IAM (Keystone v3 password tokens, AK/SK verification), ECS
//! servers and jobs, IMS images, flavors, VPC subnets, EVS volumes, quotas, and ELB v3 whose
//! listeners forward real TCP connections to their members. It is the client's oracle, so it
//! shares no code with the client (`capstan-hcs`): it recomputes AK/SK signatures its own way
//! ([`aksk`]) and follows `huawei-apis.md` PART B.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use capstan_sim_hcs::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default()).await?;
//! println!("HCS at {} (CA:\n{})", sim.url(), sim.ca_pem());
//! # Ok(()) }
//! ```
//!
//! Routes (all but `POST /v3/auth/tokens` need an `X-Auth-Token` from this simulator or an
//! AK/SK signature; `{pid}` must be the configured project, else 403 `Ecs.0003`/`VPC.0003`/
//! `EVS.0003` or `ELB.1001`):
//! - IAM: `POST|GET /v3/auth/tokens`, `GET /v3/projects`.
//! - ECS: `POST /v1/{pid}/cloudservers` ([`create`]), `GET …/cloudservers/{id}`,
//!   `GET …/cloudservers/detail`, `POST …/cloudservers/delete`, `POST …/cloudservers/action`
//!   ([`power`]), `GET …/cloudservers/flavors`, `GET …/cloudservers/limits`,
//!   `GET /v1/{pid}/jobs/{id}` ([`jobs`]; an unknown job is 404 `Ecs.0200`). The same ECS
//!   routes also answer under `/v1.1/` (HCS Terraform creates there).
//! - IMS: `GET /v2/cloudimages`. VPC: `GET /v1/{pid}/subnets[/{id}]`, `GET /v1/vpcs/{id}`,
//!   `GET /v1/{pid}/vpcs/{id}`. EVS: `GET /v2/{pid}/cloudvolumes/detail`,
//!   `GET|DELETE /v2/{pid}/cloudvolumes/{id}` (delete answers 204).
//! - ELB v3 under `/v3/{pid}/elb/`: `loadbalancers[/{id}[/statuses]]`, `listeners[/{id}]`,
//!   `pools[/{id}]`, `pools/{id}/members[/{id}]`, `healthmonitors[/{id}]` ([`elb`]).
//!
//! Errors: ECS, IMS, VPC and EVS answer `{"error":{"code":"Ecs.xxxx","message":..}}`
//! (`IMG.`, `VPC.`, `EVS.` prefixes), ELB `{"error_code":"ELB.xxxx","error_msg":..,
//! "request_id":..}`, the gateway `{"error_code":"APIGW.0308",..}` with 429 when throttled
//! (`throttle_rate`, `rate_limit_per_second`). Injected failures (`error_rate`, `fail_next`)
//! are 500 `Ecs.0002` (`IMG.0002`, …) or `ELB.0001`.
//!
//! Simulated time runs on tokio timers, so it never blocks a runtime thread. Servers live
//! [`Latency::list_delay`] invisible, then `BUILD` until [`Latency::build`]; failed create
//! jobs (`job_failure_rate`, `fail_next_job`) put the server in `ERROR`, then roll it back
//! (gone, address and quota free) after [`Latency::delete`] and only then report `FAIL` with
//! `error_code` `Ecs.0010`.
//!
//! Every server and VIP address comes from a subnet, by default `127.16.0.0/16`: loopback, so
//! ELB listeners bind VIP:port and guests' API servers bind the server's address for real.
//! Guest emulation ([`SimConfig::guests`]) is described in [`guest`].

mod aksk;
mod catalog;
pub mod create;
mod ecs;
pub mod elb;
mod elb_model;
mod elb_pool;
mod evs;
mod forward;
mod front;
pub mod guest;
mod health;
mod iam;
pub mod jobs;
mod knobs;
pub mod power;
mod routes;
mod seed;
mod state;
mod view;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use capstan_simkit::Server;
use reqwest::Url;

pub use knobs::{Latency, Quotas, SimKnobs};
pub use seed::{Cidr, CidrError, SimFlavor, SimImage, SimSubnet, SimVpc};
pub use view::{
    QuotaUsage, SimListenerView, SimLoadBalancerView, SimMemberView, SimMonitorView, SimPoolView, SimServerView,
    SimState, SimVolumeView,
};

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free port. Always a loopback address in tests.
    pub bind: SocketAddr,
    pub access_key: String,
    pub secret_key: String,
    /// The IAM user, password and domain that password authentication accepts.
    pub user: String,
    pub password: String,
    pub domain: String,
    pub project_id: String,
    pub region: String,
    /// How far `X-Sdk-Date` may be from the simulator's clock (the gateway's 15 minutes).
    pub max_clock_skew: Duration,
    pub vpcs: Vec<SimVpc>,
    /// Every server and VIP address comes from one of these (loopback by default).
    pub subnets: Vec<SimSubnet>,
    pub availability_zones: Vec<String>,
    pub flavors: Vec<SimFlavor>,
    pub images: Vec<SimImage>,
    /// The initial knobs (quotas among them).
    pub knobs: SimKnobs,
    /// Seeds ids and failure injection, so runs are reproducible.
    pub seed: u64,
    /// Guest emulation: servers that become `ACTIVE` boot their `user_data`. `None` leaves
    /// them inert. Build it with `EndpointMode::LoadBalanced` (see [`guest`]).
    pub guests: Option<capstan_guest::Guests>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            access_key: "SIMACCESSKEY0000001".into(),
            secret_key: "sim-secret-key-0000000000000000000000001".into(),
            user: "capstan".into(),
            password: "Sim-Passw0rd!".into(),
            domain: "sim-domain".into(),
            project_id: "0b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e".into(),
            region: "sim-region-1".into(),
            max_clock_skew: Duration::from_secs(15 * 60),
            vpcs: seed::default_vpcs(),
            subnets: seed::default_subnets(),
            availability_zones: vec!["az1".into(), "az2".into(), "az3".into()],
            flavors: seed::default_flavors(),
            images: seed::default_images(),
            knobs: SimKnobs::default(),
            seed: 0x5eed,
            guests: None,
        }
    }
}

impl SimConfig {
    /// The default configuration with the default subnet on `cidr` instead.
    pub fn with_subnet_cidr(cidr: Cidr) -> Self {
        SimConfig {
            subnets: vec![seed::default_subnet(cidr)],
            ..SimConfig::default()
        }
    }
}

pub struct Simulator;

impl Simulator {
    pub async fn start(config: SimConfig) -> io::Result<SimHandle> {
        let tcp = tokio::net::TcpListener::bind(config.bind).await?;
        let addr = tcp.local_addr()?;
        let pki = capstan_simkit::tls::generate("Capstan HCS simulator CA", &[addr.ip()])?;
        let tls = pki
            .servers
            .into_iter()
            .next()
            .ok_or_else(|| io::Error::other("no certificate"))?;
        let shared = state::Shared::new(config);
        let server = Server::start("HCS", tcp, tls, routes::router(shared.clone()))?;
        let url = Url::parse(&format!("https://{addr}")).map_err(io::Error::other)?;
        tracing::info!(%url, "HCS simulator listening");
        Ok(SimHandle {
            url,
            ca_pem: pki.ca_pem,
            state: SimState(shared),
            _server: server,
        })
    }
}

/// A running simulator. Dropping it stops the server, the ELB forwarders and the probers.
pub struct SimHandle {
    url: Url,
    ca_pem: String,
    state: SimState,
    _server: Server,
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.state.0.lock().elb.shutdown();
    }
}

impl SimHandle {
    /// `https://127.0.0.1:<port>`: every service of the simulated region is served here.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn state(&self) -> SimState {
        self.state.clone()
    }
}
