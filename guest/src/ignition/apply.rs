//! Ignition's files stage into the VM root (`internal/exec/stages/files`): users' SSH keys,
//! directories, files (`overwrite`, `append`), links, then units, drop-ins and the preset.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::config::{Config, File, Link, Source};
use super::dataurl;
use super::systemd::{PRESET, dropin_path, unit_path};
use super::{IgnitionError, Result};
use crate::cloudinit::{guest_path, write_bytes};
use crate::os::GuestOs;

const FILE_MODE: i64 = 0o644;
const DIR_MODE: i64 = 0o755;

fn io(path: &str, e: impl std::fmt::Display) -> IgnitionError {
    IgnitionError::Io {
        path: path.to_string(),
        message: e.to_string(),
    }
}

fn host(root: &Path, guest: &str) -> Result<PathBuf> {
    guest_path(root, guest).map_err(|e| io(guest, e))
}

/// Special bits are not applied before spec 3.6.
fn chmod(path: &Path, guest: &str, mode: i64) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode((mode & 0o777) as u32)).map_err(|e| io(guest, e))
}

fn write(root: &Path, guest: &str, data: &[u8], append: bool, mode: i64) -> Result<PathBuf> {
    let path = write_bytes(root, guest, data, append).map_err(|e| io(guest, e))?;
    chmod(&path, guest, mode)?;
    Ok(path)
}

/// Runs the files stage; returns the guest paths written.
pub fn files_stage(root: &Path, cfg: &Config, os: GuestOs) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for u in &cfg.passwd.users {
        if u.ssh_authorized_keys.is_empty() {
            continue;
        }
        let home = u.home_dir.clone().unwrap_or_else(|| match u.name.as_str() {
            "root" => "/root".into(),
            n => format!("/home/{n}"),
        });
        let keys = format!("{home}/{}", os.ssh_keys_file());
        let text: String = u.ssh_authorized_keys.iter().map(|k| format!("{k}\n")).collect();
        write(root, &keys, text.as_bytes(), false, 0o600)?;
        chmod(&host(root, &format!("{home}/.ssh"))?, &keys, 0o700)?;
        written.push(keys);
    }
    for d in &cfg.storage.directories {
        let p = host(root, &d.path)?;
        fs::create_dir_all(&p).map_err(|e| io(&d.path, e))?;
        chmod(&p, &d.path, d.mode.unwrap_or(DIR_MODE))?;
        written.push(d.path.clone());
    }
    for f in &cfg.storage.files {
        file(root, f)?;
        written.push(f.path.clone());
    }
    for l in &cfg.storage.links {
        link(root, l)?;
        written.push(l.path.clone());
    }
    written.extend(units(root, cfg)?);
    Ok(written)
}

fn fetch(what: &str, s: &Source) -> Result<Option<Vec<u8>>> {
    s.resource().map(|r| dataurl::fetch(what, r)).transpose()
}

fn file(root: &Path, f: &File) -> Result<()> {
    let p = host(root, &f.path)?;
    let exists = p.symlink_metadata().is_ok();
    let contents = f.contents.as_ref().map(|c| fetch(&f.path, c)).transpose()?.flatten();
    if exists && contents.is_some() && !f.overwrite.unwrap_or(false) {
        return Err(IgnitionError::FileExists(f.path.clone()));
    }
    let mode = f.mode.unwrap_or(FILE_MODE);
    match contents {
        Some(data) => {
            if exists {
                fs::remove_file(&p).map_err(|e| io(&f.path, e))?;
            }
            write(root, &f.path, &data, false, mode)?;
        }
        // No contents: the file is created empty unless it is there already.
        None if !exists => {
            write(root, &f.path, b"", false, mode)?;
        }
        None => chmod(&p, &f.path, mode)?,
    }
    for (i, a) in f.append.iter().enumerate() {
        if let Some(data) = fetch(&format!("{} (append[{i}])", f.path), a)? {
            write(root, &f.path, &data, true, mode)?;
        }
    }
    Ok(())
}

fn link(root: &Path, l: &Link) -> Result<()> {
    let p = host(root, &l.path)?;
    let target = l
        .target
        .as_deref()
        .ok_or_else(|| IgnitionError::Schema(format!("link {} has no target", l.path)))?;
    if p.symlink_metadata().is_ok() {
        if !l.overwrite.unwrap_or(false) {
            return Err(IgnitionError::FileExists(l.path.clone()));
        }
        fs::remove_file(&p).map_err(|e| io(&l.path, e))?;
    }
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).map_err(|e| io(&l.path, e))?;
    }
    if l.hard == Some(true) {
        fs::hard_link(host(root, target)?, &p).map_err(|e| io(&l.path, e))
    } else {
        std::os::unix::fs::symlink(target, &p).map_err(|e| io(&l.path, e))
    }
}

fn units(root: &Path, cfg: &Config) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let mut preset = String::new();
    for u in &cfg.systemd.units {
        if let Some(text) = &u.contents {
            let guest = unit_path(&u.name);
            write(root, &guest, text.as_bytes(), false, FILE_MODE)?;
            written.push(guest);
        }
        for d in &u.dropins {
            if let Some(text) = &d.contents {
                let guest = dropin_path(&u.name, &d.name);
                write(root, &guest, text.as_bytes(), false, FILE_MODE)?;
                written.push(guest);
            }
        }
        if u.mask == Some(true) {
            let guest = unit_path(&u.name);
            let p = host(root, &guest)?;
            let _ = fs::remove_file(&p);
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).map_err(|e| io(&guest, e))?;
            }
            std::os::unix::fs::symlink("/dev/null", &p).map_err(|e| io(&guest, e))?;
        }
        match u.enabled {
            Some(true) => preset.push_str(&format!("enable {}\n", u.name)),
            Some(false) => preset.push_str(&format!("disable {}\n", u.name)),
            None => {}
        }
    }
    if !preset.is_empty() {
        write(root, PRESET, preset.as_bytes(), false, FILE_MODE)?;
        written.push(PRESET.into());
    }
    Ok(written)
}
