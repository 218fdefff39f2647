//! What every Capstan controller set plugs into.
//!
//! The `capstan` binary owns the process (flags, leader election, HTTP endpoints, signals); each
//! provider crate exposes a [`Provider`] that the binary's registry starts by name once this
//! process leads. Keeping the trait here, rather than in the binary, lets provider crates depend
//! on it without depending on each other.

pub mod backoff;
pub mod metrics;
pub mod preflight;
mod provider;

pub use provider::{Provider, ProviderContext, Scope};
