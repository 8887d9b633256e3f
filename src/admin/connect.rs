//! Kafka Connect's REST status routes, so that tools that read Connect can read this connector.
//!
//! One process runs one connector, configured by its file; each assigned partition is a task
//! whose id is the partition number.
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /connectors` | `["<name>"]`; with `?expand=status` and/or `?expand=info`, Connect's map of name → `{status, info}`. |
//! | `GET /connectors/{name}` | `{name, config, tasks: [{connector, task}], type: "sink"}`. |
//! | `GET /connectors/{name}/status` | `{name, connector: {state, worker_id, trace?}, tasks: [{id, state, worker_id, trace?}], type: "sink"}`. |
//! | `GET /connectors/{name}/tasks/{id}/status` | One task of the above. |
//! | `GET /connectors/{name}/config` | The effective config, secrets redacted, as a flat map of key → string. |
//! | `PUT /connectors/{name}/pause` | Pauses every RUNNING partition; `202`. |
//! | `PUT /connectors/{name}/resume` | Resumes every PAUSED or FAILED partition; `202`. |
//! | `POST /connectors/{name}/tasks/{id}/restart` | Resumes partition `id` like `POST /partitions/{id}/resume` (a FAILED one from its committed offset, its held record to the dead-letter topic); `204` (also for a RUNNING one, which stays as it is), or `409` with why not. |
//!
//! Errors have Connect's shape, `{"error_code": 404, "message": ...}`. Not served, because the
//! process is the connector and its file is its config: `POST /connectors`, `PUT
//! /connectors/{name}/config`, `DELETE /connectors/{name}`, `POST /connectors/{name}/restart`,
//! `PUT /connectors/{name}/stop`, offsets and plugins routes (actix answers `404`).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actors::error::State;
use actors::messages::PartitionAction;
use actors::status::PartitionStatus;
use serde_json::{json, Value};

use super::{refuse_unauthorized, AdminState};

/// The Connect routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/connectors", web::get().to(list))
        .route("/connectors/{name}", web::get().to(info))
        .route("/connectors/{name}/status", web::get().to(status))
        .route("/connectors/{name}/config", web::get().to(config_map))
        .route(
            "/connectors/{name}/tasks/{task}/status",
            web::get().to(task_status),
        )
        .route("/connectors/{name}/pause", web::put().to(pause))
        .route("/connectors/{name}/resume", web::put().to(resume))
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            web::post().to(restart),
        );
}

/// Connect's error body.
pub fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .json(json!({ "error_code": status.as_u16(), "message": message.into() }))
}

/// Connect's state of a task from a partition's state. A partition is on the board in an
/// instant before its state is set (`UNASSIGNED` then, as Connect says of a task not started);
/// `RESUMED` is a transition towards `RUNNING`.
pub fn task_state(state: Option<State>) -> &'static str {
    match state {
        None => "UNASSIGNED",
        Some(State::Running | State::Resumed) => "RUNNING",
        Some(State::Paused) => "PAUSED",
        Some(State::Failed) => "FAILED",
        Some(State::Stopped) => "STOPPED",
    }
}

/// Connect's state of the connector: `FAILED` once the pipeline failed, `PAUSED` when every
/// task is (and there is at least one), `RUNNING` otherwise (a FAILED partition leaves the
/// others running, as a failed task does in Connect).
pub fn connector_state(pipeline_failed: bool, task_states: &[&str]) -> &'static str {
    if pipeline_failed {
        "FAILED"
    } else if !task_states.is_empty() && task_states.iter().all(|state| *state == "PAUSED") {
        "PAUSED"
    } else {
        "RUNNING"
    }
}

/// One task of the status document. `trace` (Connect's stack trace) holds the error code and
/// message of a FAILED partition.
pub fn task_json(partition: i32, status: &PartitionStatus, worker_id: &str) -> Value {
    let state = task_state(status.state);
    let mut task = json!({ "id": partition, "state": state, "worker_id": worker_id });
    if state == "FAILED" {
        if let Some(error) = &status.last_error {
            let at = error
                .offset
                .map(|offset| format!(" (offset {offset})"))
                .unwrap_or_default();
            task["trace"] = Value::from(format!("{}: {}{at}", error.code.as_str(), error.message));
        }
    }
    task
}

/// The whole status document.
fn status_json(state: &AdminState) -> Value {
    let worker_id = state.worker_id();
    let tasks: Vec<Value> = state
        .status
        .partitions()
        .iter()
        .map(|(partition, status)| task_json(*partition, status, &worker_id))
        .collect();
    let states: Vec<&str> = tasks
        .iter()
        .filter_map(|task| task["state"].as_str())
        .collect();
    let failure = state.status.failure();
    let mut connector = json!({
        "state": connector_state(failure.is_some(), &states),
        "worker_id": worker_id,
    });
    if let Some(reason) = failure {
        connector["trace"] = Value::from(reason);
    }
    json!({
        "name": state.connector_name,
        "connector": connector,
        "tasks": tasks,
        "type": "sink",
    })
}

fn info_json(state: &AdminState) -> Value {
    let tasks: Vec<Value> = state
        .status
        .partitions()
        .keys()
        .map(|partition| json!({ "connector": state.connector_name, "task": partition }))
        .collect();
    json!({
        "name": state.connector_name,
        "config": *state.config,
        "tasks": tasks,
        "type": "sink",
    })
}

/// The effective config (TOML, secrets already redacted) as Connect's flat map: nested keys
/// joined with dots (`sink.bucket`, `source.properties.fetch.wait.max.ms`), every value a string.
pub fn flat_config(redacted_toml: &str) -> BTreeMap<String, String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => walk(&path, inner, out),
                toml::Value::String(text) => {
                    out.insert(path, text.clone());
                }
                other => {
                    out.insert(path, other.to_string());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(table) = toml::from_str::<toml::Table>(redacted_toml) {
        walk("", &table, &mut out);
    }
    out
}

/// Connect's 404 when the name in the path is not this connector's.
fn refuse_unknown(state: &AdminState, name: &str) -> Option<HttpResponse> {
    if name == state.connector_name {
        None
    } else {
        Some(error(
            StatusCode::NOT_FOUND,
            format!("Connector {name} not found"),
        ))
    }
}

async fn list(state: web::Data<AdminState>, request: HttpRequest) -> HttpResponse {
    // Connect repeats the parameter: `?expand=status&expand=info`.
    let expand: Vec<String> = request
        .query_string()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("expand="))
        .map(str::to_owned)
        .collect();
    if expand.is_empty() {
        return HttpResponse::Ok().json(json!([state.connector_name]));
    }
    let mut entry = serde_json::Map::new();
    if expand.iter().any(|e| e == "status") {
        entry.insert("status".into(), status_json(&state));
    }
    if expand.iter().any(|e| e == "info") {
        entry.insert("info".into(), info_json(&state));
    }
    HttpResponse::Ok().json(json!({ state.connector_name.clone(): entry }))
}

async fn info(state: web::Data<AdminState>, name: web::Path<String>) -> HttpResponse {
    if let Some(response) = refuse_unknown(&state, &name) {
        return response;
    }
    HttpResponse::Ok().json(info_json(&state))
}

async fn status(state: web::Data<AdminState>, name: web::Path<String>) -> HttpResponse {
    if let Some(response) = refuse_unknown(&state, &name) {
        return response;
    }
    HttpResponse::Ok().json(status_json(&state))
}

async fn task_status(state: web::Data<AdminState>, path: web::Path<(String, i32)>) -> HttpResponse {
    let (name, task) = path.into_inner();
    if let Some(response) = refuse_unknown(&state, &name) {
        return response;
    }
    match state.status.partition(task) {
        Some(status) => HttpResponse::Ok().json(task_json(task, &status, &state.worker_id())),
        None => unknown_task(&name, task),
    }
}

fn unknown_task(name: &str, task: i32) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        format!("Unknown task: {name}-{task} (no such partition is assigned to this member)"),
    )
}

async fn config_map(state: web::Data<AdminState>, name: web::Path<String>) -> HttpResponse {
    if let Some(response) = refuse_unknown(&state, &name) {
        return response;
    }
    HttpResponse::Ok().json(&*state.config)
}

async fn pause(
    state: web::Data<AdminState>,
    request: HttpRequest,
    name: web::Path<String>,
) -> HttpResponse {
    every_partition(&state, &request, &name, PartitionAction::Pause).await
}

async fn resume(
    state: web::Data<AdminState>,
    request: HttpRequest,
    name: web::Path<String>,
) -> HttpResponse {
    every_partition(&state, &request, &name, PartitionAction::Resume).await
}

/// Sends `action` to every assigned partition. Like Connect, pausing a paused connector (or
/// resuming a running one) is accepted: the partitions already there refuse, and that is fine.
async fn every_partition(
    state: &AdminState,
    request: &HttpRequest,
    name: &str,
    action: PartitionAction,
) -> HttpResponse {
    if let Some(response) = refuse_unauthorized(state, request) {
        return response;
    }
    if let Some(response) = refuse_unknown(state, name) {
        return response;
    }
    let Some(commands) = state.commands.get() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the connector is starting");
    };
    for partition in state.status.partitions().into_keys() {
        let command = actors::messages::PartitionCommand { partition, action };
        if commands.send(command).await.is_err() {
            return error(StatusCode::SERVICE_UNAVAILABLE, "the connector is stopping");
        }
    }
    HttpResponse::Accepted().finish()
}

async fn restart(
    state: web::Data<AdminState>,
    request: HttpRequest,
    path: web::Path<(String, i32)>,
) -> HttpResponse {
    if let Some(response) = refuse_unauthorized(&state, &request) {
        return response;
    }
    let (name, task) = path.into_inner();
    if let Some(response) = refuse_unknown(&state, &name) {
        return response;
    }
    if state.status.partition(task).is_none() {
        return unknown_task(&name, task);
    }
    let Some(commands) = state.commands.get() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the connector is starting");
    };
    let command = actors::messages::PartitionCommand {
        partition: task,
        action: PartitionAction::Resume,
    };
    match commands.send(command).await {
        Ok(Ok(_)) => HttpResponse::NoContent().finish(),
        Ok(Err(refused)) => error(StatusCode::CONFLICT, refused.to_string()),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the connector is stopping"),
    }
}

#[cfg(test)]
mod tests {
    use actors::error::ErrorCode;
    use actors::status::ErrorInfo;

    use super::*;

    #[test]
    fn partition_states_map_to_connect_task_states() {
        assert_eq!(task_state(Some(State::Running)), "RUNNING");
        assert_eq!(task_state(Some(State::Resumed)), "RUNNING");
        assert_eq!(task_state(Some(State::Paused)), "PAUSED");
        assert_eq!(task_state(Some(State::Failed)), "FAILED");
        assert_eq!(task_state(None), "UNASSIGNED");
    }

    #[test]
    fn the_connector_is_failed_paused_or_running() {
        assert_eq!(connector_state(true, &["RUNNING"]), "FAILED");
        assert_eq!(connector_state(true, &[]), "FAILED");
        assert_eq!(connector_state(false, &["PAUSED", "PAUSED"]), "PAUSED");
        assert_eq!(connector_state(false, &["PAUSED", "RUNNING"]), "RUNNING");
        // One failed partition does not fail the connector; nor does a paused one.
        assert_eq!(connector_state(false, &["PAUSED", "FAILED"]), "RUNNING");
        // No partition yet (joining the group): nothing is paused.
        assert_eq!(connector_state(false, &[]), "RUNNING");
    }

    #[test]
    fn a_failed_task_carries_its_error_in_trace_and_others_none() {
        let failed = PartitionStatus {
            state: Some(State::Failed),
            last_error: Some(ErrorInfo {
                code: ErrorCode::RecordInvalidUtf8,
                message: "value is not UTF-8".into(),
                offset: Some(7),
            }),
            ..PartitionStatus::default()
        };
        let task = task_json(3, &failed, "host:9464");
        assert_eq!(
            task,
            json!({
                "id": 3,
                "state": "FAILED",
                "worker_id": "host:9464",
                "trace": format!("{}: value is not UTF-8 (offset 7)", ErrorCode::RecordInvalidUtf8.as_str()),
            })
        );
        // A running partition's past error is history, not a trace.
        let running = PartitionStatus {
            state: Some(State::Running),
            ..failed
        };
        assert_eq!(task_json(3, &running, "w").get("trace"), None);
    }

    #[test]
    fn the_config_is_flattened_to_strings() {
        let flat = flat_config(
            "name = \"n\"\n[source]\ntopic = \"t\"\nconcurrency = 2\n\n[source.properties]\n\"sasl.password\" = \"***\"\n[admin]\nenabled = true\n",
        );
        assert_eq!(
            flat,
            BTreeMap::from([
                ("name".to_owned(), "n".to_owned()),
                ("source.topic".to_owned(), "t".to_owned()),
                ("source.concurrency".to_owned(), "2".to_owned()),
                (
                    "source.properties.sasl.password".to_owned(),
                    "***".to_owned()
                ),
                ("admin.enabled".to_owned(), "true".to_owned()),
            ])
        );
    }
}
