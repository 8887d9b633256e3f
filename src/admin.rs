//! The admin HTTP server (`[admin] address`): metrics, health and status.
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /metrics` | Prometheus text format (every metric is listed in README.md, "Monitoring"). |
//! | `GET /healthz` | `200 ok`: the process is alive and serving. |
//! | `GET /readyz` | `200 ready`, or `503` with the reasons as JSON (see [`StatusBoard::readiness`]). |
//! | `GET /status` | JSON: readiness, broker and bucket reachability, each partition's state, committed offset, lag, last object key and last error with its code. |
//!
//! Nothing served here can contain a secret: the metrics carry topic, partition, code and reason
//! labels only, and the status holds error messages whose types never print credentials.
//!
//! To add a route (e.g. `POST /partitions/{n}/resume`), add it in [`routes`]; handlers get the
//! [`AdminState`] through `web::Data<AdminState>`.

use std::net::SocketAddr;

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
}

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
        .route("/status", web::get().to(status));
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
