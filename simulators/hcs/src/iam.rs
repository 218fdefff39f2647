//! IAM: Keystone v3 password tokens (`POST /v3/auth/tokens`, `X-Subject-Token`), token
//! validation, `GET /v3/projects`, and the authentication check every other call passes
//! ([`refused`]): a token this simulator issued, or a valid AK/SK signature.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::aksk;
use crate::front::{Req, gateway};
use crate::state::Sh;

/// Keystone's error shape (`code` is a number there).
fn keystone_error(status: StatusCode, title: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": status.as_u16(), "title": title, "message": message}})),
    )
        .into_response()
}

fn unauthorized() -> Response {
    keystone_error(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "The request you have made requires authentication.",
    )
}

pub(crate) fn not_found() -> Response {
    keystone_error(StatusCode::NOT_FOUND, "Not Found", "no such resource")
}

pub(crate) async fn create_token(axum::extract::State(sh): axum::extract::State<Sh>, req: Req) -> Response {
    sh.calls.record("create_token");
    let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let user = &v["auth"]["identity"]["password"]["user"];
    let mut w = sh.lock();
    let c = &w.config;
    let ok = v["auth"]["identity"]["methods"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m == "password"))
        && user["name"] == c.user.as_str()
        && user["password"] == c.password.as_str()
        && user["domain"]["name"] == c.domain.as_str();
    if !ok {
        sh.calls.record("auth_failed");
        return unauthorized();
    }
    let body = json!({"token": {
        "expires_at": (chrono::Utc::now() + chrono::Duration::hours(24)).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "issued_at": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "methods": ["password"],
        "project": {"id": c.project_id, "name": c.region, "domain": {"name": c.domain}},
        "user": {"name": c.user, "domain": {"name": c.domain}},
    }});
    let token = format!("sim-token-{}", w.rng.hex(16));
    w.tokens.insert(token.clone());
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert("X-Subject-Token", HeaderValue::from_str(&token).expect("ASCII token"));
    resp
}

pub(crate) async fn validate_token(axum::extract::State(sh): axum::extract::State<Sh>, req: Req) -> Response {
    if let Some(denied) = refused(&sh, &req) {
        return denied;
    }
    sh.calls.record("validate_token");
    let subject = req.header("X-Subject-Token").unwrap_or_default();
    if sh.lock().tokens.contains(subject) {
        StatusCode::OK.into_response()
    } else {
        keystone_error(StatusCode::NOT_FOUND, "Not Found", "The token could not be found.")
    }
}

pub(crate) async fn list_projects(axum::extract::State(sh): axum::extract::State<Sh>, req: Req) -> Response {
    if let Some(denied) = refused(&sh, &req) {
        return denied;
    }
    sh.calls.record("list_projects");
    let w = sh.lock();
    let c = &w.config;
    axum::Json(json!({"projects": [{"id": c.project_id, "name": c.region, "enabled": true}]})).into_response()
}

/// A request is let in with a token this simulator issued, or a valid AK/SK signature; else
/// this is the answer it gets.
pub(crate) fn refused(sh: &Sh, req: &Req) -> Option<Response> {
    let w = sh.lock();
    if let Some(token) = req.header("X-Auth-Token") {
        if w.tokens.contains(token) {
            return None;
        }
        sh.calls.record("auth_failed");
        return Some(unauthorized());
    }
    let why = aksk::verify(
        &w.config,
        req.method.as_str(),
        &req.uri,
        &req.headers,
        &req.body,
        chrono::Utc::now(),
    )
    .err()?;
    sh.calls.record("auth_failed");
    tracing::debug!(%why, "AK/SK verification failed");
    Some(gateway(
        StatusCode::UNAUTHORIZED,
        "APIGW.0301",
        &format!("Incorrect IAM authentication information: {why}"),
    ))
}
