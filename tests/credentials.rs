//! Credentials that rotate without a restart, end to end: the connector binary against tansu and
//! s3s-fs, its credentials from a file, a fake ECS metadata service or a fake STS on loopback.
//!
//! s3s-fs checks SigV4 against one AccessKey pair given at its start, so a rotation is: restart
//! s3s-fs with a new secret (from then on the connector's uploads are refused), then hand the
//! new secret to the connector through its source. Records produced meanwhile must all be stored
//! once the source has it, without a restart, none of them failed; no secret or token may appear
//! in the logs or on the admin server.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use support::{unique, Connector, Samples, Stack, TestRecord, ACCESS_KEY_ID};

const TIMEOUT: Duration = Duration::from_secs(60);

/// What the fakes hand out; changed by the test while the connector runs.
#[derive(Clone)]
struct Handout {
    secret: String,
    token: String,
    /// Lifetime of each pair handed out.
    lifetime: Duration,
}

/// A metadata service and an STS in one loopback HTTP server; counts the pairs it handed out.
struct FakeCloud {
    url: String,
    handout: Arc<Mutex<Handout>>,
    issued: Arc<Mutex<u32>>,
    /// Bodies of the STS calls.
    sts_calls: Arc<Mutex<Vec<String>>>,
}

impl FakeCloud {
    fn start(handout: Handout) -> FakeCloud {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handout = Arc::new(Mutex::new(handout));
        let issued = Arc::new(Mutex::new(0));
        let sts_calls = Arc::new(Mutex::new(Vec::new()));
        let (state, count, calls) = (handout.clone(), issued.clone(), sts_calls.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let (method, path, body) = read_request(&stream);
                let pair = || {
                    *count.lock().unwrap() += 1;
                    let handout = state.lock().unwrap().clone();
                    let expires = SystemTime::now() + handout.lifetime;
                    format!(
                        r#"{{"AccessKeyId":"{ACCESS_KEY_ID}","AccessKeySecret":"{}","SecurityToken":"{}","Expiration":"{}"}}"#,
                        handout.secret,
                        handout.token,
                        rfc3339(expires)
                    )
                };
                let (status, answer) = match (method.as_str(), path.as_str()) {
                    ("GET", "/latest/meta-data/ram/security-credentials/") => {
                        (200, "sink-role".to_owned())
                    }
                    ("GET", "/latest/meta-data/ram/security-credentials/sink-role") => {
                        (200, pair())
                    }
                    ("POST", "/") if body.contains("Action=AssumeRoleWithOIDC") => {
                        calls.lock().unwrap().push(body);
                        (
                            200,
                            format!(r#"{{"RequestId":"r","Credentials":{}}}"#, pair()),
                        )
                    }
                    _ => (404, String::new()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        FakeCloud {
            url,
            handout,
            issued,
            sts_calls,
        }
    }

    fn hand_out(&self, secret: &str) {
        self.handout.lock().unwrap().secret = secret.to_owned();
    }

    fn issued(&self) -> u32 {
        *self.issued.lock().unwrap()
    }
}

/// `(method, path, body)` of one HTTP/1.1 request.
fn read_request(stream: &std::net::TcpStream) -> (String, String, String) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.trim().split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    (method, path, String::from_utf8_lossy(&body).into_owned())
}

/// `2026-12-05T03:00:00Z`.
fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Writes the credentials file the way a rotation should: another file renamed over it.
fn write_credentials_file(path: &Path, secret: &str, token: &str) {
    let text = format!(
        r#"{{"AccessKeyId":"{ACCESS_KEY_ID}","AccessKeySecret":"{secret}","SecurityToken":"{token}"}}"#
    );
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}

fn sum(samples: &Samples, name: &str) -> f64 {
    samples
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, _, v)| *v)
        .sum()
}

fn records(tag: &str, n: usize) -> Vec<TestRecord> {
    (0..n)
        .map(|i| {
            (
                (i % 2) as i32,
                None,
                Some(format!("{tag}-{i}").into_bytes()),
            )
        })
        .collect()
}

fn wait_ready(connector: &Connector, ready: bool) -> String {
    let want = if ready { 200 } else { 503 };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, body) = connector.admin_get("/readyz");
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never {want}: {body}\n{}",
            connector.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stores `before` records, rotates s3s-fs's secret, produces `after` more, runs `hand_over`
/// (which gives the connector the new secret) and checks that every record is stored once,
/// none failed, and no secret or token leaked; stops the connector.
#[allow(clippy::too_many_arguments)]
fn rotate(
    stack: &mut Stack,
    connector: &mut Connector,
    topic: &str,
    bucket: &str,
    new_secret: &str,
    canaries: &[&str],
    refused_first: bool,
    hand_over: impl FnOnce(),
) {
    connector.wait_admin(TIMEOUT);
    stack.produce(topic, &records("before", 20));
    let stored = stack.wait_for_records(bucket, &format!("e2e/{topic}/"), 20, TIMEOUT);
    let count: usize = stored.iter().map(|(_, r)| r.len()).sum();
    assert_eq!(count, 20, "{}", connector.logs());
    wait_ready(connector, true);

    stack.restart_s3_with_secret(new_secret);
    // The test's own client reads the bucket back with the new pair too.
    stack.secret = new_secret.to_owned();
    stack.produce(topic, &records("after", 10));
    let mut refused_outputs = Vec::new();
    if refused_first {
        // The bucket refuses the old pair: retried, reported, no record fails.
        connector.wait_for_log("UPLOAD_ACCESS_DENIED", TIMEOUT);
        let body = wait_ready(connector, false);
        assert!(body.contains("bucket"), "{body}");
        refused_outputs.push(("/readyz while refused", body));
        refused_outputs.push(("/status while refused", connector.admin_get("/status").1));
    }
    hand_over();
    let stored = stack.wait_for_records(bucket, &format!("e2e/{topic}/"), 30, TIMEOUT);
    let mut values: Vec<String> = stored
        .iter()
        .flat_map(|(_, records)| records.iter())
        .map(|record| record["value"].as_str().unwrap_or_default().to_owned())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..20)
        .map(|i| format!("before-{i}"))
        .chain((0..10).map(|i| format!("after-{i}")))
        .collect();
    expected.sort();
    assert_eq!(values, expected, "{}", connector.logs());
    wait_ready(connector, true);
    let samples = connector.scrape();
    assert_eq!(
        sum(&samples, "kafka_oss_sink_failed_records_total"),
        0.0,
        "refused credentials are never a record failure"
    );

    let mut outputs = refused_outputs;
    for path in ["/metrics", "/status", "/readyz", "/healthz"] {
        outputs.push((path, connector.admin_get(path).1));
    }
    connector.terminate();
    let _ = connector.wait_exit(TIMEOUT);
    outputs.push(("log", connector.logs()));
    for (what, text) in &outputs {
        for canary in canaries {
            assert!(
                !text.contains(canary),
                "a secret or token appears in {what}"
            );
        }
    }
}

/// A topic, a bucket and a config with `extra` appended (the `[sink.credentials]` section).
fn setup(stack: &Stack, extra: &str) -> (String, String, std::path::PathBuf) {
    let (topic, name) = (unique("cred"), unique("cred"));
    let bucket = "cred-bucket".to_owned();
    stack.create_topic(&topic, 2);
    stack.create_bucket(&bucket);
    let config = stack.config(&name, &topic, &bucket, "max_interval_ms = 200", extra);
    (topic, bucket, config)
}

/// A mounted secret rotated in place: the bucket refuses the old pair until the file has the
/// new one, which the connector picks up without a restart.
#[test]
fn credentials_file_is_reread_when_it_changes() {
    let mut stack = Stack::start();
    let file = stack.dir.join("oss-credentials.json");
    let token = format!("token-{}", unique("canary"));
    write_credentials_file(&file, &stack.secret.clone(), &token);
    let extra = format!(
        "[sink.credentials]\nsource = \"file\"\nfile = \"{}\"\n",
        file.display()
    );
    let (topic, bucket, config) = setup(&stack, &extra);
    // The environment's pair is ignored with source = "file": a wrong one shows it.
    let mut connector = stack.connector(&config, Some("unused-env-secret"));
    let new_secret = format!("rotated-{}", unique("canary"));
    let new_token = format!("token-{}", unique("canary"));
    let old_secret = stack.secret.clone();
    rotate(
        &mut stack,
        &mut connector,
        &topic,
        &bucket,
        &new_secret,
        &[&old_secret, &new_secret, &token, &new_token],
        true,
        || write_credentials_file(&file, &new_secret, &new_token),
    );
}

/// The ECS RAM role: the fake metadata service hands out pairs valid for 4 seconds; once the
/// bucket's secret changes it hands out the new one, and the connector, refreshing before each
/// pair expires, stores what was produced meanwhile.
#[test]
fn ecs_ram_role_credentials_are_refreshed_while_running() {
    let mut stack = Stack::start();
    let token = format!("token-{}", unique("canary"));
    let fake = FakeCloud::start(Handout {
        secret: stack.secret.clone(),
        token: token.clone(),
        lifetime: Duration::from_secs(4),
    });
    let extra = format!(
        "[sink.credentials]\nsource = \"ecs_ram_role\"\nmetadata_url = \"{}\"\n",
        fake.url
    );
    let (topic, bucket, config) = setup(&stack, &extra);
    let mut connector = stack.connector(&config, Some("unused-env-secret"));
    let new_secret = format!("rotated-{}", unique("canary"));
    let old_secret = stack.secret.clone();
    rotate(
        &mut stack,
        &mut connector,
        &topic,
        &bucket,
        &new_secret,
        &[&old_secret, &new_secret, &token],
        false,
        || fake.hand_out(&new_secret),
    );
    assert!(fake.issued() >= 2, "never refreshed");
}

/// RRSA: the fake STS answers AssumeRoleWithOIDC (checking it got the pod's token), with pairs
/// valid for 4 seconds; a rotation is picked up as for the ECS RAM role.
#[test]
fn rrsa_credentials_are_refreshed_while_running() {
    let mut stack = Stack::start();
    let token = format!("token-{}", unique("canary"));
    let oidc = format!("oidc-{}", unique("canary"));
    let token_file = stack.dir.join("oidc-token");
    std::fs::write(&token_file, &oidc).unwrap();
    let fake = FakeCloud::start(Handout {
        secret: stack.secret.clone(),
        token: token.clone(),
        lifetime: Duration::from_secs(4),
    });
    let extra = format!(
        "[sink.credentials]\nsource = \"rrsa\"\nsts_endpoint = \"{}\"\n",
        fake.url
    );
    let (topic, bucket, config) = setup(&stack, &extra);
    let token_path = token_file.display().to_string();
    let mut connector = stack.connector_with_env(
        &config,
        Some("unused-env-secret"),
        &[],
        &[
            ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1234:role/sink"),
            (
                "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                "acs:ram::1234:oidc-provider/ack-rrsa-c1",
            ),
            ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", &token_path),
        ],
    );
    let new_secret = format!("rotated-{}", unique("canary"));
    let old_secret = stack.secret.clone();
    rotate(
        &mut stack,
        &mut connector,
        &topic,
        &bucket,
        &new_secret,
        &[&old_secret, &new_secret, &token, &oidc],
        false,
        || fake.hand_out(&new_secret),
    );
    let calls = fake.sts_calls.lock().unwrap().clone();
    assert!(calls.len() >= 2, "never refreshed");
    assert!(
        calls
            .iter()
            .all(|body| body.contains(&format!("OIDCToken={oidc}"))
                && body.contains("RoleArn=acs%3Aram%3A%3A1234%3Arole%2Fsink")),
        "{calls:?}"
    );
}
