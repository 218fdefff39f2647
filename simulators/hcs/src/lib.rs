//! A Huawei Cloud Stack simulator (issue 14, in progress) on the shared simulator kit: IAM over
//! HTTPS with a CA generated at start-up — Keystone v3 password tokens (`POST /v3/auth/tokens`,
//! `X-Subject-Token`) and AK/SK (`SDK-HMAC-SHA256`) verification that rejects wrong signatures,
//! unknown access keys and clock skew — and one authenticated read, `GET /v3/projects`. ECS, VPC,
//! ELB v3 and EVS follow.
//!
//! It recomputes signatures with its own implementation of the scheme (`aksk`), over the headers
//! the client says it signed: it shares no code with the client, so it can catch the client's bugs.

mod aksk;

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use capstan_simkit::Server;
use reqwest::Url;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free port. Always a loopback address in tests.
    pub bind: SocketAddr,
    pub access_key: String,
    pub secret_key: String,
    /// The IAM user, password and domain that password authentication accepts.
    pub user: String,
    pub password: String,
    pub domain: String,
    pub project_id: String,
    pub region: String,
    /// How far `X-Sdk-Date` may be from the simulator's clock (the gateway's 15 minutes).
    pub max_clock_skew: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            access_key: "SIMACCESSKEY0000001".into(),
            secret_key: "sim-secret-key-0000000000000000000000001".into(),
            user: "capstan".into(),
            password: "Sim-Passw0rd!".into(),
            domain: "sim-domain".into(),
            project_id: "0b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e".into(),
            region: "sim-region-1".into(),
            max_clock_skew: Duration::from_secs(15 * 60),
        }
    }
}

struct Shared {
    config: SimConfig,
    tokens: Mutex<HashSet<String>>,
    calls: capstan_simkit::CallCounts,
}

type Sh = Arc<Shared>;

/// What tests may read while the simulator runs.
#[derive(Clone)]
pub struct SimState(Sh);

impl SimState {
    /// Requests answered per operation (`create_token`, `list_projects`, `auth_failed`, …).
    pub fn call_count(&self, operation: &str) -> u64 {
        self.0.calls.get(operation)
    }
}

pub struct Simulator;

impl Simulator {
    pub async fn start(config: SimConfig) -> io::Result<SimHandle> {
        let tcp = tokio::net::TcpListener::bind(config.bind).await?;
        let addr = tcp.local_addr()?;
        let pki = capstan_simkit::tls::generate("Capstan HCS simulator CA", &[addr.ip()])?;
        let tls = pki
            .servers
            .into_iter()
            .next()
            .ok_or_else(|| io::Error::other("no certificate"))?;
        let shared = Arc::new(Shared {
            config,
            tokens: Mutex::default(),
            calls: Default::default(),
        });
        let server = Server::start("HCS", tcp, tls, router(shared.clone()))?;
        let url = Url::parse(&format!("https://{addr}")).map_err(io::Error::other)?;
        tracing::info!(%url, "HCS simulator listening");
        Ok(SimHandle {
            url,
            ca_pem: pki.ca_pem,
            state: SimState(shared),
            _server: server,
        })
    }
}

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    url: Url,
    ca_pem: String,
    state: SimState,
    _server: Server,
}

impl SimHandle {
    /// `https://127.0.0.1:<port>`: every service of the simulated region is served here.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn state(&self) -> SimState {
        self.state.clone()
    }
}

fn router(shared: Sh) -> Router {
    Router::new()
        .route("/v3/auth/tokens", post(create_token).get(validate_token))
        .route("/v3/projects", get(list_projects))
        .fallback(|| async { keystone_error(StatusCode::NOT_FOUND, "Not Found", "no such resource") })
        .with_state(shared)
}

fn count(sh: &Sh, operation: &str) {
    sh.calls.record(operation);
}

/// Keystone's error shape (`code` is a number there).
fn keystone_error(status: StatusCode, title: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": status.as_u16(), "title": title, "message": message}})),
    )
        .into_response()
}

/// The API gateway's error shape, which the SDKs read first.
fn gateway_error(code: &str, message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error_code": code, "error_msg": message, "request_id": "sim"})),
    )
        .into_response()
}

async fn create_token(State(sh): State<Sh>, body: Bytes) -> Response {
    count(&sh, "create_token");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let user = &v["auth"]["identity"]["password"]["user"];
    let c = &sh.config;
    let ok = v["auth"]["identity"]["methods"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m == "password"))
        && user["name"] == c.user.as_str()
        && user["password"] == c.password.as_str()
        && user["domain"]["name"] == c.domain.as_str();
    if !ok {
        count(&sh, "auth_failed");
        return keystone_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The request you have made requires authentication.",
        );
    }
    let token = format!("sim-token-{:016x}", rand_u64());
    sh.tokens.lock().expect("tokens").insert(token.clone());
    let expires = chrono::Utc::now() + chrono::Duration::hours(24);
    let mut resp = (
        StatusCode::CREATED,
        axum::Json(json!({"token": {
            "expires_at": expires.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "methods": ["password"],
            "project": {"id": c.project_id, "name": c.region, "domain": {"name": c.domain}},
            "user": {"name": c.user, "domain": {"name": c.domain}},
        }})),
    )
        .into_response();
    resp.headers_mut()
        .insert("X-Subject-Token", HeaderValue::from_str(&token).expect("ASCII token"));
    resp
}

async fn validate_token(State(sh): State<Sh>, method: Method, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    if let Some(denied) = refused(&sh, &method, &uri, &h, &body) {
        return denied;
    }
    count(&sh, "validate_token");
    let subject = h
        .get("X-Subject-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if sh.tokens.lock().expect("tokens").contains(subject) {
        StatusCode::OK.into_response()
    } else {
        keystone_error(StatusCode::NOT_FOUND, "Not Found", "The token could not be found.")
    }
}

async fn list_projects(State(sh): State<Sh>, method: Method, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    if let Some(denied) = refused(&sh, &method, &uri, &h, &body) {
        return denied;
    }
    count(&sh, "list_projects");
    let c = &sh.config;
    axum::Json(json!({"projects": [{"id": c.project_id, "name": c.region, "enabled": true}]})).into_response()
}

/// A request is let in with a token this simulator issued, or a valid AK/SK signature; else
/// this is the answer it gets.
fn refused(sh: &Sh, method: &Method, uri: &Uri, h: &HeaderMap, body: &[u8]) -> Option<Response> {
    if let Some(token) = h.get("X-Auth-Token").and_then(|v| v.to_str().ok()) {
        if sh.tokens.lock().expect("tokens").contains(token) {
            return None;
        }
        count(sh, "auth_failed");
        return Some(keystone_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The request you have made requires authentication.",
        ));
    }
    let why = aksk::verify(&sh.config, method.as_str(), uri, h, body, chrono::Utc::now()).err()?;
    count(sh, "auth_failed");
    tracing::debug!(%why, "AK/SK verification failed");
    Some(gateway_error(
        "APIGW.0301",
        &format!("Incorrect IAM authentication information: {why}"),
    ))
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
