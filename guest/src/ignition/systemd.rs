//! The part of systemd a first boot needs: where Ignition puts units, unit-file syntax, the
//! preset Ignition writes, `[Install] WantedBy=multi-user.target`, `ConditionPathExists=`,
//! `Environment=`/`EnvironmentFile=`, how `ExecStart=` is executed, and `envsubst`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::cloudinit::guest_path;

pub const UNIT_DIR: &str = "/etc/systemd/system";
/// Ignition applies `enabled` through this preset (`internal/exec/util/unit.go`).
pub const PRESET: &str = "/etc/systemd/system-preset/20-ignition.preset";
/// afterburn's metadata attributes (`--attributes=/run/metadata/afterburn`).
pub const AFTERBURN_ENV: &str = "/run/metadata/afterburn";
const AFTERBURN_UNITS: [&str; 2] = ["afterburn.service", "coreos-metadata.service"];

pub fn unit_path(name: &str) -> String {
    format!("{UNIT_DIR}/{name}")
}

pub fn dropin_path(unit: &str, dropin: &str) -> String {
    format!("{UNIT_DIR}/{unit}.d/{dropin}")
}

/// A unit file and its drop-ins, as systemd reads them: assignments in order. No `Debug`: the
/// values may be credentials.
#[derive(Default, Clone)]
pub struct UnitFile {
    entries: Vec<(String, String, String)>,
    sections: Vec<String>,
}

impl UnitFile {
    pub fn has_section(&self, s: &str) -> bool {
        self.sections.iter().any(|x| x == s)
    }

    /// Every value of `key` in `section`, in order; an empty assignment resets the list, as
    /// systemd does for list settings.
    pub fn all(&self, section: &str, key: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for (s, k, v) in &self.entries {
            if s == section && k == key {
                if v.is_empty() {
                    out.clear();
                } else {
                    out.push(v.as_str());
                }
            }
        }
        out
    }

    pub fn last(&self, section: &str, key: &str) -> Option<&str> {
        self.all(section, key).pop()
    }

    fn extend(&mut self, other: UnitFile) {
        self.entries.extend(other.entries);
        self.sections.extend(other.sections);
    }

    /// The units named in `Requires=`, `Wants=` and `After=`.
    pub fn dependencies(&self) -> Vec<&str> {
        ["Requires", "Wants", "After"]
            .iter()
            .flat_map(|k| self.all("Unit", k))
            .flat_map(str::split_whitespace)
            .collect()
    }

    pub fn wants_afterburn(&self) -> bool {
        self.dependencies().iter().any(|d| AFTERBURN_UNITS.contains(d))
    }

    pub fn requires_afterburn(&self) -> bool {
        self.all("Unit", "Requires")
            .iter()
            .flat_map(|v| v.split_whitespace())
            .any(|d| AFTERBURN_UNITS.contains(&d))
    }
}

/// Parses unit-file syntax: `[Section]`, `Key=Value`, comments, `\` continuations.
pub fn parse_unit(text: &str) -> Result<UnitFile, String> {
    let mut unit = UnitFile::default();
    let mut section: Option<String> = None;
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let mut line = line.trim().to_string();
        while line.ends_with('\\') {
            line.pop();
            match lines.next() {
                Some((_, more)) => line.push_str(more.trim()),
                None => break,
            }
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            unit.sections.push(name.to_string());
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or(format!("line {}: not a Key=Value assignment", n + 1))?;
        let s = section
            .clone()
            .ok_or(format!("line {}: assignment outside a section", n + 1))?;
        unit.entries.push((s, k.trim().to_string(), v.trim().to_string()));
    }
    Ok(unit)
}

/// The unit as systemd loads it from the VM's `/etc/systemd/system`, drop-ins in name order.
pub fn load(root: &Path, name: &str) -> Result<Option<UnitFile>, String> {
    let read = |guest: &str| -> Result<Option<String>, String> {
        let host = guest_path(root, guest).map_err(|e| e.to_string())?;
        match std::fs::read_to_string(&host) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{guest}: {e}")),
        }
    };
    let Some(main) = read(&unit_path(name))? else {
        return Ok(None);
    };
    let mut unit = parse_unit(&main).map_err(|e| format!("{name}: {e}"))?;
    let dir = guest_path(root, &format!("{UNIT_DIR}/{name}.d")).map_err(|e| e.to_string())?;
    let mut dropins: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    dropins.sort();
    for d in dropins {
        let text = read(&dropin_path(name, &d))?.unwrap_or_default();
        unit.extend(parse_unit(&text).map_err(|e| format!("{name}.d/{d}: {e}"))?);
    }
    Ok(Some(unit))
}

/// The units the preset enables, in the preset's order.
pub fn enabled_units(root: &Path) -> Vec<String> {
    let text = guest_path(root, PRESET)
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("enable "))
        .map(|n| n.trim().to_string())
        .collect()
}

pub fn wanted_by_multi_user(unit: &UnitFile) -> bool {
    unit.all("Install", "WantedBy")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .any(|t| t == "multi-user.target")
}

/// `ConditionPathExists=` (a `!` negates); every condition must hold.
pub fn conditions_hold(root: &Path, unit: &UnitFile) -> bool {
    unit.all("Unit", "ConditionPathExists").iter().all(|c| {
        let (negate, path) = c.strip_prefix('!').map_or((false, *c), |p| (true, p));
        let exists = guest_path(root, path).is_ok_and(|p| p.exists());
        exists != negate
    })
}

/// The environment the unit's processes get: `Environment=` then `EnvironmentFile=` (a `-`
/// prefix makes the file optional; a missing mandatory one fails the unit).
pub fn environment(root: &Path, unit: &UnitFile) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    for value in unit.all("Service", "Environment") {
        for word in shell_words(value) {
            if let Some((k, v)) = word.split_once('=') {
                env.insert(k.to_string(), v.to_string());
            }
        }
    }
    for file in unit.all("Service", "EnvironmentFile") {
        let (optional, path) = file.strip_prefix('-').map_or((false, file), |p| (true, p));
        let host = guest_path(root, path).map_err(|e| e.to_string())?;
        match std::fs::read_to_string(&host) {
            Ok(text) => env.extend(parse_env_file(&text)),
            Err(_) if optional => {}
            Err(e) => return Err(format!("Failed to load environment files: {path}: {e}")),
        }
    }
    Ok(env)
}

/// `KEY=value` lines as systemd's EnvironmentFile reads them (quotes removed, comments skipped).
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), unquote(v.trim())))
        .collect()
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// Whitespace-separated words, double or single quotes grouping (systemd's quoting).
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), _) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            _ => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// What `ExecStart=` runs: the script a shell reads, or the file executed directly (which needs
/// its exec bit, as execve does). Anything else is a program of the image we only record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exec {
    Script(String),
    Recorded(String),
}

const SHELLS: [&str; 4] = ["/bin/bash", "/usr/bin/bash", "/bin/sh", "/usr/bin/sh"];

pub fn exec_start(root: &Path, command: &str) -> Result<Exec, String> {
    // `-`, `@`, `+`, `!`, `:` prefixes change how systemd runs it, not what.
    let command = command.trim_start_matches(['-', '@', '+', '!', ':']);
    let words = shell_words(command);
    let Some(program) = words.first() else {
        return Err("ExecStart= is empty".into());
    };
    if SHELLS.contains(&program.as_str()) {
        return match words.get(1) {
            Some(script) if !script.starts_with('-') => Ok(Exec::Script(script.clone())),
            _ => Ok(Exec::Recorded(command.to_string())),
        };
    }
    let host = guest_path(root, program).map_err(|e| e.to_string())?;
    match std::fs::metadata(&host) {
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(format!(
            "Failed to execute {program}: Permission denied (the file has no exec bit; run it as /bin/bash {program})"
        )),
        Ok(_) => Ok(Exec::Script(program.clone())),
        Err(_) => Ok(Exec::Recorded(command.to_string())),
    }
}

/// GNU envsubst without a SHELL-FORMAT: every `$VAR` and `${VAR}` is replaced, an unset one by
/// the empty string.
pub fn envsubst(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) if is_name(&braced[..end]) => (&braced[..end], end + 2),
                _ => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if is_name(&after[..end]) {
                (&after[..end], end)
            } else {
                ("", 0)
            }
        };
        if len == 0 {
            out.push('$');
            rest = after;
        } else {
            out.push_str(env.get(name).map(String::as_str).unwrap_or_default());
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

fn is_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envsubst_like_gnu() {
        let env = BTreeMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(
            envsubst("a=$A b=${A} c=$UNSET d=$ e=${1}", &env),
            "a=x b=x c= d=$ e=${1}"
        );
    }

    #[test]
    fn units_parse_with_dropin_resets() {
        let u =
            parse_unit("[Unit]\nAfter=a b\n# c\n[Service]\nEnvironment=\"X=1 2\" Y=3\nExecStart=/x \\\n  y\n").unwrap();
        assert_eq!(u.last("Service", "ExecStart"), Some("/x y"));
        assert_eq!(shell_words(u.last("Service", "Environment").unwrap()), ["X=1 2", "Y=3"]);
        assert!(parse_unit("junk").is_err());
        assert!(parse_unit("X=1").is_err());
    }
}
