//! Checks made before any controller starts, so a missing CRD is a one-line hint instead of a
//! watcher failing in a loop.

use kube::Client;
use kube::discovery::ApiResource;

/// A CRD a provider needs, and what installs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredCrd {
    pub group: String,
    pub version: String,
    pub plural: String,
    /// Told to the user when the CRD is missing, e.g. "Cluster API core (`clusterctl init`)".
    pub installed_by: String,
}

impl RequiredCrd {
    pub fn new(group: &str, version: &str, plural: &str, installed_by: &str) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            installed_by: installed_by.into(),
        }
    }

    /// The same, from a kind's `ApiResource`.
    pub fn of(ar: &ApiResource, installed_by: &str) -> Self {
        Self::new(&ar.group, &ar.version, &ar.plural, installed_by)
    }

    pub fn crd_name(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("CRD {crd} ({version}) is not installed: install {installed_by}")]
    MissingCrd {
        crd: String,
        version: String,
        installed_by: String,
    },
    #[error("cannot reach the Kubernetes API server: {0}")]
    Unreachable(#[source] kube::Error),
}

/// Returns the first required CRD that the API server does not serve.
pub async fn check_crds(client: &Client, required: &[RequiredCrd]) -> Result<(), PreflightError> {
    for crd in required {
        match client
            .list_api_group_resources(&format!("{}/{}", crd.group, crd.version))
            .await
        {
            Ok(list) if list.resources.iter().any(|r| r.name == crd.plural) => continue,
            Ok(_) => {}
            // A group/version nobody serves answers 404.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(PreflightError::Unreachable(e)),
        }
        return Err(PreflightError::MissingCrd {
            crd: crd.crd_name(),
            version: crd.version.clone(),
            installed_by: crd.installed_by.clone(),
        });
    }
    Ok(())
}
