//! The mapping's rules, on small configs. The documented Confluent examples, through the binary
//! and `check`, are in `tests/import_connect.rs`.

use super::layout::joda_to_template;
use super::{import, Imported};
use crate::config::{accepts_key, parse_config};

fn run(json: &str) -> Imported {
    import(json, &accepts_key).expect("imports")
}

/// The output as TOML, with the keys this version does not accept yet left as comments.
fn table(imported: &Imported) -> toml::Table {
    imported.toml.parse().expect("the output is TOML")
}

const MINIMAL: &str = r#"{"name": "s3", "config": {
    "connector.class": "io.confluent.connect.s3.S3SinkConnector",
    "topics": "t", "s3.bucket.name": "bucket-a", "flush.size": "100",
    "format.class": "io.confluent.connect.s3.format.json.JsonFormat"}}"#;

#[test]
fn both_json_shapes_give_the_same_config() {
    let wrapped = run(MINIMAL);
    let bare = run(r#"{"name": "s3",
        "connector.class": "io.confluent.connect.s3.S3SinkConnector",
        "topics": "t", "s3.bucket.name": "bucket-a", "flush.size": 100,
        "format.class": "io.confluent.connect.s3.format.json.JsonFormat"}"#);
    assert_eq!(wrapped.toml, bare.toml);
    parse_config(&wrapped.toml).expect("the output is a valid config");
}

#[test]
fn confluent_defaults_are_written_out() {
    let imported = run(MINIMAL);
    let config = table(&imported);
    assert_eq!(config["name"].as_str(), Some("s3"));
    assert_eq!(config["source"]["group_id"].as_str(), Some("connect-s3"));
    assert_eq!(config["source"]["start_offset"].as_str(), Some("earliest"));
    assert_eq!(config["sink"]["region"].as_str(), Some("us-west-2"));
    assert_eq!(config["sink"]["key_prefix"].as_str(), Some("topics/"));
    assert_eq!(config["sink"]["addressing"].as_str(), Some("path"));
    assert_eq!(config["batching"]["max_records"].as_integer(), Some(100));
    assert_eq!(config["failure"]["policy"].as_str(), Some("fail"));
    assert!(imported.unmapped.is_empty(), "{:?}", imported.unmapped);
}

#[test]
fn oss_endpoints_get_virtual_hosted_style_and_their_region() {
    for (url, region) in [
        ("https://s3.oss-cn-beijing.aliyuncs.com", "oss-cn-beijing"),
        (
            "oss-ap-southeast-1-internal.aliyuncs.com",
            "oss-ap-southeast-1",
        ),
    ] {
        let json = MINIMAL.replace(
            "\"topics\"",
            &format!(
                "\"store.url\": \"{url}\", \"s3.path.style.access.enabled\": \"true\", \"topics\""
            ),
        );
        let imported = run(&json);
        let config = table(&imported);
        assert_eq!(
            config["sink"]["addressing"].as_str(),
            Some("virtual_hosted")
        );
        assert_eq!(config["sink"]["region"].as_str(), Some(region));
        assert!(config["sink"]["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://"));
        assert!(
            imported.toml.contains("(SecondLevelDomainForbidden)"),
            "{}",
            imported.toml
        );
        parse_config(&imported.toml).expect("valid");
    }
}

#[test]
fn keys_the_config_lacks_are_comments_until_it_has_them() {
    let json = MINIMAL.replace(
        "\"topics\"",
        "\"s3.compression.type\": \"gzip\", \"topics\"",
    );
    let without = import(&json, &|path: &str| !path.starts_with("format.")).unwrap();
    assert!(without.toml.contains("# [format]"), "{}", without.toml);
    assert!(
        without.toml.contains("# type = \"jsonl\""),
        "{}",
        without.toml
    );
    assert_eq!(without.pending, ["format.type", "format.compression"]);
    parse_config(&without.toml).expect("valid without the format keys");

    let with = import(&json, &|_: &str| true).unwrap();
    assert!(with.pending.is_empty());
    let config = table(&with);
    assert_eq!(config["format"]["type"].as_str(), Some("jsonl"));
    assert_eq!(config["format"]["compression"].as_str(), Some("gzip"));
}

#[test]
fn names_are_made_valid_and_the_group_stays_connects() {
    let json = MINIMAL.replace("\"name\": \"s3\"", "\"name\": \"My S3 Sink__v2\"");
    let config = table(&run(&json));
    assert_eq!(config["name"].as_str(), Some("my-s3-sink-v2"));
    assert_eq!(
        config["source"]["group_id"].as_str(),
        Some("connect-My S3 Sink__v2")
    );
}

#[test]
fn consumer_overrides_become_connector_keys_or_librdkafka_properties() {
    let json = MINIMAL.replace(
        "\"topics\"",
        r#""consumer.override.group.id": "legacy-group",
           "consumer.override.auto.offset.reset": "latest",
           "consumer.override.partition.assignment.strategy": "org.apache.kafka.clients.consumer.RangeAssignor",
           "consumer.override.session.timeout.ms": "45000",
           "consumer.override.receive.buffer.bytes": "65536",
           "consumer.override.max.poll.records": "10",
           "consumer.override.ssl.key.password": "key-password-XYZ",
           "topics""#,
    );
    let imported = run(&json);
    let config = table(&imported);
    assert_eq!(config["source"]["group_id"].as_str(), Some("legacy-group"));
    assert_eq!(config["source"]["start_offset"].as_str(), Some("latest"));
    assert_eq!(
        config["source"]["assignment_strategy"].as_str(),
        Some("range")
    );
    let properties = &config["source"]["properties"];
    assert_eq!(properties["session.timeout.ms"].as_str(), Some("45000"));
    assert_eq!(
        properties["socket.receive.buffer.bytes"].as_str(),
        Some("65536")
    );
    let unmapped: Vec<&str> = imported.unmapped.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        unmapped,
        [
            "consumer.override.max.poll.records",
            "consumer.override.ssl.key.password"
        ]
    );
    assert!(!imported.toml.contains("key-password-XYZ"));
    parse_config(&imported.toml).expect("valid");
}

#[test]
fn a_short_poll_interval_shortens_the_drain() {
    let json = MINIMAL.replace(
        "\"topics\"",
        r#""consumer.override.max.poll.interval.ms": "60000", "topics""#,
    );
    let imported = run(&json);
    assert_eq!(
        table(&imported)["drain_timeout_ms"].as_integer(),
        Some(20_000)
    );
    parse_config(&imported.toml).expect("valid");
}

#[test]
fn several_topics_map_the_first_and_say_so() {
    let imported = run(&MINIMAL.replace("\"topics\": \"t\"", "\"topics\": \"a, b,c\""));
    assert_eq!(table(&imported)["source"]["topic"].as_str(), Some("a"));
    assert_eq!(imported.unmapped[0].0, "topics");
    assert!(
        imported.toml.contains("for each of b, c"),
        "{}",
        imported.toml
    );
}

#[test]
fn intervals_take_the_shorter_rotation() {
    let json = MINIMAL.replace(
        "\"topics\"",
        r#""rotate.interval.ms": "900000", "rotate.schedule.interval.ms": "300000", "topics""#,
    );
    let config = table(&run(&json));
    assert_eq!(
        config["batching"]["max_interval_ms"].as_integer(),
        Some(300_000)
    );
}

#[test]
fn joda_patterns_become_template_fields() {
    assert_eq!(
        joda_to_template("'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH").unwrap(),
        "year={yyyy}/month={MM}/day={dd}/hour={HH}"
    );
    assert_eq!(
        joda_to_template("yyyy-MM-dd/HH-mm").unwrap(),
        "{yyyy}-{MM}-{dd}/{HH}-{mm}"
    );
    assert_eq!(joda_to_template("YYYY/ww").unwrap_err(), "ww");
}

#[test]
fn what_is_not_a_sink_config_is_an_error() {
    for (json, wanted) in [
        ("[1]", "expected a JSON object"),
        ("{", "not a JSON document"),
        (r#"{"topics": "t"}"#, "s3.bucket.name"),
        (r#"{"s3.bucket.name": "b"}"#, "topics"),
        (r#"{"topics": {"a": 1}}"#, "expected a string"),
    ] {
        let error = import(json, &accepts_key).unwrap_err();
        assert!(error.contains(wanted), "{json}: {error}");
    }
}
