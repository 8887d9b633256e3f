//! Each source against a fake on loopback (a file in a temporary directory, a metadata service
//! and an STS answering over HTTP), including a rotation while the provider is in use.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_smithy_types::date_time::{DateTime, Format};

use super::*;
use crate::settings::CredentialSource;

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

type Handler = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

/// A one-thread HTTP/1.1 server: answers each request with `handler` and closes the connection.
struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn start(handler: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let handler: Box<Handler> = Box::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let path = parts.next().unwrap_or("").to_owned();
                let mut headers = Vec::new();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.trim().split_once(':') {
                        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                    }
                }
                let length = headers
                    .iter()
                    .find(|(name, _)| name == "content-length")
                    .and_then(|(_, value)| value.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let request = Seen {
                    method,
                    path,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let (status, answer) = handler(&request);
                log.lock().unwrap().push(request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Fake { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn rfc3339(time: SystemTime) -> String {
    DateTime::from(time).fmt(Format::DateTime).unwrap()
}

fn document(id: &str, secret: &str, token: &str, expires: SystemTime) -> String {
    format!(
        r#"{{"Code":"Success","AccessKeyId":"{id}","AccessKeySecret":"{secret}","SecurityToken":"{token}","Expiration":"{}","LastUpdated":"x"}}"#,
        rfc3339(expires)
    )
}

/// Loads until `accept` holds, at most `timeout`.
async fn load_until(
    provider: &RotatingCredentials,
    timeout: Duration,
    accept: impl Fn(&Credentials) -> bool,
) -> Credentials {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(credentials) = provider.load().await {
            if accept(&credentials) {
                return credentials;
            }
        }
        assert!(Instant::now() < deadline, "no accepted credentials in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("kos-cred-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn refresh_happens_before_expiry() {
    let now = SystemTime::now();
    let in_6h = now + Duration::from_secs(6 * 3600);
    assert_eq!(
        refresh_delay(now, Some(in_6h)),
        Duration::from_secs(6 * 3600) - REFRESH_BEFORE
    );
    // Short-lived: at half the lifetime.
    assert_eq!(
        refresh_delay(now, Some(now + Duration::from_secs(10))),
        Duration::from_secs(5)
    );
    // Expired already: soon, not never.
    assert_eq!(refresh_delay(now, Some(now)), RECHECK);
    assert_eq!(refresh_delay(now, None), REFRESH_WITHOUT_EXPIRATION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_is_read_again_when_it_changes() {
    let dir = temp_dir("file");
    let path = dir.join("credentials.json");
    let provider = RotatingCredentials::new(&CredentialSource::File { path: path.clone() });

    // Missing: an error naming the file.
    let error = provider.load().await.unwrap_err();
    let text = format!(
        "{error:?} {}",
        aws_smithy_types::error::display::DisplayErrorContext(&error)
    );
    assert!(text.contains("credentials.json"), "{text}");

    std::fs::write(
        &path,
        r#"{"AccessKeyId":"id-1","AccessKeySecret":"canary-secret-1"}"#,
    )
    .unwrap();
    let first = load_until(&provider, Duration::from_secs(5), |_| true).await;
    assert_eq!(first.access_key_id(), "id-1");
    assert_eq!(first.secret_access_key(), "canary-secret-1");
    assert_eq!(first.session_token(), None);

    // Broken mid-rotation: the last good pair stays, and the error quotes nothing from the file.
    std::fs::write(
        &path,
        r#"{"AccessKeyId":"id-2","AccessKeySecret":canary-secret-2"#,
    )
    .unwrap();
    tokio::time::sleep(RECHECK + Duration::from_millis(100)).await;
    assert_eq!(provider.load().await.unwrap().access_key_id(), "id-1");
    let problem = provider
        .inner
        .state
        .lock()
        .await
        .last_error
        .clone()
        .unwrap();
    assert!(problem.contains("not valid JSON"), "{problem}");
    assert!(!problem.contains("canary"), "{problem}");

    let expires = SystemTime::now() + Duration::from_secs(3600);
    std::fs::write(
        &path,
        format!(
            r#"{{"AccessKeyId":"id-3","AccessKeySecret":"canary-secret-3","SecurityToken":"canary-token-3","Expiration":"{}"}}"#,
            rfc3339(expires)
        ),
    )
    .unwrap();
    let third = load_until(&provider, Duration::from_secs(5), |c| {
        c.access_key_id() == "id-3"
    })
    .await;
    assert_eq!(third.session_token(), Some("canary-token-3"));
    assert!(third.expiry().is_some());

    // Expired credentials in the file are not handed out.
    std::fs::write(
        &path,
        format!(
            r#"{{"AccessKeyId":"id-4","AccessKeySecret":"canary-secret-4","Expiration":"{}"}}"#,
            rfc3339(SystemTime::now() - Duration::from_secs(60))
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while provider.load().await.is_ok() {
        assert!(Instant::now() < deadline, "expired credentials still used");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = provider.load().await.unwrap_err();
    let text = format!(
        "{}",
        aws_smithy_types::error::display::DisplayErrorContext(&error)
    );
    assert!(text.contains("expired"), "{text}");
    assert!(!text.contains("canary"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_ram_role_is_refreshed_before_it_expires() {
    // The fake hands out a new pair on each credentials request, valid for 4 seconds.
    let issued = Arc::new(Mutex::new(0u32));
    let counter = issued.clone();
    let fake = Fake::start(
        move |request| match (request.method.as_str(), request.path.as_str()) {
            ("PUT", "/latest/api/token") => (200, "metadata-token".to_owned()),
            ("GET", "/latest/meta-data/ram/security-credentials/") => (200, "sink-role".to_owned()),
            ("GET", "/latest/meta-data/ram/security-credentials/sink-role") => {
                let mut n = counter.lock().unwrap();
                *n += 1;
                let expires = SystemTime::now() + Duration::from_secs(4);
                (
                    200,
                    document(
                        &format!("id-{n}"),
                        &format!("canary-secret-{n}"),
                        &format!("canary-token-{n}"),
                        expires,
                    ),
                )
            }
            _ => (404, String::new()),
        },
    );
    let provider = RotatingCredentials::new(&CredentialSource::EcsRamRole {
        metadata_url: format!("{}/", fake.url),
        role: None,
    });
    let first = provider.load().await.unwrap();
    assert_eq!(first.access_key_id(), "id-1");
    assert_eq!(first.session_token(), Some("canary-token-1"));
    let first_expires = first.expiry().unwrap();
    // Cached: no new request while the pair is young.
    assert_eq!(provider.load().await.unwrap().access_key_id(), "id-1");
    assert_eq!(*issued.lock().unwrap(), 1);

    let second = load_until(&provider, Duration::from_secs(10), |c| {
        c.access_key_id() == "id-2"
    })
    .await;
    assert!(
        SystemTime::now() < first_expires,
        "the new pair came only after the old one expired"
    );
    assert_eq!(second.secret_access_key(), "canary-secret-2");

    let seen = fake.seen();
    let roles = seen
        .iter()
        .filter(|r| r.path == "/latest/meta-data/ram/security-credentials/")
        .count();
    assert_eq!(roles, 1, "the role name is looked up once");
    assert!(seen
        .iter()
        .filter(|r| r.method == "GET")
        .all(|r| r.headers.contains(&(
            "x-aliyun-ecs-metadata-token".into(),
            "metadata-token".into()
        ))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_ram_role_failures_keep_the_pair_that_is_still_valid() {
    let down = Arc::new(Mutex::new(false));
    let flag = down.clone();
    let fake = Fake::start(move |request| {
        if *flag.lock().unwrap() {
            return (500, "canary-body".to_owned());
        }
        match request.path.as_str() {
            "/latest/meta-data/ram/security-credentials/given-role" => (
                200,
                document(
                    "id",
                    "canary-secret",
                    "canary-token",
                    SystemTime::now() + Duration::from_secs(3),
                ),
            ),
            _ => (404, String::new()),
        }
    });
    let provider = RotatingCredentials::new(&CredentialSource::EcsRamRole {
        metadata_url: fake.url.clone(),
        role: Some("given-role".to_owned()),
    });
    let first = provider.load().await.unwrap();
    *down.lock().unwrap() = true;
    // Refresh fails from ~1.5 s on, the old pair is used until it expires, then errors.
    let deadline = Instant::now() + Duration::from_secs(10);
    while provider.load().await.is_ok() {
        assert!(SystemTime::now() < first.expiry().unwrap() + Duration::from_secs(1));
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(SystemTime::now() + Duration::from_millis(200) >= first.expiry().unwrap());
    let error = provider.load().await.unwrap_err();
    let text = format!(
        "{}",
        aws_smithy_types::error::display::DisplayErrorContext(&error)
    );
    assert!(
        text.contains("ECS RAM role") && text.contains("HTTP 500"),
        "{text}"
    );
    assert!(!text.contains("canary"), "{text}");
    assert!(fake
        .seen()
        .iter()
        .all(|r| r.path != "/latest/meta-data/ram/security-credentials/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rrsa_assumes_the_role_with_the_oidc_token() {
    let dir = temp_dir("rrsa");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "canary-oidc-1\n").unwrap();
    let fake = Fake::start(move |request| {
        let form = &request.body;
        if !form.contains("OIDCToken=canary-oidc-") {
            return (
                400,
                r#"{"Code":"AuthenticationFail.OIDCToken.Invalid","Message":"bad canary-oidc"}"#
                    .to_owned(),
            );
        }
        let n = form.split("OIDCToken=canary-oidc-").nth(1).unwrap()[..1].to_owned();
        let body = format!(
            r#"{{"RequestId":"r","AssumedRoleUser":{{"Arn":"a","AssumedRoleId":"b"}},"Credentials":{}}}"#,
            document(
                &format!("STS.id-{n}"),
                "canary-secret",
                "canary-token",
                SystemTime::now() + Duration::from_secs(3600)
            )
        );
        (200, body)
    });
    let source = CredentialSource::Rrsa {
        role_arn: "acs:ram::123:role/sink".to_owned(),
        oidc_provider_arn: "acs:ram::123:oidc-provider/ack-rrsa-c1".to_owned(),
        token_file: token_file.clone(),
        sts_endpoint: fake.url.clone(),
        session_name: "kafka-oss-sink".to_owned(),
    };
    let provider = RotatingCredentials::new(&source);
    let credentials = provider.load().await.unwrap();
    assert_eq!(credentials.access_key_id(), "STS.id-1");
    assert_eq!(credentials.session_token(), Some("canary-token"));
    let seen = fake.seen();
    assert_eq!(seen[0].method, "POST");
    for part in [
        "Action=AssumeRoleWithOIDC",
        "Version=2015-04-01",
        "Format=JSON",
        "RoleArn=acs%3Aram%3A%3A123%3Arole%2Fsink",
        "OIDCProviderArn=acs%3Aram%3A%3A123%3Aoidc-provider%2Fack-rrsa-c1",
        "RoleSessionName=kafka-oss-sink",
    ] {
        assert!(seen[0].body.split('&').any(|p| p == part), "{part}");
    }
    assert!(
        !seen[0].path.contains("canary"),
        "the token is not in the URL"
    );

    // A token STS refuses: its code, not its message (which may quote the token).
    std::fs::write(&token_file, "refused").unwrap();
    let provider = RotatingCredentials::new(&source);
    let error = provider.load().await.unwrap_err();
    let text = format!(
        "{}",
        aws_smithy_types::error::display::DisplayErrorContext(&error)
    );
    assert!(
        text.contains("AuthenticationFail.OIDCToken.Invalid"),
        "{text}"
    );
    assert!(text.contains("HTTP 400"), "{text}");
    assert!(
        !text.contains("canary") && !text.contains("refused"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The S3 client signs with what the provider gives: the STS token as `x-amz-security-token`
/// (OSS's S3 API rejects `x-oss-security-token`), and a changed file's pair on the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_client_sends_the_token_as_x_amz_security_token() {
    use crate::settings::SinkSettings;
    use crate::store::{ObjectStore, S3Store};

    let dir = temp_dir("s3");
    let path = dir.join("credentials.json");
    std::fs::write(
        &path,
        r#"{"AccessKeyId":"id-1","AccessKeySecret":"canary-secret-1","SecurityToken":"canary-token-1"}"#,
    )
    .unwrap();
    let fake = Fake::start(|_| (200, String::new()));
    let settings = SinkSettings {
        credentials: CredentialSource::File { path: path.clone() },
        ..crate::store::s3::tests::settings(fake.url.clone())
    };
    let store = S3Store::new(&settings);
    store.probe().await.unwrap();
    std::fs::write(
        &path,
        r#"{"AccessKeyId":"id-22","AccessKeySecret":"canary-secret-22","SecurityToken":"canary-token-22"}"#,
    )
    .unwrap();
    tokio::time::sleep(RECHECK + Duration::from_millis(100)).await;
    store.probe().await.unwrap();

    let seen = fake.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (request, (id, token)) in seen
        .iter()
        .zip([("id-1", "canary-token-1"), ("id-22", "canary-token-22")])
    {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("x-amz-security-token").as_deref(), Some(token));
        assert_eq!(header("x-oss-security-token"), None);
        let authorization = header("authorization").unwrap();
        assert!(
            authorization.contains(&format!("Credential={id}/")),
            "{authorization}"
        );
        assert!(
            authorization.contains("x-amz-security-token"),
            "the token is signed"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
