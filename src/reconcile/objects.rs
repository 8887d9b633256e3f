//! What one listed object is: ours (and which offsets it holds), unlabelled, or foreign.
//!
//! Pure: the key, the user metadata and (with `--deep`) a summary of the body go in, a
//! [`Verdict`] comes out. The metadata names are those of `kos-*` user metadata the connector
//! writes on every object (README "What lands in the bucket").

use std::collections::BTreeMap;

use actors::encode::read::StoredRecord;

use super::ranges::Offsets;

/// The metadata format this version reads (`kos-format`).
pub const FORMAT: &str = "1";

/// One object under the topic's folder, with what was read about it.
#[derive(Debug, Clone, Default)]
pub struct ListedObject {
    pub key: String,
    /// User metadata, names without `x-amz-meta-` and lowercase. Empty when the object has none.
    pub metadata: BTreeMap<String, String>,
    /// With `--deep`: what the body holds, or why it is not an array of records.
    pub body: Option<Result<Body, String>>,
}

/// What an object's body holds (`--deep`), without keeping the body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Body {
    /// Every record's offset, in body order (overflowed records included: they are in the
    /// object, with a `null` value).
    pub offsets: Vec<i64>,
    /// The `topic` and `partition` fields of the first record that disagrees with the first
    /// record's, if any; and the first record's.
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub mixed: Option<String>,
    /// The first and last record, to compare with the broker's records at those offsets.
    pub first: Option<Print>,
    pub last: Option<Print>,
}

/// A record reduced to what tells it from another record at the same offset: its timestamp and
/// hashes of its key and value (`None` = absent; a value not written because it overflowed is
/// not compared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Print {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<u64>,
    pub value: Option<Option<u64>>,
}

impl Print {
    /// A record as the broker has it.
    pub fn of(offset: i64, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Print {
        Print {
            offset,
            timestamp,
            key: key.map(hash),
            value: Some(value.map(hash)),
        }
    }

    /// Whether `self` (from an object) and `broker` (from the topic) are the same record.
    pub fn matches(&self, broker: &Print) -> bool {
        self.offset == broker.offset
            && self.timestamp == broker.timestamp
            && self.key == broker.key
            && self.value.is_none_or(|value| Some(value) == broker.value)
    }
}

/// A stable hash of a key or value (the same in the object and on the broker, within one run).
fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

impl Body {
    /// Reads a JSON array body (see `actors::encode`). Records are not kept.
    #[cfg(test)]
    pub fn parse(bytes: &[u8]) -> Result<Body, String> {
        Body::read("object.json", bytes)
    }

    /// Reads the body of the object `key`, in whichever format its extension names (JSON array,
    /// JSON lines, either compressed, Parquet). Records are not kept.
    pub fn read(key: &str, bytes: &[u8]) -> Result<Body, String> {
        let stored = actors::encode::read::read_object(key, bytes)
            .map_err(|error| format!("the body is {}", error.0))?;
        let print = |record: &StoredRecord| Print {
            offset: record.offset,
            timestamp: record.timestamp,
            key: record.key.as_deref().map(hash),
            value: (!record.overflow).then(|| record.value.as_deref().map(hash)),
        };
        let mut body = Body {
            offsets: stored.iter().map(|record| record.offset).collect(),
            first: stored.first().map(print),
            last: stored.last().map(print),
            ..Body::default()
        };
        if let Some(first) = stored.first() {
            body.topic = Some(first.topic.clone());
            body.partition = Some(first.partition);
            body.mixed = stored
                .iter()
                .find(|record| record.topic != first.topic || record.partition != first.partition)
                .map(|record| {
                    format!(
                        "offset {} is from topic `{}` partition {}",
                        record.offset, record.topic, record.partition
                    )
                });
        }
        Ok(body)
    }
}

/// `{partition}/{first:020}-{last:020}{ext}` under the topic's folder, exactly as
/// `actors::object_key::object_key` writes it: a canonical partition number, then what
/// `object_key::parse_partition_key` accepts (no subfolder, 20 digits each, `0 <= first <= last`).
#[cfg(test)]
pub fn parse_key(folder: &str, key: &str) -> Option<(i32, i64, i64)> {
    let rest = key.strip_prefix(folder)?;
    let (partition, _) = rest.split_once('/')?;
    let canonical = |digits: &str| {
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
    };
    if !canonical(partition) {
        return None;
    }
    let partition_prefix = format!("{folder}{partition}/");
    let partition: i32 = partition.parse().ok()?;
    let (first, last) = actors::object_key::parse_partition_key(&partition_prefix, key)?;
    Some((partition, first, last))
}

/// `(partition, first, last)` of a key `template` writes under `folder` (`{key_prefix}{topic}/`,
/// every template begins with `{topic}/`): exactly the template's shape, as recovery parses it
/// (`KeyTemplate::parse_key`); the default template is [`parse_key`]'s layout.
pub fn parse_object_key(
    template: &actors::key_template::KeyTemplate,
    folder: &str,
    topic: &str,
    key: &str,
) -> Option<(i32, i64, i64)> {
    let prefix = folder.strip_suffix(&format!("{topic}/"))?;
    template.parse_key(prefix, topic, None, key)
}

/// What reconcile makes of an object whose key parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Written by the connector (its metadata agrees with the key, and with the body and the
    /// broker where those were read). `unknown_gaps`: offsets of its range that are neither in
    /// it nor routed, by its metadata's count, when the body was not read to say which.
    Ours { offsets: Offsets, unknown_gaps: u64 },
    /// No `kos-format` metadata (another tool, or a version before object metadata); its
    /// offsets are taken from the key (`by_key`), or from the body with `--deep`.
    Unlabelled { offsets: Offsets, by_key: bool },
    /// Not ours: the reason, in words. Its offsets count for nothing.
    Foreign(String),
}

impl Verdict {
    /// The offsets the object stores, if it is trusted to store any.
    pub fn offsets(&self) -> Option<&Offsets> {
        match self {
            Verdict::Ours { offsets, .. } | Verdict::Unlabelled { offsets, .. } => Some(offsets),
            Verdict::Foreign(_) => None,
        }
    }
}

/// Judges the object `key` = `topic`/`partition`/`first`-`last` from its metadata and body.
/// `broker` gives the broker's record at an offset, where it was read (`--deep`).
pub fn judge(
    object: &ListedObject,
    topic: &str,
    (partition, first, last): (i32, i64, i64),
    broker: impl Fn(i64) -> Option<Print>,
) -> Verdict {
    let labelled = match label(&object.metadata, topic, (partition, first, last)) {
        Ok(labelled) => labelled,
        Err(reason) => return Verdict::Foreign(reason),
    };
    let offsets = match &object.body {
        None => match &labelled {
            Some(label) => Offsets::range(first, last).minus(&label.routed),
            None => Offsets::range(first, last),
        },
        Some(Err(reason)) => return Verdict::Foreign(reason.clone()),
        Some(Ok(body)) => {
            if let Err(reason) = check_body(body, topic, (partition, first, last)) {
                return Verdict::Foreign(reason);
            }
            let held = Offsets::from_offsets(body.offsets.iter().copied());
            if let Some(label) = &labelled {
                if label.records != body.offsets.len() as u64 {
                    return Verdict::Foreign(format!(
                        "its metadata counts {} records, its body holds {}",
                        label.records,
                        body.offsets.len()
                    ));
                }
                let both = held.intersect(&label.routed);
                if !both.is_empty() {
                    return Verdict::Foreign(format!(
                        "offsets {both} are in its body and, by its metadata, routed to an error topic"
                    ));
                }
            }
            for print in [body.first, body.last].into_iter().flatten() {
                if let Some(theirs) = broker(print.offset) {
                    if !print.matches(&theirs) {
                        return Verdict::Foreign(format!(
                            "its record at offset {} differs from the topic's (the topic was \
                             recreated, or another cluster wrote under this prefix)",
                            print.offset
                        ));
                    }
                }
            }
            held
        }
    };
    match labelled {
        Some(label) => {
            let unknown_gaps = match object.body {
                Some(_) => 0,
                None => (last - first) as u64 + 1 - label.records - label.routed.count(),
            };
            Verdict::Ours {
                offsets,
                unknown_gaps,
            }
        }
        None => Verdict::Unlabelled {
            offsets,
            by_key: object.body.is_none(),
        },
    }
}

/// What the metadata says, once checked against the key.
struct Label {
    records: u64,
    routed: Offsets,
}

/// `Ok(None)`: no `kos-format`. `Err`: metadata that disagrees with the key or itself.
fn label(
    metadata: &BTreeMap<String, String>,
    topic: &str,
    (partition, first, last): (i32, i64, i64),
) -> Result<Option<Label>, String> {
    let Some(format) = metadata.get("kos-format") else {
        return Ok(None);
    };
    if format != FORMAT {
        return Err(format!(
            "its metadata format kos-format={format} is not one this version reads ({FORMAT})"
        ));
    }
    let field = |name: &str| {
        metadata
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("its metadata has kos-format but no {name}"))
    };
    let number = |name: &str| -> Result<i64, String> {
        let text = field(name)?;
        text.parse()
            .map_err(|_| format!("its metadata {name}={text:?} is not a number"))
    };
    let says = (
        field("kos-topic")?,
        number("kos-partition")?,
        number("kos-first-offset")?,
        number("kos-last-offset")?,
    );
    if says != (topic, i64::from(partition), first, last) {
        return Err(format!(
            "its metadata says topic `{}` partition {} offsets {}-{}, its key topic `{topic}` \
             partition {partition} offsets {first}-{last}",
            says.0, says.1, says.2, says.3
        ));
    }
    let records = u64::try_from(number("kos-records")?)
        .map_err(|_| "its metadata kos-records is negative".to_owned())?;
    let routed = match metadata.get("kos-routed").map(|text| text.trim()) {
        None | Some("") => Vec::new(),
        Some(text) => text
            .split(',')
            .map(|offset| {
                offset.trim().parse::<i64>().map_err(|_| {
                    format!("its metadata kos-routed={text:?} is not a list of offsets")
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let routed_count = routed.len() as u64;
    let routed = Offsets::from_offsets(routed);
    let outside = routed.first().is_some_and(|offset| offset < first)
        || routed.last().is_some_and(|offset| offset > last);
    if routed.count() != routed_count || outside {
        return Err(format!(
            "its metadata kos-routed lists offsets {routed} more than once or outside {first}-{last}"
        ));
    }
    if records + routed_count > (last - first) as u64 + 1 {
        return Err(format!(
            "its metadata counts {records} records and {routed_count} routed offsets, more than \
             its range {first}-{last} holds"
        ));
    }
    Ok(Some(Label { records, routed }))
}

/// The body must be the records the key names: that topic and partition, strictly increasing
/// offsets from `first` to `last`.
fn check_body(
    body: &Body,
    topic: &str,
    (partition, first, last): (i32, i64, i64),
) -> Result<(), String> {
    if let Some(mixed) = &body.mixed {
        return Err(format!("its body mixes partitions: {mixed}"));
    }
    let (Some(body_first), Some(body_last)) = (body.offsets.first(), body.offsets.last()) else {
        return Err("its body holds no record".to_owned());
    };
    if body.topic.as_deref() != Some(topic) || body.partition != Some(partition) {
        return Err(format!(
            "its body holds records of topic `{}` partition {}, its key says topic `{topic}` \
             partition {partition}",
            body.topic.as_deref().unwrap_or(""),
            body.partition.unwrap_or(-1)
        ));
    }
    if (*body_first, *body_last) != (first, last) {
        return Err(format!(
            "its body holds offsets {body_first}-{body_last}, its key says {first}-{last}"
        ));
    }
    if let Some(pair) = body.offsets.windows(2).find(|pair| pair[1] <= pair[0]) {
        return Err(format!(
            "its body's offsets are not increasing ({} after {})",
            pair[1], pair[0]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
