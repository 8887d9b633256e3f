//! What a valid string value is, for each kind of string the file holds (connector name, Kafka
//! topic name, bucket name, ...).
//!
//! A rule is the sentence an error gives (`must be a bucket name: ...`) next to the check that
//! decides it, so the two cannot drift apart; [`super::keys`] names a rule for every string key.
//! The rules follow the systems the values end up in (Kafka's topic and group id limits, S3's
//! bucket names) so that a file `check` accepts is not refused later by the broker or the store.

use std::net::SocketAddr;

/// A rule for a string value.
#[derive(Debug)]
pub(super) struct StrRule {
    /// Printed as ``` `key`: {text}, got "value" ```.
    pub text: &'static str,
    pub valid: fn(&str) -> bool,
    /// The form the value is kept (and shown by `check`) in, for values with several spellings.
    pub normalize: Option<fn(&str) -> String>,
}

pub(super) const CONNECTOR_NAME: StrRule = StrRule {
    text: "must be 1 to 48 characters of lowercase letters, digits and hyphens, \
           not starting with a hyphen",
    valid: valid_name,
    normalize: None,
};

pub(super) const BOOTSTRAP_SERVERS: StrRule = StrRule {
    text: "must be a non-empty comma-separated list of host:port (port a number)",
    valid: valid_bootstrap_servers,
    normalize: Some(normalize_bootstrap_servers),
};

pub(super) const TOPIC_NAME: StrRule = StrRule {
    text: "must be a Kafka topic name: 1 to 249 characters of letters, digits, \
           '.', '_' and '-', not \".\" or \"..\"",
    valid: valid_topic,
    normalize: None,
};

pub(super) const GROUP_ID: StrRule = StrRule {
    text: "must be a non-empty string of at most 255 characters",
    valid: valid_group_id,
    normalize: None,
};

pub(super) const BUCKET_NAME: StrRule = StrRule {
    text: "must be a bucket name: 3 to 63 characters of lowercase letters, \
           digits, '.', '_' and '-', starting and ending with a letter or digit",
    valid: valid_bucket,
    normalize: None,
};

pub(super) const ENDPOINT_URL: StrRule = StrRule {
    text: "must be a URL starting with http:// or https://",
    valid: valid_endpoint,
    normalize: None,
};

pub(super) const NON_EMPTY: StrRule = StrRule {
    text: "must be a non-empty string",
    valid: |value| !value.trim().is_empty(),
    normalize: None,
};

/// Checked elsewhere (with the keys it depends on).
pub(super) const ANY: StrRule = StrRule {
    text: "must be a string",
    valid: |_| true,
    normalize: None,
};

pub(super) const KEY_PREFIX: StrRule = StrRule {
    text: "must be empty or end with '/', must not start with '/', \
           contain '\\', control characters or a \"..\" segment, and must be at most 512 bytes",
    valid: valid_key_prefix,
    normalize: None,
};

pub(super) const SOCKET_ADDRESS: StrRule = StrRule {
    text: "must be an IP address and port, like \"127.0.0.1:9464\" or \"[::]:9464\" \
           (port 0 picks a free one)",
    valid: |address| address.parse::<SocketAddr>().is_ok(),
    // Kept as the address prints, which is how `check` shows it and how the server binds it.
    normalize: Some(|address| match address.parse::<SocketAddr>() {
        Ok(address) => address.to_string(),
        Err(_) => address.to_owned(),
    }),
};

const MAX_NAME_LEN: usize = 48;
const MAX_GROUP_ID_LEN: usize = 255;
const MAX_TOPIC_LEN: usize = 249;
const MAX_KEY_PREFIX_BYTES: usize = 512;

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_bootstrap_servers(servers: &str) -> bool {
    !servers.trim().is_empty()
        && servers.split(',').all(|server| {
            matches!(server.trim().rsplit_once(':'),
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok())
        })
}

/// `" a:1 , b:2 "` is kept as `"a:1,b:2"`.
fn normalize_bootstrap_servers(servers: &str) -> String {
    servers
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(",")
}

fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_group_id(group_id: &str) -> bool {
    !group_id.is_empty() && group_id.chars().count() <= MAX_GROUP_ID_LEN
}

fn valid_bucket(bucket: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
        && bucket.bytes().next().is_some_and(alnum)
        && bucket.bytes().last().is_some_and(alnum)
}

fn valid_endpoint(endpoint: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        endpoint
            .strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty())
    })
}

fn valid_key_prefix(prefix: &str) -> bool {
    prefix.is_empty()
        || (prefix.ends_with('/')
            && !prefix.starts_with('/')
            && !prefix.contains('\\')
            && !prefix.chars().any(char::is_control)
            && prefix.len() <= MAX_KEY_PREFIX_BYTES
            && !prefix.split('/').any(|segment| segment == ".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_rule(rule: &StrRule, valid: &[&str], invalid: &[&str]) {
        for value in valid {
            assert!((rule.valid)(value), "{value:?} should pass: {}", rule.text);
        }
        for value in invalid {
            assert!(!(rule.valid)(value), "{value:?} should fail: {}", rule.text);
        }
    }

    #[test]
    fn connector_names() {
        let longest = "a".repeat(48);
        let too_long = "a".repeat(49);
        assert_rule(
            &CONNECTOR_NAME,
            &["a", "orders-to-oss", "0x", "a-", &longest],
            &["", &too_long, "Orders", "-orders", "orders_oss", "a b"],
        );
    }

    #[test]
    fn key_prefixes() {
        let too_long = format!("{}/", "a".repeat(512));
        assert_rule(
            &KEY_PREFIX,
            &["", "a/b/", "a..b/"],
            &[
                "a", "/a/", "\\a/", "a\\b/", "a/../b/", "../", "a\u{1}/", &too_long,
            ],
        );
    }

    #[test]
    fn bucket_names() {
        let too_long = "a".repeat(64);
        assert_rule(
            &BUCKET_NAME,
            &["abc", "my-bucket", "b.u-c_k", "0ab"],
            &["ab", "-ab", "ab-", "aBc", &too_long, "a b"],
        );
    }

    #[test]
    fn topic_names() {
        let longest = "t".repeat(249);
        let too_long = "t".repeat(250);
        assert_rule(
            &TOPIC_NAME,
            &["t", "t.1", "a_b-C", "...", &longest],
            &["", ".", "..", "a/b", "ä", &too_long],
        );
    }

    #[test]
    fn bootstrap_servers_are_checked_and_trimmed() {
        assert_rule(
            &BOOTSTRAP_SERVERS,
            &["k:9092", " a:1 , b:2 ", "[::1]:9092"],
            &["", "k", "k:", ":9092", "k:port", "k:9092,", "k:9092,,l:1"],
        );
        let normalize = BOOTSTRAP_SERVERS.normalize.unwrap();
        assert_eq!(normalize(" a:1 , b:2 "), "a:1,b:2");
    }

    #[test]
    fn endpoints_group_ids_and_regions() {
        assert_rule(
            &ENDPOINT_URL,
            &[
                "http://127.0.0.1:19000",
                "https://s3.oss-cn-hangzhou.aliyuncs.com",
            ],
            &["s3.example.com", "https://", "ftp://x"],
        );
        let longest = "g".repeat(255);
        let too_long = "g".repeat(256);
        assert_rule(
            &GROUP_ID,
            &["g", "weird \"group\"", &longest],
            &["", &too_long],
        );
        assert_rule(&NON_EMPTY, &["us-east-1"], &["", "  "]);
    }

    #[test]
    fn socket_addresses_are_kept_as_they_print() {
        assert_rule(
            &SOCKET_ADDRESS,
            &["127.0.0.1:9464", "[::]:0", "0.0.0.0:19464"],
            &["localhost", "localhost:9464", "127.0.0.1", ":9464"],
        );
        let normalize = SOCKET_ADDRESS.normalize.unwrap();
        assert_eq!(normalize("[::]:9464"), "[::]:9464");
        assert_eq!(normalize("[0:0::0]:9464"), "[::]:9464");
    }
}
