//! From a VCenterCluster and its credentials Secret to the client's settings. The Secret's
//! values are never echoed (conditions are readable by anyone who can read the VCenterCluster):
//! messages name the key and what is wrong with it.

use capstan_lifecycle::Credentials;

use crate::api::VCenterCluster;
use crate::client::{Thumbprint, TlsTrust, Url, VsphereConfig};
use crate::error::ProviderError;

pub fn config(cluster: &VCenterCluster, creds: &Credentials) -> Result<VsphereConfig, ProviderError> {
    let spec = &cluster.spec;
    let url = Url::parse(&spec.server)
        .ok()
        .filter(|u| u.scheme() == "https" && u.username().is_empty() && u.password().is_none())
        .ok_or_else(|| {
            ProviderError::Spec(format!(
                "server {:?} is not an https URL without user information",
                spec.server
            ))
        })?;
    let username = creds.require("username")?.to_string();
    let password = creds.require("password")?.to_string();
    let mut config = VsphereConfig::new(url, username, password);
    config.tls = trust(cluster)?;
    Ok(config)
}

/// The TLS choice: a CA bundle, a pin, or (said explicitly) none; the system roots otherwise.
fn trust(cluster: &VCenterCluster) -> Result<TlsTrust, ProviderError> {
    let Some(tls) = &cluster.spec.tls else {
        return Ok(TlsTrust::System);
    };
    let insecure = tls.insecure_skip_verify == Some(true);
    match (&tls.ca_bundle, &tls.thumbprint, insecure) {
        (None, None, false) => Ok(TlsTrust::System),
        (Some(pem), None, false) => Ok(TlsTrust::CaBundle(pem.as_bytes().to_vec())),
        (None, Some(t), false) => t
            .parse::<Thumbprint>()
            .map(TlsTrust::Thumbprint)
            .map_err(|e| ProviderError::Spec(format!("tls.thumbprint: {e}"))),
        (None, None, true) => {
            tracing::warn!(server = %cluster.spec.server, "TLS verification of vCenter is off (insecureSkipVerify)");
            Ok(TlsTrust::Insecure)
        }
        _ => Err(ProviderError::Spec(
            "set at most one of tls.caBundle, tls.thumbprint and tls.insecureSkipVerify".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::{SecretRef, VCenterClusterSpec, VCenterTls};

    fn cluster(tls: Option<VCenterTls>) -> VCenterCluster {
        VCenterCluster::new(
            "c1",
            VCenterClusterSpec {
                server: "https://vc.example".into(),
                datacenter: "DC0".into(),
                credentials_secret_ref: SecretRef { name: "vc".into() },
                tls,
                ..Default::default()
            },
        )
    }

    fn creds() -> Credentials {
        Credentials::from_map(BTreeMap::from([
            ("username".to_string(), "admin".to_string()),
            ("password".to_string(), "pw-secret".to_string()),
        ]))
    }

    #[test]
    fn tls_choices_and_no_secret_in_debug() {
        let c = config(&cluster(None), &creds()).unwrap();
        assert_eq!(c.tls, TlsTrust::System);
        assert_eq!(c.sdk_url().as_str(), "https://vc.example/sdk");
        assert!(!format!("{c:?}").contains("pw-secret"));
        let pin = "ab".repeat(32);
        let t = VCenterTls {
            thumbprint: Some(pin),
            ..Default::default()
        };
        assert!(matches!(
            config(&cluster(Some(t)), &creds()).unwrap().tls,
            TlsTrust::Thumbprint(_)
        ));
        // An empty TLS section, or insecureSkipVerify false, still verifies.
        let off = VCenterTls {
            insecure_skip_verify: Some(false),
            ..Default::default()
        };
        assert_eq!(config(&cluster(Some(off)), &creds()).unwrap().tls, TlsTrust::System);
        let on = VCenterTls {
            insecure_skip_verify: Some(true),
            ..Default::default()
        };
        assert_eq!(config(&cluster(Some(on)), &creds()).unwrap().tls, TlsTrust::Insecure);
        let both = VCenterTls {
            ca_bundle: Some("pem".into()),
            insecure_skip_verify: Some(true),
            ..Default::default()
        };
        assert!(config(&cluster(Some(both)), &creds()).is_err());
        let sha1 = VCenterTls {
            thumbprint: Some("ab".repeat(20)),
            ..Default::default()
        };
        assert!(
            config(&cluster(Some(sha1)), &creds())
                .unwrap_err()
                .to_string()
                .contains("SHA-1")
        );
    }

    #[test]
    fn missing_keys_are_named() {
        let e = config(&cluster(None), &Credentials::from_map(BTreeMap::new())).unwrap_err();
        assert!(e.to_string().contains("username"), "{e}");
    }
}
