//! The VRM session: login with `X-Auth-*` headers and logout; the token, its sharing and the
//! one re-login on 401 are the cloud kit's [`Session`](capstan_cloudkit::session::Session).

use std::time::Instant;

use reqwest::{Method, StatusCode};
use tracing::Instrument;

use capstan_cloudkit::session::Token;

use super::{ApiFault, DcsClient, DcsError, PasswordEncoding, SecretString};

impl DcsClient {
    /// Logs in now instead of on first use, so wrong credentials surface early.
    pub async fn login(&self) -> Result<(), DcsError> {
        self.token().await.map(|_| ())
    }

    /// Ends the session on VRM. The next call logs in again.
    pub async fn logout(&self) -> Result<(), DcsError> {
        let mut result = Ok(());
        self.inner
            .session
            .end(|token| async {
                result = self.end_session(token).await;
            })
            .await;
        result
    }

    async fn end_session(&self, token: Token) -> Result<(), DcsError> {
        let start = Instant::now();
        let url = self.url("/service/session")?;
        let result = async {
            let resp = self
                .base_request(Method::DELETE, url)
                .header("X-Auth-Token", token.value.expose())
                .send()
                .await
                .map_err(|source| DcsError::Transport {
                    operation: "logout",
                    source,
                })?;
            let status = resp.status();
            // An already expired token means the session is gone anyway.
            if status.is_success() || status == StatusCode::UNAUTHORIZED {
                Ok(())
            } else {
                let body = resp.bytes().await.unwrap_or_default();
                Err(DcsError::from_status("logout", "session", status.as_u16(), &body))
            }
        }
        .instrument(tracing::debug_span!("vrm_call", operation = "logout"))
        .await;
        self.report("logout", start, &result);
        result
    }

    pub(crate) async fn token(&self) -> Result<Token, DcsError> {
        self.inner.session.token(|| self.login_reported()).await
    }

    /// One login, traced and reported like any call.
    pub(crate) async fn login_reported(&self) -> Result<SecretString, DcsError> {
        let start = Instant::now();
        let result = self
            .do_login()
            .instrument(tracing::debug_span!("vrm_call", operation = "login"))
            .await;
        self.report("login", start, &result);
        result
    }

    async fn do_login(&self) -> Result<SecretString, DcsError> {
        let cfg = &self.inner.config;
        let url = self.url("/service/session")?;
        let mut req = self
            .base_request(Method::POST, url)
            .header("Content-Type", super::JSON_CONTENT_TYPE)
            .header("X-Auth-User", &cfg.username)
            .header("X-Auth-UserType", cfg.user_type.header_value());
        req = match cfg.password_encoding {
            PasswordEncoding::Plain => req
                .header("X-Auth-Key", cfg.password.expose())
                .header("X-ENCRIPT-ALGORITHM", "1"),
            PasswordEncoding::Sha256Hex => req.header(
                "X-Auth-Key",
                capstan_cloudkit::sha256_hex(cfg.password.expose().as_bytes()),
            ),
        };
        let resp = req.body("{}").send().await.map_err(|source| DcsError::Transport {
            operation: "login",
            source,
        })?;
        let status = resp.status();
        let token = resp
            .headers()
            .get("X-Auth-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.bytes().await.unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(DcsError::Auth {
                user: cfg.username.clone(),
                status: status.as_u16(),
                fault: ApiFault::parse(&body),
            });
        }
        if !status.is_success() {
            return Err(DcsError::from_status("login", "session", status.as_u16(), &body));
        }
        match token {
            Some(t) if !t.is_empty() => {
                tracing::debug!(user = %cfg.username, "logged in to VRM");
                Ok(SecretString::new(t))
            }
            _ => Err(DcsError::Decode {
                operation: "login",
                message: "no X-Auth-Token header in the login answer".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            capstan_cloudkit::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
