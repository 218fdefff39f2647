//! Where the etcd and kube-apiserver binaries are. `hack/testenv.sh` builds one kube-apiserver
//! per wrapper module under `hack/peers/kube-apiserver-v1.<minor>` into the cache as
//! `kube-apiserver-v1.<minor>.<patch>`; those modules are the one list of Kubernetes versions a
//! local plane (and so a simulated workload cluster) can run.

use std::path::{Path, PathBuf};

/// The Kubernetes version a plane runs when nobody asks for one.
pub const DEFAULT_KUBERNETES_MINOR: u32 = 34;

/// Where `hack/testenv.sh` keeps what it builds (`$CAPSTAN_CACHE` or `~/.cache/capstan`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CAPSTAN_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/capstan")
    })
}

/// `v1.34.2` / `1.34` → 34.
fn minor_of(version: &str) -> Option<u32> {
    let v = version.strip_prefix('v').unwrap_or(version);
    let mut parts = v.split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}

/// Patch number of a cache entry `kube-apiserver-v1.<minor>.<patch>`.
fn patch_of(file_name: &str, minor: u32) -> Option<u32> {
    file_name
        .strip_prefix(&format!("kube-apiserver-v1.{minor}."))?
        .parse()
        .ok()
}

/// Every kube-apiserver in the cache, as (minor, patch, path), newest first.
fn built(cache: &Path) -> Vec<(u32, u32, PathBuf)> {
    let mut out: Vec<_> = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let minor = minor_of(name.strip_prefix("kube-apiserver-")?)?;
            Some((minor, patch_of(&name, minor)?, e.path()))
        })
        .collect();
    out.sort_by_key(|(minor, patch, _)| std::cmp::Reverse((*minor, *patch)));
    out
}

/// The kube-apiserver for Kubernetes `version` (any patch of its minor), or for the default
/// version when `None`. `$CAPSTAN_KUBE_APISERVER` wins when it is of that minor (or no version
/// is asked for).
pub fn kube_apiserver(version: Option<&str>) -> anyhow::Result<PathBuf> {
    let minor = match version {
        None => None,
        Some(v) => Some(minor_of(v).ok_or_else(|| anyhow::anyhow!("{v:?} is not a Kubernetes version"))?),
    };
    if let Some(env) = std::env::var_os("CAPSTAN_KUBE_APISERVER").map(PathBuf::from) {
        let env_minor = env
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("kube-apiserver-"))
            .and_then(minor_of);
        if minor.is_none() || env_minor == minor {
            return if env.is_file() {
                Ok(env)
            } else {
                anyhow::bail!(
                    "{} (CAPSTAN_KUBE_APISERVER) does not exist: run hack/testenv.sh",
                    env.display()
                )
            };
        }
    }
    let cache = cache_dir();
    let all = built(&cache);
    let want = minor.unwrap_or(DEFAULT_KUBERNETES_MINOR);
    if let Some((_, _, path)) = all.iter().find(|(m, _, _)| *m == want) {
        return Ok(path.clone());
    }
    let have: Vec<String> = all.iter().map(|(m, p, _)| format!("v1.{m}.{p}")).collect();
    anyhow::bail!(
        "no kube-apiserver for Kubernetes v1.{want} is built in {} (built: {}); versions come from hack/peers/kube-apiserver-v1.<minor> \
         (add one with hack/peers/gen-kube-apiserver.sh v1.{want}.N) and are built by hack/testenv.sh",
        cache.display(),
        if have.is_empty() {
            "none".to_string()
        } else {
            have.join(", ")
        }
    )
}

/// The etcd binary (`$CAPSTAN_ETCD`, or Debian's `/usr/bin/etcd`).
pub fn etcd() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("CAPSTAN_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
    if path.is_file() {
        Ok(path)
    } else {
        anyhow::bail!(
            "{} not found (set CAPSTAN_ETCD or run `eval \"$(hack/testenv.sh)\"`)",
            path.display()
        )
    }
}

/// The etcd and default kube-apiserver binaries, or an error that says how to get them.
pub fn binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    Ok((etcd()?, kube_apiserver(None)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_the_newest_patch_of_their_minor() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "kube-apiserver-v1.34.2",
            "kube-apiserver-v1.34.10",
            "kube-apiserver-v1.33.13",
            "kube-apiserver-v1.34.4.tmp",
        ] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let b = built(dir.path());
        let names: Vec<_> = b.iter().map(|(m, p, _)| format!("{m}.{p}")).collect();
        assert_eq!(names, ["34.10", "34.2", "33.13"]);
        assert_eq!(minor_of("v1.33.1"), Some(33));
        assert_eq!(minor_of("1.34"), Some(34));
        assert_eq!(minor_of("v2.0.0"), None);
    }
}
