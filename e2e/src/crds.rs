use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The `shared/` folder beside the repository (or `$CAPSTAN_SHARED`).
pub fn shared_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CAPSTAN_SHARED") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// The upstream Cluster API v1.14 CRDs, unmodified (CEL rules included).
pub fn capi_crds_dir() -> PathBuf {
    shared_dir().join("capi/crds-upstream")
}

/// Every CRD in the `.yaml` files of a folder (one or more documents per file).
pub fn load_crds_from_dir(dir: &Path) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path)?;
        let docs: Vec<CustomResourceDefinition> =
            serde_saphyr::from_multiple(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        out.extend(docs);
    }
    Ok(out)
}
