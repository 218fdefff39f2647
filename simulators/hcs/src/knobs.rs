//! What tests may change while the simulator runs: durations, failure injection, throttling
//! and quotas.

use std::collections::BTreeMap;
use std::time::Duration;

/// Simulated durations.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// Added to every request before it is answered.
    pub request: Duration,
    /// How long a new server stays invisible to GET and list after create (ECS documents that
    /// `serverIds` can 404 until the build progresses).
    pub list_delay: Duration,
    /// Create job: `BUILD` → `ACTIVE`/`SHUTOFF`.
    pub build: Duration,
    /// `os-start` and `reboot`: until the server is `ACTIVE` again.
    pub boot: Duration,
    /// `os-stop`: until `SHUTOFF`.
    pub stop: Duration,
    /// Delete job (and the rollback of a failed create).
    pub delete: Duration,
    /// Load balancer `PENDING_CREATE` → `ACTIVE`.
    pub lb: Duration,
}

impl Latency {
    /// A few hundred milliseconds each: every state is observable, a machine's lifecycle fits
    /// in a couple of seconds. The build outlasts the list delay so `BUILD` can be seen.
    pub fn compressed() -> Self {
        Latency {
            request: Duration::ZERO,
            list_delay: Duration::from_millis(300),
            build: Duration::from_millis(800),
            boot: Duration::from_millis(300),
            stop: Duration::from_millis(200),
            delete: Duration::from_millis(200),
            lb: Duration::from_millis(300),
        }
    }

    /// Everything instant.
    pub fn zero() -> Self {
        Latency {
            request: Duration::ZERO,
            list_delay: Duration::ZERO,
            build: Duration::ZERO,
            boot: Duration::ZERO,
            stop: Duration::ZERO,
            delete: Duration::ZERO,
            lb: Duration::ZERO,
        }
    }
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            request: Duration::ZERO,
            list_delay: Duration::from_secs(1),
            build: Duration::from_secs(5),
            boot: Duration::from_secs(3),
            stop: Duration::from_secs(2),
            delete: Duration::from_secs(2),
            lb: Duration::from_secs(3),
        }
    }
}

/// Project quotas ECS enforces at create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub instances: u64,
    pub cores: u64,
    pub ram_mib: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            instances: 1000,
            cores: 4000,
            ram_mib: 8 * 1024 * 1024,
        }
    }
}

/// Behaviour that tests may change at run time ([`crate::SimState::update_knobs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SimKnobs {
    pub latency: Latency,
    /// Probability that an authenticated call is answered with an injected HTTP 500.
    pub error_rate: f64,
    /// Probability that an authenticated call is answered with HTTP 429 `APIGW.0308`.
    pub throttle_rate: f64,
    /// A token bucket over all authenticated calls; beyond it, HTTP 429 `APIGW.0308`.
    pub rate_limit_per_second: Option<u32>,
    /// Answer the next N calls of an operation (`create_server`, `get_job`, …) with HTTP 500.
    pub fail_next: BTreeMap<String, u32>,
    /// Probability that a create job ends `FAIL` (and the server is rolled back).
    pub job_failure_rate: f64,
    /// Make the next N jobs of a type (`createServer`) fail.
    pub fail_next_job: BTreeMap<String, u32>,
    pub quotas: Quotas,
    /// Run health checks at this interval instead of each monitor's `delay` seconds (and time
    /// probes out after it), so tests need not wait seconds.
    pub health_interval_override: Option<Duration>,
}

impl Default for SimKnobs {
    fn default() -> Self {
        SimKnobs {
            latency: Latency::default(),
            error_rate: 0.0,
            throttle_rate: 0.0,
            rate_limit_per_second: None,
            fail_next: BTreeMap::new(),
            job_failure_rate: 0.0,
            fail_next_job: BTreeMap::new(),
            quotas: Quotas::default(),
            health_interval_override: None,
        }
    }
}
