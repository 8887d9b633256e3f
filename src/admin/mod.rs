//! The admin HTTP server (`[admin] address`): metrics, health and status.
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /metrics` | Prometheus text format (every metric is listed in README.md, "Monitoring"). |
//! | `GET /healthz` | `200 ok`: the process is alive and serving. |
//! | `GET /readyz` | `200 ready`, or `503` with the reasons as JSON (see [`StatusBoard::readiness`]). |
//! | `GET /status` | JSON: readiness, broker and bucket reachability, each partition's state, committed offset, lag, last object key and last error with its code. |
//! | `POST /partitions/{n}/pause` | Stops consuming partition `n` (state PAUSED); `409` with the reason if it is not RUNNING. |
//! | `POST /partitions/{n}/resume` | Resumes a PAUSED or FAILED partition: held uploads are retried, a held bad record goes to the dead-letter topic; `409` with the reason if it cannot. |
//! | `/connectors/...` | Kafka Connect's status routes ([`connect`]). |
//!
//! Routes that change something (pause, resume, restart) need `Authorization: Bearer <token>`
//! when `admin.token_file` is set, which the config requires for a non-loopback address; any
//! other request to them gets `401` and changes nothing ([`refuse_unauthorized`]).
//!
//! Nothing served here can contain a secret: the metrics carry topic, partition, code and reason
//! labels only, the status holds error messages whose types never print credentials, the config
//! is the redacted one, and the token is only ever compared.
//!
//! To add a route, add it in [`routes`]; handlers get the [`AdminState`] through
//! `web::Data<AdminState>`.

pub mod connect;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use actix::Recipient;
use actors::messages::{PartitionAction, PartitionCommand};

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header::{self, ContentType};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actors::metrics as names;
use actors::status::StatusBoard;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// What the handlers read.
#[derive(Clone)]
pub struct AdminState {
    pub prometheus: PrometheusHandle,
    pub status: StatusBoard,
    pub connector_name: String,
    /// Set once the pipeline runs; partition commands answer 503 before that.
    pub commands: Commands,
    /// The effective config, secrets redacted, as Connect's flat map ([`connect::flat_config`]).
    pub config: Arc<BTreeMap<String, String>>,
    /// Required by the mutating routes when set (`admin.token_file`).
    pub token: Option<Token>,
    /// Connect's `worker_id`: the bound address, or `hostname:port` for a wildcard address; set
    /// by [`start`].
    pub worker_id: Arc<OnceLock<String>>,
}

impl AdminState {
    fn worker_id(&self) -> String {
        self.worker_id.get().cloned().unwrap_or_default()
    }
}

/// The bearer token of the mutating routes. Never printed: `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    /// The token in `text` (a token file's contents), surrounding whitespace removed; `None` if
    /// nothing is left.
    pub fn parse(text: &str) -> Option<Token> {
        let token = text.trim();
        (!token.is_empty()).then(|| Token(token.into()))
    }

    /// The token itself, for a client sending it (`kafka-oss-sink pause|resume`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the first difference is.
    fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        expected.len() == presented.len()
            && expected
                .iter()
                .zip(presented)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// `None` when the request may change something: no token is configured, or it carries
/// `Authorization: Bearer <token>`. Otherwise the `401` to answer; nothing of what was
/// presented is echoed or logged.
pub fn refuse_unauthorized(state: &AdminState, request: &HttpRequest) -> Option<HttpResponse> {
    let token = state.token.as_ref()?;
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes())
        .and_then(|value| {
            let (scheme, rest) = value.split_at_checked(7)?;
            scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
        });
    match presented {
        Some(presented) if token.matches(presented) => None,
        _ => Some(HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .json(serde_json::json!({
                "error_code": 401,
                "message": "this route needs \"Authorization: Bearer <token>\" with the token of admin.token_file",
            }))),
    }
}

/// Where operators' partition commands go, once the pipeline is wired.
pub type Commands = Arc<OnceLock<Recipient<PartitionCommand>>>;

/// Installs the Prometheus recorder as the process's `metrics` recorder, with the histogram
/// buckets of [`names::BUCKETS`], and describes every metric.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in names::BUCKETS {
        builder = builder.set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)?;
    }
    let handle = builder.install_recorder()?;
    names::describe();
    Ok(handle)
}

/// Every route of the admin server.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/metrics", web::get().to(metrics))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/status", web::get().to(status))
        .route("/partitions/{partition}/pause", web::post().to(pause))
        .route("/partitions/{partition}/resume", web::post().to(resume))
        .configure(connect::routes);
}

async fn pause(
    state: web::Data<AdminState>,
    request: HttpRequest,
    partition: web::Path<i32>,
) -> HttpResponse {
    if let Some(response) = refuse_unauthorized(&state, &request) {
        return response;
    }
    command(&state, partition.into_inner(), PartitionAction::Pause).await
}

async fn resume(
    state: web::Data<AdminState>,
    request: HttpRequest,
    partition: web::Path<i32>,
) -> HttpResponse {
    if let Some(response) = refuse_unauthorized(&state, &request) {
        return response;
    }
    command(&state, partition.into_inner(), PartitionAction::Resume).await
}

/// Sends a pause or resume to the supervisor; 200 with what happened, 409 with why not.
async fn command(state: &AdminState, partition: i32, action: PartitionAction) -> HttpResponse {
    let Some(commands) = state.commands.get() else {
        return HttpResponse::ServiceUnavailable().body("the connector is starting\n");
    };
    match commands.send(PartitionCommand { partition, action }).await {
        Ok(Ok(done)) => HttpResponse::Ok().body(format!("{done}\n")),
        Ok(Err(refused)) => HttpResponse::Conflict().body(format!("{refused}\n")),
        Err(_) => HttpResponse::ServiceUnavailable().body("the connector is stopping\n"),
    }
}

/// Binds `address` and returns the server (to be spawned on the actix system), a handle to
/// stop it, and the address actually bound (port 0 picks a free port).
pub fn start(
    address: SocketAddr,
    state: AdminState,
) -> std::io::Result<(Server, ServerHandle, SocketAddr)> {
    let worker_id = state.worker_id.clone();
    let data = web::Data::new(state);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
        .workers(1)
        // The connector handles SIGINT/SIGTERM itself and stops this server after draining.
        .disable_signals()
        .shutdown_timeout(1)
        .bind(address)?;
    let bound = server.addrs().first().copied().unwrap_or(address);
    let _ = worker_id.set(worker_id_for(bound, hostname()));
    let server = server.run();
    let handle = server.handle();
    Ok((server, handle, bound))
}

async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    if let Some(bytes) = resident_memory_bytes() {
        metrics::gauge!(names::RESIDENT_MEMORY).set(bytes as f64);
    }
    // Refreshes the ready gauge.
    let _ = state.status.readiness();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.prometheus.render())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body("ok\n")
}

async fn readyz(state: web::Data<AdminState>) -> HttpResponse {
    match state.status.readiness() {
        Ok(()) => HttpResponse::Ok()
            .content_type(ContentType::plaintext())
            .body("ready\n"),
        Err(reasons) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "ready": false, "reasons": reasons })),
    }
}

async fn status(state: web::Data<AdminState>) -> HttpResponse {
    let mut document = state.status.to_json();
    document["connector"] = serde_json::Value::from(state.connector_name.as_str());
    HttpResponse::Ok().json(document)
}

/// Connect's `worker_id`: how other hosts reach this admin server. A wildcard address says
/// nothing, so the host name stands for it.
fn worker_id_for(bound: SocketAddr, hostname: Option<String>) -> String {
    match hostname {
        Some(host) if bound.ip().is_unspecified() => format!("{host}:{}", bound.port()),
        _ => bound.to_string(),
    }
}

/// The host name from the kernel (Linux), else `$HOSTNAME`.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// Resident set size from `/proc/self/status` (Linux); `None` elsewhere.
fn resident_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_on_linux() {
        let bytes = resident_memory_bytes().expect("/proc/self/status has VmRSS");
        assert!(bytes > 1024 * 1024, "{bytes}");
    }

    #[test]
    fn the_worker_id_is_the_address_or_the_host_name_for_a_wildcard() {
        let host = Some("sink-0".to_owned());
        let loopback: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        assert_eq!(worker_id_for(loopback, host.clone()), "127.0.0.1:9464");
        let wildcard: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        assert_eq!(worker_id_for(wildcard, host), "sink-0:9464");
        assert_eq!(worker_id_for(wildcard, None), "0.0.0.0:9464");
    }

    #[test]
    fn tokens_are_trimmed_compared_exactly_and_never_printed() {
        assert!(Token::parse(" \n").is_none());
        let token = Token::parse("s3cr3t-token\n").unwrap();
        assert!(token.matches(b"s3cr3t-token"));
        assert!(!token.matches(b"s3cr3t-toke"));
        assert!(!token.matches(b"s3cr3t-tokenX"));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "Token(***)");
    }
}
