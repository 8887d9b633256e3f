//! Kafka Connect's REST status routes on the admin server, end to end against a real tansu
//! broker and a real s3s-fs server: each route's shape, what pause, resume and task restart do
//! to the partitions, Connect's 404, and the bearer token that a non-loopback admin address
//! requires (401 without it, nothing changed, the token never shown).

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{free_port, unique, Stack, TestRecord};

/// One HTTP/1.0 request to the admin server: `(status, body)`.
fn http(address: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\n{authorization}Content-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `partition → state` of the status document's tasks.
fn task_states(status: &Value) -> BTreeMap<i64, String> {
    status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| {
            (
                task["id"].as_i64().unwrap(),
                task["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `(partition, offset)`s in the bucket.
fn stored(stack: &Stack, bucket: &str, topic: &str) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = stack
        .objects(bucket, &format!("e2e/{topic}/"))
        .into_iter()
        .flat_map(|(_, records)| records)
        .map(|record| {
            (
                record["partition"].as_i64().unwrap(),
                record["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn admin_address(config: &Path) -> String {
    std::fs::read_to_string(config)
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("address = \""))
        .map(|rest| rest.trim_end_matches('"').to_owned())
        .unwrap()
}

/// On loopback (no token): every route's shape, a FAILED partition as a FAILED task with its
/// error in `trace`, task restart resuming it, connector pause and resume acting on every
/// partition, Connect's 404s.
#[test]
fn connect_routes_show_the_partitions_as_tasks_and_act_on_them() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("rest"), "rest-bucket", unique("rest"));
    stack.create_topic(&topic, 2);
    stack.create_bucket(bucket);
    // Partition 1 holds a record that is not UTF-8 at offset 5; partition 0 only good ones.
    let records: Vec<TestRecord> = (0..20)
        .map(|i| {
            let partition = i % 2;
            let value = if i == 11 {
                b"bad \xff".to_vec()
            } else {
                format!("v{i}").into_bytes()
            };
            (partition, None, Some(value))
        })
        .collect();
    stack.produce_one_per_batch(&topic, &records);
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 5\nmax_interval_ms = 200",
        "[failure]\npolicy = \"fail\"",
    );
    let admin = admin_address(&config);
    let mut connector = stack.connector(&config, None);
    connector.wait_for_log("partition stopped", Duration::from_secs(60));

    // GET /connectors: this connector, and Connect's expanded form.
    let (code, body) = http(&admin, "GET", "/connectors", None);
    assert_eq!((code, json_of(&body)), (200, json!([name])));
    let (code, body) = http(&admin, "GET", "/connectors?expand=status", None);
    assert_eq!(code, 200);
    assert_eq!(json_of(&body)[&name]["status"]["name"], json!(name));

    // The status: partition 1 FAILED with its error, partition 0 RUNNING, the connector RUNNING.
    let path = format!("/connectors/{name}/status");
    let (code, body) = http(&admin, "GET", &path, None);
    assert_eq!(code, 200, "{body}");
    let status = json_of(&body);
    assert_eq!(status["name"], json!(name));
    assert_eq!(status["type"], "sink");
    assert_eq!(status["connector"]["state"], "RUNNING");
    assert_eq!(status["connector"]["worker_id"], json!(admin));
    assert_eq!(
        status["tasks"][0],
        json!({ "id": 0, "state": "RUNNING", "worker_id": admin })
    );
    let failed = &status["tasks"][1];
    assert_eq!(
        (&failed["id"], &failed["state"], &failed["worker_id"]),
        (&json!(1), &json!("FAILED"), &json!(admin))
    );
    let trace = failed["trace"].as_str().unwrap();
    assert!(
        trace.starts_with("RECORD_INVALID_UTF8: ") && trace.ends_with("(offset 5)"),
        "{trace}"
    );
    let (code, body) = http(
        &admin,
        "GET",
        &format!("/connectors/{name}/tasks/1/status"),
        None,
    );
    assert_eq!((code, json_of(&body)), (200, failed.clone()));

    // The config: a flat map of strings, redacted, nothing of the credentials.
    let (code, body) = http(&admin, "GET", &format!("/connectors/{name}/config"), None);
    assert_eq!(code, 200, "{body}");
    let config_map = json_of(&body);
    let config_map = config_map.as_object().unwrap();
    assert_eq!(config_map["name"], json!(name));
    assert_eq!(config_map["sink.bucket"], bucket);
    assert_eq!(config_map["failure.policy"], "fail");
    assert_eq!(config_map["source.concurrency"], "2");
    assert_eq!(config_map["source.properties.session.timeout.ms"], "6000");
    assert!(config_map.values().all(Value::is_string), "{body}");
    assert!(!body.contains(&stack.secret), "the secret in {body}");

    // Unknown connector and task: Connect's error shape.
    for (method, path) in [
        ("GET", "/connectors/other/status".to_owned()),
        ("GET", "/connectors/other/config".to_owned()),
        ("PUT", "/connectors/other/pause".to_owned()),
        ("POST", format!("/connectors/{name}/tasks/7/restart")),
        ("GET", format!("/connectors/{name}/tasks/7/status")),
    ] {
        let (code, body) = http(&admin, method, &path, None);
        assert_eq!(code, 404, "{method} {path}: {body}");
        let error = json_of(&body);
        assert_eq!((code, &error["error_code"]), (404, &json!(404)), "{path}");
        assert!(error["message"].as_str().is_some(), "{body}");
    }

    // Restart of the FAILED task: the bad record goes to the dead-letter topic and the partition
    // goes on.
    let restart = format!("/connectors/{name}/tasks/1/restart");
    let (code, body) = http(&admin, "POST", &restart, None);
    assert_eq!(code, 204, "{body}");
    wait_until("every good record stored", Duration::from_secs(30), || {
        stored(&stack, bucket, &topic).len() == 19
    });
    // Restarting a RUNNING task leaves it as it is, as in Connect.
    let (code, body) = http(&admin, "POST", &restart, None);
    assert_eq!((code, body.as_str()), (204, ""));
    let (_, body) = http(&admin, "GET", &path, None);
    assert_eq!(
        task_states(&json_of(&body)),
        BTreeMap::from([(0, "RUNNING".into()), (1, "RUNNING".into())])
    );

    // Pause: every partition PAUSED, so the connector is; records produced meanwhile wait.
    let (code, body) = http(&admin, "PUT", &format!("/connectors/{name}/pause"), None);
    assert_eq!((code, body.as_str()), (202, ""));
    let (_, body) = http(&admin, "GET", &path, None);
    let status = json_of(&body);
    assert_eq!(status["connector"]["state"], "PAUSED", "{body}");
    assert_eq!(
        task_states(&status),
        BTreeMap::from([(0, "PAUSED".into()), (1, "PAUSED".into())])
    );
    // Pausing again is accepted, as in Connect.
    let (code, _) = http(&admin, "PUT", &format!("/connectors/{name}/pause"), None);
    assert_eq!(code, 202);
    let more: Vec<TestRecord> = (0..4)
        .map(|i| (i % 2, None, Some(format!("late{i}").into_bytes())))
        .collect();
    stack.produce_one_per_batch(&topic, &more);

    let (code, _) = http(&admin, "PUT", &format!("/connectors/{name}/resume"), None);
    assert_eq!(code, 202);
    let (_, body) = http(&admin, "GET", &path, None);
    let status = json_of(&body);
    assert_eq!(status["connector"]["state"], "RUNNING", "{body}");
    assert_eq!(
        task_states(&status),
        BTreeMap::from([(0, "RUNNING".into()), (1, "RUNNING".into())])
    );
    wait_until(
        "the records produced while paused",
        Duration::from_secs(30),
        || stored(&stack, bucket, &topic).len() == 23,
    );
    connector.stop();

    // What the routes did, as the status topic recorded it partition by partition.
    let history = |partition: i32| -> Vec<String> {
        let key = format!("status-partition-{name}-{topic}-{partition}");
        stack
            .read_topic(&format!("connect-status-{name}"))
            .into_iter()
            .filter(|record| record.key.as_deref() == Some(key.as_bytes()))
            .map(|record| {
                let value: Value =
                    serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
                value["state"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(history(0), ["RUNNING", "PAUSED", "RESUMED", "RUNNING"]);
    assert_eq!(
        history(1),
        ["RUNNING", "FAILED", "RESUMED", "RUNNING", "PAUSED", "RESUMED", "RUNNING"]
    );
}

/// Off loopback: `run` refuses a config without `admin.token_file`; with it, the read routes stay
/// open, the mutating ones answer 401 without the token (or with another) and change nothing,
/// and the token is never in a response or a log line.
#[test]
fn mutating_routes_need_the_token_on_a_non_loopback_address() {
    let stack = Stack::start();
    let (topic, bucket, name) = (unique("auth"), "auth-bucket", unique("auth"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(bucket);
    let config = stack.config(&name, &topic, bucket, "max_interval_ms = 200", "");
    let port = free_port();
    let text = std::fs::read_to_string(&config).unwrap();
    let loopback_line = format!("address = \"{}\"", admin_address(&config));
    let open = text.replace(&loopback_line, &format!("address = \"0.0.0.0:{port}\""));
    std::fs::write(&config, &open).unwrap();

    // No token file: refused before anything starts, naming the key.
    let mut refused = stack.connector(&config, None);
    let exit = refused.wait_exit(Duration::from_secs(30));
    assert_eq!(exit.code(), Some(2), "{}", refused.logs());
    assert!(
        refused.logs().contains("`admin.token_file`: must be set"),
        "{}",
        refused.logs()
    );

    let token = format!("tok-{}", unique("admin"));
    let token_file = stack.dir.join(format!("{name}.token"));
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let with_token = open.replace(
        "[batching]",
        &format!("token_file = \"{}\"\n\n[batching]", token_file.display()),
    );
    assert_ne!(with_token, open);
    std::fs::write(&config, with_token).unwrap();
    let mut connector = stack.connector(&config, None);
    connector.wait_for_log("partitions assigned", Duration::from_secs(60));
    let admin = format!("127.0.0.1:{port}");
    let mut bodies = Vec::new();
    let mut call = |method: &str, path: &str, token: Option<&str>| {
        let (code, body) = http(&admin, method, path, token);
        bodies.push(body.clone());
        (code, body)
    };

    // Reading needs no token; the worker is named by host, the address being a wildcard.
    let status_path = format!("/connectors/{name}/status");
    let (code, body) = call("GET", &status_path, None);
    assert_eq!(code, 200, "{body}");
    let worker = json_of(&body)["connector"]["worker_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        worker.ends_with(&format!(":{port}")) && !worker.starts_with("0.0.0.0"),
        "{worker}"
    );
    let (code, body) = call("GET", &format!("/connectors/{name}/config"), None);
    assert_eq!(code, 200);
    assert_eq!(
        json_of(&body)["admin.token_file"],
        json!(token_file.display().to_string()),
        "the path is shown, never the token"
    );

    // Without the token, or with another, every mutating route is refused and changes nothing.
    let wrong = format!("{token}x");
    for token in [None, Some(wrong.as_str()), Some("")] {
        for (method, path) in [
            ("PUT", format!("/connectors/{name}/pause")),
            ("PUT", format!("/connectors/{name}/resume")),
            ("POST", format!("/connectors/{name}/tasks/0/restart")),
            ("POST", "/partitions/0/pause".to_owned()),
            ("POST", "/partitions/0/resume".to_owned()),
        ] {
            let (code, body) = call(method, &path, token);
            assert_eq!(code, 401, "{method} {path} with {token:?}: {body}");
            assert_eq!(json_of(&body)["error_code"], 401);
        }
    }
    let (_, body) = call("GET", &status_path, None);
    assert_eq!(
        task_states(&json_of(&body)),
        BTreeMap::from([(0, "RUNNING".into())]),
        "nothing changed"
    );

    // With it: paused, then resumed by the CLI, which reads the same token file.
    let (code, body) = call("PUT", &format!("/connectors/{name}/pause"), Some(&token));
    assert_eq!(code, 202, "{body}");
    let (_, body) = call("GET", &status_path, None);
    assert_eq!(json_of(&body)["connector"]["state"], "PAUSED", "{body}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"))
        .args(["resume", "--config"])
        .arg(&config)
        .args(["--partition", "0"])
        .output()
        .unwrap();
    let cli = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && cli.contains("resumed"), "{cli}");
    let (_, body) = call("GET", &status_path, None);
    assert_eq!(json_of(&body)["connector"]["state"], "RUNNING", "{body}");

    connector.stop();
    let logs = connector.logs() + &refused.logs() + &cli;
    assert!(!logs.contains(&token), "the token in the logs:\n{logs}");
    for body in &bodies {
        assert!(!body.contains(&token), "the token in a response: {body}");
    }
}
