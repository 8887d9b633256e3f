//! The fault-injecting S3 front of the tests (`support/s3_proxy.rs`) against a real s3s-fs,
//! driven by the aws-sdk-s3 client: each fault as the client sees it, the conditional-create
//! modes, the request log and the hooks. The client is configured like the connector's (request
//! checksums only when required) unless a test says otherwise.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

use support::s3_proxy::{Conditional, Down, Fault, HoldAt, Operation, Outcome, When};
use support::{S3Proxy, Stack};

const BUCKET: &str = "proxied";
const WAIT: Duration = Duration::from_secs(20);
const PART: usize = 5 * 1024 * 1024;

fn setup() -> (Stack, S3Proxy) {
    let stack = Stack::start_s3_only();
    stack.create_bucket(BUCKET);
    let proxy = stack.s3_proxy();
    (stack, proxy)
}

/// A client of the proxy: `attempts` SDK attempts (1 = no retry), an optional attempt timeout.
fn client(stack: &Stack, proxy: &S3Proxy, attempts: u32, timeout: Option<Duration>) -> Client {
    let retry = if attempts == 1 {
        RetryConfig::disabled()
    } else {
        RetryConfig::standard()
            .with_max_attempts(attempts)
            .with_initial_backoff(Duration::from_millis(10))
    };
    let mut builder = stack
        .s3_at(&proxy.endpoint())
        .config()
        .to_builder()
        .retry_config(retry)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
    if let Some(timeout) = timeout {
        builder = builder.timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(timeout)
                .build(),
        );
    }
    Client::from_conf(builder.build())
}

/// Deterministic bytes that differ per `seed`.
fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// `(HTTP status, S3 error code)` of a failed call.
fn failure<E: ProvideErrorMetadata>(
    error: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (Option<u16>, Option<String>) {
    let status = error.raw_response().map(|r| r.status().as_u16());
    (status, error.code().map(str::to_owned))
}

async fn put(
    client: &Client,
    key: &str,
    bytes: &[u8],
) -> Result<(), (Option<u16>, Option<String>)> {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(bytes.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(failure)
}

async fn put_if_none_match(
    client: &Client,
    key: &str,
    bytes: &[u8],
) -> Result<(), (Option<u16>, Option<String>)> {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .if_none_match("*")
        .body(ByteStream::from(bytes.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(failure)
}

async fn put_forbid_overwrite(
    client: &Client,
    key: &str,
    bytes: &[u8],
) -> Result<(), (Option<u16>, Option<String>)> {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(bytes.to_vec()))
        .customize()
        // Added before signing, like the connector does it: the header is signed.
        .mutate_request(|request| {
            request
                .headers_mut()
                .insert("x-oss-forbid-overwrite", "true");
        })
        .send()
        .await
        .map(|_| ())
        .map_err(failure)
}

/// How a multipart upload is completed.
#[derive(Clone, Copy)]
enum Complete {
    Plain,
    IfNoneMatch,
    ForbidOverwrite,
}

/// Uploads `parts` and completes them; returns the completion's outcome.
async fn multipart(
    client: &Client,
    key: &str,
    parts: &[Vec<u8>],
    complete: Complete,
) -> Result<(), (Option<u16>, Option<String>)> {
    let upload = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .map_err(failure)?;
    let upload_id = upload.upload_id().unwrap().to_owned();
    let mut completed = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let uploaded = client
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .map_err(failure)?;
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(uploaded.e_tag().unwrap_or_default())
                .build(),
        );
    }
    let request = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        );
    let result = match complete {
        Complete::Plain => request.send().await,
        Complete::IfNoneMatch => request.if_none_match("*").send().await,
        Complete::ForbidOverwrite => {
            request
                .customize()
                .mutate_request(|request| {
                    request
                        .headers_mut()
                        .insert("x-oss-forbid-overwrite", "true");
                })
                .send()
                .await
        }
    };
    result.map(|_| ()).map_err(failure)
}

/// The object's bytes read straight from s3s-fs (not through the proxy), `None` if absent.
fn stored(stack: &Stack, key: &str) -> Option<Vec<u8>> {
    let client = stack.s3();
    stack.block_on(async {
        match client.get_object().bucket(BUCKET).key(key).send().await {
            Ok(output) => Some(output.body.collect().await.unwrap().to_vec()),
            Err(error) => {
                let (status, _) = failure(error);
                assert_eq!(status, Some(404), "reading {key} back");
                None
            }
        }
    })
}

fn object_file(stack: &Stack, key: &str) -> PathBuf {
    stack.s3_root().join(BUCKET).join(key)
}

/// Polls `done` until it holds; panics after `WAIT`.
fn poll(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "no {what} after {WAIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Files in s3s-fs's root whose name starts with `prefix` (multipart parts, metadata).
fn root_files(stack: &Stack, prefix: &str) -> Vec<String> {
    std::fs::read_dir(stack.s3_root())
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(prefix))
        .collect()
}

#[test]
fn every_operation_is_forwarded_byte_for_byte_classified_and_logged() {
    let (stack, proxy) = setup();
    let client = client(&stack, &proxy, 1, None);
    let key = "dir/a b+c&d.json";
    let small = body(100_000, 1);
    let parts = [body(PART, 2), body(1000, 3)];
    stack.block_on(async {
        client.head_bucket().bucket(BUCKET).send().await.unwrap();
        put(&client, key, &small).await.unwrap();
        let got = client
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(got.body.collect().await.unwrap().to_vec(), small);
        let head = client
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(small.len() as i64));
        let listed = client
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix("dir/")
            .send()
            .await
            .unwrap();
        let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, [key]);
        multipart(&client, "big", &parts, Complete::Plain)
            .await
            .unwrap();
        let got = client
            .get_object()
            .bucket(BUCKET)
            .key("big")
            .send()
            .await
            .unwrap();
        assert_eq!(got.body.collect().await.unwrap().to_vec(), parts.concat());
        let upload = client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("aborted")
            .send()
            .await
            .unwrap();
        client
            .abort_multipart_upload()
            .bucket(BUCKET)
            .key("aborted")
            .upload_id(upload.upload_id().unwrap())
            .send()
            .await
            .unwrap();
        client
            .delete_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        let gone = client.head_object().bucket(BUCKET).key(key).send().await;
        assert_eq!(failure(gone.unwrap_err()).0, Some(404));
    });

    let log = proxy.requests();
    use Operation::*;
    let operations: Vec<Operation> = log.iter().map(|r| r.operation).collect();
    assert_eq!(
        operations,
        [
            HeadBucket,
            PutObject,
            GetObject,
            HeadObject,
            ListObjects,
            CreateMultipartUpload,
            UploadPart,
            UploadPart,
            CompleteMultipartUpload,
            GetObject,
            CreateMultipartUpload,
            AbortMultipartUpload,
            DeleteObject,
            HeadObject,
        ],
        "{}",
        proxy.summary()
    );
    let statuses: Vec<Option<u16>> = log.iter().map(|r| r.status).collect();
    let mut expected = vec![Some(200); 14];
    expected[11] = Some(204);
    expected[12] = Some(204);
    expected[13] = Some(404);
    assert_eq!(statuses, expected, "{}", proxy.summary());
    assert!(log
        .iter()
        .all(|r| r.outcome == Outcome::Sent && r.injected.is_none()));
    assert_eq!(log[13].error_code, None, "a HEAD error has no body");

    let put = &log[1];
    assert_eq!(put.method, "PUT");
    assert_eq!(put.bucket.as_deref(), Some(BUCKET));
    assert_eq!(put.key.as_deref(), Some(key), "the key is percent-decoded");
    assert_eq!(put.body_len, small.len() as u64);
    assert_eq!(put.header("content-length"), Some("100000"));
    assert_eq!(log[6].body_len, PART as u64);
    assert_eq!(log[6].query_param("partNumber").as_deref(), Some("1"));
    assert_eq!(log[7].query_param("partNumber").as_deref(), Some("2"));
    // What the connector's tests assert on: signed requests, no aws-chunked framing.
    for request in &log {
        assert!(request.header("authorization").is_some(), "{request:?}");
        assert!(
            !request
                .header("content-encoding")
                .unwrap_or("")
                .contains("aws-chunked"),
            "{request:?}"
        );
    }
    let connections: std::collections::BTreeSet<u64> = log.iter().map(|r| r.connection).collect();
    assert!(
        connections.len() < log.len() / 2,
        "keep-alive: {} requests over {} connections",
        log.len(),
        connections.len()
    );
}

#[test]
fn injected_errors_reach_the_client_with_their_status_and_code() {
    let (stack, proxy) = setup();
    let once = client(&stack, &proxy, 1, None);
    let retrying = client(&stack, &proxy, 3, None);
    stack.block_on(async {
        put(&once, "seed", b"seed").await.unwrap();
        for (fault, status, code) in [
            (Fault::internal_error(), 500, "InternalError"),
            (Fault::slow_down(), 503, "SlowDown"),
            (Fault::access_denied(), 403, "AccessDenied"),
            (Fault::error(400, "EntityTooLarge"), 400, "EntityTooLarge"),
        ] {
            let rule = proxy.fault(Operation::PutObject, fault, When::Always);
            for _ in 0..2 {
                let seen = put(&once, "k", b"value").await.unwrap_err();
                assert_eq!(seen, (Some(status), Some(code.to_owned())));
            }
            // Only the targeted operation fails.
            let got = once.get_object().bucket(BUCKET).key("seed").send().await;
            assert!(got.is_ok(), "{}", proxy.summary());
            proxy.clear_fault(rule);
        }
        assert!(
            !object_file(&stack, "k").exists(),
            "an injected error stores nothing"
        );

        // Rules for several operations, cleared per operation.
        proxy.fault(
            [Operation::PutObject, Operation::GetObject],
            Fault::internal_error(),
            When::Always,
        );
        assert!(put(&once, "k", b"v").await.is_err());
        proxy.clear_faults_of(Operation::PutObject);
        put(&once, "k", b"v").await.unwrap();
        let got = once.get_object().bucket(BUCKET).key("k").send().await;
        assert_eq!(failure(got.unwrap_err()).0, Some(500));
        proxy.clear_faults();

        // The next N only: the SDK's retries get through.
        proxy.fault(Operation::PutObject, Fault::slow_down(), When::Next(2));
        put(&retrying, "k2", b"v2").await.unwrap();
        put(&once, "k3", b"v3").await.unwrap();
        // Every operation, next one only.
        proxy.fault(
            support::s3_proxy::Target::All,
            Fault::internal_error(),
            When::Next(1),
        );
        assert!(once.head_bucket().bucket(BUCKET).send().await.is_err());
        once.head_bucket().bucket(BUCKET).send().await.unwrap();
    });
    let puts: Vec<(Option<u16>, Option<String>)> = proxy
        .requests_of(Operation::PutObject)
        .iter()
        .rev()
        .take(4)
        .map(|r| (r.status, r.injected.clone()))
        .collect();
    assert_eq!(
        puts,
        [
            (Some(200), None),
            (Some(200), None),
            (Some(503), Some("error 503 SlowDown".into())),
            (Some(503), Some("error 503 SlowDown".into())),
        ],
        "{}",
        proxy.summary()
    );
    assert_eq!(stored(&stack, "k2").as_deref(), Some(&b"v2"[..]));
}

#[test]
fn a_fraction_of_faults_repeats_with_the_same_seed() {
    let (stack, proxy) = setup();
    let client = client(&stack, &proxy, 1, None);
    let run = |seed: u64| -> Vec<bool> {
        let rule = proxy.fault(
            Operation::HeadBucket,
            Fault::internal_error(),
            When::Fraction { rate: 0.3, seed },
        );
        let failed = stack.block_on(async {
            let mut failed = Vec::new();
            for _ in 0..40 {
                failed.push(client.head_bucket().bucket(BUCKET).send().await.is_err());
            }
            failed
        });
        proxy.clear_fault(rule);
        failed
    };
    let first = run(7);
    let again = run(7);
    let other = run(8);
    assert_eq!(first, again, "the same seed gives the same faults");
    assert_ne!(first, other, "another seed gives other faults");
    let count = first.iter().filter(|f| **f).count();
    assert!(
        (4..=20).contains(&count),
        "{count} of 40 failed at rate 0.3"
    );
}

#[test]
fn latency_delays_the_answer() {
    let (stack, proxy) = setup();
    let client = client(&stack, &proxy, 1, None);
    proxy.fault(
        Operation::HeadBucket,
        Fault::Latency(Duration::from_millis(400)),
        When::Next(1),
    );
    let started = Instant::now();
    stack
        .block_on(client.head_bucket().bucket(BUCKET).send())
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    let log = proxy.requests();
    assert_eq!(log[0].injected.as_deref(), Some("latency 400ms"));
    assert_eq!(log[0].status, Some(200));
}

#[test]
fn a_hung_request_times_out_and_goes_on_once_cleared() {
    let (stack, proxy) = setup();
    stack.block_on(put(&stack.s3(), "k", b"value")).unwrap();
    let impatient = client(&stack, &proxy, 1, Some(Duration::from_millis(500)));
    let patient = client(&stack, &proxy, 1, Some(Duration::from_secs(30)));
    let hang = proxy.fault(Operation::GetObject, Fault::Hang, When::Always);

    let timed_out = stack.block_on(impatient.get_object().bucket(BUCKET).key("k").send());
    assert!(
        matches!(timed_out, Err(SdkError::TimeoutError(_))),
        "{timed_out:?}"
    );
    // The client gave up and closed its connection: the proxy drops the request.
    let first = proxy.wait_done(0, WAIT);
    assert_eq!(first.outcome, Outcome::ClientGone);
    assert_eq!(first.status, None);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let waiting = runtime.spawn(async move {
        let got = patient.get_object().bucket(BUCKET).key("k").send().await?;
        Ok::<_, SdkError<_, _>>(got.body.collect().await.unwrap().to_vec())
    });
    let second = proxy.wait_arrived(Operation::GetObject, 2, WAIT);
    assert_eq!(second.injected.as_deref(), Some("hang"));
    assert_eq!(proxy.requests()[second.id].outcome, Outcome::Pending);
    proxy.clear_fault(hang);
    let got = runtime.block_on(waiting).unwrap().unwrap();
    assert_eq!(got, b"value");
    assert_eq!(proxy.wait_done(second.id, WAIT).status, Some(200));
}

#[test]
fn a_reset_mid_body_fails_the_upload_and_stores_nothing() {
    let (stack, proxy) = setup();
    let once = client(&stack, &proxy, 1, None);
    let retrying = client(&stack, &proxy, 3, None);
    let bytes = body(1 << 20, 4);
    proxy.fault(Operation::PutObject, Fault::ResetMidBody, When::Next(1));
    let failed = stack.block_on(
        once.put_object()
            .bucket(BUCKET)
            .key("cut")
            .body(ByteStream::from(bytes.clone()))
            .send(),
    );
    let error = failed.unwrap_err();
    assert!(
        matches!(
            error,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "a reset is a transport error: {error:?}"
    );
    let cut = proxy.wait_done(0, WAIT);
    assert_eq!(cut.outcome, Outcome::Reset);
    assert_eq!(cut.injected.as_deref(), Some("reset mid-body"));
    poll(
        || root_files(&stack, ".tmp.").is_empty(),
        "s3s-fs dropping the partial write",
    );
    assert_eq!(stored(&stack, "cut"), None);
    assert!(!object_file(&stack, "cut").exists());

    // The SDK retries a reset; the retry stores the whole object once.
    proxy.fault(Operation::PutObject, Fault::ResetMidBody, When::Next(1));
    stack.block_on(put(&retrying, "cut", &bytes)).unwrap();
    let outcomes: Vec<Outcome> = proxy
        .requests_of(Operation::PutObject)
        .iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, [Outcome::Reset, Outcome::Reset, Outcome::Sent]);
    assert_eq!(stored(&stack, "cut"), Some(bytes));
}

#[test]
fn down_refuses_or_resets_connections_until_up() {
    let (stack, proxy) = setup();
    let client = client(&stack, &proxy, 1, None);
    // Ok, or how the call failed: "dispatch" (no response: connecting or sending failed),
    // "response" (the response broke off), or the error itself.
    let head = || {
        stack
            .block_on(client.head_bucket().bucket(BUCKET).send())
            .map(|_| ())
            .map_err(|error| match error {
                SdkError::DispatchFailure(_) => "dispatch".to_owned(),
                SdkError::ResponseError(_) => "response".to_owned(),
                other => format!("{other:?}"),
            })
    };
    head().unwrap();

    proxy.down(Down::Refuse);
    let refused = std::net::TcpStream::connect(("127.0.0.1", proxy.port())).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(head(), Err("dispatch".to_owned()));
    proxy.up();
    head().unwrap();

    proxy.down(Down::Reset);
    let error = head().unwrap_err();
    assert!(error == "dispatch" || error == "response", "{error}");
    proxy.up();
    head().unwrap();

    // Nothing reached the store while it was down.
    let statuses: Vec<Option<u16>> = proxy.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(200); 3], "{}", proxy.summary());
}

#[test]
fn pass_through_s3s_fs_refuses_conditional_creates_of_existing_keys() {
    let (stack, proxy) = setup();
    let client = client(&stack, &proxy, 1, None);
    stack.block_on(async {
        put_if_none_match(&client, "k", b"first").await.unwrap();
        let second = put_if_none_match(&client, "k", b"second")
            .await
            .unwrap_err();
        assert_eq!(second, (Some(412), Some("PreconditionFailed".into())));
        // s3s-fs checks If-None-Match on CompleteMultipartUpload too.
        let completed = multipart(&client, "k", &[b"parts".to_vec()], Complete::IfNoneMatch).await;
        assert_eq!(
            completed.unwrap_err(),
            (Some(412), Some("PreconditionFailed".into()))
        );
        multipart(&client, "m", &[b"parts".to_vec()], Complete::IfNoneMatch)
            .await
            .unwrap();
        // s3s-fs does not know the OSS header: it overwrites.
        put_forbid_overwrite(&client, "m", b"overwritten")
            .await
            .unwrap();
    });
    assert_eq!(stored(&stack, "k").as_deref(), Some(&b"first"[..]));
    assert_eq!(stored(&stack, "m").as_deref(), Some(&b"overwritten"[..]));
    let puts = proxy.requests_of(Operation::PutObject);
    assert!(puts[..2]
        .iter()
        .all(|r| r.header("if-none-match") == Some("*")));
    assert_eq!(puts[2].header("x-oss-forbid-overwrite"), Some("true"));
    assert_eq!(puts[1].error_code.as_deref(), Some("PreconditionFailed"));
}

#[test]
fn oss_mode_refuses_if_none_match_and_honours_forbid_overwrite() {
    let (stack, proxy) = setup();
    let client = client(&stack, &proxy, 1, None);
    proxy.set_conditional(Conditional::Oss);
    let not_implemented = (Some(501), Some("NotImplemented".to_owned()));
    let exists = (Some(409), Some("FileAlreadyExists".to_owned()));
    stack.block_on(async {
        assert_eq!(
            put_if_none_match(&client, "k", b"x").await.unwrap_err(),
            not_implemented
        );
        put_forbid_overwrite(&client, "k", b"first").await.unwrap();
        assert_eq!(
            put_forbid_overwrite(&client, "k", b"second")
                .await
                .unwrap_err(),
            exists
        );
        let parts = [b"parts".to_vec()];
        assert_eq!(
            multipart(&client, "k", &parts, Complete::ForbidOverwrite)
                .await
                .unwrap_err(),
            exists
        );
        assert_eq!(
            multipart(&client, "m", &parts, Complete::IfNoneMatch)
                .await
                .unwrap_err(),
            not_implemented
        );
        multipart(&client, "m", &parts, Complete::ForbidOverwrite)
            .await
            .unwrap();
    });
    assert_eq!(stored(&stack, "k").as_deref(), Some(&b"first"[..]));
    assert_eq!(stored(&stack, "m").as_deref(), Some(&b"parts"[..]));
    // Without the header OSS overwrites.
    stack.block_on(put(&client, "k", b"plain")).unwrap();
    assert_eq!(stored(&stack, "k").as_deref(), Some(&b"plain"[..]));
    let injected: Vec<Option<String>> = proxy
        .requests()
        .iter()
        .map(|r| r.injected.clone())
        .collect();
    assert_eq!(
        injected.iter().flatten().collect::<Vec<_>>(),
        ["oss 501", "oss 409", "oss 409", "oss 501"]
    );
}

#[test]
fn ignore_mode_overwrites_despite_if_none_match() {
    let (stack, proxy) = setup();
    let client = client(&stack, &proxy, 1, None);
    proxy.set_conditional(Conditional::Ignore);
    stack.block_on(async {
        client
            .put_object()
            .bucket(BUCKET)
            .key("dir/k")
            .body(ByteStream::from_static(b"first"))
            .send()
            .await
            .unwrap();
    });
    // The object's file and its metadata files are gone before the request goes upstream.
    let metadata_files = || root_files(&stack, ".bucket-");
    assert_eq!(metadata_files().len(), 2, "{:?}", metadata_files());
    let hold = proxy.hold_next(Operation::PutObject, HoldAt::BeforeUpstream);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let second = {
        let client = client.clone();
        runtime.spawn(async move { put_if_none_match(&client, "dir/k", b"second").await })
    };
    hold.wait_held(WAIT);
    assert!(!object_file(&stack, "dir/k").exists());
    assert_eq!(metadata_files(), Vec::<String>::new());
    hold.release();
    runtime.block_on(second).unwrap().unwrap();
    assert_eq!(stored(&stack, "dir/k").as_deref(), Some(&b"second"[..]));
    stack.block_on(async {
        multipart(
            &client,
            "dir/k",
            &[b"third".to_vec()],
            Complete::IfNoneMatch,
        )
        .await
        .unwrap();
    });
    assert_eq!(stored(&stack, "dir/k").as_deref(), Some(&b"third"[..]));
    let puts = proxy.requests_of(Operation::PutObject);
    assert_eq!(
        puts[1].injected.as_deref(),
        Some("ignore: removed existing object")
    );
    let completes = proxy.requests_of(Operation::CompleteMultipartUpload);
    assert_eq!(
        completes[0].injected.as_deref(),
        Some("ignore: removed existing object")
    );
}

/// s3s-fs answers ListMultipartUploads with 501; the proxy can answer it from s3s-fs's
/// directory: uploads created with metadata and neither completed nor aborted, under the prefix,
/// with their creation time.
#[test]
fn list_multipart_uploads_is_not_implemented_by_s3s_fs_and_emulated_by_the_proxy() {
    let (stack, proxy) = setup();
    let client = client(&stack, &proxy, 1, None);
    let key = "orders/0/a b+c.json";
    stack.block_on(async {
        let list = || async {
            client
                .list_multipart_uploads()
                .bucket(BUCKET)
                .prefix("orders/")
                .send()
                .await
        };
        let refused = list().await.map(|_| ()).map_err(failure);
        assert_eq!(
            refused,
            Err((Some(501), Some("NotImplemented".into()))),
            "s3s-fs 0.14 does not list uploads (the emulation is still needed)"
        );
        proxy.emulate_list_uploads();
        let create = |key: &'static str| {
            let client = client.clone();
            async move {
                client
                    .create_multipart_upload()
                    .bucket(BUCKET)
                    .key(key)
                    .metadata("kos-format", "1")
                    .send()
                    .await
                    .unwrap()
                    .upload_id()
                    .unwrap()
                    .to_owned()
            }
        };
        let before = std::time::SystemTime::now() - Duration::from_secs(2);
        let upload_id = create(key).await;
        create("other/0/x.json").await;
        client
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .part_number(1)
            .body(ByteStream::from(body(1000, 1)))
            .send()
            .await
            .unwrap();
        let listed = list().await.unwrap();
        let uploads: Vec<(&str, &str)> = listed
            .uploads()
            .iter()
            .map(|u| (u.key().unwrap(), u.upload_id().unwrap()))
            .collect();
        assert_eq!(uploads, [(key, upload_id.as_str())]);
        let initiated =
            std::time::SystemTime::try_from(*listed.uploads()[0].initiated().unwrap()).unwrap();
        assert!(
            initiated >= before && initiated <= before + Duration::from_secs(60),
            "{initiated:?}"
        );
        client
            .abort_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await
            .unwrap();
        assert!(list().await.unwrap().uploads().is_empty());
        // A completed upload is no longer listed either.
        let upload_id = create(key).await;
        let part = client
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .part_number(1)
            .body(ByteStream::from(body(1000, 2)))
            .send()
            .await
            .unwrap();
        assert_eq!(list().await.unwrap().uploads().len(), 1);
        client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(
                        CompletedPart::builder()
                            .part_number(1)
                            .e_tag(part.e_tag().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert!(list().await.unwrap().uploads().is_empty());
    });
    assert_eq!(proxy.incomplete_uploads(BUCKET, "other/").len(), 1);
    let requests = proxy.requests_of(Operation::ListMultipartUploads);
    assert_eq!(requests.len(), 5, "{}", proxy.summary());
    assert_eq!(requests[0].status, Some(501));
    assert_eq!(
        requests[1].injected.as_deref(),
        Some("emulated ListMultipartUploads")
    );
}

#[test]
fn hooks_wait_for_responses_and_hold_requests_at_each_point() {
    let (stack, proxy) = setup();

    // wait_for: the 2nd successful PutObject, while a client keeps uploading.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let uploader = client(&stack, &proxy, 1, None);
    let uploads = runtime.spawn(async move {
        for i in 1..=3 {
            put(&uploader, &format!("k{i}"), b"v").await.unwrap();
        }
    });
    let second = proxy.wait_for(Operation::PutObject, 2, WAIT);
    assert_eq!(second.key.as_deref(), Some("k2"));
    assert_eq!(second.status, Some(200));
    runtime.block_on(uploads).unwrap();

    // A hold released lets the request through.
    let hold = proxy.hold_next(Operation::HeadBucket, HoldAt::BeforeUpstream);
    let checker = client(&stack, &proxy, 1, None);
    let check = runtime.spawn(async move { checker.head_bucket().bucket(BUCKET).send().await });
    let held = hold.wait_held(WAIT);
    assert_eq!(held.outcome, Outcome::Pending);
    hold.release();
    runtime.block_on(check).unwrap().unwrap();

    // Between multipart parts: part 1 stored, part 2 held, then the client is killed.
    let hold = proxy.hold_nth(Operation::UploadPart, 2, HoldAt::BeforeUpstream);
    let killed = tokio::runtime::Runtime::new().unwrap();
    let uploader = client(&stack, &proxy, 1, None);
    killed.spawn(async move {
        let parts = [body(PART, 5), body(10, 6)];
        let _ = multipart(&uploader, "parts", &parts, Complete::Plain).await;
    });
    let held = hold.wait_held(WAIT);
    assert_eq!(held.query_param("partNumber").as_deref(), Some("2"));
    let upload_id = held.query_param("uploadId").unwrap();
    let part_files = root_files(&stack, &format!(".upload_id-{upload_id}.part-"));
    assert_eq!(part_files, [format!(".upload_id-{upload_id}.part-1")]);
    killed.shutdown_background();
    assert_eq!(proxy.wait_done(held.id, WAIT).outcome, Outcome::ClientGone);
    drop(hold);
    assert!(proxy
        .requests_of(Operation::CompleteMultipartUpload)
        .is_empty());
    assert_eq!(stored(&stack, "parts"), None);

    // In the middle of a body: half of it sent to the store, then the client is killed.
    let hold = proxy.hold_next(Operation::PutObject, HoldAt::MidBody);
    let killed = tokio::runtime::Runtime::new().unwrap();
    let uploader = client(&stack, &proxy, 1, None);
    killed.spawn(async move {
        let _ = put(&uploader, "torn", &body(1 << 20, 7)).await;
    });
    let held = hold.wait_held(WAIT);
    assert_eq!(held.key.as_deref(), Some("torn"));
    poll(
        || !root_files(&stack, ".tmp.").is_empty(),
        "s3s-fs writing the body",
    );
    killed.shutdown_background();
    assert_eq!(proxy.wait_done(held.id, WAIT).outcome, Outcome::ClientGone);
    drop(hold);
    poll(
        || root_files(&stack, ".tmp.").is_empty(),
        "s3s-fs dropping the partial write",
    );
    assert_eq!(stored(&stack, "torn"), None);

    // After the store acted, before the client got the answer.
    let hold = proxy.hold_next(Operation::PutObject, HoldAt::BeforeResponse);
    let killed = tokio::runtime::Runtime::new().unwrap();
    let uploader = client(&stack, &proxy, 1, None);
    killed.spawn(async move {
        let _ = put(&uploader, "unanswered", b"stored").await;
    });
    let held = hold.wait_held(WAIT);
    assert_eq!(held.status, Some(200), "the store answered");
    assert_eq!(
        stored(&stack, "unanswered").as_deref(),
        Some(&b"stored"[..])
    );
    killed.shutdown_background();
    let done = proxy.wait_done(held.id, WAIT);
    assert_eq!(
        (done.status, done.outcome),
        (Some(200), Outcome::ClientGone)
    );
    drop(hold);
}

/// How a connector test uses the proxy: the connector's endpoint is the proxy's, a fault on its
/// first upload is retried, and the log shows its requests.
#[test]
fn the_connector_uploads_through_the_proxy() {
    let stack = Stack::start();
    let (topic, name) = (support::unique("proxied"), support::unique("via-proxy"));
    stack.create_topic(&topic, 1);
    stack.create_bucket(BUCKET);
    let proxy = stack.s3_proxy();
    let records: Vec<_> = (0..100)
        .map(|i| (0, None, Some(format!("value-{i}").into_bytes())))
        .collect();
    stack.produce(&topic, &records);
    let config = stack.config(
        &name,
        &topic,
        BUCKET,
        "max_records = 50\nmax_interval_ms = 500",
        "",
    );
    support::set_sink_endpoint(&config, &proxy.endpoint());
    let mut connector = stack.connector(&config, None);
    // The start-up capability probe writes and deletes its own object first; the fault is for
    // the first object upload, which comes after the group join.
    proxy.wait_for(Operation::DeleteObject, 1, WAIT);
    proxy.fault(Operation::PutObject, Fault::internal_error(), When::Next(1));
    connector.wait_for_log("partitions assigned", WAIT);
    let stored_keys: Vec<String> = stack
        .wait_for_records(BUCKET, &format!("e2e/{topic}/"), 100, WAIT)
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    connector.stop();

    let folder = format!("e2e/{topic}/");
    let puts: Vec<_> = proxy
        .requests_of(Operation::PutObject)
        .into_iter()
        .filter(|r| r.key.as_deref().is_some_and(|key| key.starts_with(&folder)))
        .collect();
    assert_eq!(puts[0].status, Some(500), "{}", proxy.summary());
    let mut uploaded: Vec<String> = puts
        .iter()
        .filter(|r| r.status == Some(200))
        .filter_map(|r| r.key.clone())
        .collect();
    uploaded.sort();
    assert_eq!(uploaded, stored_keys, "{}", proxy.summary());
    assert!(proxy.requests().iter().all(|r| !r
        .header("content-encoding")
        .unwrap_or("")
        .contains("aws-chunked")));
}
