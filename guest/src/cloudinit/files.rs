//! `write_files` into a per-VM root directory that stands for the guest's `/`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::{CloudInitError, WriteFile};

/// Maps a guest path into `root`. cloud-init runs with `/` as its working directory, so a
/// relative path is taken from `/` too. A `..` component is refused outright: cloud-init would
/// normalise it away (`os.path.abspath`), but bootstrap data that needs it is a bug worth seeing,
/// and refusing is what keeps every write inside `root`.
pub fn guest_path(root: &Path, guest: &str) -> Result<PathBuf, CloudInitError> {
    let bad = |reason| CloudInitError::BadPath {
        path: guest.to_string(),
        reason,
    };
    if guest.is_empty() {
        return Err(bad("is empty"));
    }
    if guest.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let mut out = root.to_path_buf();
    for component in Path::new(guest).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(bad("has a '..' component, which could leave the VM's root directory")),
            Component::Prefix(_) => return Err(bad("is not a Unix path")),
        }
    }
    Ok(out)
}

/// Writes files as `cc_write_files` and then `cc_write_files_deferred` do: the non-deferred
/// entries in order, then the deferred ones. Returns the host paths in write order.
pub fn write_files(root: &Path, files: &[WriteFile]) -> Result<Vec<PathBuf>, CloudInitError> {
    let ordered = files
        .iter()
        .filter(|f| !f.defer)
        .chain(files.iter().filter(|f| f.defer));
    let mut written = Vec::new();
    for file in ordered {
        written.push(write_one(root, file)?);
    }
    Ok(written)
}

fn write_one(root: &Path, file: &WriteFile) -> Result<PathBuf, CloudInitError> {
    let data = file.decode()?;
    let mode = file.mode()?;
    let path = write_bytes(root, &file.path, &data, file.append)?;
    // util.write_file chmods after writing, appending or not.
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| io_error(&file.path, e))?;
    Ok(path)
}

fn io_error(guest: &str, e: std::io::Error) -> CloudInitError {
    CloudInitError::Io {
        path: guest.to_string(),
        message: e.to_string(),
    }
}

/// Writes (or appends) `data` at a guest path, creating its directories; what both
/// `write_files` and a shell redirect (`echo X > F` in runcmd) do to the guest's disk.
pub fn write_bytes(root: &Path, guest: &str, data: &[u8], append: bool) -> Result<PathBuf, CloudInitError> {
    let path = guest_path(root, guest)?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_error(guest, e))?;
    }
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .append(append)
        .truncate(!append)
        .open(&path)
        .map_err(|e| io_error(guest, e))?;
    out.write_all(data).map_err(|e| io_error(guest, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_stay_inside_the_root() {
        let root = Path::new("/vm");
        assert_eq!(
            guest_path(root, "/etc/kubernetes/pki/ca.crt").unwrap(),
            Path::new("/vm/etc/kubernetes/pki/ca.crt")
        );
        assert_eq!(guest_path(root, "run//./x").unwrap(), Path::new("/vm/run/x"));
        for bad in ["/etc/../../x", "..", "", "/a\0b"] {
            assert!(
                matches!(guest_path(root, bad), Err(CloudInitError::BadPath { .. })),
                "{bad:?}"
            );
        }
    }
}
