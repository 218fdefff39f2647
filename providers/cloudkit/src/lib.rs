//! What Capstan's cloud API clients share, so a second and third provider do not copy the first:
//! an HTTPS client trusting a CA bundle with verification on by default ([`tls`]), a report of
//! every API call by operation and outcome with a Prometheus adapter ([`observe`]), and one
//! pooled client (so one session) per endpoint, user and settings, idle ones logged out
//! ([`pool`]), and a login session with exactly one re-login on 401 ([`session`]). Each cloud's
//! client keeps only what is its own: how it logs in, paths, error bodies.

pub mod observe;
pub mod pool;
pub mod session;
pub mod tls;

pub use observe::{ApiCall, ApiObserver, CallError, CallOutcome, MetricsObserver, NoopObserver, report};
pub use pool::{ClientPool, DEFAULT_IDLE_TIMEOUT, PooledClient};
pub use tls::{TlsError, TlsSettings};

/// Lowercase hex SHA-256, for pool keys (secrets enter a key only as a digest).
pub fn sha256_hex(input: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(input))
}

/// Lowercase hex of `bytes`, as cloud signatures and digests are written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
