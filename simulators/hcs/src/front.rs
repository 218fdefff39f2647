//! What every authenticated call goes through before its handler: counting, request latency,
//! authentication, the project in the path, the gateway's rate limit and throttling, and
//! injected failures, in the order a client would notice them. Also the error bodies of each
//! service family and the request extractor the handlers share.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::iam;
use crate::state::Sh;

/// Which service answers: each writes its errors its own way (B10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Ecs,
    Ims,
    Vpc,
    Evs,
    Elb,
}

impl Family {
    fn prefix(self) -> &'static str {
        match self {
            Family::Ecs => "Ecs",
            Family::Ims => "IMG",
            Family::Vpc => "VPC",
            Family::Evs => "EVS",
            Family::Elb => "ELB",
        }
    }
}

/// An error answer: the status, the family's code (`Ecs.0114`) and a message.
#[derive(Debug)]
pub(crate) struct Fault {
    pub status: StatusCode,
    pub family: Family,
    pub code: String,
    pub message: String,
}

pub(crate) type Answer = Result<Response, Fault>;

/// `code` is the number after the family prefix (`"0114"` → `Ecs.0114`).
pub(crate) fn fault(status: StatusCode, family: Family, code: &str, message: impl Into<String>) -> Fault {
    Fault {
        status,
        family,
        code: format!("{}.{code}", family.prefix()),
        message: message.into(),
    }
}

pub(crate) fn bad_request(family: Family, code: &str, message: impl Into<String>) -> Fault {
    fault(StatusCode::BAD_REQUEST, family, code, message)
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        let body = match self.family {
            Family::Elb => json!({"error_code": self.code, "error_msg": self.message, "request_id": request_id()}),
            _ => json!({"error": {"code": self.code, "message": self.message}}),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

pub(crate) fn request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!("sim-{:016x}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// The API gateway's own error shape (`error_code`/`error_msg`), e.g. throttling.
pub(crate) fn gateway(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error_code": code, "error_msg": message, "request_id": request_id()})),
    )
        .into_response()
}

pub(crate) fn throttled() -> Response {
    gateway(
        StatusCode::TOO_MANY_REQUESTS,
        "APIGW.0308",
        "The throttling threshold has been reached",
    )
}

pub(crate) fn ok(body: Value) -> Answer {
    Ok(axum::Json(body).into_response())
}

pub(crate) fn created(body: Value) -> Answer {
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

pub(crate) fn no_content() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A request as the handlers need it: method, URI, headers and the raw body (the signature
/// covers the raw bytes).
pub(crate) struct Req {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Req {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Req {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

impl Req {
    /// Decoded query pairs in order; repeated keys stay repeated.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .to_string()
        };
        self.uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect()
    }

    pub fn query(&self, key: &str) -> Option<String> {
        self.query_pairs().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON; an unparsable body is the family's "request body is illegal".
    pub fn json(&self, family: Family) -> Result<Value, Fault> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let code = if family == Family::Elb { "1001" } else { "0005" };
            bad_request(family, code, format!("request body is illegal: {e}"))
        })
    }
}

/// The code a wrong project id in the path gets (the simulator's choice per family).
fn wrong_project(family: Family, pid: &str) -> Fault {
    let code = match family {
        Family::Elb => "1001",
        _ => "0003",
    };
    fault(
        StatusCode::FORBIDDEN,
        family,
        code,
        format!("The project {pid} in the path is not the project the credentials are scoped to."),
    )
}

/// The front of every authenticated call. `pid` is the project id in the path, if it has one.
pub(crate) async fn enter(sh: &Sh, op: &str, family: Family, pid: Option<&str>, req: &Req) -> Result<(), Response> {
    sh.calls.record(op);
    let delay = sh.lock().knobs.latency.request;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(denied) = iam::refused(sh, req) {
        return Err(denied);
    }
    let mut w = sh.lock();
    if let Some(pid) = pid
        && pid != w.config.project_id
    {
        return Err(wrong_project(family, pid).into_response());
    }
    let limited = match w.knobs.rate_limit_per_second {
        Some(rate) => !w.bucket.try_take(rate, Instant::now()),
        None => false,
    };
    let throttle = w.knobs.throttle_rate;
    if limited || w.rng.roll(throttle) {
        sh.calls.record("throttled");
        return Err(throttled());
    }
    let error_rate = w.knobs.error_rate;
    if capstan_simkit::faults::take_fail_next(&mut w.knobs.fail_next, op) || w.rng.roll(error_rate) {
        sh.calls.record("injected_error");
        let code = if family == Family::Elb { "0001" } else { "0002" };
        return Err(fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            family,
            code,
            "Simulated internal error.",
        )
        .into_response());
    }
    Ok(())
}

/// [`enter`], then the handler, in one: the shape every route takes.
macro_rules! guarded {
    ($sh:expr, $op:expr, $family:expr, $pid:expr, $req:expr, $body:expr) => {{
        if let Err(denied) = $crate::front::enter(&$sh, $op, $family, $pid, &$req).await {
            return denied;
        }
        #[allow(clippy::redundant_closure_call)]
        let answer: $crate::front::Answer = (|| -> $crate::front::Answer { $body })();
        match answer {
            Ok(r) => r,
            Err(f) => axum::response::IntoResponse::into_response(f),
        }
    }};
}

pub(crate) use guarded;
