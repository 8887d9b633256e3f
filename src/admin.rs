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
//!
//! Nothing served here can contain a secret: the metrics carry topic, partition, code and reason
//! labels only, and the status holds error messages whose types never print credentials.
//!
//! To add a route, add it in [`routes`]; handlers get the [`AdminState`] through
//! `web::Data<AdminState>`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use actix::Recipient;
use actors::messages::{PartitionAction, PartitionCommand};

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header::ContentType;
use actix_web::{web, App, HttpResponse, HttpServer};
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
        .route("/partitions/{partition}/resume", web::post().to(resume));
}

async fn pause(state: web::Data<AdminState>, partition: web::Path<i32>) -> HttpResponse {
    command(&state, partition.into_inner(), PartitionAction::Pause).await
}

async fn resume(state: web::Data<AdminState>, partition: web::Path<i32>) -> HttpResponse {
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
    let data = web::Data::new(state);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
        .workers(1)
        // The connector handles SIGINT/SIGTERM itself and stops this server after draining.
        .disable_signals()
        .shutdown_timeout(1)
        .bind(address)?;
    let bound = server.addrs().first().copied().unwrap_or(address);
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
}
