//! Reads a parsed TOML table against the key table, collecting every problem at once.
//!
//! The file is parsed into a plain [`toml::Table`] and walked here (instead of a serde derive with
//! `deny_unknown_fields`) so that one run of `check` reports *every* problem, each naming its
//! full dotted key path and the rule it breaks. Strictness is the same as `deny_unknown_fields`:
//! whatever the table does not declare is an error, with a suggestion when a declared key is
//! close (a typo, or a key written in the wrong section).
//!
//! Order of the problems: the top level first, then each section in table order; within a
//! section, its keys in table order, then the rules between keys ([`IntRule::at_least`]), then
//! the keys nobody declared, sorted.

use toml::{Table, Value};

const MAX_POLL_INTERVAL: &str = "max.poll.interval.ms";

use super::credentials;
use super::error::ConfigError;
use super::keys::{self, IntRule, Key, Kind, StrDefault};
use super::properties;
use super::render::{quote, toml_key};
use super::values::{Setting, Values};

/// The effective values of a valid file, or all of its problems.
pub(super) fn walk(table: Table) -> Result<Values, Vec<ConfigError>> {
    let mut walker = Walker::default();
    // Depth first, so that a sub-section (`[sink.credentials]`) is reported after its section.
    let mut pending = walker.section("", table);
    pending.reverse();
    while let Some((path, table)) = pending.pop() {
        let mut nested = walker.section(path, table);
        nested.reverse();
        pending.extend(nested);
    }
    walker.check_drain_below_poll_interval();
    walker.check_memory_holds_objects();
    walker.check_admin_token();
    walker.check_format();
    walker.check_key_template();
    if walker.errors.is_empty() {
        Ok(walker.values)
    } else {
        Err(walker.errors)
    }
}

#[derive(Default)]
struct Walker {
    values: Values,
    errors: Vec<ConfigError>,
}

impl Walker {
    /// Reads the keys of the section at `path` out of `table`, then reports what is left.
    /// Returns the sub-sections to walk next (missing optional ones as empty tables).
    fn section(&mut self, path: &str, mut table: Table) -> Vec<(&'static str, Table)> {
        let keys: Vec<&'static Key> = keys::in_section(path).collect();
        let mut sections = Vec::new();
        for key in &keys {
            let value = table.remove(key.name());
            if let Kind::Section { required } = key.kind {
                match value {
                    Some(Value::Table(table)) => sections.push((key.path, table)),
                    None if !required => sections.push((key.path, Table::new())),
                    None => self.error(key, format!("required section [{}] is missing", key.path)),
                    Some(other) => self.invalid(key, "must be a table", &other),
                }
            } else {
                self.read(key, value);
            }
        }
        for key in &keys {
            if let Kind::Int(IntRule {
                at_least: Some(other),
                ..
            }) = key.kind
            {
                self.check_at_least(key, other);
            }
        }
        self.undeclared(path, &keys, table);
        sections
    }

    /// Reads one key that is not a section: its value, or its default when missing.
    fn read(&mut self, key: &'static Key, value: Option<Value>) {
        let setting = match (&key.kind, value) {
            (Kind::Str { default, .. }, None) => match default {
                StrDefault::Required => {
                    return self.error(key, "required key is missing".to_owned());
                }
                StrDefault::Unset { .. } => return,
                StrDefault::Fixed(value) => Setting::Str((*value).to_owned()),
                StrDefault::FromName { prefix } => match self.values.get(&keys::NAME) {
                    Some(Setting::Str(name)) => Setting::Str(format!("{prefix}{name}")),
                    // The name is invalid or missing; that is reported already.
                    _ => return,
                },
            },
            (Kind::Str { rule, .. }, Some(Value::String(value))) if (rule.valid)(&value) => {
                Setting::Str(match rule.normalize {
                    Some(normalize) => normalize(&value),
                    None => value,
                })
            }
            (Kind::Str { rule, .. }, Some(other)) => return self.invalid(key, rule.text, &other),

            (Kind::Int(rule), None) => Setting::Int(rule.default),
            (Kind::Int(rule), Some(Value::Integer(value)))
                if (rule.min..=rule.max).contains(&value) =>
            {
                match rule.except {
                    Some((except, text)) if except == value => {
                        return self.invalid(key, text, &Value::Integer(value));
                    }
                    _ => Setting::Int(value),
                }
            }
            (Kind::Int(rule), Some(other)) => {
                let text = format!("must be an integer from {} to {}", rule.min, rule.max);
                return self.invalid(key, &text, &other);
            }

            (Kind::Bool { default }, None) => Setting::Bool(*default),
            (Kind::Bool { .. }, Some(Value::Boolean(value))) => Setting::Bool(value),
            (Kind::Bool { .. }, Some(other)) => {
                return self.invalid(key, "must be true or false", &other);
            }

            (Kind::Choice { default, .. }, None) => Setting::Str((*default).to_owned()),
            (Kind::Choice { options, .. }, Some(value)) => {
                match options
                    .iter()
                    .find(|option| Some(**option) == value.as_str())
                {
                    Some(option) => Setting::Str((*option).to_owned()),
                    None => {
                        let names: Vec<String> = options.iter().map(|o| quote(o)).collect();
                        let text = format!("must be one of {}", names.join(", "));
                        return self.invalid(key, &text, &value);
                    }
                }
            }

            (Kind::Properties, None) => Setting::Properties(Default::default()),
            (Kind::Properties, Some(Value::Table(table))) => {
                match properties::parse(key.path, table, &mut self.errors) {
                    Some(properties) => Setting::Properties(properties),
                    None => return,
                }
            }
            (Kind::Properties, Some(other)) => return self.invalid(key, "must be a table", &other),

            (Kind::Section { .. }, _) => unreachable!("sections are read by `section`"),
        };
        self.values.set(key, setting);
    }

    /// `key` must not be below `other` (both read already; skipped if either is invalid).
    fn check_at_least(&mut self, key: &'static Key, other: &'static Key) {
        if let (Some(Setting::Int(value)), Some(Setting::Int(floor))) =
            (self.values.get(key), self.values.get(other))
        {
            if value < floor {
                let message = format!("must be at least `{}` ({floor}), got {value}", other.path);
                self.error(key, message);
            }
        }
    }

    /// A revocation drains inside librdkafka's poll, then waits for the partitions' upload
    /// attempts already sent (each up to `sink.request_timeout_ms`): both (plus the margin the
    /// revocation needs) must end before `max.poll.interval.ms`, or the member leaves the group
    /// while it still drains. Skipped if a value is invalid (reported already, or by librdkafka).
    fn check_drain_below_poll_interval(&mut self) {
        use actors::kafka::{DEFAULT_MAX_POLL_INTERVAL_MS, MAX_POLL_INTERVAL_MARGIN_MS};
        let Some(Setting::Int(drain)) = self.values.get(&keys::DRAIN_TIMEOUT_MS) else {
            return;
        };
        let Some(Setting::Int(attempt)) = self.values.get(&keys::SINK_REQUEST_TIMEOUT_MS) else {
            return;
        };
        let (interval, source) = match self.values.get(&keys::SOURCE_PROPERTIES) {
            Some(Setting::Properties(properties)) => match properties.0.get(MAX_POLL_INTERVAL) {
                Some(value) => match value.trim().parse::<i64>() {
                    Ok(interval) => (interval, "set in `source.properties`"),
                    Err(_) => return,
                },
                None => (DEFAULT_MAX_POLL_INTERVAL_MS, "librdkafka's default"),
            },
            _ => return,
        };
        let limit = interval - MAX_POLL_INTERVAL_MARGIN_MS - attempt;
        if *drain > limit {
            let message = format!(
                "must be at most {limit} (\"{MAX_POLL_INTERVAL}\" {interval}, {source}, minus \
                 {MAX_POLL_INTERVAL_MARGIN_MS}, minus `sink.request_timeout_ms` {attempt}): a \
                 revocation drains, then waits for uploads in flight, inside the consumer's \
                 poll, and a member that does not poll for \"{MAX_POLL_INTERVAL}\" leaves the \
                 group; lower it or raise \"{MAX_POLL_INTERVAL}\", got {drain}"
            );
            self.error(&keys::DRAIN_TIMEOUT_MS, message);
        }
    }

    /// `memory.max_bytes` must hold a few of the largest objects (or multipart parts): an object
    /// larger than the budget's buffer share could never be built. Where objects stream out
    /// part by part (the JSON formats with `batching.max_bytes` of at least
    /// `STREAM_MIN_PARTS` parts), a part is the largest thing held. Skipped if a value is
    /// invalid.
    fn check_memory_holds_objects(&mut self) {
        let int = |key| match self.values.get(key) {
            Some(Setting::Int(value)) => Some(*value),
            _ => None,
        };
        let (Some(budget), Some(object), Some(part)) = (
            int(&keys::MEMORY_MAX_BYTES),
            int(&keys::BATCHING_MAX_BYTES),
            int(&keys::SINK_PART_SIZE_BYTES),
        ) else {
            return;
        };
        let parquet = matches!(
            self.values.get(&keys::FORMAT_TYPE),
            Some(Setting::Str(kind)) if kind == "parquet"
        );
        let streams =
            !parquet && object >= part.saturating_mul(actors::staging::STREAM_MIN_PARTS as i64);
        let (largest, key) = if streams || part > object {
            (part, &keys::SINK_PART_SIZE_BYTES)
        } else {
            (object, &keys::BATCHING_MAX_BYTES)
        };
        let needed = largest.saturating_mul(keys::MEMORY_MIN_OBJECTS);
        if budget < needed {
            let held = if streams {
                "the parts being filled and uploaded of objects streamed part by part, and the \
                 objects sealed"
            } else {
                "the objects being filled, sealed and uploaded"
            };
            let message = format!(
                "must be at least {needed} ({} x `{}`, {largest}): three quarters of the budget \
                 hold {held}; raise it or lower `{}`, got {budget}",
                keys::MEMORY_MIN_OBJECTS,
                key.path,
                key.path
            );
            self.error(&keys::MEMORY_MAX_BYTES, message);
        }
    }

    /// An admin server reachable from other hosts must not let anyone pause the connector: a
    /// non-loopback `admin.address` needs `admin.token_file`. Skipped if a value is invalid.
    fn check_admin_token(&mut self) {
        if !matches!(
            self.values.get(&keys::ADMIN_ENABLED),
            Some(Setting::Bool(true))
        ) {
            return;
        }
        let Some(Setting::Str(address)) = self.values.get(&keys::ADMIN_ADDRESS) else {
            return;
        };
        let Ok(address) = address.parse::<std::net::SocketAddr>() else {
            return;
        };
        if !address.ip().is_loopback() && self.values.get(&keys::ADMIN_TOKEN_FILE).is_none() {
            let message = format!(
                "must be set when `admin.address` is not loopback (it is {address}): the pause, \
                 resume and restart routes would be open to anyone who reaches the address; \
                 point it at a file holding a token, or listen on 127.0.0.1"
            );
            self.error(&keys::ADMIN_TOKEN_FILE, message);
        }
    }

    /// `[format]` keys that only mean something together: whole-object compression is for the
    /// JSON formats, and a level needs a codec that takes it. Skipped for invalid values.
    fn check_format(&mut self) {
        let values = self.values.clone();
        let choice = |key| match values.get(key) {
            Some(Setting::Str(value)) => Some(value.clone()),
            _ => None,
        };
        let (Some(kind), Some(compression)) = (
            choice(&keys::FORMAT_TYPE),
            choice(&keys::FORMAT_COMPRESSION),
        ) else {
            return;
        };
        if kind != "parquet" && choice(&keys::FORMAT_BINARY).as_deref() == Some("bytes") {
            let message = format!(
                "\"bytes\" (binary columns) needs `format.type = \"parquet\"`: JSON has no \
                 binary type, use \"base64\" with {}",
                quote(&kind)
            );
            self.error(&keys::FORMAT_BINARY, message);
        }
        if kind == "parquet" && compression != "none" {
            let message = format!(
                "must be \"none\" with `format.type = \"parquet\"`: Parquet compresses its pages \
                 (`format.parquet_compression`), got {}",
                quote(&compression)
            );
            self.error(&keys::FORMAT_COMPRESSION, message);
        }
        let Some(Setting::Int(level)) = self.values.get(&keys::FORMAT_COMPRESSION_LEVEL) else {
            return;
        };
        let level = *level;
        let codec = if kind == "parquet" {
            choice(&keys::FORMAT_PARQUET_COMPRESSION).unwrap_or_default()
        } else {
            compression
        };
        let problem = match codec.as_str() {
            "gzip" if level > 9 => Some("must be from 0 to 9 with gzip (0: gzip's default, 6)"),
            "gzip" | "zstd" => None,
            _ if level != 0 => Some(
                "applies only to gzip and zstd (`format.compression`, or \
                 `format.parquet_compression` with parquet); must be 0 otherwise",
            ),
            _ => None,
        };
        if let Some(problem) = problem {
            let message = format!("{problem}, got {level}");
            self.error(&keys::FORMAT_COMPRESSION_LEVEL, message);
        }
    }

    /// `sink.key_template` with its time zone, field and the key prefix: its syntax, and the
    /// longest key it can produce. The error names the key at fault. Skipped if one is invalid.
    fn check_key_template(&mut self) {
        if let Err(error) = key_template(&self.values) {
            let key = [
                &keys::SINK_KEY_TEMPLATE,
                &keys::SINK_KEY_TIME_ZONE,
                &keys::SINK_KEY_FIELD,
                &keys::SINK_KEY_FIELD_DEFAULT,
            ]
            .into_iter()
            .find(|key| key.name() == error.key)
            .unwrap_or(&keys::SINK_KEY_TEMPLATE);
            self.error(key, error.message);
        }
    }

    /// Reports the keys of `table` the section does not declare: credentials, or unknown keys
    /// with a suggestion.
    fn undeclared(&mut self, path: &str, declared: &[&'static Key], table: Table) {
        let mut names: Vec<String> = table.keys().cloned().collect();
        names.sort();
        for name in names {
            let key = if path.is_empty() {
                toml_key(&name)
            } else {
                format!("{path}.{}", toml_key(&name))
            };
            let message = if credentials::is_credential_key(&name) {
                credentials::in_file_message(path)
            } else {
                match suggestion(&name, declared) {
                    Some(hint) => format!("unknown key; {hint}"),
                    // Whatever else is written in `[sink.credentials]` is likely a credential.
                    None if path == keys::SINK_CREDENTIALS.path => {
                        credentials::in_file_message(path)
                    }
                    None => "unknown key".to_owned(),
                }
            };
            self.errors.push(ConfigError::new(key, message));
        }
    }

    fn error(&mut self, key: &Key, message: String) {
        self.errors.push(ConfigError::new(key.path, message));
    }

    fn invalid(&mut self, key: &Key, rule: &str, value: &Value) {
        self.error(key, format!("{rule}, got {}", describe(value)));
    }
}

/// The template the values describe (`Ok(default)` if a value it depends on is invalid: that is
/// reported already).
pub(super) fn key_template(
    values: &Values,
) -> Result<actors::key_template::KeyTemplate, actors::key_template::TemplateError> {
    let str = |key| match values.get(key) {
        Some(Setting::Str(value)) => Some(value.as_str()),
        _ => None,
    };
    let (Some(template), Some(zone), Some(field), Some(default), Some(prefix)) = (
        str(&keys::SINK_KEY_TEMPLATE),
        str(&keys::SINK_KEY_TIME_ZONE),
        str(&keys::SINK_KEY_FIELD),
        str(&keys::SINK_KEY_FIELD_DEFAULT),
        str(&keys::SINK_KEY_PREFIX),
    ) else {
        return Ok(Default::default());
    };
    let field = (!field.is_empty()).then_some(field);
    let template = actors::key_template::KeyTemplate::parse(template, zone, field, default)?;
    template.check_length(prefix)?;
    Ok(template)
}

/// "did you mean" for an undeclared key `name`: a close key of the same section, else a key of
/// that name in another section (a top-level key written after a section header lands there).
fn suggestion(name: &str, declared: &[&'static Key]) -> Option<String> {
    let closest = declared
        .iter()
        .map(|key| (edit_distance(name, key.name()), key))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance);
    if let Some((_, key)) = closest {
        return Some(format!("did you mean `{}`?", key.path));
    }
    let elsewhere = keys::KEYS
        .iter()
        .filter(|key| !matches!(key.kind, Kind::Section { .. }))
        .find(|key| key.name() == name)?;
    let note = if elsewhere.section().is_empty() {
        " (top-level keys must come before the first [section] header)"
    } else {
        ""
    };
    Some(format!("did you mean `{}`?{note}", elsewhere.path))
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// A value for an error message: strings quoted (and shortened), tables and arrays by type.
/// Only called for values of keys that are not credentials.
fn describe(value: &Value) -> String {
    const MAX_CHARS: usize = 80;
    match value {
        Value::String(s) if s.chars().count() > MAX_CHARS => {
            let head: String = s.chars().take(MAX_CHARS).collect();
            format!("{}... ({} characters)", quote(&head), s.chars().count())
        }
        Value::String(s) => quote(s),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(_) | Value::Table(_) => type_phrase(value).to_owned(),
    }
}

pub(super) fn type_phrase(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("bukcet", "bucket"), 2);
        assert_eq!(edit_distance("topik", "topic"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggestions_prefer_the_same_section_then_any_section() {
        let sink: Vec<&Key> = keys::in_section("sink").collect();
        assert_eq!(
            suggestion("bukcet", &sink).as_deref(),
            Some("did you mean `sink.bucket`?")
        );
        assert_eq!(
            suggestion("enabled", &sink).as_deref(),
            Some("did you mean `admin.enabled`?")
        );
        assert_eq!(
            suggestion("name", &sink).as_deref(),
            Some(
                "did you mean `name`? (top-level keys must come before the first [section] header)"
            )
        );
        assert_eq!(suggestion("foo", &sink), None);
        // Sections are not suggested from inside another section, keys of a sub-section are.
        assert_eq!(suggestion("batching", &sink), None);
        assert_eq!(
            suggestion("source", &sink).as_deref(),
            Some("did you mean `sink.credentials.source`?")
        );
    }

    #[test]
    fn long_strings_are_shortened_in_messages() {
        let long = Value::String("x".repeat(81));
        assert_eq!(
            describe(&long),
            format!("\"{}\"... (81 characters)", "x".repeat(80))
        );
        assert_eq!(describe(&Value::Array(vec![])), "an array");
    }
}
