//! Cloud credentials read from a Kubernetes Secret. The values never reach logs, events or status:
//! `Debug` prints only the key names.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    values: BTreeMap<String, String>,
    /// The Secret they came from (`namespace`, `name`), for messages that name it.
    source: (String, String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("secret", &self.secret())
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("secret {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("secret {namespace}/{name} has no key {key:?}")]
    MissingKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("cannot read secret {namespace}/{name}: {source}")]
    Kube {
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

impl Credentials {
    /// Credentials not read from a Secret (tests, tools); messages call their source `memory`.
    pub fn from_map(values: BTreeMap<String, String>) -> Self {
        Self {
            values,
            source: (String::new(), "memory".into()),
        }
    }

    /// Reads every key of `namespace/name`.
    pub async fn read(client: &kube::Client, namespace: &str, name: &str) -> Result<Self, CredentialsError> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|source| CredentialsError::Kube {
                namespace: namespace.into(),
                name: name.into(),
                source,
            })?
            .ok_or_else(|| CredentialsError::NotFound {
                namespace: namespace.into(),
                name: name.into(),
            })?;
        let mut values = BTreeMap::new();
        for (k, v) in secret.data.unwrap_or_default() {
            values.insert(
                k,
                String::from_utf8_lossy(&v.0).trim_end_matches(['\r', '\n']).to_string(),
            );
        }
        for (k, v) in secret.string_data.unwrap_or_default() {
            values.insert(k, v);
        }
        Ok(Self {
            values,
            source: (namespace.into(), name.into()),
        })
    }

    /// Makes the Secret `namespace/name` travel with the cluster: an owner reference to the
    /// InfraCluster that uses it (several clusters may share one Secret; each adds its own,
    /// none is the controller) and `clusterctl.cluster.x-k8s.io/move`, so that `clusterctl move`
    /// carries it and garbage collection removes it after the last cluster. True when it patched.
    pub async fn adopt(
        client: &kube::Client,
        namespace: &str,
        name: &str,
        owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Result<bool, kube::Error> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let Some(secret) = secrets.get_opt(name).await? else {
            return Ok(false);
        };
        let mut owners = secret.metadata.owner_references.clone().unwrap_or_default();
        let owned = owners.iter().any(|o| o.uid == owner.uid);
        let labelled = secret
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(capstan_api::contract::LABEL_MOVE));
        if owned && labelled {
            return Ok(false);
        }
        if !owned {
            owners.push(owner);
        }
        let patch = serde_json::json!({"metadata": {
            // The owner list is replaced whole: only if nobody changed it meanwhile.
            "resourceVersion": secret.metadata.resource_version,
            "ownerReferences": owners,
            "labels": {capstan_api::contract::LABEL_MOVE: ""},
        }});
        secrets
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await?;
        Ok(true)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The value of `key`, or an error naming the secret and key (never the value).
    pub fn require(&self, key: &str) -> Result<&str, CredentialsError> {
        self.get(key).ok_or_else(|| CredentialsError::MissingKey {
            namespace: self.source.0.clone(),
            name: self.source.1.clone(),
            key: key.into(),
        })
    }

    /// `namespace/name` of the Secret, for messages about one of its values.
    pub fn secret(&self) -> String {
        format!("{}/{}", self.source.0, self.source.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_keys_not_values() {
        let c = Credentials::from_map(BTreeMap::from([("authKey".to_string(), "s3cret!".to_string())]));
        let text = format!("{c:?}");
        assert!(text.contains("authKey") && !text.contains("s3cret"), "{text}");
        assert_eq!(c.get("authKey"), Some("s3cret!"));
        assert!(
            c.require("endpoint")
                .unwrap_err()
                .to_string()
                .contains("no key \"endpoint\"")
        );
    }
}
