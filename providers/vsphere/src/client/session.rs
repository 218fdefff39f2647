//! `Login`/`Logout` on the `SessionManager`. The cookie, its sharing and the one re-login on
//! `NotAuthenticated` are the cloud kit's [`Session`](capstan_cloudkit::session::Session).

use std::time::Instant;

use tracing::Instrument;

use super::soap::{self, Request};
use super::types::MoRef;
use super::{Fault, SecretString, VsphereClient, VsphereError};

/// `SessionManager.currentSession` (a `UserSession`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSession {
    /// The session's id, which `TerminateSession` takes. vcsim uses it as the cookie value,
    /// so it is kept secret too.
    pub key: SecretString,
    pub user_name: String,
}

impl VsphereClient {
    /// Logs in now instead of on first use, so wrong credentials surface early.
    pub async fn login(&self) -> Result<(), VsphereError> {
        self.inner.session.token(|| self.login_reported()).await.map(|_| ())
    }

    /// Ends the session on vCenter; the next call logs in again.
    pub async fn logout(&self) -> Result<(), VsphereError> {
        let mut result = Ok(());
        self.inner
            .session
            .end(|token| async {
                result = self.end_session(token.value).await;
            })
            .await;
        result
    }

    async fn end_session(&self, cookie: SecretString) -> Result<(), VsphereError> {
        let sm = self.service_content().await?.session_manager.clone();
        let req = Request::new("Logout", &sm);
        let start = Instant::now();
        let result = async {
            let posted = self.post(req.method, req.envelope(), Some(&cookie)).await?;
            match soap::into_result("Logout", posted.status, &posted.body) {
                // Already expired: the session is gone all the same.
                Err(e) if matches!(e.fault(), Some(Fault::NotAuthenticated { .. })) => Ok(()),
                other => other.map(|_| ()),
            }
        }
        .instrument(tracing::debug_span!("vim25_call", method = "Logout"))
        .await;
        self.report("Logout", start, &result);
        result
    }

    /// One `Login`; the session is the cookie it sets. Reported like every call.
    pub(super) async fn login_reported(&self) -> Result<SecretString, VsphereError> {
        let sm = self.service_content().await?.session_manager.clone();
        let cfg = &self.inner.config;
        let mut req = Request::new("Login", &sm);
        req.body()
            .text("userName", &cfg.username)
            .text("password", cfg.password.expose());
        let (_, cookie) = self.invoke_anonymous(req).await?;
        tracing::debug!(user = %cfg.username, "logged in to vCenter");
        cookie.ok_or(VsphereError::Decode {
            method: "Login",
            message: format!("no {} cookie in the login answer", super::SESSION_COOKIE),
        })
    }

    /// This client's session as vCenter sees it, or `None` when it has none.
    pub async fn current_session(&self) -> Result<Option<UserSession>, VsphereError> {
        let sm = self.service_content().await?.session_manager.clone();
        let content = self.retrieve_properties(&sm, &["currentSession"]).await?;
        Ok(content.get("currentSession").and_then(|s| {
            Some(UserSession {
                key: SecretString::new(s.child_text("key")?),
                user_name: s.child_text("userName").unwrap_or_default().to_string(),
            })
        }))
    }

    /// `TerminateSession`: ends other sessions (an administrator's call; vCenter refuses the
    /// caller's own).
    pub async fn terminate_sessions(&self, keys: &[&SecretString]) -> Result<(), VsphereError> {
        let sm: MoRef = self.service_content().await?.session_manager.clone();
        let mut req = Request::new("TerminateSession", &sm);
        for k in keys {
            req.body().text("sessionId", k.expose());
        }
        self.invoke(req).await.map(|_| ())
    }
}
