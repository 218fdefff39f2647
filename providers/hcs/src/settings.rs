//! From an HCSCluster and its credentials Secret to the client's settings. Values of the Secret
//! are never echoed (conditions are readable by anyone who can read the HCSCluster): messages
//! name the key and what is wrong with it.

use capstan_lifecycle::Credentials;
use reqwest::Url;

use crate::api::HCSCluster;
use crate::client::{Auth, HcsConfig, Service};
use crate::provider::ProviderError;

const SERVICES: [Service; 5] = [Service::Iam, Service::Ecs, Service::Vpc, Service::Evs, Service::Ims];

pub fn config(cluster: &HCSCluster, creds: &Credentials) -> Result<HcsConfig, ProviderError> {
    let secret = creds.secret();
    let need = |k: &str| creds.require(k).map_err(ProviderError::from);
    // AK/SK (what ACP's HCS provider uses) unless the Secret names an IAM user instead.
    let auth = if creds.get("accessKey").is_none() && creds.get("username").is_some() {
        Auth::Password {
            user: need("username")?.to_string(),
            password: need("password")?.to_string().into(),
            domain: need("domainName")?.to_string(),
        }
    } else {
        Auth::AkSk {
            access_key: need("accessKey")?.to_string(),
            secret_key: need("secretKey")?.to_string().into(),
        }
    };
    let mut config = HcsConfig::with_auth(need("externalGlobalDomain")?, need("region")?, need("projectID")?, auth);
    if let Some(schema) = creds.get("schema") {
        if !matches!(schema, "https" | "http") {
            return Err(ProviderError::Credentials(format!(
                "key schema of Secret {secret} must be https or http"
            )));
        }
        config.scheme = schema.to_string();
    }
    for service in SERVICES {
        let key = format!("{}Endpoint", service.name());
        let Some(value) = creds.get(&key) else { continue };
        let url = Url::parse(value)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http") && u.username().is_empty() && u.password().is_none())
            .ok_or_else(|| {
                ProviderError::Credentials(format!(
                    "key {key} of Secret {secret} is not an http(s) URL without user information"
                ))
            })?;
        config.endpoints.insert(service.name().to_string(), url);
    }
    if let Some(tls) = &cluster.spec.tls {
        config.ca_bundle_pem = tls.ca_bundle.as_ref().map(|p| p.as_bytes().to_vec());
        config.insecure_skip_verify = tls.insecure_skip_verify.unwrap_or(false);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::{HCSClusterSpec, SecretRef};

    fn cluster() -> HCSCluster {
        let mut c = HCSCluster::new(
            "c1",
            HCSClusterSpec {
                credentials_secret_ref: SecretRef { name: "hcs".into() },
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("ns".into());
        c
    }

    fn creds(extra: &[(&str, &str)]) -> Credentials {
        let mut m: BTreeMap<String, String> = [
            ("accessKey", "AK"),
            ("secretKey", "very-secret"),
            ("projectID", "p1"),
            ("region", "r1"),
            ("externalGlobalDomain", "cloud.example"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            m.insert(k.to_string(), v.to_string());
        }
        Credentials::from_map(m)
    }

    #[test]
    fn endpoints_and_overrides() {
        let c = config(&cluster(), &creds(&[("ecsEndpoint", "https://10.1.1.1:8443/")])).unwrap();
        assert_eq!(c.endpoint(Service::Ecs).unwrap().as_str(), "https://10.1.1.1:8443/");
        assert_eq!(
            c.endpoint(Service::Vpc).unwrap().as_str(),
            "https://vpc.r1.cloud.example/"
        );
    }

    #[test]
    fn bad_values_are_named_not_echoed() {
        let e = config(&cluster(), &creds(&[("vpcEndpoint", "https://u:very-secret@x/")])).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("vpcEndpoint") && !text.contains("very-secret"), "{text}");
        let missing = Credentials::from_map(
            [("accessKey", "AK")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let e = config(&cluster(), &missing).unwrap_err();
        assert!(e.to_string().contains("secretKey"), "{e}");
    }

    #[test]
    fn an_iam_user_instead_of_an_access_key() {
        let creds = Credentials::from_map(
            [
                ("username", "u"),
                ("password", "pw-secret"),
                ("domainName", "d"),
                ("projectID", "p1"),
                ("region", "r1"),
                ("externalGlobalDomain", "cloud.example"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let c = config(&cluster(), &creds).unwrap();
        assert!(matches!(&c.auth, Auth::Password { user, domain, .. } if user == "u" && domain == "d"));
        assert!(!format!("{c:?}").contains("pw-secret"));
    }
}
