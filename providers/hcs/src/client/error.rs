//! HCS errors, classified the way a provider needs them: retry (throttled, unavailable), gone
//! (not found), fix the spec or the credentials (terminal). Error bodies come in the shapes the
//! Huawei Cloud SDKs accept, in their order: `error_code`/`error_msg`, `code`/`message`, or
//! either pair one level down (`{"error": {"code": "Ecs.0114", "message": ".."}}`); Keystone's
//! numeric `code` is kept as text.

use serde_json::Value;

/// What an error body said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiFault {
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ApiFault {
    pub fn parse(body: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let pair = |v: &Value| {
            [("error_code", "error_msg"), ("code", "message")]
                .iter()
                .find_map(|(c, m)| text(&v[*c]).map(|code| (code, text(&v[*m]))))
        };
        let found = pair(&v).or_else(|| v.as_object()?.values().filter(|inner| inner.is_object()).find_map(pair))?;
        Some(ApiFault {
            code: Some(found.0),
            message: found.1,
        })
    }
}

impl std::fmt::Display for ApiFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => write!(f, "{c}: {m}"),
            (Some(c), None) => write!(f, "{c}"),
            (None, Some(m)) => write!(f, "{m}"),
            (None, None) => write!(f, "no details"),
        }
    }
}

/// Throttled by the API gateway (back off and retry).
pub const THROTTLED: &str = "APIGW.0308";
/// Wrong AK/SK signature or unknown access key.
pub const BAD_SIGNATURE: &str = "APIGW.0301";
/// The ECS server does not exist (any more).
pub const SERVER_NOT_FOUND: &str = "Ecs.0114";

#[derive(Debug, thiserror::Error)]
pub enum HcsError {
    #[error("invalid HCS settings: {0}")]
    Config(String),
    #[error("{operation}: cannot reach HCS: {source}")]
    Transport {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{operation}: HCS refused the credentials (HTTP {status}; {fault})")]
    Auth {
        operation: &'static str,
        status: u16,
        fault: ApiFault,
    },
    #[error("{operation}: {what} not found ({fault})")]
    NotFound {
        operation: &'static str,
        what: String,
        status: u16,
        fault: ApiFault,
    },
    #[error("{operation}: throttled by HCS (HTTP {status}; {fault})")]
    Throttled {
        operation: &'static str,
        status: u16,
        fault: ApiFault,
    },
    #[error("{operation}: HTTP {status} ({fault})")]
    Api {
        operation: &'static str,
        status: u16,
        fault: ApiFault,
    },
    #[error("{operation}: cannot sign the request: {source}")]
    Sign {
        operation: &'static str,
        #[source]
        source: crate::client::signer::SignError,
    },
    #[error("{operation}: unexpected answer: {message}")]
    Decode { operation: &'static str, message: String },
}

impl HcsError {
    /// From a non-success HTTP answer.
    pub fn from_status(operation: &'static str, what: &str, status: u16, body: &[u8]) -> Self {
        let fault = ApiFault::parse(body).unwrap_or_default();
        let code = fault.code.as_deref();
        match (status, code) {
            (401, _) | (_, Some(BAD_SIGNATURE)) => HcsError::Auth {
                operation,
                status,
                fault,
            },
            (429, _) | (_, Some(THROTTLED)) => HcsError::Throttled {
                operation,
                status,
                fault,
            },
            (404, _) | (_, Some(SERVER_NOT_FOUND)) => HcsError::NotFound {
                operation,
                what: what.to_string(),
                status,
                fault,
            },
            _ => HcsError::Api {
                operation,
                status,
                fault,
            },
        }
    }

    /// Worth trying again later without any change: throttling, the cloud being unavailable, the
    /// network.
    pub fn is_retryable(&self) -> bool {
        match self {
            HcsError::Transport { .. } | HcsError::Throttled { .. } => true,
            HcsError::Api { status, .. } => *status >= 500 || *status == 409,
            _ => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, HcsError::NotFound { .. })
    }

    /// The HTTP status of an answered call.
    pub fn status(&self) -> Option<u16> {
        match self {
            HcsError::Auth { status, .. }
            | HcsError::NotFound { status, .. }
            | HcsError::Throttled { status, .. }
            | HcsError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code HCS gave, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            HcsError::Auth { fault, .. }
            | HcsError::NotFound { fault, .. }
            | HcsError::Throttled { fault, .. }
            | HcsError::Api { fault, .. } => fault.code.as_deref(),
            _ => None,
        }
    }
}

impl capstan_cloudkit::CallError for HcsError {
    fn is_retryable(&self) -> bool {
        HcsError::is_retryable(self)
    }
    fn status(&self) -> Option<u16> {
        HcsError::status(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_shape_the_sdks_accept() {
        let f = |b: &str| ApiFault::parse(b.as_bytes());
        assert_eq!(
            f(r#"{"error_code":"APIGW.0308","error_msg":"throttled","request_id":"r"}"#),
            Some(ApiFault {
                code: Some("APIGW.0308".into()),
                message: Some("throttled".into())
            })
        );
        assert_eq!(
            f(r#"{"code":"Ecs.0005","message":"bad"}"#).unwrap().code.as_deref(),
            Some("Ecs.0005")
        );
        assert_eq!(
            f(r#"{"error":{"code":"Ecs.0114","message":"not found"}}"#)
                .unwrap()
                .code
                .as_deref(),
            Some("Ecs.0114")
        );
        // Keystone: a numeric code.
        assert_eq!(
            f(r#"{"error":{"code":401,"title":"Unauthorized","message":"auth"}}"#)
                .unwrap()
                .code
                .as_deref(),
            Some("401")
        );
        assert_eq!(f("not json"), None);
        assert_eq!(f(r#"{"servers":[]}"#), None);
    }

    #[test]
    fn classification() {
        let e = |s, b: &str| HcsError::from_status("op", "server s-1", s, b.as_bytes());
        assert!(e(429, "").is_retryable());
        assert!(e(400, r#"{"error_code":"APIGW.0308","error_msg":"x"}"#).is_retryable());
        assert!(e(503, "").is_retryable());
        let gone = e(404, r#"{"error":{"code":"Ecs.0114","message":"gone"}}"#);
        assert!(gone.is_not_found() && !gone.is_retryable());
        assert_eq!(gone.code(), Some("Ecs.0114"));
        assert!(gone.to_string().contains("server s-1"), "{gone}");
        let auth = e(
            401,
            r#"{"error_code":"APIGW.0301","error_msg":"verify aksk signature fail"}"#,
        );
        assert!(matches!(auth, HcsError::Auth { .. }) && !auth.is_retryable());
        assert!(
            !e(
                400,
                r#"{"error":{"code":"Ecs.0005","message":"request body is illegal."}}"#
            )
            .is_retryable()
        );
    }
}
