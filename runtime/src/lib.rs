//! What every Capstan controller set plugs into.
//!
//! The `capstan` binary owns the process (flags, leader election, HTTP endpoints, signals); each
//! provider crate exposes a [`Provider`] that the binary's registry starts by name once this
//! process leads. Keeping the trait here, rather than in the binary, lets provider crates depend
//! on it without depending on each other.

pub mod backoff;
pub mod events;
pub mod finalizer;
pub mod metrics;
pub mod predicate;
pub mod preflight;
mod provider;
pub mod secret;
pub mod workload;

pub use provider::{BoxError, Concurrency, Provider, ProviderContext, Scope};

/// Selects rustls' crypto provider (ring, the only one in the graph) for the whole process:
/// reqwest is built without one of its own and uses this default. Call it before creating any
/// client; idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
