//! vim25 faults and the client's errors, with their retry classification.

use super::types::MoRef;
use super::xml::Node;

/// A vim25 `MethodFault`, from a SOAP fault's `detail` or a failed task's `info.error`. The
/// kinds a provider reacts to have variants of their own; the rest keep their type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// No session, or it expired or was logged out.
    #[error("NotAuthenticated: {message}")]
    NotAuthenticated { message: String },
    /// `Login` with wrong credentials.
    #[error("InvalidLogin: {message}")]
    InvalidLogin { message: String },
    /// A stale reference: the object was deleted (or never fully created).
    #[error("ManagedObjectNotFound {obj:?}: {message}")]
    ManagedObjectNotFound { obj: Option<MoRef>, message: String },
    #[error("InvalidPowerState (requested {requested:?}, existing {existing:?}): {message}")]
    InvalidPowerState {
        requested: Option<String>,
        existing: Option<String>,
        message: String,
    },
    /// The folder already holds an entity of that name; `object` is that entity.
    #[error("DuplicateName {name:?} ({object:?}): {message}")]
    DuplicateName {
        name: Option<String>,
        object: Option<MoRef>,
        message: String,
    },
    /// The VM's files are already on the datastore.
    #[error("FileAlreadyExists {file:?}: {message}")]
    FileAlreadyExists { file: Option<String>, message: String },
    /// Any other fault, by its vim25 type (`InvalidArgument` names the `invalidProperty`).
    #[error("{fault_type}: {message}{}", invalid_property.as_deref().map(|p| format!(" (invalid property {p})")).unwrap_or_default())]
    Other {
        fault_type: String,
        message: String,
        invalid_property: Option<String>,
    },
}

impl Fault {
    /// Builds a fault from its element (the child of `detail`, or `LocalizedMethodFault.fault`).
    pub(crate) fn from_node(n: &Node, message: String) -> Fault {
        let fault_type = n
            .type_name()
            .map(str::to_string)
            .unwrap_or_else(|| n.name.strip_suffix("Fault").unwrap_or(&n.name).to_string());
        let text = |name: &str| n.child_text(name).map(str::to_string);
        let moref = |name: &str| n.child(name).and_then(MoRef::from_node);
        match fault_type.as_str() {
            "NotAuthenticated" => Fault::NotAuthenticated { message },
            "InvalidLogin" => Fault::InvalidLogin { message },
            "ManagedObjectNotFound" => Fault::ManagedObjectNotFound {
                obj: moref("obj"),
                message,
            },
            "InvalidPowerState" => Fault::InvalidPowerState {
                requested: text("requestedState"),
                existing: text("existingState"),
                message,
            },
            "DuplicateName" => Fault::DuplicateName {
                name: text("name"),
                object: moref("object"),
                message,
            },
            "FileAlreadyExists" => Fault::FileAlreadyExists {
                file: text("file"),
                message,
            },
            _ => Fault::Other {
                invalid_property: text("invalidProperty"),
                fault_type,
                message,
            },
        }
    }

    /// The vim25 type name of the fault.
    pub fn fault_type(&self) -> &str {
        match self {
            Fault::NotAuthenticated { .. } => "NotAuthenticated",
            Fault::InvalidLogin { .. } => "InvalidLogin",
            Fault::ManagedObjectNotFound { .. } => "ManagedObjectNotFound",
            Fault::InvalidPowerState { .. } => "InvalidPowerState",
            Fault::DuplicateName { .. } => "DuplicateName",
            Fault::FileAlreadyExists { .. } => "FileAlreadyExists",
            Fault::Other { fault_type, .. } => fault_type,
        }
    }

    /// Faults that say "busy, try again" rather than "this cannot work": another task holds
    /// the object, or vCenter lost its host for a moment.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.fault_type(),
            "TaskInProgress" | "ConcurrentAccess" | "HostCommunication" | "HostNotConnected" | "Timedout"
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VsphereError {
    /// The server answered the method with a SOAP fault.
    #[error("{method}: {fault}")]
    Fault { method: &'static str, fault: Box<Fault> },

    /// A task ended in `error`; `fault` is its `info.error`.
    #[error("task {task} failed: {fault}")]
    Task { task: MoRef, fault: Box<Fault> },

    /// An HTTP answer that is not SOAP (neither 200 nor 500 with a fault).
    #[error("{method}: HTTP {status} without a SOAP answer")]
    Http { method: &'static str, status: u16 },

    /// Connection refused or reset, TLS refused, timeout.
    #[error("{method}: transport error: {source}")]
    Transport {
        method: &'static str,
        #[source]
        source: reqwest::Error,
    },

    /// A SOAP answer we could not read.
    #[error("{method}: unexpected answer: {message}")]
    Decode { method: &'static str, message: String },

    #[error("timed out after {seconds}s waiting for {what}")]
    WaitTimeout { what: String, seconds: u64 },

    #[error("invalid vSphere client configuration: {0}")]
    Config(String),
}

impl VsphereError {
    /// The vim25 fault, whether the method faulted or its task failed.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            VsphereError::Fault { fault, .. } | VsphereError::Task { fault, .. } => Some(fault.as_ref()),
            _ => None,
        }
    }

    /// A stale reference: the object is gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self.fault(), Some(Fault::ManagedObjectNotFound { .. }))
    }

    /// Whether the same request may succeed later without any change to spec or credentials.
    pub fn is_retryable(&self) -> bool {
        match self {
            VsphereError::Fault { fault, .. } | VsphereError::Task { fault, .. } => fault.is_retryable(),
            VsphereError::Http { status, .. } => *status == 429 || *status >= 500,
            VsphereError::Transport { source, .. } => {
                // A refused certificate is a connect error too, but no retry changes it.
                !is_tls_refusal(source)
                    && (source.is_timeout() || source.is_connect() || source.is_request() || source.is_body())
            }
            VsphereError::WaitTimeout { .. } => true,
            VsphereError::Decode { .. } | VsphereError::Config(_) => false,
        }
    }

    /// The HTTP status the server answered with, if the error came from an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            VsphereError::Fault { .. } => Some(500),
            VsphereError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn is_tls_refusal(e: &reqwest::Error) -> bool {
    std::error::Error::source(e).is_some_and(holds_rustls_error)
}

/// `io::Error::source` skips the error it wraps (and hyper nests io errors), so look inside.
fn holds_rustls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.is::<rustls::Error>() {
        return true;
    }
    if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        return holds_rustls_error(inner);
    }
    e.source().is_some_and(holds_rustls_error)
}

impl capstan_cloudkit::CallError for VsphereError {
    fn is_retryable(&self) -> bool {
        VsphereError::is_retryable(self)
    }
    fn status(&self) -> Option<u16> {
        VsphereError::status(self)
    }
}
