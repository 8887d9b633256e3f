//! What every object says about itself: S3 user metadata (`x-amz-meta-kos-*`) naming the
//! records it holds, so that the connector never mistakes another writer's object for its own.
//!
//! Recovery by listing skips the records of an object found in the bucket only when the records
//! just read from Kafka match the object's fingerprints; a conditional create that finds the key
//! taken treats the object as stored only when the metadata is identical. An object under our
//! prefix whose key parses but whose metadata does not match (a recreated topic, another
//! cluster, a copied folder, another tool) is *foreign*: the partition stops
//! (`BUCKET_FOREIGN_OBJECT`) instead of skipping records or overwriting the object.
//!
//! | name (after `x-amz-meta-`) | value |
//! |---|---|
//! | `kos-format` | `1` |
//! | `kos-topic`, `kos-partition` | where the records came from |
//! | `kos-first-offset`, `kos-last-offset` | the first and last offset in the object |
//! | `kos-records` | how many records it holds |
//! | `kos-first-record`, `kos-last-record` | [`Fingerprint`]s of its first and last record |
//! | `kos-connector` | the connector's name |
//! | `kos-generation` | the consumer group generation whose member wrote it (-1: unknown) |
//! | `kos-routed` | offsets in the range that went to the dead-letter topic instead (optional) |
//! | `kos-body-format` | the body's format: `json_array`, `jsonl`, `parquet`, with `+gzip` or `+zstd` when compressed (absent before formats: `json_array`) |

use std::collections::HashMap;
use std::fmt;

const FORMAT: &str = "kos-format";
const TOPIC: &str = "kos-topic";
const PARTITION: &str = "kos-partition";
const FIRST_OFFSET: &str = "kos-first-offset";
const LAST_OFFSET: &str = "kos-last-offset";
const RECORDS: &str = "kos-records";
const FIRST_RECORD: &str = "kos-first-record";
const LAST_RECORD: &str = "kos-last-record";
const CONNECTOR: &str = "kos-connector";
const ROUTED: &str = "kos-routed";
const GENERATION: &str = "kos-generation";
const BODY_FORMAT: &str = "kos-body-format";
/// What an object without `kos-body-format` holds (written before there were formats).
pub const DEFAULT_BODY_FORMAT: &str = "json_array";

/// Identifies one record without storing it: its timestamp and a CRC-32 of its key and value.
/// Two different records at the same offset (a recreated topic, another cluster) differ in at
/// least one of them in practice; the same record read again always gives the same fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub timestamp: i64,
    pub hash: u32,
}

impl Fingerprint {
    pub fn of(timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        let mut hasher = crc32fast::Hasher::new();
        for part in [key, value] {
            match part {
                Some(bytes) => {
                    hasher.update(&[1]);
                    hasher.update(&(bytes.len() as u64).to_le_bytes());
                    hasher.update(bytes);
                }
                None => hasher.update(&[0]),
            }
        }
        Fingerprint {
            timestamp,
            hash: hasher.finalize(),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let (timestamp, hash) = text.rsplit_once('-')?;
        if hash.len() != 8 {
            return None;
        }
        Some(Fingerprint {
            timestamp: timestamp.parse().ok()?,
            hash: u32::from_str_radix(hash, 16).ok()?,
        })
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:08x}", self.timestamp, self.hash)
    }
}

/// The metadata of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMetadata {
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: usize,
    pub first_record: Fingerprint,
    pub last_record: Fingerprint,
    pub connector: String,
    /// The consumer group generation of the member that wrote the object (-1: unknown). Not
    /// part of [`Self::same_records`]: a later generation writes the same records the same way.
    pub generation: i32,
    /// Offsets in `first_offset..=last_offset` that are not in the object: they went to the
    /// dead-letter topic.
    pub routed: Vec<i64>,
    /// The body's format ([`crate::object_key::BodyFormat::label`]). Not part of
    /// [`Self::same_records`]: the same records written in another format are still stored.
    pub body_format: String,
}

/// Why an object's metadata is not ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("it has no kafka-oss-sink metadata (written by another tool or by hand)")]
    Missing,
    #[error("its metadata `{name}` is missing or malformed")]
    Malformed { name: &'static str },
}

impl ObjectMetadata {
    /// The `(name, value)` pairs to send, names without the `x-amz-meta-` prefix.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            (FORMAT, "1".to_owned()),
            (TOPIC, self.topic.clone()),
            (PARTITION, self.partition.to_string()),
            (FIRST_OFFSET, self.first_offset.to_string()),
            (LAST_OFFSET, self.last_offset.to_string()),
            (RECORDS, self.records.to_string()),
            (FIRST_RECORD, self.first_record.to_string()),
            (LAST_RECORD, self.last_record.to_string()),
            (CONNECTOR, self.connector.clone()),
            (GENERATION, self.generation.to_string()),
            (BODY_FORMAT, self.body_format.clone()),
        ];
        if !self.routed.is_empty() {
            let routed: Vec<String> = self.routed.iter().map(i64::to_string).collect();
            pairs.push((ROUTED, routed.join(",")));
        }
        pairs
    }

    /// Reads the metadata back from what a HeadObject returned (names without the prefix, in
    /// any case).
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, MetadataError> {
        let map: HashMap<String, &str> = map
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.as_str()))
            .collect();
        if map.get(FORMAT).copied() != Some("1") {
            return Err(MetadataError::Missing);
        }
        let text = |name: &'static str| {
            map.get(name)
                .copied()
                .ok_or(MetadataError::Malformed { name })
        };
        fn parsed<T: std::str::FromStr>(
            name: &'static str,
            text: Result<&str, MetadataError>,
        ) -> Result<T, MetadataError> {
            text?.parse().map_err(|_| MetadataError::Malformed { name })
        }
        let fingerprint = |name: &'static str| {
            Fingerprint::parse(text(name)?).ok_or(MetadataError::Malformed { name })
        };
        let routed = match map.get(ROUTED) {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|offset| offset.parse())
                .collect::<Result<_, _>>()
                .map_err(|_| MetadataError::Malformed { name: ROUTED })?,
        };
        Ok(ObjectMetadata {
            topic: text(TOPIC)?.to_owned(),
            partition: parsed(PARTITION, text(PARTITION))?,
            first_offset: parsed(FIRST_OFFSET, text(FIRST_OFFSET))?,
            last_offset: parsed(LAST_OFFSET, text(LAST_OFFSET))?,
            records: parsed(RECORDS, text(RECORDS))?,
            first_record: fingerprint(FIRST_RECORD)?,
            last_record: fingerprint(LAST_RECORD)?,
            connector: text(CONNECTOR).unwrap_or_default().to_owned(),
            generation: text(GENERATION)
                .ok()
                .and_then(|generation| generation.parse().ok())
                .unwrap_or(-1),
            routed,
            body_format: text(BODY_FORMAT).unwrap_or(DEFAULT_BODY_FORMAT).to_owned(),
        })
    }

    /// Whether `other` describes the same records (the connector's name may differ: a renamed
    /// connector writes the same objects).
    pub fn same_records(&self, other: &ObjectMetadata) -> bool {
        self.topic == other.topic
            && self.partition == other.partition
            && self.first_offset == other.first_offset
            && self.last_offset == other.last_offset
            && self.records == other.records
            && self.first_record == other.first_record
            && self.last_record == other.last_record
            && self.routed == other.routed
    }

    /// Says in words how `found` (in the bucket) differs from what this process would write.
    pub fn difference(&self, found: &ObjectMetadata) -> String {
        if (self.topic.as_str(), self.partition) != (found.topic.as_str(), found.partition) {
            return format!(
                "it holds records of {}/{}, not {}/{}",
                found.topic, found.partition, self.topic, self.partition
            );
        }
        if (self.first_offset, self.last_offset) != (found.first_offset, found.last_offset) {
            return format!(
                "it holds offsets {}..={}, not {}..={}",
                found.first_offset, found.last_offset, self.first_offset, self.last_offset
            );
        }
        if self.first_record != found.first_record || self.last_record != found.last_record {
            return format!(
                "its records differ from the topic's (fingerprints {}/{} in the bucket, {}/{} read): \
                 the topic was recreated, or the prefix is shared with another cluster or connector",
                found.first_record, found.last_record, self.first_record, self.last_record
            );
        }
        format!(
            "it holds {} records (dead-letter offsets {:?}), not {} ({:?})",
            found.records, found.routed, self.records, self.routed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> ObjectMetadata {
        ObjectMetadata {
            topic: "orders".into(),
            partition: 3,
            first_offset: 10,
            last_offset: 19,
            records: 9,
            first_record: Fingerprint::of(1_700_000_000_000, Some(b"k"), Some(b"v")),
            last_record: Fingerprint::of(-1, None, None),
            connector: "c".into(),
            generation: 7,
            routed: vec![12],
            body_format: "jsonl+zstd".into(),
        }
    }

    fn map(pairs: Vec<(&'static str, String)>) -> HashMap<String, String> {
        pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    #[test]
    fn metadata_reads_back_what_was_written() {
        let written = metadata();
        let read = ObjectMetadata::from_map(&map(written.to_pairs())).unwrap();
        assert_eq!(read, written);
        let mut upper = map(written.to_pairs());
        upper.insert("KOS-TOPIC".into(), "orders".into());
        upper.remove("kos-topic");
        assert_eq!(ObjectMetadata::from_map(&upper).unwrap(), written);
    }

    #[test]
    fn missing_or_malformed_metadata_is_named() {
        assert_eq!(
            ObjectMetadata::from_map(&HashMap::new()),
            Err(MetadataError::Missing)
        );
        let mut broken = map(metadata().to_pairs());
        broken.insert("kos-last-record".into(), "12-xyz".into());
        assert_eq!(
            ObjectMetadata::from_map(&broken),
            Err(MetadataError::Malformed {
                name: "kos-last-record"
            })
        );
        broken.remove("kos-partition");
        assert!(ObjectMetadata::from_map(&broken)
            .unwrap_err()
            .to_string()
            .contains("kos-partition"));
    }

    #[test]
    fn fingerprints_tell_records_apart() {
        let one = Fingerprint::of(5, Some(b"k"), Some(b"v"));
        assert_eq!(one, Fingerprint::of(5, Some(b"k"), Some(b"v")));
        assert_ne!(one, Fingerprint::of(6, Some(b"k"), Some(b"v")));
        assert_ne!(one, Fingerprint::of(5, Some(b"k"), Some(b"w")));
        // Where the key ends and the value starts is part of the hash.
        assert_ne!(
            Fingerprint::of(5, Some(b"ab"), Some(b"c")),
            Fingerprint::of(5, Some(b"a"), Some(b"bc"))
        );
        assert_ne!(
            Fingerprint::of(5, None, Some(b"")),
            Fingerprint::of(5, Some(b""), None)
        );
        assert_eq!(Fingerprint::parse(&one.to_string()), Some(one));
        let negative = Fingerprint::of(-1, None, None);
        assert_eq!(Fingerprint::parse(&negative.to_string()), Some(negative));
    }

    #[test]
    fn differences_are_explained() {
        let ours = metadata();
        let mut other = metadata();
        other.connector = "renamed".into();
        other.generation = 8;
        other.body_format = "parquet".into();
        assert!(ours.same_records(&other));
        other.first_record = Fingerprint::of(1, None, None);
        assert!(!ours.same_records(&other));
        assert!(ours.difference(&other).contains("recreated"));
        other.first_offset = 11;
        assert!(ours.difference(&other).contains("offsets 11..=19"));
    }
}
