//! Deterministic object keys.
//!
//! `{prefix}{topic}/{partition}/{first offset:020}-{last offset:020}.json`
//!
//! The key is a pure function of the records an object holds, never of the clock, so uploading
//! the same records again writes the same key with the same bytes. Offsets are zero-padded to 20
//! digits (every `i64` fits) so that a listing sorts objects by offset. Carrying the last offset
//! too means two writers that cut a partition differently can never overwrite each other's
//! object: the worst case is a visible overlap, never a silent loss.

use std::fmt::Write;

/// The extension of the default format's objects (`{ext}` in a key template).
pub const JSON_EXT: &str = ".json";

/// Builds the key of the object holding offsets `first..=last` of `topic`/`partition`.
pub fn object_key(prefix: &str, topic: &str, partition: i32, first: i64, last: i64) -> String {
    let mut key = String::with_capacity(prefix.len() + topic.len() + 60);
    key.push_str(prefix);
    key.push_str(topic);
    // Writing to a String cannot fail.
    let _ = write!(key, "/{partition}/{first:020}-{last:020}{JSON_EXT}");
    key
}

/// The listing prefix under which all objects of one partition live.
pub fn partition_prefix(prefix: &str, topic: &str, partition: i32) -> String {
    format!("{prefix}{topic}/{partition}/")
}

/// The `start-after` key for listing the objects of a partition whose first offset is at least
/// `first_offset`: it sorts after every key of a smaller first offset (`.` sorts after `-`) and
/// before every key of `first_offset` or more.
pub fn list_start_after(prefix: &str, topic: &str, partition: i32, first_offset: i64) -> String {
    format!(
        "{}{:020}.",
        partition_prefix(prefix, topic, partition),
        first_offset - 1
    )
}

/// Parses the `(first, last)` offsets back from the last path segment of a key built by
/// [`object_key`]: 20 digits each, `0 <= first <= last`.
pub fn parse_offsets(key: &str) -> Option<(i64, i64)> {
    let name = key.rsplit('/').next()?.strip_suffix(JSON_EXT)?;
    let (first, last) = name.split_once('-')?;
    let digits = |text: &str| text.len() == 20 && text.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(first) || !digits(last) {
        return None;
    }
    let (first, last) = (first.parse().ok()?, last.parse().ok()?);
    (first <= last).then_some((first, last))
}

/// Like [`parse_offsets`], for a key directly under `partition_prefix` (see
/// [`partition_prefix`]) only: `…/orders/0/backup/…` is not an object of partition 0.
pub fn parse_partition_key(partition_prefix: &str, key: &str) -> Option<(i64, i64)> {
    let name = key.strip_prefix(partition_prefix)?;
    if name.contains('/') {
        return None;
    }
    parse_offsets(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_is_prefix_topic_partition_padded_offsets() {
        assert_eq!(
            object_key("kafka/", "orders", 3, 42, 99),
            "kafka/orders/3/00000000000000000042-00000000000000000099.json"
        );
        assert_eq!(
            object_key("", "t.x_y-z", 0, 0, 0),
            "t.x_y-z/0/00000000000000000000-00000000000000000000.json"
        );
    }

    #[test]
    fn keys_sort_by_offset() {
        let a = object_key("p/", "t", 1, 9, 10);
        let b = object_key("p/", "t", 1, 11, 100);
        let c = object_key("p/", "t", 1, 101, 1_000_000);
        assert!(a < b && b < c);
    }

    #[test]
    fn offsets_parse_back() {
        let key = object_key("p/", "t", 1, i64::MAX - 1, i64::MAX);
        assert_eq!(parse_offsets(&key), Some((i64::MAX - 1, i64::MAX)));
        assert_eq!(parse_offsets("p/t/1/garbage.json"), None);
        assert!(key.starts_with(&partition_prefix("p/", "t", 1)));
    }

    #[test]
    fn only_our_own_key_shape_parses() {
        let prefix = partition_prefix("p/", "t", 0);
        let ours = object_key("p/", "t", 0, 0, 99);
        assert_eq!(parse_partition_key(&prefix, &ours), Some((0, 99)));
        // A copied folder, a negative offset, a reversed range, signs, another partition.
        let copied = format!("{prefix}backup/{}", ours.rsplit('/').next().unwrap());
        assert_eq!(parse_offsets(&copied), Some((0, 99)));
        assert_eq!(parse_partition_key(&prefix, &copied), None);
        for name in [
            "-0000000000000000001-00000000000000000099.json",
            "00000000000000000099-00000000000000000001.json",
            "+0000000000000000001-00000000000000000099.json",
            "00000000000000000001-00000000000000000099.json.tmp",
        ] {
            assert_eq!(
                parse_partition_key(&prefix, &format!("{prefix}{name}")),
                None,
                "{name}"
            );
        }
        assert_eq!(
            parse_partition_key(&prefix, &object_key("p/", "t", 10, 0, 99)),
            None
        );
    }

    #[test]
    fn start_after_selects_objects_from_an_offset_on() {
        let keys = [
            object_key("p/", "t", 1, 0, 9),
            object_key("p/", "t", 1, 10, 19),
            object_key("p/", "t", 1, 20, 29),
        ];
        let after = list_start_after("p/", "t", 1, 10);
        let listed: Vec<&String> = keys
            .iter()
            .filter(|key| key.as_str() > after.as_str())
            .collect();
        assert_eq!(listed, [&keys[1], &keys[2]]);
        let from_zero = list_start_after("p/", "t", 1, 0);
        assert!(keys.iter().all(|key| key.as_str() > from_zero.as_str()));
        assert!(from_zero.starts_with(&partition_prefix("p/", "t", 1)));
    }
}
