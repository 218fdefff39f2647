//! Spec fields every provider's InfraCluster has in the same shape: the credentials Secret
//! reference and TLS trust for the cloud's endpoints.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Secret in the object's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// TLS trust for the cloud's API endpoints. Verification is on unless `insecureSkipVerify` is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    /// PEM bundle of the CAs that sign the endpoints' certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536))]
    pub ca_bundle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}
