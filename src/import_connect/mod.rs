//! `kafka-oss-sink import-connect FILE.json`: a Kafka Connect S3 sink config (Confluent's
//! `io.confluent.connect.s3.S3SinkConnector`, as posted to Connect's REST API: either
//! `{"name": .., "config": {..}}` or the bare config map) turned into the equivalent TOML config.
//!
//! Every key of the JSON ends up in one of three places: mapped to a key of the TOML (with the
//! Connect key it came from as a trailing comment, and a note above it where the meaning or
//! Confluent's default differs), written as a comment because the config does not have the key
//! yet (`[format]`: "needs format support"), or listed at the end under "Not
//! mapped" with the reason. Values of keys that are not mapped are never printed: some are
//! secrets (`aws.secret.access.key`, `sasl.jaas.config`).
//!
//! [`map`] has the key-by-key mapping, [`layout`] the format and partitioner keys, [`consumer`]
//! the `consumer.override.*` properties, [`reasons`] why the others are not mapped.

mod consumer;
mod layout;
mod map;
mod reasons;
#[cfg(test)]
mod tests;

use serde_json::Value;

/// The result: the TOML text and what could not be mapped.
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    /// Connect keys with no equivalent, with the reason, by key.
    pub unmapped: Vec<(String, String)>,
    /// TOML keys written as comments because the config does not accept them yet.
    pub pending: Vec<String>,
}

/// Reads the JSON text and maps it. `accepts` tells whether the config has a key (a dotted
/// path such as `format.type`); see [`crate::config::accepts_key`].
pub fn import(json: &str, accepts: &dyn Fn(&str) -> bool) -> Result<Imported, String> {
    let document: Value =
        serde_json::from_str(json).map_err(|e| format!("not a JSON document: {e}"))?;
    let Value::Object(top) = document else {
        return Err("not a Kafka Connect config: expected a JSON object".into());
    };
    // `{"name": .., "config": {..}}` (POST /connectors) or the bare map (PUT .../config).
    let (outer_name, config) = match top.get("config") {
        Some(Value::Object(config)) => (top.get("name").and_then(Value::as_str), config.clone()),
        _ => (None, top),
    };
    let mut keys = ConnectConfig::default();
    for (key, value) in &config {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            other => {
                return Err(format!(
                    "`{key}`: expected a string, number or boolean, found {other}"
                ))
            }
        };
        keys.values.push((key.clone(), text));
    }
    if let Some(name) = outer_name {
        if keys.get("name").is_none() {
            keys.values.push(("name".into(), name.into()));
        }
    }
    let mut draft = Draft::default();
    map::map(&mut keys, &mut draft)?;
    for key in keys.unused() {
        let reason = reasons::unmapped_reason(&key);
        draft.unmapped.push((key, reason));
    }
    Ok(draft.render(accepts))
}

/// The Connect config's keys, with a record of which ones the mapping used.
#[derive(Default)]
pub(crate) struct ConnectConfig {
    values: Vec<(String, String)>,
    used: std::collections::BTreeSet<String>,
}

impl ConnectConfig {
    /// The value of `key`, marking it as used.
    pub(crate) fn take(&mut self, key: &str) -> Option<String> {
        let value = self.get(key)?;
        self.used.insert(key.to_owned());
        Some(value)
    }

    /// The value of `key`, without marking it.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_owned())
    }

    /// Keys starting with `prefix`, in key order.
    pub(crate) fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Keys the mapping never took, in key order.
    fn unused(&self) -> Vec<String> {
        self.values
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !self.used.contains(k))
            .collect()
    }
}

/// Sections in file order (`source.properties` is written as a sub-table, after `[source]`).
const SECTIONS: &[&str] = &[
    "",
    "source",
    "source.properties",
    "sink",
    "batching",
    "format",
    "failure",
    "resources",
];

/// One key of the TOML being written.
pub(crate) struct Entry {
    section: &'static str,
    key: String,
    /// Already TOML-encoded.
    value: String,
    /// The Connect key(s) it comes from; empty for a value the import chose.
    origin: String,
    /// Comment lines above it.
    notes: Vec<String>,
}

/// The TOML being built.
#[derive(Default)]
pub(crate) struct Draft {
    entries: Vec<Entry>,
    unmapped: Vec<(String, String)>,
    header: Vec<String>,
}

impl Draft {
    /// Sets `section.key` to a TOML value (later calls for the same key replace it).
    pub(crate) fn set(
        &mut self,
        section: &'static str,
        key: &str,
        value: toml::Value,
        origin: &str,
    ) -> &mut Entry {
        let entry = Entry {
            section,
            key: key.to_owned(),
            value: value.to_string(),
            origin: origin.to_owned(),
            notes: Vec::new(),
        };
        // A later mapping of the same key (a consumer override) replaces it in place.
        match self
            .entries
            .iter()
            .position(|e| e.section == section && e.key == key)
        {
            Some(index) => {
                self.entries[index] = entry;
                &mut self.entries[index]
            }
            None => {
                self.entries.push(entry);
                self.entries.last_mut().expect("just pushed")
            }
        }
    }

    pub(crate) fn unmapped(&mut self, key: &str, reason: impl Into<String>) {
        self.unmapped.push((key.to_owned(), reason.into()));
    }

    /// A comment line for the top of the file.
    pub(crate) fn header_note(&mut self, note: impl Into<String>) {
        self.header.push(note.into());
    }

    fn render(self, accepts: &dyn Fn(&str) -> bool) -> Imported {
        let mut out = String::new();
        out.push_str("# kafka-oss-sink config imported from a Kafka Connect S3 sink config by\n");
        out.push_str("# `kafka-oss-sink import-connect`. Read the notes, then validate it with\n");
        out.push_str(
            "# `kafka-oss-sink check --config FILE` (config/README.md lists every key).\n",
        );
        for note in &self.header {
            push_comment(&mut out, "", note);
        }
        let mut pending = Vec::new();
        for section in SECTIONS {
            let entries: Vec<&Entry> = self
                .entries
                .iter()
                .filter(|e| e.section == *section)
                .collect();
            if entries.is_empty() {
                continue;
            }
            let live =
                |e: &Entry| *section == "source.properties" || accepts(&path(section, &e.key));
            let any_live = entries.iter().any(|e| live(e));
            if !section.is_empty() {
                out.push('\n');
                if any_live {
                    out.push_str(&format!("[{section}]\n"));
                } else {
                    out.push_str(&format!(
                        "# [{section}]   (needs format support: not in this version's config yet)\n"
                    ));
                }
            } else {
                out.push('\n');
            }
            for entry in entries {
                for note in &entry.notes {
                    push_comment(&mut out, "", note);
                }
                let key = if entry.key.contains('.') {
                    format!("\"{}\"", entry.key)
                } else {
                    entry.key.clone()
                };
                let origin = if entry.origin.is_empty() {
                    String::new()
                } else {
                    format!("   # <- {}", entry.origin)
                };
                if live(entry) {
                    out.push_str(&format!("{key} = {}{origin}\n", entry.value));
                } else {
                    let full = path(section, &entry.key);
                    out.push_str(&format!(
                        "# {key} = {}{origin}   (needs format support: `{full}`)\n",
                        entry.value
                    ));
                    pending.push(full);
                }
            }
        }
        let mut unmapped = self.unmapped;
        unmapped.sort();
        if !unmapped.is_empty() {
            out.push_str(&format!(
                "\n# Not mapped ({} Connect key(s)):\n",
                unmapped.len()
            ));
            for (key, reason) in &unmapped {
                push_comment(&mut out, "  ", &format!("{key}: {reason}"));
            }
        }
        Imported {
            toml: out,
            unmapped,
            pending,
        }
    }
}

impl Entry {
    /// Adds a comment line above the key.
    pub(crate) fn note(&mut self, note: impl Into<String>) -> &mut Entry {
        self.notes.push(note.into());
        self
    }
}

fn path(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_owned()
    } else {
        format!("{section}.{key}")
    }
}

/// Writes `text` as `# ` comment lines of at most about 100 characters.
fn push_comment(out: &mut String, indent: &str, text: &str) {
    let mut line = format!("#{indent}");
    for word in text.split_whitespace() {
        if line.len() + word.len() + 1 > 100 && line.len() > 2 + indent.len() {
            out.push_str(&line);
            out.push('\n');
            line = format!("#{indent}  ");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}
