//! A login session shared by every caller of one client: the token, one login at a time, and
//! exactly one re-login when the cloud answers 401 — tokens expire server-side without notice,
//! and one fresh login tells an expired token apart from credentials that no longer work. Many
//! callers that all hit the same expired token cause a single login: each remembers which
//! generation of the token it used, and only a caller holding the newest one logs in again.

use std::future::Future;

use capstan_runtime::secret::SecretString;

#[derive(Clone)]
pub struct Token {
    pub value: SecretString,
    /// Counts logins of this session.
    pub generation: u64,
}

/// Redacted: the token is a credential.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
pub struct Session {
    current: std::sync::Mutex<Option<Token>>,
    login_lock: tokio::sync::Mutex<u64>,
}

/// What one authenticated attempt came to.
pub enum Attempt<T> {
    Done(T),
    /// The cloud said 401 to this token; the body of its answer.
    Unauthorized(Vec<u8>),
}

impl Session {
    pub fn current(&self) -> Option<Token> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, token: Option<Token>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = token;
    }

    /// The current token, logging in first if there is none.
    pub async fn token<E, F, Fut>(&self, login: F) -> Result<Token, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SecretString, E>>,
    {
        if let Some(t) = self.current() {
            return Ok(t);
        }
        self.relogin(0, login).await
    }

    /// Logs in unless someone already replaced the token of generation `stale`.
    pub async fn relogin<E, F, Fut>(&self, stale: u64, login: F) -> Result<Token, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SecretString, E>>,
    {
        let mut generation = self.login_lock.lock().await;
        if let Some(t) = self.current()
            && t.generation != stale
        {
            return Ok(t);
        }
        let value = login().await?;
        *generation += 1;
        let token = Token {
            value,
            generation: *generation,
        };
        self.set(Some(token.clone()));
        Ok(token)
    }

    /// Runs `attempt` with the token; on 401 logs in once more and runs it again. A second 401
    /// is the caller's `unauthorized` error (made from that answer's body): the credentials
    /// themselves are refused.
    pub async fn call<T, E, L, LFut, A, AFut>(
        &self,
        login: L,
        attempt: A,
        unauthorized: impl FnOnce(Vec<u8>) -> E,
    ) -> Result<T, E>
    where
        L: Fn() -> LFut,
        LFut: Future<Output = Result<SecretString, E>>,
        A: Fn(Token) -> AFut,
        AFut: Future<Output = Result<Attempt<T>, E>>,
    {
        let token = self.token(&login).await?;
        if let Attempt::Done(v) = attempt(token.clone()).await? {
            return Ok(v);
        }
        tracing::debug!("the cloud answered 401, logging in again");
        let token = self.relogin(token.generation, &login).await?;
        match attempt(token).await? {
            Attempt::Done(v) => Ok(v),
            Attempt::Unauthorized(body) => Err(unauthorized(body)),
        }
    }

    /// Forgets the token and hands it over (under the login lock, so no login races the
    /// logout), for the caller to end the session on the cloud.
    pub async fn end<F, Fut>(&self, logout: F)
    where
        F: FnOnce(Token) -> Fut,
        Fut: Future<Output = ()>,
    {
        let _guard = self.login_lock.lock().await;
        if let Some(token) = self.current() {
            self.set(None);
            logout(token).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn many_callers_on_an_expired_token_log_in_once() {
        let session = Arc::new(Session::default());
        let logins = Arc::new(AtomicU32::new(0));
        let login = {
            let logins = logins.clone();
            move || {
                let logins = logins.clone();
                async move {
                    let n = logins.fetch_add(1, Ordering::SeqCst) + 1;
                    Ok::<_, String>(SecretString::new(format!("t{n}")))
                }
            }
        };
        // The first token is already expired: every caller is refused once with it.
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let session = session.clone();
                let login = login.clone();
                tokio::spawn(async move {
                    session
                        .call(
                            login,
                            |t: Token| async move {
                                Ok(if t.value.expose() == "t1" {
                                    Attempt::Unauthorized(Vec::new())
                                } else {
                                    Attempt::Done(t.value.expose().to_string())
                                })
                            },
                            |_| "refused".to_string(),
                        )
                        .await
                })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap().unwrap(), "t2");
        }
        assert_eq!(logins.load(Ordering::SeqCst), 2, "one login, one re-login");
    }

    #[tokio::test]
    async fn a_second_401_is_refused_credentials() {
        let session = Session::default();
        let r: Result<(), String> = session
            .call(
                || async { Ok(SecretString::new("t".to_string())) },
                |_| async { Ok(Attempt::Unauthorized(b"no".to_vec())) },
                |body| format!("refused: {}", String::from_utf8_lossy(&body)),
            )
            .await;
        assert_eq!(r.unwrap_err(), "refused: no");
        let mut ended = None;
        session
            .end(|t| {
                ended = Some(t.generation);
                async {}
            })
            .await;
        assert_eq!(ended, Some(2));
        assert!(session.current().is_none());
    }
}
