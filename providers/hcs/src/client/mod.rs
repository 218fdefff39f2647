//! The HCS API client: one signed-request path (AK/SK, [`signer`]) shared by every service,
//! endpoints derived from the region and the cloud's domain as HCS lays them out (or given one
//! by one), errors classified ([`error`]), every call reported through the cloud kit's observer.
//! Built on `capstan-cloudkit`. The services' calls live in their own modules: [`ecs`] (servers,
//! jobs, flavors, quotas), [`vpc`] (subnets), [`ims`] (images), [`elb`] (dedicated load
//! balancers v3).

pub mod ecs;
pub mod elb;
pub mod error;
pub mod ims;
pub mod signer;
pub mod vpc;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use capstan_cloudkit::session::{Attempt, Session};
use capstan_cloudkit::{ApiObserver, NoopObserver, PooledClient, sha256_hex};
pub use capstan_runtime::secret::SecretString;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use error::{ApiFault, HcsError};

/// An HCS service, by the host prefix it is served on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    /// Keystone v3 (`iam-apigateway-proxy.{region}.{domain}`).
    Iam,
    Ecs,
    /// VPC; dedicated ELB v3 is served on this host too.
    Vpc,
    Evs,
    Ims,
}

impl Service {
    /// The key of an endpoint override, and the host prefix.
    pub fn name(self) -> &'static str {
        match self {
            Service::Iam => "iam",
            Service::Ecs => "ecs",
            Service::Vpc => "vpc",
            Service::Evs => "evs",
            Service::Ims => "ims",
        }
    }

    fn host_prefix(self) -> &'static str {
        match self {
            Service::Iam => "iam-apigateway-proxy",
            other => other.name(),
        }
    }
}

/// How requests prove who sends them.
#[derive(Clone)]
pub enum Auth {
    /// Every request signed with the access key's secret (`SDK-HMAC-SHA256`); no session.
    AkSk {
        access_key: String,
        secret_key: SecretString,
    },
    /// An IAM user: a Keystone token, scoped to the project, obtained once and renewed when
    /// the cloud refuses it (one re-login, the cloud kit's session).
    Password {
        user: String,
        password: SecretString,
        domain: String,
    },
}

/// Names, never secrets.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::AkSk { access_key, .. } => f
                .debug_struct("AkSk")
                .field("access_key", access_key)
                .finish_non_exhaustive(),
            Auth::Password { user, domain, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .field("domain", domain)
                .finish_non_exhaustive(),
        }
    }
}

impl Auth {
    /// Everything that tells two identities apart, secrets as digests.
    fn key(&self) -> String {
        match self {
            Auth::AkSk { access_key, secret_key } => {
                format!("aksk\0{access_key}\0{}", sha256_hex(secret_key.expose().as_bytes()))
            }
            Auth::Password { user, password, domain } => {
                format!(
                    "password\0{user}\0{domain}\0{}",
                    sha256_hex(password.expose().as_bytes())
                )
            }
        }
    }
}

/// Where and as whom the client calls HCS.
#[derive(Clone)]
pub struct HcsConfig {
    /// The cloud's domain suffix (the credentials Secret's `externalGlobalDomain`).
    pub global_domain: String,
    pub region: String,
    /// The resource space (project) ID every regional call is made in.
    pub project_id: String,
    pub auth: Auth,
    /// `https` unless the Secret's `schema` says otherwise.
    pub scheme: String,
    /// Full base URLs by [`Service::name`], replacing the derived ones.
    pub endpoints: BTreeMap<String, Url>,
    pub ca_bundle_pem: Option<Vec<u8>>,
    pub insecure_skip_verify: bool,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl HcsConfig {
    pub fn new(
        global_domain: impl Into<String>,
        region: impl Into<String>,
        project_id: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<SecretString>,
    ) -> Self {
        Self::with_auth(
            global_domain,
            region,
            project_id,
            Auth::AkSk {
                access_key: access_key.into(),
                secret_key: secret_key.into(),
            },
        )
    }

    pub fn with_auth(
        global_domain: impl Into<String>,
        region: impl Into<String>,
        project_id: impl Into<String>,
        auth: Auth,
    ) -> Self {
        Self {
            global_domain: global_domain.into(),
            region: region.into(),
            project_id: project_id.into(),
            auth,
            scheme: "https".into(),
            endpoints: BTreeMap::new(),
            ca_bundle_pem: None,
            insecure_skip_verify: false,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// `{scheme}://{prefix}.{region}.{domain}/`, or the override.
    pub fn endpoint(&self, service: Service) -> Result<Url, HcsError> {
        if let Some(url) = self.endpoints.get(service.name()) {
            return Ok(url.clone());
        }
        let url = format!(
            "{}://{}.{}.{}/",
            self.scheme,
            service.host_prefix(),
            self.region,
            self.global_domain
        );
        Url::parse(&url).map_err(|e| HcsError::Config(format!("{} endpoint {url:?}: {e}", service.name())))
    }
}

/// Secrets stay out of `Debug`.
impl std::fmt::Debug for HcsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HcsConfig")
            .field("global_domain", &self.global_domain)
            .field("region", &self.region)
            .field("project_id", &self.project_id)
            .field("auth", &self.auth)
            .field("endpoints", &self.endpoints.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct HcsClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: HcsConfig,
    observer: Arc<dyn ApiObserver>,
    /// The Keystone token in password mode (unused with AK/SK).
    session: Session,
}

/// A project (resource space) as IAM lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Project {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

impl HcsClient {
    pub fn new(config: HcsConfig) -> Result<Self, HcsError> {
        Self::with_observer(config, Arc::new(NoopObserver))
    }

    /// Like [`HcsClient::new`], reporting every API call to `observer`.
    pub fn with_observer(config: HcsConfig, observer: Arc<dyn ApiObserver>) -> Result<Self, HcsError> {
        let http = capstan_cloudkit::tls::http_client(&capstan_cloudkit::TlsSettings {
            ca_bundle_pem: config.ca_bundle_pem.as_deref(),
            insecure_skip_verify: config.insecure_skip_verify,
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
            endpoint_host: &config.global_domain,
        })
        .map_err(|e| HcsError::Config(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                observer,
                session: Session::default(),
            }),
        })
    }

    pub fn config(&self) -> &HcsConfig {
        &self.inner.config
    }

    /// The projects the credentials can see (IAM `GET /v3/projects`): what checking the
    /// credentials of an HCSCluster costs.
    pub async fn list_projects(&self) -> Result<Vec<Project>, HcsError> {
        #[derive(Deserialize)]
        struct Projects {
            #[serde(default)]
            projects: Vec<Project>,
        }
        let list: Projects = self
            .call(Call::new(
                "list_projects",
                Service::Iam,
                Method::GET,
                "v3/projects",
                "projects",
            ))
            .await?;
        Ok(list.projects)
    }

    /// `v1/{project_id}/<rest>`: the project-scoped path most services use.
    pub(crate) fn project_path(&self, version: &str, rest: &str) -> String {
        format!("{version}/{}/{rest}", self.inner.config.project_id)
    }

    /// One AK/SK-signed call, traced and reported under its operation, its JSON answer decoded.
    pub(crate) async fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, HcsError> {
        let operation = call.operation;
        let bytes = self.call_raw(call).await?;
        serde_json::from_slice(&bytes).map_err(|e| HcsError::Decode {
            operation,
            message: e.to_string(),
        })
    }

    /// A call whose answer has no body worth reading (ELB deletes answer 204).
    pub(crate) async fn call_raw(&self, call: Call<'_>) -> Result<Vec<u8>, HcsError> {
        let start = Instant::now();
        let operation = call.operation;
        let result = self.send(call).await;
        capstan_cloudkit::report(self.inner.observer.as_ref(), operation, start, &result);
        result
    }

    async fn send(&self, call: Call<'_>) -> Result<Vec<u8>, HcsError> {
        let operation = call.operation;
        let (status, bytes) = match &self.inner.config.auth {
            Auth::AkSk { access_key, secret_key } => {
                let mut req = self.request(&call)?;
                signer::sign_request(&mut req, access_key, secret_key.expose().as_bytes(), SystemTime::now())
                    .map_err(|source| HcsError::Sign { operation, source })?;
                self.execute(operation, req).await?
            }
            Auth::Password { .. } => {
                self.inner
                    .session
                    .call(
                        || self.keystone_login(),
                        |token| {
                            let call = &call;
                            async move {
                                let mut req = self.request(call)?;
                                let value =
                                    reqwest::header::HeaderValue::from_str(token.value.expose()).map_err(|_| {
                                        HcsError::Config("IAM returned a token that is not a header value".into())
                                    })?;
                                req.headers_mut().insert("X-Auth-Token", value);
                                let (status, bytes) = self.execute(operation, req).await?;
                                Ok(if status == reqwest::StatusCode::UNAUTHORIZED {
                                    Attempt::Unauthorized(bytes)
                                } else {
                                    Attempt::Done((status, bytes))
                                })
                            }
                        },
                        |body| HcsError::from_status(operation, &call.what, 401, &body),
                    )
                    .await?
            }
        };
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(HcsError::from_status(operation, &call.what, status.as_u16(), &bytes))
        }
    }

    /// The request of `call`, unauthenticated.
    fn request(&self, call: &Call<'_>) -> Result<reqwest::Request, HcsError> {
        let cfg = &self.inner.config;
        let operation = call.operation;
        let url = cfg
            .endpoint(call.service)?
            .join(&call.path)
            .map_err(|e| HcsError::Config(format!("bad path {:?}: {e}", call.path)))?;
        let mut req = self
            .inner
            .http
            .request(call.method.clone(), url)
            .header("X-Project-Id", &cfg.project_id);
        if let Some(token) = call.client_token {
            req = req.header("X-Client-Token", token);
        }
        if let Some(b) = &call.body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        req.build().map_err(|source| HcsError::Transport { operation, source })
    }

    async fn execute(
        &self,
        operation: &'static str,
        req: reqwest::Request,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), HcsError> {
        let resp = self
            .inner
            .http
            .execute(req)
            .await
            .map_err(|source| HcsError::Transport { operation, source })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| HcsError::Transport { operation, source })?;
        Ok((status, bytes.to_vec()))
    }

    /// A Keystone v3 password token scoped to the project (`POST /v3/auth/tokens`, the token in
    /// `X-Subject-Token`), reported like any call.
    async fn keystone_login(&self) -> Result<SecretString, HcsError> {
        let start = Instant::now();
        let result = self.create_token().await;
        capstan_cloudkit::report(self.inner.observer.as_ref(), "create_token", start, &result);
        result
    }

    async fn create_token(&self) -> Result<SecretString, HcsError> {
        const OPERATION: &str = "create_token";
        let cfg = &self.inner.config;
        let Auth::Password { user, password, domain } = &cfg.auth else {
            return Err(HcsError::Config("no IAM user configured".into()));
        };
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "password": password.expose(), "domain": {"name": domain}}}},
            "scope": {"project": {"id": cfg.project_id}}
        }});
        let url = cfg
            .endpoint(Service::Iam)?
            .join("v3/auth/tokens")
            .map_err(|e| HcsError::Config(e.to_string()))?;
        let req = self
            .inner
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .build()
            .map_err(|source| HcsError::Transport {
                operation: OPERATION,
                source,
            })?;
        let resp = self
            .inner
            .http
            .execute(req)
            .await
            .map_err(|source| HcsError::Transport {
                operation: OPERATION,
                source,
            })?;
        let status = resp.status();
        let token = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp.bytes().await.map_err(|source| HcsError::Transport {
            operation: OPERATION,
            source,
        })?;
        if !status.is_success() {
            return Err(HcsError::from_status(OPERATION, "IAM user", status.as_u16(), &bytes));
        }
        token
            .filter(|t| !t.is_empty())
            .map(SecretString::new)
            .ok_or(HcsError::Decode {
                operation: OPERATION,
                message: "no X-Subject-Token header in IAM's answer".into(),
            })
    }

    /// Revokes the Keystone token (`DELETE /v3/auth/tokens`), if there is one.
    async fn revoke_token(&self) {
        let Ok(url) = self
            .inner
            .config
            .endpoint(Service::Iam)
            .and_then(|u| u.join("v3/auth/tokens").map_err(|e| HcsError::Config(e.to_string())))
        else {
            return;
        };
        let http = &self.inner.http;
        self.inner
            .session
            .end(|token| async move {
                let sent = http
                    .delete(url)
                    .header("X-Auth-Token", token.value.expose())
                    .header("X-Subject-Token", token.value.expose())
                    .send()
                    .await;
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "revoking the IAM token failed; it expires on its own");
                }
            })
            .await;
    }
}

/// One API call as a service module describes it.
pub(crate) struct Call<'a> {
    /// The metrics and trace name (`create_server`).
    pub operation: &'static str,
    pub service: Service,
    pub method: Method,
    /// Relative to the service's base URL.
    pub path: String,
    pub body: Option<serde_json::Value>,
    /// Names the object in a not-found error (`server 3f2…`).
    pub what: String,
    /// ECS `X-Client-Token`: the same token makes a repeated create return the first one's job.
    pub client_token: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub fn new(
        operation: &'static str,
        service: Service,
        method: Method,
        path: impl Into<String>,
        what: impl Into<String>,
    ) -> Self {
        Call {
            operation,
            service,
            method,
            path: path.into(),
            body: None,
            what: what.into(),
            client_token: None,
        }
    }

    pub fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn client_token(mut self, token: &'a str) -> Self {
        self.client_token = Some(token);
        self
    }
}

impl PooledClient for HcsClient {
    type Config = HcsConfig;
    type Error = HcsError;

    /// Everything that makes two clients different; the secret key and CA bundle as digests.
    fn pool_key(c: &HcsConfig) -> String {
        sha256_hex(
            format!(
                "{}\0{}\0{}\0{}\0{}\0{:?}\0{:?}\0{}\0{:?}\0{:?}",
                c.global_domain,
                c.region,
                c.project_id,
                c.auth.key(),
                c.scheme,
                c.endpoints,
                c.ca_bundle_pem.as_deref().map(sha256_hex),
                c.insecure_skip_verify,
                c.request_timeout,
                c.connect_timeout,
            )
            .as_bytes(),
        )
    }

    fn connect(config: HcsConfig, observer: Arc<dyn ApiObserver>) -> Result<Self, HcsError> {
        HcsClient::with_observer(config, observer)
    }

    /// AK/SK requests carry no session; a Keystone token is revoked.
    async fn logout(&self) {
        self.revoke_token().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_hcs_layout_unless_overridden() {
        let mut c = HcsConfig::new("cloud.example", "region-a", "p1", "AK", "SK");
        assert_eq!(
            c.endpoint(Service::Ecs).unwrap().as_str(),
            "https://ecs.region-a.cloud.example/"
        );
        assert_eq!(
            c.endpoint(Service::Iam).unwrap().as_str(),
            "https://iam-apigateway-proxy.region-a.cloud.example/"
        );
        c.endpoints
            .insert("vpc".into(), Url::parse("https://10.0.0.5:8443/").unwrap());
        assert_eq!(c.endpoint(Service::Vpc).unwrap().as_str(), "https://10.0.0.5:8443/");
        assert!(!format!("{c:?}").contains("SK\""), "{c:?}");
    }
}
