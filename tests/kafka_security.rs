//! The connector against a broker that requires SASL authentication, over plaintext and over
//! TLS (issue 14): tansu 0.6.0 with `--authentication` and a user created with `tansu user
//! create`, which stores SCRAM credentials for one mechanism per user: SCRAM-SHA-512 and
//! SCRAM-SHA-256 are tested. PLAIN, which tansu 0.6.0 does not offer (tests/README.md, "Broker
//! quirks"), is tested through the test support's SASL/PLAIN front (support/sasl_plain.rs),
//! which authenticates the client as a Kafka broker does and then forwards to tansu. The
//! user is created, and the records produced, before the broker restarts with authentication
//! (sqlite storage keeps them): the test support's own clients do not authenticate. TLS goes
//! through the test support's terminator with a CA made in the test (tansu 0.6.0 ignores its
//! `--cert`/`--key`: support/tls.rs). The password never appears in the config file: it comes
//! from `KAFKA_SASL_PASSWORD` or from `source.secrets_dir`.

mod support;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use support::sasl_plain::PlainFront;
use support::tls::{TestCa, TlsFront};
use support::{unique, Produced, Stack, TestRecord};

/// The SCRAM-SHA-512 user, and the SCRAM-SHA-256 one (tansu stores one mechanism per user).
const USER: &str = "sink-user";
const USER_256: &str = "sink-user-256";

/// SASL/SCRAM-SHA-512 over `protocol`, the user name in the file (the password is not).
fn with_sasl(config: &Path, protocol: &str, extra: &str) {
    with_mechanism(config, protocol, "SCRAM-SHA-512", USER, extra);
}

fn with_mechanism(config: &Path, protocol: &str, mechanism: &str, user: &str, extra: &str) {
    let text = std::fs::read_to_string(config).unwrap().replace(
        "[source.properties]\n",
        &format!(
            "[source.properties]\n\"security.protocol\" = \"{protocol}\"\n\"sasl.mechanism\" = \"{mechanism}\"\n\"sasl.username\" = \"{user}\"\n{extra}"
        ),
    );
    std::fs::write(config, text).unwrap();
}

/// 40 records over 2 partitions, one per batch, then the SASL users (both with `password`); the
/// broker restarts with authentication (advertising `advertised` if set).
fn prepare(
    stack: &mut Stack,
    topic: &str,
    bucket: &str,
    password: &str,
    advertised: Option<u16>,
) -> BTreeMap<(i32, i64), Produced> {
    let produced = produce(stack, topic, bucket);
    stack.create_user(USER, password, "scram512");
    stack.create_user(USER_256, password, "scram256");
    stack.stop_broker();
    stack.authentication = true;
    stack.advertised_port = advertised;
    stack.start_broker();
    produced
}

/// The connector on `config` with `password` in `KAFKA_SASL_PASSWORD`, until every produced
/// record is in `bucket`: each is there once, and the password is in no log line.
fn copies_once(
    stack: &Stack,
    config: &Path,
    bucket: &str,
    topic: &str,
    produced: &BTreeMap<(i32, i64), Produced>,
    password: &str,
) {
    let mut connector =
        stack.connector_with_env(config, None, &[], &[("KAFKA_SASL_PASSWORD", password)]);
    let objects = stack.wait_for_records(
        bucket,
        &format!("e2e/{topic}/"),
        produced.len(),
        Duration::from_secs(60),
    );
    connector.stop();
    support::exactly_once::assert_bucket_once(&objects, topic, produced, &BTreeSet::new());
    assert!(
        !connector.logs().contains(password),
        "the SASL password is in the log"
    );
}

/// The connector on `config` with the wrong password `wrong`: it does not start, its error
/// says authentication may have failed and contains each of `also`, and neither password is
/// in the output.
fn refused_with_wrong_password(
    stack: &Stack,
    config: &Path,
    wrong: &str,
    password: &str,
    also: &[&str],
) {
    let mut bad = stack.connector_with_env(config, None, &[], &[("KAFKA_SASL_PASSWORD", wrong)]);
    let status = bad.wait_exit(Duration::from_secs(90));
    let logs = bad.logs();
    assert!(!status.success(), "started with a wrong password:\n{logs}");
    assert!(
        logs.contains("KAFKA_UNAVAILABLE")
            && logs.contains("check `sasl.username` and the password (KAFKA_SASL_PASSWORD")
            && also.iter().all(|text| logs.contains(text)),
        "the error does not say authentication failed:\n{logs}"
    );
    assert!(
        !logs.contains(wrong) && !logs.contains(password),
        "a password is in the log:\n{logs}"
    );
}

/// The topic (2 partitions) with 40 records, one per batch, and the bucket.
fn produce(stack: &mut Stack, topic: &str, bucket: &str) -> BTreeMap<(i32, i64), Produced> {
    stack.create_topic(topic, 2);
    stack.create_bucket(bucket);
    let records: Vec<TestRecord> = (0..40)
        .map(|i| {
            (
                i % 2,
                Some(format!("k{i}").into_bytes()),
                Some(format!("v{i}").into_bytes()),
            )
        })
        .collect();
    stack.produce_one_per_batch(topic, &records)
}

#[test]
fn sasl_scram_512_and_256_copy_the_topic_and_a_wrong_or_missing_password_is_a_clear_error() {
    let mut stack = Stack::start_sqlite();
    let (topic, bucket) = (unique("sasl"), "sasl-bucket");
    let password = format!("pw-{}", unique("scram"));
    let produced = prepare(&mut stack, &topic, bucket, &password, None);

    // The right password: every record lands once.
    let name = unique("sasl");
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 10\nmax_interval_ms = 300",
        "",
    );
    with_sasl(&config, "SASL_PLAINTEXT", "");
    copies_once(&stack, &config, bucket, &topic, &produced, &password);

    // SCRAM-SHA-256, into a bucket of its own.
    let bucket_256 = "sasl-256-bucket";
    stack.create_bucket(bucket_256);
    let config_256 = stack.config(
        &unique("sasl-256"),
        &topic,
        bucket_256,
        "max_records = 10\nmax_interval_ms = 300",
        "",
    );
    with_mechanism(&config_256, "SASL_PLAINTEXT", "SCRAM-SHA-256", USER_256, "");
    copies_once(
        &stack,
        &config_256,
        bucket_256,
        &topic,
        &produced,
        &password,
    );

    // No password at all: refused before anything connects, naming the variable.
    let mut missing = stack.connector(&config, None);
    let status = missing.wait_exit(Duration::from_secs(30));
    let logs = missing.logs();
    assert_eq!(status.code(), Some(2), "{logs}");
    assert!(
        logs.contains("CONFIG_CREDENTIALS") && logs.contains("KAFKA_SASL_PASSWORD"),
        "{logs}"
    );

    // A wrong password: a clear error naming the brokers, no secret anywhere, and the process
    // does not start the pipeline.
    let wrong = format!("wrong-{}", unique("pw"));
    let bad_config = stack.config(&unique("sasl-bad"), &topic, bucket, "", "");
    with_sasl(&bad_config, "SASL_PLAINTEXT", "");
    refused_with_wrong_password(&stack, &bad_config, &wrong, &password, &[]);
}

#[test]
fn sasl_over_tls_with_the_password_from_a_secrets_directory_and_an_untrusted_broker_is_refused() {
    let mut stack = Stack::start_sqlite();
    let (topic, bucket) = (unique("sasl-tls"), "sasl-tls-bucket");
    let password = format!("pw-{}", unique("scram"));
    let ca = TestCa::new(&stack.dir);
    let front = TlsFront::start(&ca, stack.kafka_port);
    let produced = prepare(&mut stack, &topic, bucket, &password, Some(front.port));
    let tls_bootstrap = format!("127.0.0.1:{}", front.port);
    let secrets = stack.dir.join("kafka-secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("sasl.password"), format!("{password}\n")).unwrap();
    let over_tls = |config: &Path, extra: &str| {
        let text = std::fs::read_to_string(config)
            .unwrap()
            .replace(&stack.bootstrap(), &tls_bootstrap)
            .replace(
                "concurrency = 2\n",
                &format!(
                    "concurrency = 2\nsecrets_dir = {:?}\n",
                    secrets.display().to_string()
                ),
            );
        std::fs::write(config, text).unwrap();
        with_sasl(config, "SASL_SSL", extra);
    };

    // The test CA trusted: every record lands once, through TLS (the broker advertises only the
    // terminator's port), with the password from the file.
    let config = stack.config(
        &unique("sasl-tls"),
        &topic,
        bucket,
        "max_records = 10\nmax_interval_ms = 300",
        "",
    );
    over_tls(
        &config,
        &format!(
            "\"ssl.ca.location\" = {:?}\n",
            ca.ca_pem.display().to_string()
        ),
    );
    let name = std::fs::read_to_string(&config).unwrap();
    let name = name
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("name = ")
        .trim_matches('"')
        .to_owned();
    let mut connector = stack.connector(&config, None);
    let objects = stack.wait_for_records(
        bucket,
        &format!("e2e/{topic}/"),
        produced.len(),
        Duration::from_secs(60),
    );
    // Nothing the admin address serves holds the password: the effective config names the
    // secrets directory only.
    for path in [
        format!("/connectors/{name}/config"),
        format!("/connectors/{name}/status"),
        "/status".to_owned(),
        "/metrics".to_owned(),
    ] {
        let (status, body) = connector.admin_get(&path);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(!body.contains(&password), "{path} shows the SASL password");
        if path.ends_with("/config") {
            assert!(body.contains("kafka-secrets"), "{path}: {body}");
        }
    }
    connector.stop();
    support::exactly_once::assert_bucket_once(&objects, &topic, &produced, &BTreeSet::new());
    let logs = connector.logs();
    assert!(!logs.contains(&password), "the SASL password is in the log");

    // A broker whose certificate the client cannot verify (the system's CAs do not know the
    // test CA): refused, saying so, no secret in the output.
    let untrusted = stack.config(&unique("sasl-tls-untrusted"), &topic, bucket, "", "");
    over_tls(&untrusted, "");
    let mut refused = stack.connector(&untrusted, None);
    let status = refused.wait_exit(Duration::from_secs(90));
    let logs = refused.logs();
    assert!(
        !status.success(),
        "started against an untrusted broker:\n{logs}"
    );
    assert!(
        logs.contains("KAFKA_UNAVAILABLE") && logs.contains("certificate verify failed"),
        "the error does not say the broker's certificate was refused:\n{logs}"
    );
    assert!(
        !logs.contains(&password),
        "the SASL password is in the log:\n{logs}"
    );
}

#[test]
fn sasl_plain_over_plaintext_and_tls_copies_the_topic_and_a_wrong_password_is_refused() {
    let mut stack = Stack::start_sqlite();
    let (topic, bucket) = (unique("plain"), "plain-bucket");
    let password = format!("pw-{}", unique("plain"));
    let produced = produce(&mut stack, &topic, bucket);
    let plain = PlainFront::start(stack.kafka_port, USER, &password);
    // The broker advertises the PLAIN front: every connection authenticates there.
    stack.stop_broker();
    stack.advertised_port = Some(plain.port);
    stack.start_broker();
    let bootstrap = stack.bootstrap();
    let through = |config: &Path, port: u16, protocol: &str, extra: &str| {
        let text = std::fs::read_to_string(config)
            .unwrap()
            .replace(&bootstrap, &format!("127.0.0.1:{port}"));
        std::fs::write(config, text).unwrap();
        with_mechanism(config, protocol, "PLAIN", USER, extra);
    };

    // SASL_PLAINTEXT with the right password: every record lands once.
    let config = stack.config(
        &unique("plain"),
        &topic,
        bucket,
        "max_records = 10\nmax_interval_ms = 300",
        "",
    );
    through(&config, plain.port, "SASL_PLAINTEXT", "");
    copies_once(&stack, &config, bucket, &topic, &produced, &password);

    // A wrong password: the broker's refusal is in the error, and no password in the output.
    let wrong = format!("wrong-{}", unique("pw"));
    let bad_config = stack.config(&unique("plain-bad"), &topic, bucket, "", "");
    through(&bad_config, plain.port, "SASL_PLAINTEXT", "");
    refused_with_wrong_password(
        &stack,
        &bad_config,
        &wrong,
        &password,
        &["Invalid username or password"],
    );

    // SASL_SSL: TLS in front of the PLAIN front, the broker advertising the TLS port.
    let ca = TestCa::new(&stack.dir);
    let tls = TlsFront::start(&ca, plain.port);
    stack.stop_broker();
    stack.advertised_port = Some(tls.port);
    stack.start_broker();
    let tls_bucket = "plain-tls-bucket";
    stack.create_bucket(tls_bucket);
    let tls_config = stack.config(
        &unique("plain-tls"),
        &topic,
        tls_bucket,
        "max_records = 10\nmax_interval_ms = 300",
        "",
    );
    through(
        &tls_config,
        tls.port,
        "SASL_SSL",
        &format!(
            "\"ssl.ca.location\" = {:?}\n",
            ca.ca_pem.display().to_string()
        ),
    );
    copies_once(
        &stack,
        &tls_config,
        tls_bucket,
        &topic,
        &produced,
        &password,
    );
}
