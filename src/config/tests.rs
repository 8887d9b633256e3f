use std::time::Duration;

use actors::settings::{ChecksumMode, CreateMode, FailurePolicy, RollPolicy, StartOffset};

use super::*;

const MINIMAL: &str = r#"
name = "orders-to-oss"

[source]
bootstrap_servers = "kafka-1:9092,kafka-2:9092"
topic = "orders"

[sink]
bucket = "my-bucket"
"#;

fn errors_of(text: &str) -> Vec<ConfigError> {
    match parse_config(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(ConfigErrors(errors)) => errors,
    }
}

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn credentials() -> CredentialSource {
    credentials_from_env(env(&[
        ("OSS_ACCESS_KEY_ID", "LTAI-id-value"),
        ("OSS_ACCESS_KEY_SECRET", "very-secret-value"),
        ("OSS_SESSION_TOKEN", "sts-token-value"),
    ]))
    .unwrap()
    .into()
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let config = parse_config(MINIMAL).unwrap();
    assert_eq!(config.name(), "orders-to-oss");
    assert_eq!(config.group_id(), "connect-orders-to-oss");

    let settings = config.into_settings(credentials());
    assert_eq!(settings.connector_name, "orders-to-oss");
    assert_eq!(settings.drain_timeout, Duration::from_secs(30));

    let source = &settings.source;
    assert_eq!(source.bootstrap_servers, "kafka-1:9092,kafka-2:9092");
    assert_eq!(source.topic, "orders");
    assert_eq!(source.group_id, "connect-orders-to-oss");
    assert_eq!(source.start_offset, StartOffset::Latest);
    assert_eq!(source.concurrency, 6);
    assert!(source.client_properties.0.is_empty());

    let sink = &settings.sink;
    assert_eq!(sink.bucket, "my-bucket");
    assert_eq!(sink.endpoint, None);
    assert_eq!(sink.region, "us-east-1");
    assert_eq!(sink.key_prefix, "");
    assert!(!sink.path_style, "virtual_hosted by default");
    assert_eq!(sink.part_size, 16 * 1024 * 1024);
    assert_eq!(sink.checksum, ChecksumMode::WhenRequired);
    assert!(sink.sign_payload);
    assert_eq!(sink.upload_concurrency, 4);
    assert_eq!(sink.request_timeout, Duration::from_secs(30));
    assert_eq!(sink.retry_initial_backoff, Duration::from_millis(200));
    assert_eq!(sink.retry_max_backoff, Duration::from_secs(30));

    assert_eq!(
        settings.batching,
        RollPolicy {
            max_records: 10_000,
            max_bytes: 16 * 1024 * 1024,
            max_interval: Duration::from_secs(10),
            seal_when_caught_up: true,
        }
    );
}

#[test]
fn explicit_values_are_mapped_into_settings() {
    let text = r#"
name = "n1"
drain_timeout_ms = 5000
[source]
bootstrap_servers = " a:1 , b:2 "
topic = "t.1"
start_offset = "earliest"
concurrency = 12
group_id = "my-group"
[source.properties]
"fetch.wait.max.ms" = 10
"enable.idempotence" = true
client.id = "x"
[sink]
bucket = "b.u-c_k"
endpoint = "https://s3.oss-cn-hangzhou.aliyuncs.com"
region = "oss-cn-hangzhou"
key_prefix = "kafka/raw/"
addressing = "path"
part_size_bytes = 5242880
checksum = "when_supported"
sign_payload = false
upload_concurrency = 8
request_timeout_ms = 1000
retry_initial_backoff_ms = 10
retry_max_backoff_ms = 10
[batching]
max_records = 1
max_bytes = 1024
max_interval_ms = 100
seal_when_caught_up = false
"#;
    let config = parse_config(text).unwrap();
    assert_eq!(config.group_id(), "my-group");
    let s = config.into_settings(credentials());
    assert_eq!(s.drain_timeout, Duration::from_secs(5));
    assert_eq!(s.source.bootstrap_servers, "a:1,b:2");
    assert_eq!(s.source.start_offset, StartOffset::Earliest);
    assert_eq!(s.source.concurrency, 12);
    let props: Vec<(&str, &str)> = s
        .source
        .client_properties
        .0
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        props,
        [
            ("client.id", "x"),
            ("enable.idempotence", "true"),
            ("fetch.wait.max.ms", "10")
        ]
    );
    assert_eq!(
        s.sink.endpoint.as_deref(),
        Some("https://s3.oss-cn-hangzhou.aliyuncs.com")
    );
    assert_eq!(s.sink.region, "oss-cn-hangzhou");
    assert_eq!(s.sink.key_prefix, "kafka/raw/");
    assert!(s.sink.path_style);
    assert_eq!(s.sink.part_size, 5 * 1024 * 1024);
    assert_eq!(s.sink.checksum, ChecksumMode::WhenSupported);
    assert!(!s.sink.sign_payload);
    assert_eq!(s.sink.upload_concurrency, 8);
    assert_eq!(s.sink.request_timeout, Duration::from_secs(1));
    assert_eq!(s.sink.retry_max_backoff, Duration::from_millis(10));
    assert_eq!(s.batching.max_records, 1);
    assert_eq!(s.batching.max_bytes, 1024);
    assert_eq!(s.batching.max_interval, Duration::from_millis(100));
    assert!(!s.batching.seal_when_caught_up);
    let CredentialSource::Static(pair) = &s.sink.credentials else {
        panic!("{:?}", s.sink.credentials);
    };
    assert_eq!(pair.access_key_secret.expose(), "very-secret-value");
}

#[test]
fn failure_and_resources_default_to_the_product_page() {
    let settings = parse_config(MINIMAL).unwrap().into_settings(credentials());
    assert_eq!(settings.failure.policy, FailurePolicy::Log);
    assert_eq!(settings.failure.max_value_bytes, None);
    assert_eq!(settings.sink.max_upload_attempts, Some(10));
    let r = &settings.resources;
    assert_eq!(r.create, CreateMode::Automatic);
    assert_eq!(r.offset_topic, "connect-offset-orders-to-oss");
    assert_eq!(r.config_topic, "connect-config-orders-to-oss");
    assert_eq!(r.status_topic, "connect-status-orders-to-oss");
    assert_eq!(r.abnormal_topic, "connect-error-orders-to-oss");
    assert_eq!(r.dead_letter_topic, "connect-error-orders-to-oss");
    assert_eq!(
        (
            r.offset_topic_partitions,
            r.status_topic_partitions,
            r.error_topic_partitions
        ),
        (12, 6, 6)
    );
    assert_eq!(r.replication_factor, -1);
    assert!(settings.redacted_config.contains("[resources]"));
}

#[test]
fn failure_and_resources_values_are_mapped() {
    let text = format!(
        "{MINIMAL}max_upload_attempts = 0\n\n[failure]\npolicy = \"fail\"\nmax_value_bytes = 1000\n\n\
         [resources]\ncreate = \"manual\"\ndead_letter_topic = \"dlq\"\nreplication_factor = 3\n"
    );
    let settings = parse_config(&text).unwrap().into_settings(credentials());
    assert_eq!(settings.failure.policy, FailurePolicy::Fail);
    assert_eq!(settings.failure.max_value_bytes, Some(1000));
    assert_eq!(settings.sink.max_upload_attempts, None, "0 means unlimited");
    assert_eq!(settings.resources.create, CreateMode::Manual);
    assert_eq!(settings.resources.dead_letter_topic, "dlq");
    assert_eq!(
        settings.resources.abnormal_topic,
        "connect-error-orders-to-oss"
    );
    assert_eq!(settings.resources.replication_factor, 3);
}

#[test]
fn load_config_names_an_unreadable_path() {
    let path = Path::new("/nonexistent/dir/connector.toml");
    let errors = load_config(path).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert!(errors
        .to_string()
        .contains("/nonexistent/dir/connector.toml"));
}

#[test]
fn debug_output_never_contains_secrets() {
    let config = parse_config(MINIMAL)
        .unwrap()
        .with_kafka_secrets(|name| {
            (name == "KAFKA_SASL_PASSWORD").then(|| "kafka-pass-value".into())
        })
        .unwrap();
    let config_debug = format!("{config:?}");
    assert!(!config_debug.contains("kafka-pass-value"), "{config_debug}");
    assert!(config_debug.contains("sasl.password"));

    let credentials = credentials();
    let credentials_debug = format!("{credentials:?}");
    let settings_debug = format!("{:?}", config.into_settings(credentials));
    for debug in [credentials_debug, settings_debug] {
        for secret in [
            "LTAI-id-value",
            "very-secret-value",
            "sts-token-value",
            "kafka-pass-value",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }
}

#[test]
fn admin_section_defaults_and_disabling() {
    let minimal = parse_config(MINIMAL).unwrap();
    assert_eq!(
        minimal.admin_address(),
        Some("127.0.0.1:9464".parse().unwrap())
    );
    let base = MINIMAL;
    assert_eq!(minimal.admin_token_file(), None);
    let config = parse_config(&format!(
        "{base}\n[admin]\naddress = \"0.0.0.0:19464\"\ntoken_file = \"/run/t\"\n"
    ))
    .unwrap();
    assert_eq!(
        config.admin_address(),
        Some("0.0.0.0:19464".parse().unwrap())
    );
    assert_eq!(config.admin_token_file(), Some("/run/t".into()));
    // A non-loopback address without a token would open pause and resume to the network.
    for address in ["0.0.0.0:19464", "[::]:9464", "10.1.2.3:9464"] {
        let errors =
            parse_config(&format!("{base}\n[admin]\naddress = \"{address}\"\n")).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert!(
            errors
                .to_string()
                .contains("`admin.token_file`: must be set"),
            "{errors}"
        );
    }
    // Loopback (v4 and v6) stays open without a token; a disabled server needs none.
    for admin in [
        "address = \"[::1]:9464\"",
        "enabled = false\naddress = \"0.0.0.0:1\"",
    ] {
        parse_config(&format!("{base}\n[admin]\n{admin}\n")).unwrap();
    }
    let config = parse_config(&format!("{base}\n[admin]\nenabled = false\n")).unwrap();
    assert_eq!(config.admin_address(), None);
    // The redacted rendering carries the section and parses back to the same address.
    let shown = config.to_redacted_toml();
    assert!(
        shown.contains("[admin]\nenabled = false\naddress = \"127.0.0.1:9464\""),
        "{shown}"
    );
    assert_eq!(parse_config(&shown).unwrap().admin_address(), None);
}

#[test]
fn shipped_config_files_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(errors) = load_config(&path) {
                panic!("{}:\n{errors}", path.display());
            }
            checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    checked.sort();
    assert!(
        checked.iter().any(|f| f == "connector.toml")
            && checked.iter().any(|f| f == "quickstart.toml"),
        "{checked:?}"
    );
}

#[test]
fn quickstart_config_matches_the_local_stack() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/quickstart.toml");
    let s = load_config(&path).unwrap().into_settings(credentials());
    assert_eq!(s.connector_name, "quickstart");
    assert_eq!(s.source.bootstrap_servers, "127.0.0.1:19092");
    assert_eq!(s.source.topic, "oss-test-input");
    assert_eq!(s.source.start_offset, StartOffset::Earliest);
    assert_eq!(s.source.concurrency, 2);
    assert_eq!(
        s.source
            .client_properties
            .0
            .get("fetch.wait.max.ms")
            .map(String::as_str),
        Some("10")
    );
    assert_eq!(s.sink.bucket, "quickstart-bucket");
    assert_eq!(s.sink.endpoint.as_deref(), Some("http://127.0.0.1:19000"));
    assert_eq!(s.sink.key_prefix, "kafka/");
    assert!(s.sink.path_style);
    assert_eq!(s.batching.max_interval, Duration::from_secs(1));
    let admin = load_config(&path).unwrap().admin_address();
    assert_eq!(admin, Some("127.0.0.1:19464".parse().unwrap()));
}

#[test]
fn redacted_toml_round_trips_and_hides_secret_properties() {
    let text = r#"
name = "rt"
[source]
bootstrap_servers = "k:9092"
topic = "t"
group_id = "weird \"group\" \\ name"
[source.properties]
"ssl.key.location" = "/etc/kafka/ssl-key-path-value"
"sasl.kerberos.keytab" = "/etc/kafka/keytab-path-value"
"sasl.oauthbearer.token.endpoint.url" = "https://sts.example/oauth-token-value"
"security.protocol" = "SASL_SSL"
"fetch.wait.max.ms" = 10
[sink]
bucket = "bkt"
endpoint = "http://127.0.0.1:19000"
key_prefix = "a/b/"
addressing = "path"
retry_initial_backoff_ms = 50
[batching]
max_interval_ms = 1000
"#;
    let config = parse_config(text)
        .unwrap()
        .with_kafka_secrets(|name| {
            (name == "KAFKA_SASL_PASSWORD").then(|| "kafka-pass-value".into())
        })
        .unwrap();
    let rendered = config.to_redacted_toml();
    for secret in [
        "kafka-pass-value",
        "ssl-key-path-value",
        "keytab-path-value",
        "oauth-token-value",
    ] {
        assert!(!rendered.contains(secret), "{rendered}");
    }
    assert!(!rendered.contains("\"sasl.password\""), "{rendered}");
    assert!(
        rendered.contains("\"ssl.key.location\" = \"***\""),
        "{rendered}"
    );
    assert!(
        rendered.contains("\"security.protocol\" = \"SASL_SSL\""),
        "{rendered}"
    );

    let reparsed = parse_config(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(reparsed.to_redacted_toml(), rendered, "stable");
    let (a, b) = (
        config.into_settings(credentials()),
        reparsed.into_settings(credentials()),
    );
    assert_eq!(
        format!("{a:?}").replace("\"sasl.password\", ", ""),
        format!("{b:?}"),
        "same settings apart from redacted values and the secret from the environment"
    );
    assert_eq!(
        a.source.client_properties.0["sasl.password"],
        "kafka-pass-value"
    );
    assert_eq!(b.source.client_properties.0["ssl.key.location"], "***");
    assert_eq!(b.source.group_id, "weird \"group\" \\ name");

    // Without an endpoint and properties, too.
    let minimal = parse_config(MINIMAL).unwrap();
    let rendered = minimal.to_redacted_toml();
    let reparsed = parse_config(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(reparsed.to_redacted_toml(), rendered);
    assert!(reparsed
        .into_settings(credentials())
        .sink
        .endpoint
        .is_none());
}

#[test]
fn every_problem_in_a_file_is_reported_at_once() {
    let text = r#"
name = "n"
[source]
bootstrap_servers = "k:9092"
topic = "t"
start_offset = "newest"
concurrency = 100
[sink]
bukcet = "my-bucket"
"#;
    let errors = errors_of(text);
    let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "`source.start_offset`: must be one of \"latest\", \"earliest\", got \"newest\"",
            "`source.concurrency`: must be an integer from 1 to 64, got 100",
            "`sink.bucket`: required key is missing",
            "`sink.bukcet`: unknown key; did you mean `sink.bucket`?",
        ]
    );
    let all = ConfigErrors(errors).to_string();
    assert_eq!(all.lines().count(), 4, "one error per line:\n{all}");
}

#[test]
fn key_templates_are_checked_with_the_key_at_fault_named() {
    let with = |lines: &str| format!("{MINIMAL}{lines}\n");
    let settings = parse_config(&with(
        "key_template = \"{topic}/{yyyy}/{HH}/{partition}/{first}-{last}{ext}\"\nkey_time_zone = \"+08:00\"",
    ))
    .unwrap()
    .into_settings(credentials());
    let template = settings.sink.key_template;
    assert!(template.is_partitioned());
    let parts = template.parts(0, None, None);
    assert_eq!(
        template.render("", "t", 1, 0, 0, Some(&parts)),
        "t/1970/08/1/00000000000000000000-00000000000000000000.json"
    );
    for (lines, key, words) in [
        ("key_template = \"{topic}/{partition}/{first}{ext}\"", "sink.key_template", "{last}"),
        ("key_template = \"{topic}/{partition}/{first}-{last}{hour}\"", "sink.key_template", "unknown variable {hour}"),
        ("key_template = \"{topic}/{field}/{partition}/{first}-{last}\"", "sink.key_template", "key_field"),
        ("key_field = \"value.region\"", "sink.key_field", "{field}"),
        ("key_time_zone = \"America/New_York\"", "sink.key_time_zone", "+08:00"),
        (
            &format!("key_prefix = \"{}/\"\nkey_template = \"{{topic}}/{}/{{partition}}/{{first}}-{{last}}\"", "p".repeat(400), "x".repeat(360)),
            "sink.key_template",
            "1023",
        ),
    ] {
        let errors = errors_of(&with(lines));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, key, "{errors:?}");
        assert!(errors[0].message.contains(words), "{errors:?}");
    }
}

#[test]
fn the_memory_budget_holds_four_parts_where_objects_stream_and_four_objects_otherwise() {
    let config = |format: &str, object: usize, budget: usize| {
        format!(
            "{MINIMAL}part_size_bytes = {}\n\n[batching]\nmax_bytes = {object}\n\n\
             [format]\ntype = \"{format}\"\n\n[memory]\nmax_bytes = {budget}\n",
            5 << 20
        )
    };
    // JSON objects of 64 MiB stream out in parts of 5 MiB: four parts are enough.
    parse_config(&config("json_array", 64 << 20, 20 << 20)).unwrap();
    parse_config(&config("jsonl", 64 << 20, 20 << 20)).unwrap();
    let errors = errors_of(&config("jsonl", 64 << 20, (20 << 20) - 1));
    let message = errors[0].to_string();
    assert!(
        message.contains("memory.max_bytes") && message.contains("x `sink.part_size_bytes`"),
        "{message}"
    );
    // Objects of fewer than four parts are uploaded whole: four of the larger of object and part.
    parse_config(&config("json_array", 15 << 20, 60 << 20)).unwrap();
    let errors = errors_of(&config("json_array", 15 << 20, 59 << 20));
    assert!(
        errors[0].to_string().contains("x `batching.max_bytes`"),
        "{}",
        errors[0]
    );
    let errors = errors_of(&config("json_array", 4 << 20, 16 << 20));
    assert!(
        errors[0].to_string().contains("x `sink.part_size_bytes`"),
        "{}",
        errors[0]
    );
    // Parquet is uploaded whole: four objects.
    let errors = errors_of(&config("parquet", 64 << 20, 128 << 20));
    let message = errors[0].to_string();
    assert!(message.contains("x `batching.max_bytes`"), "{message}");
    parse_config(&config("parquet", 64 << 20, 256 << 20)).unwrap();
}
