use std::fmt;
use std::time::SystemTime;

use aws_sdk_s3::error::ConnectorError;

use super::*;
use crate::settings::{Credentials, Secret};

/// An error with a label and a cause, as the HTTP client's own error types are.
#[derive(Debug)]
struct Labelled(&'static str, Box<dyn Error + Send + Sync>);

impl fmt::Display for Labelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Error for Labelled {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.1)
    }
}

fn dispatch(connector: ConnectorError) -> String {
    let error = SdkError::<io::Error, ()>::dispatch_failure(connector);
    transport_detail("http://127.0.0.1:1", Duration::from_secs(30), &error)
}

/// What hyper-util reports for a refused TCP connect.
fn refused(io: io::Error) -> ConnectorError {
    ConnectorError::io(Box::new(Labelled(
        "client error (Connect)",
        Box::new(Labelled("tcp connect error", Box::new(io))),
    )))
}

#[test]
fn a_refused_connection_is_said_in_words() {
    let detail = dispatch(refused(io::ErrorKind::ConnectionRefused.into()));
    assert_eq!(
        detail,
        "cannot connect to the S3 endpoint http://127.0.0.1:1: connection refused"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn os_errors_lose_their_number() {
    let detail = dispatch(refused(io::Error::from_raw_os_error(111)));
    assert_eq!(
        detail,
        "cannot connect to the S3 endpoint http://127.0.0.1:1: connection refused"
    );
}

#[test]
fn a_failed_name_lookup_is_a_connect_failure() {
    let lookup =
        io::Error::other("failed to lookup address information: Name or service not known");
    let detail = dispatch(ConnectorError::io(Box::new(Labelled(
        "client error (Connect)",
        Box::new(Labelled("dns error", Box::new(lookup))),
    ))));
    assert_eq!(
        detail,
        "cannot connect to the S3 endpoint http://127.0.0.1:1: failed to lookup address \
         information: Name or service not known"
    );
}

#[test]
fn a_reset_after_connecting_is_not_a_connect_failure() {
    let reset = io::Error::from(io::ErrorKind::ConnectionReset);
    let detail = dispatch(ConnectorError::io(Box::new(Labelled(
        "connection error",
        Box::new(reset),
    ))));
    assert_eq!(
        detail,
        "the connection to the S3 endpoint http://127.0.0.1:1 failed: connection reset"
    );
}

#[test]
fn timeouts_name_the_limit() {
    let connect = dispatch(ConnectorError::timeout(Box::new(Labelled(
        "HTTP connect timeout occurred after 10s",
        Box::new(io::Error::from(io::ErrorKind::TimedOut)),
    ))));
    assert!(
        connect.starts_with("cannot connect to the S3 endpoint http://127.0.0.1:1: "),
        "{connect}"
    );
    let error = SdkError::<io::Error, ()>::timeout_error(Box::new(Labelled(
        "operation attempt timeout (single attempt) occurred after 30s",
        Box::new(io::Error::from(io::ErrorKind::TimedOut)),
    )));
    assert_eq!(
        transport_detail("http://s3", Duration::from_secs(30), &error),
        "no answer from the S3 endpoint http://s3 within 30s"
    );
}

/// Settings for an S3 store at `endpoint` (also the credentials tests').
pub(crate) fn settings(endpoint: String) -> SinkSettings {
    SinkSettings {
        bucket: "b".into(),
        endpoint: Some(endpoint),
        region: "us-east-1".into(),
        key_prefix: String::new(),
        key_template: Default::default(),
        path_style: true,
        part_size: 8 << 20,
        checksum: ChecksumMode::WhenRequired,
        conditional_create: ConditionalCreate::IfNoneMatch,
        sign_payload: true,
        upload_concurrency: 1,
        request_timeout: Duration::from_secs(5),
        retry_initial_backoff: Duration::from_millis(10),
        retry_max_backoff: Duration::from_millis(10),
        max_upload_attempts: Some(1),
        credentials: Credentials {
            access_key_id: Secret::new("id".into()),
            access_key_secret: Secret::new("secret".into()),
            session_token: None,
        }
        .into(),
    }
}

#[tokio::test]
async fn probing_a_closed_port_says_connection_refused() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let store = S3Store::new(&settings(endpoint.clone()));
    let error = store.probe().await.expect_err("nothing listens there");
    let message = error.to_string();
    assert_eq!(error.code().as_str(), "UPLOAD_UNAVAILABLE", "{message}");
    assert!(
        message.contains(&format!(
            "cannot connect to the S3 endpoint {endpoint}: connection refused"
        )),
        "{message}"
    );
    for dump in ["hyper", "ConnectError(", "Os {", "DispatchFailure"] {
        assert!(!message.contains(dump), "{message}");
    }
}

/// A canned ListMultipartUploads server: page 1 (truncated) without markers, page 2 with the
/// markers page 1 gave. Answers each request on a kept-alive connection; returns the
/// endpoint and the request targets it saw.
async fn upload_pages() -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                    buffer.drain(..end + 4);
                    let target = head.split(' ').nth(1).unwrap_or("").to_owned();
                    log.lock().unwrap().push(target.clone());
                    let upload = |key: &str, id: &str| {
                        format!(
                            "<Upload><Key>{key}</Key><UploadId>{id}</UploadId>\
                             <Initiated>2024-05-01T12:00:00.000Z</Initiated></Upload>"
                        )
                    };
                    let page = if target.contains("key-marker=a%2F2") {
                        format!("<IsTruncated>false</IsTruncated>{}", upload("a/3", "u3"))
                    } else {
                        format!(
                            "<IsTruncated>true</IsTruncated><NextKeyMarker>a/2</NextKeyMarker>\
                             <NextUploadIdMarker>u2</NextUploadIdMarker>{}{}",
                            upload("a/1", "u1"),
                            upload("a/2", "u2")
                        )
                    };
                    let body = format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult>\
                         <Bucket>b</Bucket><Prefix>a/</Prefix>{page}</ListMultipartUploadsResult>"
                    );
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\n\
                         content-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (endpoint, seen)
}

/// Every page is read, following both markers; the uploads this store is running are left out.
#[tokio::test]
async fn incomplete_uploads_are_listed_page_by_page_without_the_stores_own() {
    let (endpoint, seen) = upload_pages().await;
    let store = S3Store::new(&settings(endpoint));
    let own = Running::new(&store.running, "u2");
    let listed = store.list_uploads("a/").await.unwrap();
    let ids: Vec<(&str, &str)> = listed
        .iter()
        .map(|upload| (upload.key.as_str(), upload.upload_id.as_str()))
        .collect();
    assert_eq!(ids, [("a/1", "u1"), ("a/3", "u3")]);
    let initiated = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800);
    assert_eq!(listed[0].initiated, Some(initiated));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[1].contains("upload-id-marker=u2") && seen[1].contains("prefix=a%2F"),
        "{seen:?}"
    );
    // Once the store's own upload ended, it is an orphan like any other.
    drop(own);
    assert_eq!(store.list_uploads("a/").await.unwrap().len(), 3);
}
