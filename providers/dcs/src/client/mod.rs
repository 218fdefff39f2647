//! HTTP client for the FusionCompute VRM REST API (`/service/...`).
//!
//! One [`DcsClient`] holds one VRM session. Clones share it, so every caller that talks to the
//! same endpoint as the same user should use clones of one client (see [`DcsClientPool`]):
//! VRM limits sessions per user, and a login per reconcile would be slow and noisy in its audit
//! log.

mod error;
mod inventory;
mod pool;
mod session;
mod site;
mod task;
pub mod urn;
mod vm;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use tracing::Instrument;

pub use capstan_cloudkit::{ApiCall, ApiObserver, CallOutcome, NoopObserver};
pub use error::{ApiFault, DcsError, ERROR_VERSION_NOT_SUPPORTED};
pub use inventory::InventoryItem;
pub use pool::DcsClientPool;
pub use site::Site;
pub use task::{Task, TaskRef, TaskStatus};
pub use vm::{
    CloneResult, CloneSpec, DiskSpec, NicSpec, StaticIpv4, StopMode, UploadedIso, Vm, VmConfig, VmCpu, VmDisk,
    VmMemory, VmNic, VmOsOptions, VmState, netmask_from_prefix,
};

use capstan_cloudkit::session::{Attempt, Session};

pub use capstan_runtime::secret::SecretString;

/// `X-Auth-UserType`. The Alauda credential Secret says `interconnect` or `domain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserType {
    Local,
    Domain,
    /// The "interface interconnection" user type used by machine clients (NOVA, KubeOperator).
    #[default]
    Interconnect,
}

impl UserType {
    pub fn header_value(self) -> &'static str {
        match self {
            UserType::Local => "0",
            UserType::Domain => "1",
            UserType::Interconnect => "2",
        }
    }

    /// Parses the Secret's `userType` (`interconnect`, `domain`, `local`, or the numeric value).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "interconnect" | "2" => Some(UserType::Interconnect),
            "domain" | "1" => Some(UserType::Domain),
            "local" | "0" => Some(UserType::Local),
            _ => None,
        }
    }
}

/// How the password travels in `X-Auth-Key`. Public clients disagree and VRM installations
/// differ, so it is a setting rather than a guess: guessing means a failed login per wrong
/// guess, and failed logins can lock the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasswordEncoding {
    /// The plain password with `X-ENCRIPT-ALGORITHM: 1` (the Huawei-authored Nova driver).
    #[default]
    Plain,
    /// The lowercase hex SHA-256 of the password, no algorithm header (KubeOperator SDK).
    Sha256Hex,
}

#[derive(Debug, Clone)]
pub struct DcsConfig {
    /// `https://<vrm>:7443`; any path is ignored.
    pub endpoint: Url,
    pub username: String,
    pub password: SecretString,
    pub user_type: UserType,
    pub password_encoding: PasswordEncoding,
    /// Sent as `Accept: application/json;version=<v>;charset=UTF-8`.
    pub api_version: String,
    pub accept_language: String,
    /// Site id (e.g. `3F7B07E2`); discovered from `/service/sites` when unset.
    pub site: Option<String>,
    /// PEM bundle of CAs to trust instead of the system roots (VRM certificates are usually
    /// self-signed, so production setups pass the VRM CA here).
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// Disables certificate verification. Only honoured when set explicitly.
    pub insecure_skip_verify: bool,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl DcsConfig {
    pub fn new(endpoint: Url, username: impl Into<String>, password: impl Into<SecretString>) -> Self {
        DcsConfig {
            endpoint,
            username: username.into(),
            password: password.into(),
            user_type: UserType::default(),
            password_encoding: PasswordEncoding::default(),
            // The version the Huawei-authored Nova driver sends; newer VRMs still accept it.
            api_version: "6.0".to_string(),
            accept_language: "en_US".to_string(),
            site: None,
            ca_bundle_pem: None,
            insecure_skip_verify: false,
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }

    fn accept_header(&self) -> String {
        format!("application/json;version={};charset=UTF-8", self.api_version)
    }
}

/// A VRM client. `Clone` is cheap and shares the session.
#[derive(Clone)]
pub struct DcsClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: DcsConfig,
    base: Url,
    session: Session,
    site: tokio::sync::OnceCell<Site>,
    inventory: inventory::InventoryCache,
    observer: Arc<dyn ApiObserver>,
}

impl fmt::Debug for DcsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DcsClient")
            .field("endpoint", &self.inner.base.as_str())
            .field("username", &self.inner.config.username)
            .finish_non_exhaustive()
    }
}

/// A request body or its absence. VRM action endpoints take `{}` where there is nothing to say
/// (as the Nova driver sends), so "no body" is distinct from "empty object".
pub(crate) enum Body<'a> {
    None,
    Json(&'a serde_json::Value),
}

impl DcsClient {
    pub fn new(config: DcsConfig) -> Result<Self, DcsError> {
        Self::with_observer(config, Arc::new(NoopObserver))
    }

    /// Like [`DcsClient::new`], reporting every API call to `observer`.
    pub fn with_observer(config: DcsConfig, observer: Arc<dyn ApiObserver>) -> Result<Self, DcsError> {
        let http = capstan_cloudkit::tls::http_client(&capstan_cloudkit::TlsSettings {
            ca_bundle_pem: config.ca_bundle_pem.as_deref(),
            insecure_skip_verify: config.insecure_skip_verify,
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
            endpoint_host: config.endpoint.host_str().unwrap_or_default(),
        })
        .map_err(|e| DcsError::Config(e.to_string()))?;
        let mut base = config.endpoint.clone();
        if base.cannot_be_a_base() {
            // The endpoint comes from a Secret: name the problem, not the value.
            return Err(DcsError::Config(format!(
                "the endpoint is not an https://host:port URL (scheme {:?})",
                config.endpoint.scheme()
            )));
        }
        base.set_path("/");
        base.set_query(None);
        Ok(DcsClient {
            inner: Arc::new(Inner {
                http,
                base,
                session: Session::default(),
                site: tokio::sync::OnceCell::new(),
                inventory: Default::default(),
                observer,
                config,
            }),
        })
    }

    pub fn config(&self) -> &DcsConfig {
        &self.inner.config
    }

    /// Resolves a path (`/service/...`) or an absolute URL VRM handed out against the endpoint.
    fn url(&self, path_or_url: &str) -> Result<Url, DcsError> {
        self.inner
            .base
            .join(path_or_url)
            .map_err(|e| DcsError::Config(format!("bad path {path_or_url:?}: {e}")))
    }

    /// One logical API call: authenticated, re-logged-in once on 401, traced and reported to the
    /// observer under `operation`. `what` names the object for not-found errors.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        what: &str,
        body: Body<'_>,
    ) -> Result<T, DcsError> {
        let span = tracing::debug_span!("vrm_call", operation, method = %method, path = url.path());
        let start = Instant::now();
        let result = async {
            let bytes = self
                .send_authenticated(operation, method, url, what, &body, None)
                .await?;
            decode(operation, &bytes)
        }
        .instrument(span.clone())
        .await;
        self.report(operation, start, &result);
        if let Err(e) = &result {
            span.in_scope(|| tracing::debug!(error = %e, retryable = e.is_retryable(), "VRM call failed"));
        }
        result
    }

    /// Sends raw bytes (used by the ISO upload), same session handling as [`DcsClient::call`].
    pub(crate) async fn call_raw(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        what: &str,
        payload: Vec<u8>,
    ) -> Result<(), DcsError> {
        let span = tracing::debug_span!("vrm_call", operation, method = %method, path = url.path());
        let start = Instant::now();
        let result = self
            .send_authenticated(operation, method, url, what, &Body::None, Some(payload))
            .instrument(span)
            .await
            .map(|_| ());
        self.report(operation, start, &result);
        result
    }

    fn report<T>(&self, operation: &'static str, start: Instant, result: &Result<T, DcsError>) {
        capstan_cloudkit::report(self.inner.observer.as_ref(), operation, start, result);
    }

    async fn send_authenticated(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        what: &str,
        body: &Body<'_>,
        raw: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, DcsError> {
        let (status, bytes) = self
            .inner
            .session
            .call(
                || self.login_reported(),
                |token| {
                    let (method, url, raw) = (method.clone(), url.clone(), raw.clone());
                    async move {
                        let (status, bytes) = self.send_once(operation, method, url, &token.value, body, raw).await?;
                        Ok(if status == StatusCode::UNAUTHORIZED {
                            Attempt::Unauthorized(bytes)
                        } else {
                            Attempt::Done((status, bytes))
                        })
                    }
                },
                |body| DcsError::Auth {
                    user: self.inner.config.username.clone(),
                    status: StatusCode::UNAUTHORIZED.as_u16(),
                    fault: ApiFault::parse(&body),
                },
            )
            .await?;
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(DcsError::from_status(operation, what, status.as_u16(), &bytes))
        }
    }

    async fn send_once(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        token: &SecretString,
        body: &Body<'_>,
        raw: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>), DcsError> {
        let mut req = self.base_request(method, url).header("X-Auth-Token", token.expose());
        // One Content-Type per request, for what the body is (VRM wants a charset on JSON).
        if let Some(raw) = raw {
            req = req.header("Content-Type", "application/octet-stream").body(raw);
        } else if let Body::Json(v) = body {
            let json = serde_json::to_vec(v).map_err(|e| DcsError::Decode {
                operation,
                message: format!("encoding the request: {e}"),
            })?;
            req = req.header("Content-Type", JSON_CONTENT_TYPE).body(json);
        }
        let resp = req
            .send()
            .await
            .map_err(|source| DcsError::Transport { operation, source })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| DcsError::Transport { operation, source })?;
        Ok((status, bytes.to_vec()))
    }

    fn base_request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.inner
            .http
            .request(method, url)
            .header("Accept", self.inner.config.accept_header())
            .header("Accept-Language", &self.inner.config.accept_language)
    }
}

pub(crate) const JSON_CONTENT_TYPE: &str = "application/json; charset=UTF-8";

fn decode<T: DeserializeOwned>(operation: &'static str, bytes: &[u8]) -> Result<T, DcsError> {
    // Some actions answer 200 with an empty body; treat it as JSON null so `()`/Option decode.
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| DcsError::Decode {
        operation,
        message: e.to_string(),
    })
}
