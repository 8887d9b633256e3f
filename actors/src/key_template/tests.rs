use super::time::days_from_civil;
use super::*;

const HOURLY: &str =
    "{prefix}{topic}/dt={yyyy}-{MM}-{dd}/hour={HH}/{partition}/{first}-{last}{ext}";

fn template(text: &str) -> KeyTemplate {
    KeyTemplate::parse(text, "UTC", None, "none").unwrap()
}

fn with_field(text: &str, field: &str) -> KeyTemplate {
    KeyTemplate::parse(text, "UTC", Some(field), "none").unwrap()
}

fn key_at(t: &KeyTemplate, timestamp: i64) -> String {
    let parts = t.parts(timestamp, None, None);
    t.render("p/", "orders", 3, 10, 19, Some(&parts))
}

#[test]
fn the_default_template_is_todays_layout() {
    for text in [
        DEFAULT_TEMPLATE,
        "{prefix}{topic}/{partition}/{first}-{last}{ext}",
    ] {
        let t = template(text);
        assert!(!t.is_partitioned());
        let key = t.render("kafka/", "orders", 3, 42, 99, None);
        assert_eq!(key, object_key("kafka/", "orders", 3, 42, 99));
        assert_eq!(
            t.parse_key("kafka/", "orders", None, &key),
            Some((3, 42, 99))
        );
        assert_eq!(t.parse_key("kafka/", "orders", Some(4), &key), None);
        assert_eq!(t.listing_prefix("kafka/", "orders", 3), "kafka/orders/3/");
        assert!(t.lists_folder());
        assert_eq!(
            t.start_after("kafka/", "orders", 3, 10).as_deref(),
            Some(crate::object_key::list_start_after("kafka/", "orders", 3, 10).as_str())
        );
    }
    assert_eq!(KeyTemplate::default(), template(DEFAULT_TEMPLATE));
}

#[test]
fn a_non_default_template_renders_the_default_layout_the_same_way() {
    // Same layout spelled by the generic renderer: byte for byte what object_key writes.
    let generic = template("{topic}/{partition}/{first}-{last}.json");
    assert_eq!(
        generic.render("k/", "t", 7, 0, 5, None),
        object_key("k/", "t", 7, 0, 5)
    );
}

#[test]
fn time_parts_come_from_the_record_timestamp() {
    let t = template(HOURLY);
    assert!(t.is_partitioned());
    // 2024-02-29T13:45:10.123Z
    let ts = 1_709_214_310_123;
    assert_eq!(
        key_at(&t, ts),
        "p/orders/dt=2024-02-29/hour=13/3/00000000000000000010-00000000000000000019.json"
    );
    let key = key_at(&t, ts);
    assert_eq!(
        t.parse_key("p/", "orders", Some(3), &key),
        Some((3, 10, 19))
    );
    assert_eq!(t.parse_key("p/", "orders", None, &key), Some((3, 10, 19)));
    assert_eq!(t.parse_key("p/", "orders", Some(30), &key), None);
    assert_eq!(t.parse_key("p/", "other", None, &key), None);
    // Same hour, same parts; the next hour, other parts.
    assert_eq!(
        t.parts(ts, None, None),
        t.parts(ts - 45 * 60_000, None, None)
    );
    assert_ne!(
        t.parts(ts, None, None),
        t.parts(ts + 15 * 60_000, None, None)
    );
    // Minutes.
    let minutes = template("{topic}/{yyyy}{MM}{dd}{HH}{mm}/{partition}/{first}-{last}{ext}");
    assert!(key_at(&minutes, ts).starts_with("p/orders/202402291345/3/"));
}

#[test]
fn timestamps_at_the_edges_e7_e9() {
    let t = template(HOURLY);
    // -1 (no timestamp) and 1970 land in the epoch's hour; 9999's last millisecond in its own.
    assert!(key_at(&t, -1).starts_with("p/orders/dt=1970-01-01/hour=00/3/"));
    assert!(key_at(&t, 0).starts_with("p/orders/dt=1970-01-01/hour=00/3/"));
    assert!(key_at(&t, i64::MIN).starts_with("p/orders/dt=1970-01-01/hour=00/3/"));
    assert!(key_at(&t, MAX_TIMESTAMP_MS).starts_with("p/orders/dt=9999-12-31/hour=23/3/"));
    assert!(key_at(&t, i64::MAX).starts_with("p/orders/dt=9999-12-31/hour=23/3/"));
    // In a time zone: local time, still within the 4-digit years.
    let east = KeyTemplate::parse(HOURLY, "+08:00", None, "x").unwrap();
    assert_eq!(
        KeyTemplate::parse(HOURLY, "Asia/Shanghai", None, "x")
            .unwrap()
            .zone_offset_ms,
        8 * HOUR_MS
    );
    assert!(key_at(&east, 0).starts_with("p/orders/dt=1970-01-01/hour=08/"));
    assert!(key_at(&east, MAX_TIMESTAMP_MS).starts_with("p/orders/dt=9999-12-31/hour=23/"));
    let west = KeyTemplate::parse(HOURLY, "-05:30", None, "x").unwrap();
    assert!(key_at(&west, -1).starts_with("p/orders/dt=1970-01-01/hour=00/"));
    assert!(key_at(&west, 1_709_214_310_123).starts_with("p/orders/dt=2024-02-29/hour=08/"));
    for ts in [-1, 0, MAX_TIMESTAMP_MS] {
        let key = key_at(&east, ts);
        assert_eq!(
            east.parse_key("p/", "orders", Some(3), &key),
            Some((3, 10, 19))
        );
    }
    // Months and years bucket by the calendar.
    let monthly = template("{topic}/{yyyy}/{MM}/{partition}/{first}-{last}{ext}");
    let jan31 = 1_706_659_200_000; // 2024-01-31T00:00Z
    assert_ne!(
        monthly.parts(jan31, None, None),
        monthly.parts(jan31 + DAY_MS, None, None)
    );
    assert_eq!(
        monthly.parts(jan31, None, None),
        monthly.parts(jan31 - 20 * DAY_MS, None, None)
    );
    assert!(key_at(&monthly, jan31 + DAY_MS).starts_with("p/orders/2024/02/3/"));
}

#[test]
fn civil_dates_round_trip() {
    for days in [0, 59, 365, 11_016, 19_782, 2_932_896] {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
    }
    assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
}

#[test]
fn hostile_field_values_stay_confined() {
    let t = KeyTemplate::parse(
        "{prefix}{topic}/region={field}/{partition}/{first}-{last}{ext}",
        "UTC",
        Some("value.region"),
        "unknown",
    )
    .unwrap();
    let long = "x".repeat(10_000);
    let long_escapes = "/".repeat(500);
    let hostile = [
        "..",
        ".",
        "../../../etc/passwd",
        "/absolute",
        "a\\b",
        "nul\0byte",
        "bell\u{7}",
        "line\nbreak",
        "%2e%2e",
        "~0123456789abcdef",
        "...",
        "a..b",
        long.as_str(),
        long_escapes.as_str(),
        "区域/上海",
    ];
    let mut seen = std::collections::HashSet::new();
    for raw in hostile {
        let value = serde_json::json!({ "region": raw }).to_string();
        let parts = t.parts(0, None, Some(value.as_bytes()));
        let key = t.render("base/", "orders", 1, 0, 9, Some(&parts));
        assert!(key.starts_with("base/orders/region="), "{key}");
        assert_eq!(
            key.matches('/').count(),
            4,
            "{raw:?} added a segment: {key}"
        );
        assert!(!key.split('/').any(|s| s == ".." || s == "."), "{key}");
        assert!(!key.contains(".."), "{key}");
        assert!(
            !key.contains('\\') && !key.chars().any(char::is_control),
            "{key:?}"
        );
        assert!(key.len() <= MAX_KEY_BYTES);
        let segment = key.split('/').nth(2).unwrap();
        assert!(
            segment.len() <= "region=".len() + MAX_PART_BYTES,
            "{segment}"
        );
        assert_eq!(
            t.parse_key("base/", "orders", Some(1), &key),
            Some((1, 0, 9)),
            "{key}"
        );
        assert!(seen.insert(segment.to_owned()), "{raw:?} collides");
    }
    // Cut and hashed: distinct long values stay apart, and the cut never splits an escape.
    let a = confine(&format!("{long}a"));
    let b = confine(&format!("{long}b"));
    assert_ne!(a, b);
    assert_eq!(a.len(), MAX_PART_BYTES);
    let escaped = confine(&long_escapes);
    assert!(escaped.len() <= MAX_PART_BYTES);
    let (head, _) = escaped.split_once('~').unwrap();
    assert!(head.len() % 3 == 0 && head.starts_with("%2F"), "{escaped}");
    // Missing, null, nested, not JSON, empty: the default.
    for value in [
        &b"{}"[..],
        br#"{"region":null}"#,
        br#"{"region":{"x":1}}"#,
        b"not json",
        br#"{"region":""}"#,
    ] {
        let parts = t.parts(0, None, Some(value));
        assert!(t
            .render("", "orders", 1, 0, 9, Some(&parts))
            .starts_with("orders/region=unknown/1/"));
    }
    let parts = t.parts(0, None, None);
    assert!(t
        .render("", "o", 1, 0, 9, Some(&parts))
        .contains("region=unknown/"));
    // Numbers and booleans as written.
    let parts = t.parts(0, None, Some(br#"{"region":42}"#));
    assert!(t
        .render("", "o", 1, 0, 9, Some(&parts))
        .contains("region=42/"));
}

#[test]
fn key_fields_and_nested_value_fields() {
    let t = with_field("{topic}/{field}/{partition}/{first}-{last}{ext}", "key");
    let parts = t.parts(0, Some(b"../user"), None);
    assert_eq!(
        t.render("", "t", 0, 1, 2, Some(&parts)),
        "t/%2E%2E%2Fuser/0/00000000000000000001-00000000000000000002.json"
    );
    let nested = with_field("{topic}/{field}-{partition}-{first}-{last}{ext}", "key.a.b");
    let parts = nested.parts(0, Some(br#"{"a":{"b":"x-1"}}"#), None);
    let key = nested.render("", "t", 12, 1, 2, Some(&parts));
    assert_eq!(
        key,
        "t/x-1-12-00000000000000000001-00000000000000000002.json"
    );
    // The field's '-' does not confuse the parser.
    assert_eq!(nested.parse_key("", "t", None, &key), Some((12, 1, 2)));
    assert_eq!(nested.parse_key("", "t", Some(12), &key), Some((12, 1, 2)));
}

#[test]
fn listing_covers_every_template() {
    // Time parts after the partition: the partition's folder, listed recursively.
    let t = template("{topic}/{partition}/{yyyy}/{first}-{last}{ext}");
    assert_eq!(t.listing_prefix("p/", "o", 2), "p/o/2/");
    assert!(!t.lists_folder());
    assert_eq!(t.start_after("p/", "o", 2, 5), None);
    // Time parts first: the topic's folder.
    let hourly = template(HOURLY);
    assert_eq!(hourly.listing_prefix("p/", "o", 2), "p/o/dt=");
    assert!(!hourly.lists_folder());
    // Partition inside a file name: a prefix of the name, still every object of it.
    let flat = template("{topic}/p{partition}-{first}-{last}{ext}");
    assert_eq!(flat.listing_prefix("p/", "o", 2), "p/o/p2-");
    assert!(!flat.lists_folder());
    assert!(flat.start_after("p/", "o", 2, 5).is_some());
    let key = flat.render("p/", "o", 2, 5, 6, None);
    assert!(key.starts_with(&flat.listing_prefix("p/", "o", 2)));
    assert_eq!(flat.parse_key("p/", "o", Some(2), &key), Some((2, 5, 6)));
    assert_eq!(flat.parse_key("p/", "o", Some(20), &key), None);
}

#[test]
fn other_keys_do_not_parse() {
    let t = template(HOURLY);
    let ours = key_at(&t, 0);
    for key in [
        ours.replace("hour=00", "hour=0"),
        ours.replace("/3/", "/03/"),
        ours.replace(".json", ".json.tmp"),
        format!("{ours}/x"),
        ours.replace("dt=", "backup/dt="),
        ours.replace(
            "00000000000000000010-00000000000000000019",
            "00000000000000000019-00000000000000000010",
        ),
    ] {
        assert_eq!(t.parse_key("p/", "orders", None, &key), None, "{key}");
    }
}

#[test]
fn invalid_templates_name_their_key() {
    let bad = |text: &str, zone: &str, field: Option<&str>| {
        KeyTemplate::parse(text, zone, field, "none").unwrap_err()
    };
    let cases = [
        (
            bad("{topic}/{partition}/{first}{ext}", "UTC", None),
            "key_template",
            "{last}",
        ),
        (
            bad("{topic}/{partition}/{last}{ext}", "UTC", None),
            "key_template",
            "{first}",
        ),
        (
            bad("{topic}/{first}-{last}", "UTC", None),
            "key_template",
            "{partition}",
        ),
        (
            bad("{topic}/{partition}/{first}-{last}-{first}", "UTC", None),
            "key_template",
            "exactly once",
        ),
        (
            bad("{topic}/{partition}/{first}-{last}{day}", "UTC", None),
            "key_template",
            "unknown variable {day}",
        ),
        (
            bad("{partition}/{topic}/{first}-{last}", "UTC", None),
            "key_template",
            "{topic}/",
        ),
        (
            bad("x/{topic}/{partition}/{first}-{last}", "UTC", None),
            "key_template",
            "{topic}/",
        ),
        (
            bad("{topic}/../{partition}/{first}-{last}", "UTC", None),
            "key_template",
            "..",
        ),
        (
            bad("{topic}//{partition}/{first}-{last}", "UTC", None),
            "key_template",
            "empty",
        ),
        (
            bad("{topic}/{partition}/{first}-{last}/", "UTC", None),
            "key_template",
            "empty",
        ),
        (
            bad("{topic}/{partition}\\{first}-{last}", "UTC", None),
            "key_template",
            "'\\'",
        ),
        (
            bad("{topic}/{partition}/{first}-{last", "UTC", None),
            "key_template",
            "'{'",
        ),
        (
            bad("{topic}/{partition}/{first}-{last}}", "UTC", None),
            "key_template",
            "'}'",
        ),
        (
            bad("{topic}/{field}/{partition}/{first}-{last}", "UTC", None),
            "key_template",
            "key_field",
        ),
        (
            bad(DEFAULT_TEMPLATE, "UTC", Some("value.x")),
            "key_field",
            "{field}",
        ),
        (
            bad(
                "{topic}/{field}/{partition}/{first}-{last}",
                "UTC",
                Some("body.x"),
            ),
            "key_field",
            "key.<name>",
        ),
        (
            bad(HOURLY, "Europe/Berlin", None),
            "key_time_zone",
            "+08:00",
        ),
        (bad(HOURLY, "+15:00", None), "key_time_zone", "UTC"),
    ];
    for (error, key, words) in cases {
        assert_eq!(error.key, key, "{error:?}");
        assert!(error.message.contains(words), "{error:?} lacks {words}");
    }
}

#[test]
fn the_worst_case_key_is_checked_at_config_time() {
    let t = template(HOURLY);
    assert!(t.check_length("").is_ok());
    assert!(t.check_length(&"p/".repeat(256)).is_ok());
    let long = format!(
        "{{topic}}/{}/{{partition}}/{{first}}-{{last}}{{ext}}",
        "x".repeat(800)
    );
    let error = template(&long).check_length("").unwrap_err();
    assert_eq!(error.key, "key_template");
    assert!(error.message.contains("1023"), "{}", error.message);
    // Whatever the values, a key that passes stays within the limit.
    let t = with_field(
        "{topic}/{field}/{field}/{partition}/{first}-{last}{ext}",
        "key",
    );
    let prefix = "p/".repeat(200);
    assert!(t.check_length(&prefix).is_ok());
    let parts = t.parts(0, Some("/".repeat(5000).as_bytes()), None);
    let key = t.render(
        &prefix,
        &"t".repeat(249),
        i32::MAX,
        i64::MAX,
        i64::MAX,
        Some(&parts),
    );
    assert!(key.len() <= MAX_KEY_BYTES, "{}", key.len());
}
