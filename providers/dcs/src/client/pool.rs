//! One shared [`DcsClient`] (one VRM session) per endpoint, user and settings: the cloud kit's
//! [`ClientPool`], keyed here by every [`DcsConfig`] field.

use std::sync::Arc;

use capstan_cloudkit::{ApiObserver, ClientPool, PooledClient, sha256_hex};

use super::{DcsClient, DcsConfig, DcsError};

/// The pool of VRM clients the DCS provider draws from.
pub type DcsClientPool = ClientPool<DcsClient>;

impl PooledClient for DcsClient {
    type Config = DcsConfig;
    type Error = DcsError;

    /// Everything that makes two clients different; the password and CA bundle only as digests.
    fn pool_key(c: &DcsConfig) -> String {
        let ca = c.ca_bundle_pem.as_deref().map(sha256_hex);
        sha256_hex(
            format!(
                "{}\0{}\0{}\0{:?}\0{:?}\0{}\0{}\0{:?}\0{:?}\0{}\0{:?}\0{:?}",
                c.endpoint,
                c.username,
                sha256_hex(c.password.expose().as_bytes()),
                c.user_type,
                c.password_encoding,
                c.api_version,
                c.accept_language,
                c.site,
                ca,
                c.insecure_skip_verify,
                c.request_timeout,
                c.connect_timeout,
            )
            .as_bytes(),
        )
    }

    fn connect(config: DcsConfig, observer: Arc<dyn ApiObserver>) -> Result<Self, DcsError> {
        DcsClient::with_observer(config, observer)
    }

    async fn logout(&self) {
        if let Err(e) = DcsClient::logout(self).await {
            tracing::debug!(error = %e, "logging out an evicted VRM session failed");
        }
    }
}
