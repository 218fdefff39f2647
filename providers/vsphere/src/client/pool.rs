//! One shared [`VsphereClient`] (one vCenter session) per vCenter, credentials and settings:
//! the cloud kit's [`ClientPool`], keyed here by every [`VsphereConfig`] field.

use std::sync::Arc;

use capstan_cloudkit::{ApiObserver, ClientPool, PooledClient, sha256_hex};

use super::{VsphereClient, VsphereConfig, VsphereError};

/// The pool of vCenter clients the vSphere provider draws from.
pub type VsphereClientPool = ClientPool<VsphereClient>;

impl PooledClient for VsphereClient {
    type Config = VsphereConfig;
    type Error = VsphereError;

    /// The password and CA bundle enter the key only as digests.
    fn pool_key(c: &VsphereConfig) -> String {
        sha256_hex(
            format!(
                "{}\0{}\0{}\0{}\0{}\0{:?}\0{:?}",
                c.sdk_url(),
                c.username,
                sha256_hex(c.password.expose().as_bytes()),
                c.tls.key(),
                c.api_version,
                c.request_timeout,
                c.connect_timeout,
            )
            .as_bytes(),
        )
    }

    fn connect(config: VsphereConfig, observer: Arc<dyn ApiObserver>) -> Result<Self, VsphereError> {
        VsphereClient::with_observer(config, observer)
    }

    async fn logout(&self) {
        if let Err(e) = VsphereClient::logout(self).await {
            tracing::debug!(error = %e, "logging out an evicted vCenter session failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Thumbprint, TlsTrust};

    #[test]
    fn every_setting_is_in_the_key() {
        let base = VsphereConfig::new("https://vc.example/sdk".parse().unwrap(), "admin", "pw");
        let key = VsphereClient::pool_key(&base);
        assert!(!key.contains("pw"));
        let mut other = base.clone();
        other.password = "pw2".into();
        assert_ne!(VsphereClient::pool_key(&other), key);
        let mut other = base.clone();
        other.tls = TlsTrust::Thumbprint(Thumbprint([1; 32]));
        assert_ne!(VsphereClient::pool_key(&other), key);
        let mut other = base.clone();
        other.tls = TlsTrust::Insecure;
        assert_ne!(VsphereClient::pool_key(&other), key);
        let mut same = base.clone();
        same.url = "https://someone@vc.example/sdk".parse().unwrap();
        assert_eq!(VsphereClient::pool_key(&same), key, "user info in the URL is ignored");
    }
}
