//! Errors returned by the VRM client and their retry classification.

use std::fmt;

use serde::Deserialize;

/// VRM answers this code when it does not support the `version=` in the `Accept` header.
/// Retrying with the same header cannot succeed, so it is terminal.
pub const ERROR_VERSION_NOT_SUPPORTED: &str = "10000022";

/// The `{errorCode, errorDes}` body VRM sends with a 4xx/5xx status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiFault {
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_des: Option<String>,
}

impl ApiFault {
    /// Parses a fault body; anything that is not the documented shape (an HTML error page from
    /// a proxy, an empty body) yields an empty fault rather than an error, because the HTTP
    /// status alone is still enough to classify the failure.
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }
}

impl fmt::Display for ApiFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.error_code, &self.error_des) {
            (Some(c), Some(d)) => write!(f, "errorCode {c}: {d}"),
            (Some(c), None) => write!(f, "errorCode {c}"),
            (None, Some(d)) => f.write_str(d),
            (None, None) => f.write_str("no error body"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DcsError {
    /// Login was refused, or a request was still refused after one fresh login.
    /// Never carries the password: only the user name and what VRM said.
    #[error("VRM authentication failed for user {user:?} (HTTP {status}): {fault}")]
    Auth { user: String, status: u16, fault: ApiFault },

    #[error("{operation}: permission denied (HTTP 403): {fault}")]
    Forbidden { operation: &'static str, fault: ApiFault },

    #[error("{operation}: not found: {what}")]
    NotFound {
        operation: &'static str,
        what: String,
        fault: Option<ApiFault>,
    },

    /// Any other non-success answer from VRM.
    #[error("{operation}: VRM returned HTTP {status}: {fault}")]
    Api {
        operation: &'static str,
        status: u16,
        fault: ApiFault,
    },

    /// Connection refused/reset, TLS failure, timeout.
    #[error("{operation}: transport error: {source}")]
    Transport {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },

    /// VRM answered 2xx with a body we could not understand.
    #[error("{operation}: unexpected response: {message}")]
    Decode { operation: &'static str, message: String },

    /// An asynchronous VRM task finished with status `failed`.
    #[error("task {task} failed: {reason}")]
    TaskFailed { task: String, reason: String },

    /// More than one object matched a lookup that must be unique (e.g. two VMs with the same
    /// exact name): acting on either could touch the wrong machine.
    #[error("{operation}: {count} objects match {what}")]
    Ambiguous {
        operation: &'static str,
        what: String,
        count: usize,
    },

    #[error("timed out after {seconds}s waiting for {what}")]
    WaitTimeout { what: String, seconds: u64 },

    #[error("invalid client configuration: {0}")]
    Config(String),

    /// VRM named an upload address that is neither VRM itself nor a host of its inventory: the
    /// session token is not sent there.
    #[error(
        "VRM asked for the bootstrap image to be uploaded to {target}, which is neither the VRM nor a host in its inventory: refusing to send the session token there"
    )]
    UntrustedUploadTarget { target: String },
}

impl DcsError {
    /// Whether the same request may succeed later without any change to spec or credentials.
    pub fn is_retryable(&self) -> bool {
        match self {
            DcsError::Api { status, fault, .. } => {
                if fault.error_code.as_deref() == Some(ERROR_VERSION_NOT_SUPPORTED) {
                    return false;
                }
                *status == 429 || *status >= 500
            }
            DcsError::Transport { source, .. } => {
                source.is_timeout() || source.is_connect() || source.is_request() || source.is_body()
            }
            // A task that has not finished in our wait window may finish later.
            DcsError::WaitTimeout { .. } => true,
            DcsError::Auth { .. }
            | DcsError::Forbidden { .. }
            | DcsError::NotFound { .. }
            | DcsError::Decode { .. }
            | DcsError::TaskFailed { .. }
            | DcsError::Ambiguous { .. }
            | DcsError::Config(_)
            | DcsError::UntrustedUploadTarget { .. } => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, DcsError::NotFound { .. })
    }

    /// The HTTP status VRM answered with, if the error came from an HTTP answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            DcsError::Auth { status, .. } | DcsError::Api { status, .. } => Some(*status),
            DcsError::Forbidden { .. } => Some(403),
            DcsError::NotFound { fault: Some(_), .. } => Some(404),
            _ => None,
        }
    }

    /// The VRM `errorCode`, if the answer carried one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            DcsError::Auth { fault, .. }
            | DcsError::Forbidden { fault, .. }
            | DcsError::Api { fault, .. }
            | DcsError::NotFound { fault: Some(fault), .. } => fault.error_code.as_deref(),
            _ => None,
        }
    }

    /// Maps a non-success HTTP answer (other than the 401 the session layer handles) to an error.
    pub(crate) fn from_status(operation: &'static str, what: &str, status: u16, body: &[u8]) -> Self {
        let fault = ApiFault::parse(body);
        match status {
            403 => DcsError::Forbidden { operation, fault },
            404 => DcsError::NotFound {
                operation,
                what: what.to_string(),
                fault: Some(fault),
            },
            _ => DcsError::Api {
                operation,
                status,
                fault,
            },
        }
    }
}

impl capstan_cloudkit::CallError for DcsError {
    fn is_retryable(&self) -> bool {
        DcsError::is_retryable(self)
    }
    fn status(&self) -> Option<u16> {
        DcsError::status(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let e = DcsError::from_status("get_vm", "vm", 503, br#"{"errorCode":"1","errorDes":"busy"}"#);
        assert!(e.is_retryable());
        assert_eq!(e.error_code(), Some("1"));
        let e = DcsError::from_status("get_vm", "vm", 500, b"<html>");
        assert!(e.is_retryable());
        let e = DcsError::from_status("get_vm", "vm", 400, br#"{"errorCode":"2","errorDes":"bad"}"#);
        assert!(!e.is_retryable());
        let e = DcsError::from_status("get_vm", "vm", 404, b"");
        assert!(e.is_not_found() && !e.is_retryable());
        let e = DcsError::from_status("get_vm", "vm", 403, b"");
        assert!(!e.is_retryable());
        let e = DcsError::from_status("get_vm", "vm", 500, br#"{"errorCode":"10000022","errorDes":"version"}"#);
        assert!(!e.is_retryable());
    }
}
