//! Huawei DCS (FusionCompute VRM) support for Capstan: the VRM REST client, the NoCloud
//! bootstrap ISO builder and, behind the `sim` feature, a VRM simulator.

pub mod client;
pub mod iso;
#[cfg(feature = "sim")]
pub mod sim;

pub use client::{DcsClient, DcsClientPool, DcsConfig, DcsError, PasswordEncoding, SecretString, UserType};
