//! The semantic checks Ignition runs on every parsed config (`config/v3_*/types/*.go`
//! `Validate*`, `config/shared/errors`): the ones its JSON schema cannot express.

use std::collections::BTreeSet;

use super::config::{Config, Source};
use super::dataurl;
use super::systemd::{dropin_path, parse_unit, unit_path};
use super::{IgnitionError, Result};

/// systemd unit types (`config/shared/validations/unit.go`).
const UNIT_SUFFIXES: [&str; 12] = [
    ".service",
    ".socket",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".target",
    ".path",
    ".timer",
    ".snapshot",
    ".slice",
    ".scope",
];

/// Setuid, setgid and sticky: Ignition honours them only from spec 3.6 and warns before.
const SPECIAL_BITS: i64 = 0o7000;

/// Checks one config; warnings Ignition logs without failing go to `warnings`.
pub fn check(cfg: &Config, minor: u32, warnings: &mut Vec<String>) -> Result<()> {
    let refs = &cfg.ignition.config;
    source("ignition.config.replace", refs.replace.as_ref())?;
    for (i, m) in refs.merge.iter().enumerate() {
        source(&format!("ignition.config.merge[{i}]"), Some(m))?;
    }
    paths(cfg)?;
    for f in &cfg.storage.files {
        source(&f.path, f.contents.as_ref())?;
        for a in &f.append {
            source(&format!("{} (append)", f.path), Some(a))?;
        }
        mode(&f.path, f.mode, minor, warnings)?;
    }
    for d in &cfg.storage.directories {
        mode(&d.path, d.mode, minor, warnings)?;
    }
    units(cfg, warnings)?;
    let mut users = BTreeSet::new();
    for u in &cfg.passwd.users {
        if !users.insert(u.name.as_str()) {
            return Err(IgnitionError::DuplicateUser(u.name.clone()));
        }
    }
    Ok(())
}

fn source(what: &str, s: Option<&Source>) -> Result<()> {
    match s.and_then(Source::resource) {
        Some(r) => dataurl::check(what, r),
        None => Ok(()),
    }
}

/// Absolute and clean, as `filepath.Clean(p) == p` (`ErrDirtyPath`).
pub fn check_path(p: &str) -> Result<()> {
    if !p.starts_with('/') {
        return Err(IgnitionError::RelativePath(p.into()));
    }
    let dirty = p != "/" && p[1..].split('/').any(|seg| matches!(seg, "" | "." | ".."));
    if dirty {
        return Err(IgnitionError::DirtyPath(p.into()));
    }
    Ok(())
}

fn paths(cfg: &Config) -> Result<()> {
    let s = &cfg.storage;
    let all = s
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain(s.directories.iter().map(|d| d.path.as_str()))
        .chain(s.links.iter().map(|l| l.path.as_str()));
    let mut seen = BTreeSet::new();
    for p in all {
        check_path(p)?;
        if !seen.insert(p) {
            return Err(IgnitionError::DuplicatePath(p.into()));
        }
    }
    let systemd: BTreeSet<String> = cfg
        .systemd
        .units
        .iter()
        .flat_map(|u| {
            let unit = u.contents.as_ref().map(|_| unit_path(&u.name));
            let dropins = u.dropins.iter().map(|d| dropin_path(&u.name, &d.name));
            unit.into_iter().chain(dropins)
        })
        .collect();
    let entries = s.files.iter().map(|f| &f.path).chain(s.links.iter().map(|l| &l.path));
    if let Some(p) = entries.into_iter().find(|p| systemd.contains(p.as_str())) {
        return Err(IgnitionError::PathConflictsSystemd(p.clone()));
    }
    Ok(())
}

fn mode(path: &str, mode: Option<i64>, minor: u32, warnings: &mut Vec<String>) -> Result<()> {
    let Some(m) = mode else { return Ok(()) };
    if !(0..=0o7777).contains(&m) {
        return Err(IgnitionError::IllegalMode {
            path: path.into(),
            mode: m,
        });
    }
    if m & SPECIAL_BITS != 0 && minor < 6 {
        warnings.push(format!(
            "{path}: mode {m:#o} has setuid/setgid/sticky bits, which spec 3.{minor} does not apply"
        ));
    }
    Ok(())
}

fn units(cfg: &Config, warnings: &mut Vec<String>) -> Result<()> {
    let mut names = BTreeSet::new();
    for u in &cfg.systemd.units {
        if !names.insert(u.name.as_str()) {
            return Err(IgnitionError::DuplicateUnit(u.name.clone()));
        }
        if !UNIT_SUFFIXES
            .iter()
            .any(|s| u.name.ends_with(s) && u.name.len() > s.len())
        {
            return Err(IgnitionError::UnitSuffix(u.name.clone()));
        }
        if let Some(text) = &u.contents {
            let unit = parse_unit(text).map_err(|message| IgnitionError::UnitContents {
                unit: u.name.clone(),
                message,
            })?;
            if u.enabled == Some(true) && !unit.has_section("Install") {
                warnings.push(format!(
                    "unit {:?} is enabled, but has no install section so enable does nothing",
                    u.name
                ));
            }
        }
        let mut dropins = BTreeSet::new();
        for d in &u.dropins {
            let bad = |e: fn(String, String) -> IgnitionError| Err(e(u.name.clone(), d.name.clone()));
            if !d.name.ends_with(".conf") {
                return bad(|unit, dropin| IgnitionError::DropinSuffix { unit, dropin });
            }
            if !dropins.insert(d.name.as_str()) {
                return bad(|unit, dropin| IgnitionError::DuplicateDropin { unit, dropin });
            }
            if let Some(text) = &d.contents {
                parse_unit(text).map_err(|message| IgnitionError::UnitContents {
                    unit: format!("{}/{}", u.name, d.name),
                    message,
                })?;
            }
        }
    }
    Ok(())
}
