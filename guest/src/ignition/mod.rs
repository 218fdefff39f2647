//! Ignition as the simulated image's initramfs runs it: fetch the config the platform offers,
//! parse and validate it the way Ignition does (refusing what it refuses), resolve
//! `config.replace`/`config.merge`, run the files stage into the VM root, then let systemd start
//! the enabled units of `multi-user.target`.
//!
//! Rules follow coreos/ignition (`config/v3_*/types`, `config/merge`,
//! `internal/exec/stages/files`) rather than its docs where they differ.

pub mod apply;
pub mod config;
pub mod dataurl;
pub mod merge;
pub mod systemd;
pub mod validate;

pub use config::{Config, render};

/// Why Ignition refuses a config (the boot then fails: emergency shell on a real machine).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnitionError {
    #[error("config is not valid JSON: {0}")]
    NotJson(String),
    #[error("config does not match the spec: {0}")]
    Schema(String),
    #[error("config has no ignition.version")]
    MissingVersion,
    #[error("ignition.version {version:?} is not supported by {os}'s Ignition (accepted: {accepted})")]
    UnsupportedVersion {
        version: String,
        os: &'static str,
        accepted: &'static str,
    },
    #[error("{what}: data URL does not decode: {reason}")]
    DataUrl { what: String, reason: String },
    #[error(
        "{what}: source scheme {scheme:?} cannot be fetched here (the simulated guest has no network access to http(s)/tftp/s3/gs sources; only data: URLs work)"
    )]
    UnfetchableScheme { what: String, scheme: String },
    #[error("{what}: unsupported URL scheme {scheme:?}")]
    UnknownScheme { what: String, scheme: String },
    #[error("{what}: compression {value:?} is not supported (only \"gzip\")")]
    Compression { what: String, value: String },
    #[error("{what}: gzip data does not decompress: {message}")]
    Gzip { what: String, message: String },
    #[error("{what}: verification.hash {hash:?} is malformed (expected sha512-<hex> or sha256-<hex>)")]
    BadHash { what: String, hash: String },
    #[error("{what}: verification.hash mismatch (expected {expected}, got {actual})")]
    HashMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("path {0:?} is not absolute")]
    RelativePath(String),
    #[error("path {0:?} is not clean")]
    DirtyPath(String),
    #[error("duplicate entry for path {0:?} (files, directories and links share one namespace)")]
    DuplicatePath(String),
    #[error("path {0:?} conflicts with a systemd unit or dropin Ignition writes there")]
    PathConflictsSystemd(String),
    #[error("duplicate systemd unit {0:?}")]
    DuplicateUnit(String),
    #[error("duplicate dropin {dropin:?} of unit {unit:?}")]
    DuplicateDropin { unit: String, dropin: String },
    #[error("duplicate user {0:?}")]
    DuplicateUser(String),
    #[error("{path}: illegal file mode {mode} (must be within 0..=0o7777)")]
    IllegalMode { path: String, mode: i64 },
    #[error("error creating {0}: A file exists there already and overwrite is false")]
    FileExists(String),
    #[error("unit {0:?} has an invalid unit type suffix")]
    UnitSuffix(String),
    #[error("dropin {dropin:?} of unit {unit:?} does not end in .conf")]
    DropinSuffix { unit: String, dropin: String },
    #[error("unit {unit:?}: contents do not parse as a unit file: {message}")]
    UnitContents { unit: String, message: String },
    #[error("writing {path}: {message}")]
    Io { path: String, message: String },
}

pub type Result<T> = std::result::Result<T, IgnitionError>;
