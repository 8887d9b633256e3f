//! The connector against a broker that requires SASL authentication (issue 14): tansu 0.6.0
//! with `--authentication` and a user created with `tansu user create`, which stores SCRAM
//! credentials; of librdkafka's mechanisms it accepts SCRAM-SHA-512 (PLAIN and SCRAM-SHA-256
//! get "no shared mechanism": tests/README.md, "Broker quirks"). The user is created, and the
//! records produced, before the broker restarts with authentication (sqlite storage keeps
//! them): the test support's own clients do not authenticate.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use support::{unique, Stack, TestRecord};

const USER: &str = "sink-user";

fn with_sasl(config: &Path, password: &str) {
    let text = std::fs::read_to_string(config).unwrap().replace(
        "[source.properties]\n",
        &format!(
            "[source.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"{USER}\"\n\"sasl.password\" = \"{password}\"\n"
        ),
    );
    std::fs::write(config, text).unwrap();
}

#[test]
fn sasl_scram_copies_the_topic_and_a_wrong_password_is_a_clear_error_that_prints_no_secret() {
    let mut stack = Stack::start_sqlite();
    let (topic, bucket) = (unique("sasl"), "sasl-bucket");
    let password = format!("pw-{}", unique("scram"));
    stack.create_topic(&topic, 2);
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
    let produced = stack.produce_one_per_batch(&topic, &records);
    stack.create_user(USER, &password);
    stack.stop_broker();
    stack.authentication = true;
    stack.start_broker();

    // The right password: every record lands once.
    let name = unique("sasl");
    let config = stack.config(
        &name,
        &topic,
        bucket,
        "max_records = 10\nmax_interval_ms = 300",
        "",
    );
    with_sasl(&config, &password);
    let mut connector = stack.connector(&config, None);
    let objects = stack.wait_for_records(
        bucket,
        &format!("e2e/{topic}/"),
        produced.len(),
        Duration::from_secs(60),
    );
    connector.stop();
    support::exactly_once::assert_bucket_once(&objects, &topic, &produced, &BTreeSet::new());
    let logs = connector.logs();
    assert!(!logs.contains(&password), "the SASL password is in the log");

    // A wrong password: a clear error naming the brokers, no secret anywhere, and the process
    // does not start the pipeline.
    let wrong = format!("wrong-{}", unique("pw"));
    let bad_config = stack.config(&unique("sasl-bad"), &topic, bucket, "", "");
    with_sasl(&bad_config, &wrong);
    let mut bad = stack.connector(&bad_config, None);
    let status = bad.wait_exit(Duration::from_secs(90));
    let logs = bad.logs();
    assert!(!status.success(), "started with a wrong password:\n{logs}");
    assert!(
        logs.contains("KAFKA_UNAVAILABLE")
            && logs.contains("check `sasl.username` and `sasl.password`"),
        "the error does not say authentication failed:\n{logs}"
    );
    assert!(
        !logs.contains(&wrong) && !logs.contains(&password),
        "a password is in the log:\n{logs}"
    );
}
