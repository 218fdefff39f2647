//! What cloud-init does with a NoCloud seed, as far as bootstrapping a node depends on it:
//! instance data for templates, the `## template: jinja` header, the `#cloud-config` part,
//! `write_files` and `runcmd`.
//!
//! The rules follow cloud-init's own code (`handlers/jinja_template.py`, `templater.py`,
//! `config/cc_write_files.py`, `config/cc_runcmd.py`, `util.shellify`) rather than its docs.
//! Where cloud-init only logs a warning and carries on with a node that will never join (an
//! unrenderable template, a part that is not cloud-config, YAML that does not load, a file that
//! does not decode), we return an error instead, so the simulated boot fails where the real one
//! would silently go nowhere. Warnings that cloud-init logs without consequence (a missing jinja
//! variable, an unknown `encoding`) are kept in [`Boot::warnings`].

mod decode;
mod document;
mod files;
mod instance;
mod jinja;
mod runcmd;

use std::path::{Path, PathBuf};

pub use document::{CloudConfig, Encoding, WriteFile, parse};
pub use files::{guest_path, write_bytes, write_files};
pub use instance::InstanceData;
pub use jinja::{MISSING_JINJA_PREFIX, missing_jinja_vars, render};
pub use runcmd::{Command, PlannedStep, RunIf, Step, plan, plan_detailed, plan_unit_script};

use crate::nocloud::Seed;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudInitError {
    #[error("user-data starts with the gzip magic but does not decompress: {0}")]
    UserDataGzip(String),
    #[error("user-data is not UTF-8 text (invalid byte at offset {offset})")]
    UserDataNotUtf8 { offset: usize },
    #[error(
        "user-data is a multipart MIME archive; the simulator only handles a single #cloud-config part (optionally behind `## template: jinja`)"
    )]
    Multipart,
    /// The template does not parse; cloud-init logs "Unable to parse Jinja template" and ignores
    /// the whole user-data part. `line` counts from the first line of the user-data, header
    /// included, as cloud-init reports it.
    #[error("jinja template syntax error{}: {message}; cloud-init ignores the whole user-data part", at_line(*line))]
    Template { line: Option<usize>, message: String },
    /// The template parses but fails while rendering (an attribute of an undefined variable,
    /// `{{ ds.meta_data.local-hostname }}` read as a subtraction, ...). cloud-init logs "Ignoring
    /// jinja template" and does nothing with the part.
    #[error("jinja template failed to render{}: {message}; cloud-init ignores the whole user-data part", at_line(*line))]
    Render { line: Option<usize>, message: String },
    #[error(
        "user-data does not start with #cloud-config (first line: {first_line:?}); cloud-init would not run it as cloud-config, so the node never bootstraps"
    )]
    NotCloudConfig { first_line: String },
    /// The cloud-config does not load as YAML, or a key cloud-init acts on has the wrong shape.
    #[error("cloud-config{}: {message}", at_location(*line, *column))]
    Yaml {
        message: String,
        line: Option<u64>,
        column: Option<u64>,
    },
    #[error("write_files entry for {path}: cannot decode its {encoding} content: {message}")]
    Decode {
        path: String,
        encoding: &'static str,
        message: String,
    },
    #[error("write_files entry for {path}: invalid permissions {value:?} (expected an octal mode such as '0640')")]
    Permissions { path: String, value: String },
    #[error("guest path {path:?} {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("writing guest file {path}: {message}")]
    Io { path: String, message: String },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" on user-data line {l}")).unwrap_or_default()
}

fn at_location(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

/// The outcome of one simulated cloud-init run.
#[derive(Debug, Clone, PartialEq)]
pub struct Boot {
    pub instance: InstanceData,
    pub config: CloudConfig,
    /// Host paths written, in the order cloud-init writes them (deferred files last).
    pub written: Vec<PathBuf>,
    /// `runcmd`, planned. `bootcmd` is kept in `config.bootcmd` but not planned.
    pub steps: Vec<Step>,
    /// The user-data after jinja rendering: what cloud-init parsed as cloud-config.
    pub rendered: String,
    /// What cloud-init would have logged as warnings without failing.
    pub warnings: Vec<String>,
}

/// Runs the cloud-init stages that matter for bootstrap: render → parse → write_files → plan
/// the runcmd. Files land under `root`, the VM's filesystem.
pub fn boot(root: &Path, seed: &Seed) -> Result<Boot, CloudInitError> {
    let instance = InstanceData::from_seed(seed);
    let rendered = render(&seed.user_data, &instance)?;
    let mut warnings: Vec<String> = missing_jinja_vars(&rendered)
        .into_iter()
        .map(|v| format!("could not render jinja template variable {v:?}"))
        .collect();
    let config = parse(&rendered)?;
    warnings.extend(config.warnings.iter().cloned());
    let written = write_files(root, &config.write_files)?;
    let steps = plan(&config.runcmd);
    Ok(Boot {
        instance,
        config,
        written,
        steps,
        rendered,
        warnings,
    })
}

/// YAML the way cloud-init's PyYAML reads it: YAML 1.1 octal (`0640`) and booleans (`yes`),
/// and a repeated key keeps its last value.
pub(crate) fn yaml11_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        legacy_octal_numbers: true,
        strict_booleans: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
        // `!!binary` content reaches us as its base64 text, decoded the way cloud-init does.
        ignore_binary_tag_for_string: true,
    }
}

pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}
