//! A vim25 SOAP client for vCenter, of the project's own: no maintained Rust crate speaks SOAP
//! to vCenter before 8.0U1 (the VI/JSON API's first release), so this one covers the ~15
//! methods a Cluster API provider needs, over reqwest.
//!
//! One [`VsphereClient`] holds one vCenter session (the `vmware_soap_session` cookie). Clones
//! share it, and [`VsphereClientPool`] hands out one client per vCenter, credentials and TLS
//! setting: vCenter caps sessions, and CAPV's session floods (CAPV #1503, #1552) came from a
//! session per object. An expired session is re-established exactly once per call (the cloud
//! kit's [`Session`]); an evicted client is logged out (the kit's pool).

mod error;
mod pool;
mod property;
mod session;
mod soap;
mod tasks;
mod tls;
mod types;
mod vm;
#[cfg(test)]
mod wire_tests;
pub mod xml;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use reqwest::Url;
use tracing::Instrument;

use capstan_cloudkit::session::{Attempt, Session};
pub use capstan_cloudkit::{ApiCall, ApiObserver, CallOutcome, NoopObserver};
pub use capstan_runtime::secret::SecretString;

pub use error::{Fault, VsphereError};
pub use pool::VsphereClientPool;
pub use property::ObjectContent;
pub use session::UserSession;
pub use soap::{Request, Xml};
pub use tasks::{TaskInfo, TaskState};
pub use tls::{Thumbprint, ThumbprintError, TlsTrust};
pub use types::{
    CloneSpec, ConfigSpec, DeviceChange, DiskMoveType, GuestNic, MoRef, NicBacking, OptionValue, PowerState,
    RelocateSpec, ServiceContent, VirtualDevice,
};
pub use vm::{UuidKind, VM_PROPERTIES, VmInfo};

/// The name of vCenter's session cookie (govmomi soap/client.go `SessionCookieName`).
const SESSION_COOKIE: &str = "vmware_soap_session";

#[derive(Clone)]
pub struct VsphereConfig {
    /// `https://<vcenter>/sdk`; a URL without a path gets `/sdk`, user info in it is ignored.
    pub url: Url,
    pub username: String,
    pub password: SecretString,
    pub tls: TlsTrust,
    /// Sent as `SOAPAction: urn:vim25/<version>`; vCenter answers in that version's schema.
    /// 7.0.3.0 has every field this client uses and is served by vCenter 7 and 8.
    pub api_version: String,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl VsphereConfig {
    pub fn new(url: Url, username: impl Into<String>, password: impl Into<SecretString>) -> Self {
        VsphereConfig {
            url,
            username: username.into(),
            password: password.into(),
            tls: TlsTrust::default(),
            api_version: "7.0.3.0".to_string(),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The endpoint: user info dropped (it must never reach a log), `/sdk` when no path is given.
    pub fn sdk_url(&self) -> Url {
        let mut u = self.url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        if u.path().is_empty() || u.path() == "/" {
            u.set_path("/sdk");
        }
        u
    }
}

impl fmt::Debug for VsphereConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VsphereConfig")
            .field("url", &self.sdk_url().as_str())
            .field("username", &self.username)
            .field("tls", &self.tls)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

/// A vCenter client. `Clone` is cheap and shares the session.
#[derive(Clone)]
pub struct VsphereClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: VsphereConfig,
    sdk: Url,
    session: Session,
    content: tokio::sync::OnceCell<ServiceContent>,
    observer: Arc<dyn ApiObserver>,
    /// Placement objects found by inventory path, with when they were found.
    placement: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, MoRef)>>,
}

impl fmt::Debug for VsphereClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VsphereClient")
            .field("url", &self.inner.sdk.as_str())
            .field("username", &self.inner.config.username)
            .finish_non_exhaustive()
    }
}

/// One HTTP answer: status, body, and the session cookie if the server set one.
struct Posted {
    status: u16,
    body: String,
    cookie: Option<SecretString>,
}

impl VsphereClient {
    pub fn new(config: VsphereConfig) -> Result<Self, VsphereError> {
        Self::with_observer(config, Arc::new(NoopObserver))
    }

    /// Like [`VsphereClient::new`], reporting every call (by SOAP method) to `observer`.
    pub fn with_observer(config: VsphereConfig, observer: Arc<dyn ApiObserver>) -> Result<Self, VsphereError> {
        let sdk = config.sdk_url();
        if sdk.scheme() != "https" {
            return Err(VsphereError::Config(format!(
                "the vCenter URL must be https, not {:?}",
                sdk.scheme()
            )));
        }
        let host = sdk.host_str().unwrap_or_default().to_string();
        let http = tls::http_client(&config.tls, &host, config.request_timeout, config.connect_timeout)
            .map_err(VsphereError::Config)?;
        Ok(VsphereClient {
            inner: Arc::new(Inner {
                http,
                sdk,
                session: Session::default(),
                content: tokio::sync::OnceCell::new(),
                observer,
                placement: Default::default(),
                config,
            }),
        })
    }

    pub fn config(&self) -> &VsphereConfig {
        &self.inner.config
    }

    /// `RetrieveServiceContent`, once per client: the references every other call starts from.
    pub async fn service_content(&self) -> Result<&ServiceContent, VsphereError> {
        self.inner
            .content
            .get_or_try_init(|| async {
                let req = Request::new(
                    "RetrieveServiceContent",
                    &MoRef::new("ServiceInstance", "ServiceInstance"),
                );
                let (resp, _) = self.invoke_anonymous(req).await?;
                soap::returnval(&resp)
                    .and_then(ServiceContent::from_node)
                    .ok_or_else(|| VsphereError::Decode {
                        method: "RetrieveServiceContent",
                        message: "no service content in the answer".into(),
                    })
            })
            .await
    }

    /// One method call in the session: logs in first if needed, and once more if the server
    /// says `NotAuthenticated` (sessions expire server-side without notice); reported to the
    /// observer under the method name. Answers the method's response element.
    pub async fn invoke(&self, req: Request) -> Result<xml::Node, VsphereError> {
        self.invoke_checked(req, |_| false).await
    }

    /// [`VsphereClient::invoke`] for methods that can say `NotAuthenticated` inside a normal
    /// answer (`unauthenticated` recognises it): vcsim's property collector reports a missing
    /// session per property in `missingSet` rather than as a fault.
    pub(crate) async fn invoke_checked(
        &self,
        req: Request,
        unauthenticated: fn(&xml::Node) -> bool,
    ) -> Result<xml::Node, VsphereError> {
        let method = req.method;
        let body = req.envelope();
        let start = Instant::now();
        let result = self
            .inner
            .session
            .call(
                || self.login_reported(),
                |token| {
                    let body = body.clone();
                    async move {
                        let posted = self.post(method, body, Some(&token.value)).await?;
                        match soap::into_result(method, posted.status, &posted.body) {
                            Err(e) if matches!(e.fault(), Some(Fault::NotAuthenticated { .. })) => {
                                Ok(Attempt::Unauthorized(posted.body.into_bytes()))
                            }
                            Ok(n) if unauthenticated(&n) => Ok(Attempt::Unauthorized(posted.body.into_bytes())),
                            other => other.map(Attempt::Done),
                        }
                    }
                },
                // Refused again right after a fresh login: the session cannot be had.
                |body| match soap::into_result(method, 500, &String::from_utf8_lossy(&body)) {
                    Err(e @ VsphereError::Fault { .. }) => e,
                    _ => VsphereError::Fault {
                        method,
                        fault: Box::new(Fault::NotAuthenticated {
                            message: "refused right after a fresh login".into(),
                        }),
                    },
                },
            )
            .instrument(tracing::debug_span!("vim25_call", method))
            .await;
        self.report(method, start, &result);
        result
    }

    /// A call outside the session (`RetrieveServiceContent`, `Login`), reported like any other.
    async fn invoke_anonymous(&self, req: Request) -> Result<(xml::Node, Option<SecretString>), VsphereError> {
        let method = req.method;
        let start = Instant::now();
        let result = async {
            let posted = self.post(method, req.envelope(), None).await?;
            let node = soap::into_result(method, posted.status, &posted.body)?;
            Ok((node, posted.cookie))
        }
        .instrument(tracing::debug_span!("vim25_call", method))
        .await;
        self.report(method, start, &result);
        result
    }

    fn report<T>(&self, method: &'static str, start: Instant, result: &Result<T, VsphereError>) {
        capstan_cloudkit::report(self.inner.observer.as_ref(), method, start, result);
        if let Err(e) = result {
            tracing::debug!(method, error = %e, retryable = e.is_retryable(), "vim25 call failed");
        }
    }

    /// One POST to `/sdk`. Bodies are never logged: `Login` carries the password.
    async fn post(
        &self,
        method: &'static str,
        body: String,
        cookie: Option<&SecretString>,
    ) -> Result<Posted, VsphereError> {
        let mut req = self
            .inner
            .http
            .post(self.inner.sdk.clone())
            .header("Content-Type", r#"text/xml; charset="utf-8""#)
            .header("SOAPAction", format!("urn:vim25/{}", self.inner.config.api_version))
            .body(body);
        if let Some(c) = cookie {
            req = req.header("Cookie", format!("{SESSION_COOKIE}={}", c.expose()));
        }
        let transport = |source| VsphereError::Transport { method, source };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let cookie = session_cookie(resp.headers());
        let body = resp.text().await.map_err(transport)?;
        Ok(Posted { status, body, cookie })
    }
}

/// The value of `vmware_soap_session` in the answer's `Set-Cookie` headers, sent back verbatim
/// (vCenter quotes it; vcsim does not).
fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<SecretString> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            v.split(';')
                .next()?
                .trim()
                .strip_prefix(SESSION_COOKIE)?
                .strip_prefix('=')
        })
        .find(|v| !v.is_empty())
        .map(SecretString::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_found_and_config_never_shows_secrets() {
        let mut h = reqwest::header::HeaderMap::new();
        h.append("set-cookie", "other=1; Path=/".parse().unwrap());
        h.append(
            "set-cookie",
            r#"vmware_soap_session="52ab"; Path=/; HttpOnly; Secure;"#.parse().unwrap(),
        );
        assert_eq!(session_cookie(&h).unwrap().expose(), r#""52ab""#);
        let c = VsphereConfig::new("https://admin:hunter2@vc.example/".parse().unwrap(), "admin", "hunter2");
        assert_eq!(c.sdk_url().as_str(), "https://vc.example/sdk");
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let client = VsphereClient::new(c).unwrap();
        assert!(!format!("{client:?}").contains("hunter2"));
        let plain = VsphereConfig::new("http://vc.example/sdk".parse().unwrap(), "a", "b");
        assert!(matches!(VsphereClient::new(plain), Err(VsphereError::Config(_))));
    }
}
