//! Object key templates (`sink.key_template`): where an object lands under the key prefix.
//!
//! A template is literal text and variables in braces. The default, `{topic}/{partition}/{first}-{last}{ext}`,
//! is today's layout byte for byte ([`crate::object_key::object_key`]); other templates add
//! time parts of the record timestamp and a field of the record key or JSON value:
//!
//! | variable | value |
//! |---|---|
//! | `{topic}` | the topic (the template must begin with `{topic}/`) |
//! | `{partition}` | the partition number |
//! | `{first}`, `{last}` | the object's first and last offsets, 20 digits (both required) |
//! | `{ext}` | the format's file extension (`.json`) |
//! | `{yyyy}` `{MM}` `{dd}` `{HH}` `{mm}` | year, month, day, hour, minute of the record timestamp in `sink.key_time_zone` |
//! | `{field}` | `sink.key_field` of the record, confined ([`confine`]), or `sink.key_field_default` |
//!
//! The key is a pure function of the records, never of the clock: time parts come from record
//! timestamps (a missing timestamp, -1, and anything before 1970 counts as 1970-01-01T00:00Z;
//! anything after 9999-12-31T23:59:59.999Z as that instant), and the batcher seals an object at
//! every change of time bucket or field value ([`KeyParts`]), so an object never spans two.
//!
//! Recovery by listing and `reconcile` find objects under any template: every key begins with
//! `{prefix}{topic}/`, and [`KeyTemplate::listing_prefix`] is the template rendered up to its
//! first variable other than `{topic}` and `{partition}` (the partition's own folder when
//! `{partition}` comes first, else the topic's folder, listed recursively); the keys listed are
//! parsed back by [`KeyTemplate::parse_key`], which accepts exactly the template's shape.

use std::fmt::Write;

use crate::object_key::{object_key, parse_partition_key, JSON_EXT};
pub use field::confine;
use field::extract;
use time::{bucket, canonical_number, civil_from_days, local_ms, parse_zone};

/// The default template: today's keys.
pub const DEFAULT_TEMPLATE: &str = "{topic}/{partition}/{first}-{last}{ext}";
/// OSS's (and S3's) key length limit, in bytes.
pub const MAX_KEY_BYTES: usize = 1023;
/// A `{field}` value longer than this (escaped) is cut and hashed to this length.
pub const MAX_PART_BYTES: usize = 64;
/// Kafka's longest topic name.
const MAX_TOPIC_BYTES: usize = 249;
/// `i32::MAX` has 10 digits; partitions are never negative.
const MAX_PARTITION_DIGITS: usize = 10;
/// The longest extension a format may have (`.json.zst`, `.parquet`, ...): reserved by the
/// length check so another format never makes a valid template too long.
const MAX_EXT_BYTES: usize = 16;
/// 9999-12-31T23:59:59.999Z: the latest instant a 4-digit year renders.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A template variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Topic,
    Partition,
    First,
    Last,
    Ext,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Field,
}

const VARIABLES: &[(&str, Var)] = &[
    ("topic", Var::Topic),
    ("partition", Var::Partition),
    ("first", Var::First),
    ("last", Var::Last),
    ("ext", Var::Ext),
    ("yyyy", Var::Year),
    ("MM", Var::Month),
    ("dd", Var::Day),
    ("HH", Var::Hour),
    ("mm", Var::Minute),
    ("field", Var::Field),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(String),
    Var(Var),
}

/// The finest time part a template uses: the bucket a record timestamp falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Granularity {
    Year,
    Month,
    Day,
    Hour,
    Minute,
}

/// Where `{field}` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldSpec {
    /// `true`: the record key; `false`: the record value.
    from_key: bool,
    /// JSON object member names; empty: the whole key or value as UTF-8 text.
    path: Vec<String>,
    /// Confined already.
    default: String,
}

/// A config problem: which key (`key_template`, `key_time_zone`, `key_field`,
/// `key_field_default`, under `[sink]`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub key: &'static str,
    pub message: String,
}

fn error(key: &'static str, message: impl Into<String>) -> TemplateError {
    TemplateError {
        key,
        message: message.into(),
    }
}

/// The parts of an object's key that come from its records: all records of an object have the
/// same ones. `time`: the start of the record timestamp's bucket, in local milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyParts {
    time: i64,
    field: Option<Box<str>>,
}

/// A parsed, validated `sink.key_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    /// As configured.
    text: String,
    tokens: Vec<Token>,
    /// The default layout: rendered and parsed by [`crate::object_key`], at no cost.
    default: bool,
    zone_offset_ms: i64,
    granularity: Option<Granularity>,
    field: Option<FieldSpec>,
    ext: String,
}

impl Default for KeyTemplate {
    fn default() -> Self {
        KeyTemplate::parse(DEFAULT_TEMPLATE, "UTC", None, "none").expect("the default is valid")
    }
}

impl KeyTemplate {
    /// Parses and validates a template with its time zone (`UTC`, `+08:00`, `-05:30`), its field
    /// (`key`, `value`, `key.<name>[.<name>...]`, `value.<name>[...]`) and the field's default.
    pub fn parse(
        template: &str,
        zone: &str,
        field: Option<&str>,
        field_default: &str,
    ) -> Result<Self, TemplateError> {
        const T: &str = "key_template";
        let body = template.strip_prefix("{prefix}").unwrap_or(template);
        let tokens = tokenize(body)?;
        if tokens.first() != Some(&Token::Var(Var::Topic))
            || !matches!(tokens.get(1), Some(Token::Lit(lit)) if lit.starts_with('/'))
        {
            return Err(error(
                T,
                "must begin with \"{topic}/\" (after an optional \"{prefix}\"): every object \
                 lives under its topic's folder, which recovery and reconcile list",
            ));
        }
        for var in [Var::Partition, Var::First, Var::Last] {
            let count = tokens.iter().filter(|t| **t == Token::Var(var)).count();
            if count != 1 {
                return Err(error(
                    T,
                    format!(
                        "must contain {{{}}} exactly once (keys must stay deterministic and never \
                         collide), found it {count} times",
                        name(var)
                    ),
                ));
            }
        }
        for token in &tokens {
            if let Token::Lit(lit) = token {
                if lit.contains('\\') || lit.chars().any(char::is_control) {
                    return Err(error(T, "must not contain '\\' or control characters"));
                }
            }
        }
        // Literal segments: no empty, "." or ".." segment, no trailing '/'.
        let shape: String = tokens
            .iter()
            .map(|t| match t {
                Token::Lit(lit) => lit.as_str(),
                Token::Var(_) => "x",
            })
            .collect();
        if shape
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(error(
                T,
                "must not contain an empty, \".\" or \"..\" path segment, nor end with '/'",
            ));
        }
        let granularity = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Var(Var::Year) => Some(Granularity::Year),
                Token::Var(Var::Month) => Some(Granularity::Month),
                Token::Var(Var::Day) => Some(Granularity::Day),
                Token::Var(Var::Hour) => Some(Granularity::Hour),
                Token::Var(Var::Minute) => Some(Granularity::Minute),
                _ => None,
            })
            .max();
        let zone_offset_ms = parse_zone(zone).ok_or_else(|| {
            error(
                "key_time_zone",
                format!(
                    "must be \"UTC\", a fixed offset like \"+08:00\" or \"-05:30\", or a zone \
                     without daylight saving such as \"Asia/Shanghai\" (zones with daylight \
                     saving have no fixed offset), got {zone:?}"
                ),
            )
        })?;
        let uses_field = tokens.contains(&Token::Var(Var::Field));
        let field = match (field, uses_field) {
            (None, false) => None,
            (None, true) => return Err(error(T, "uses {field} but `sink.key_field` is not set")),
            (Some(_), false) => {
                return Err(error(
                    "key_field",
                    "is set but `sink.key_template` has no {field}",
                ))
            }
            (Some(spec), true) => Some(parse_field(spec, field_default)?),
        };
        let default = body == DEFAULT_TEMPLATE;
        Ok(KeyTemplate {
            text: template.to_owned(),
            tokens,
            default,
            zone_offset_ms,
            granularity,
            field,
            ext: JSON_EXT.to_owned(),
        })
    }

    /// The template as configured.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The same template for a format with another file extension.
    pub fn with_ext(mut self, ext: &str) -> Self {
        self.ext = ext.to_owned();
        self
    }

    /// Whether objects are cut by time bucket or field value (the batcher computes
    /// [`KeyParts`] per record only then).
    pub fn is_partitioned(&self) -> bool {
        self.granularity.is_some() || self.field.is_some()
    }

    /// The longest key the template can produce under `prefix`: every variable at its longest.
    pub fn worst_case_bytes(&self, prefix: &str) -> usize {
        prefix.len()
            + self
                .tokens
                .iter()
                .map(|t| match t {
                    Token::Lit(lit) => lit.len(),
                    Token::Var(Var::Topic) => MAX_TOPIC_BYTES,
                    Token::Var(Var::Partition) => MAX_PARTITION_DIGITS,
                    Token::Var(Var::First | Var::Last) => 20,
                    Token::Var(Var::Ext) => MAX_EXT_BYTES,
                    Token::Var(Var::Year) => 4,
                    Token::Var(Var::Month | Var::Day | Var::Hour | Var::Minute) => 2,
                    Token::Var(Var::Field) => MAX_PART_BYTES,
                })
                .sum::<usize>()
    }

    /// `Err` if a key under `prefix` could exceed OSS's 1,023 bytes.
    pub fn check_length(&self, prefix: &str) -> Result<(), TemplateError> {
        let worst = self.worst_case_bytes(prefix);
        if worst > MAX_KEY_BYTES {
            return Err(error(
                "key_template",
                format!(
                    "keys could be {worst} bytes with `sink.key_prefix` (a 249-character topic, \
                     {MAX_PART_BYTES}-byte field, {MAX_EXT_BYTES}-byte extension), over OSS's \
                     {MAX_KEY_BYTES}: shorten the template or the prefix"
                ),
            ));
        }
        Ok(())
    }

    /// The key parts of a record: its timestamp's bucket and its field.
    pub fn parts(&self, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> KeyParts {
        let time = match self.granularity {
            None => 0,
            Some(granularity) => bucket(local_ms(timestamp, self.zone_offset_ms), granularity),
        };
        let field = self.field.as_ref().map(|spec| {
            match extract(spec, key, value) {
                Some(raw) if !raw.is_empty() => confine(&raw),
                _ => spec.default.clone(),
            }
            .into_boxed_str()
        });
        KeyParts { time, field }
    }

    /// The key of the object holding `first..=last`, whose records have `parts` (`None`: a
    /// template that [`is_partitioned`](Self::is_partitioned) not).
    pub fn render(
        &self,
        prefix: &str,
        topic: &str,
        partition: i32,
        first: i64,
        last: i64,
        parts: Option<&KeyParts>,
    ) -> String {
        if self.default && self.ext == JSON_EXT {
            return object_key(prefix, topic, partition, first, last);
        }
        let default_parts = KeyParts::default();
        let parts = parts.unwrap_or(&default_parts);
        let (y, mo, d) = civil_from_days(parts.time.div_euclid(DAY_MS));
        let in_day = parts.time.rem_euclid(DAY_MS);
        let mut key = String::with_capacity(prefix.len() + topic.len() + 96);
        key.push_str(prefix);
        for token in &self.tokens {
            // Writing to a String cannot fail.
            let _ = match token {
                Token::Lit(lit) => {
                    key.push_str(lit);
                    Ok(())
                }
                Token::Var(Var::Topic) => {
                    key.push_str(topic);
                    Ok(())
                }
                Token::Var(Var::Partition) => write!(key, "{partition}"),
                Token::Var(Var::First) => write!(key, "{first:020}"),
                Token::Var(Var::Last) => write!(key, "{last:020}"),
                Token::Var(Var::Ext) => {
                    key.push_str(&self.ext);
                    Ok(())
                }
                Token::Var(Var::Year) => write!(key, "{y:04}"),
                Token::Var(Var::Month) => write!(key, "{mo:02}"),
                Token::Var(Var::Day) => write!(key, "{d:02}"),
                Token::Var(Var::Hour) => write!(key, "{:02}", in_day / HOUR_MS),
                Token::Var(Var::Minute) => write!(key, "{:02}", in_day % HOUR_MS / MINUTE_MS),
                Token::Var(Var::Field) => {
                    key.push_str(parts.field.as_deref().unwrap_or(""));
                    Ok(())
                }
            };
        }
        key
    }

    /// The prefix recovery lists for `partition`'s objects: the template up to its first
    /// variable other than `{topic}`/`{partition}` (`{prefix}{topic}/{partition}/` for the
    /// default; `{prefix}{topic}/` for a template with time parts before `{partition}`).
    pub fn listing_prefix(&self, prefix: &str, topic: &str, partition: i32) -> String {
        let mut out = prefix.to_owned();
        for token in &self.tokens {
            match token {
                Token::Lit(lit) => out.push_str(lit),
                Token::Var(Var::Topic) => out.push_str(topic),
                Token::Var(Var::Partition) => {
                    let _ = write!(out, "{partition}");
                }
                Token::Var(_) => break,
            }
        }
        out
    }

    /// Whether every object of a partition sits directly in [`listing_prefix`](Self::listing_prefix)
    /// (a folder, no deeper `/`): then a delimiter listing finds them all.
    pub fn lists_folder(&self) -> bool {
        let fixed = self
            .tokens
            .iter()
            .take_while(|t| matches!(t, Token::Lit(_) | Token::Var(Var::Topic | Var::Partition)))
            .count();
        let ends_folder = matches!(&self.tokens[fixed - 1], Token::Lit(lit) if lit.ends_with('/'));
        ends_folder
            && self.tokens[fixed..]
                .iter()
                .all(|t| !matches!(t, Token::Lit(lit) if lit.contains('/')))
    }

    /// The `start-after` key that lists only objects whose first offset is at least
    /// `first_offset`, where keys sort by offset under the listing prefix (`{first}-` right
    /// after it); `None` otherwise (everything under the prefix is listed).
    pub fn start_after(
        &self,
        prefix: &str,
        topic: &str,
        partition: i32,
        first_offset: i64,
    ) -> Option<String> {
        let fixed = self
            .tokens
            .iter()
            .take_while(|t| matches!(t, Token::Lit(_) | Token::Var(Var::Topic | Var::Partition)))
            .count();
        let sorted = self.tokens.get(fixed) == Some(&Token::Var(Var::First))
            && matches!(self.tokens.get(fixed + 1), Some(Token::Lit(lit)) if lit.starts_with('-'));
        // `.` sorts after `-`: after every key of a smaller first offset, before the others.
        sorted.then(|| {
            format!(
                "{}{:020}.",
                self.listing_prefix(prefix, topic, partition),
                first_offset - 1
            )
        })
    }

    /// `(partition, first, last)` of a key this template wrote under `prefix` for `topic`
    /// (and `partition`, if given); `None` for any other key.
    pub fn parse_key(
        &self,
        prefix: &str,
        topic: &str,
        partition: Option<i32>,
        key: &str,
    ) -> Option<(i32, i64, i64)> {
        if self.default && self.ext == JSON_EXT {
            let folder = format!("{prefix}{topic}/");
            let rest = key.strip_prefix(&folder)?;
            let (digits, _) = rest.split_once('/')?;
            let found: i32 = canonical_number(digits)?;
            if partition.is_some_and(|p| p != found) {
                return None;
            }
            let (first, last) = parse_partition_key(&format!("{folder}{digits}/"), key)?;
            return Some((found, first, last));
        }
        let rest = key.strip_prefix(prefix)?;
        let mut captured = Captured {
            partition,
            ..Captured::default()
        };
        if !self.match_tokens(&self.tokens, rest, topic, &mut captured) {
            return None;
        }
        let (p, first, last) = (captured.partition?, captured.first?, captured.last?);
        (first <= last).then_some((p, first, last))
    }

    fn match_tokens(&self, tokens: &[Token], rest: &str, topic: &str, c: &mut Captured) -> bool {
        let Some((token, tail)) = tokens.split_first() else {
            return rest.is_empty();
        };
        let fixed = |text: &str, c: &mut Captured| match rest.strip_prefix(text) {
            Some(after) => self.match_tokens(tail, after, topic, c),
            None => false,
        };
        let digits =
            |n: usize| rest.len() >= n && rest.as_bytes()[..n].iter().all(u8::is_ascii_digit);
        match token {
            Token::Lit(lit) => fixed(lit, c),
            Token::Var(Var::Topic) => fixed(topic, c),
            Token::Var(Var::Ext) => fixed(&self.ext, c),
            Token::Var(Var::Partition) => match c.partition {
                Some(known) => fixed(&known.to_string(), c),
                None => (1..=MAX_PARTITION_DIGITS.min(rest.len())).any(|n| {
                    let Some(found) = canonical_number(&rest[..n]) else {
                        return false;
                    };
                    let mut attempt = Captured {
                        partition: Some(found),
                        ..*c
                    };
                    let matched = self.match_tokens(tail, &rest[n..], topic, &mut attempt);
                    if matched {
                        *c = attempt;
                    }
                    matched
                }),
            },
            Token::Var(var @ (Var::First | Var::Last)) => {
                if !digits(20) {
                    return false;
                }
                let Ok(offset) = rest[..20].parse::<i64>() else {
                    return false;
                };
                if *var == Var::First {
                    c.first = Some(offset);
                } else {
                    c.last = Some(offset);
                }
                self.match_tokens(tail, &rest[20..], topic, c)
            }
            Token::Var(Var::Year) => digits(4) && self.match_tokens(tail, &rest[4..], topic, c),
            Token::Var(Var::Month | Var::Day | Var::Hour | Var::Minute) => {
                digits(2) && self.match_tokens(tail, &rest[2..], topic, c)
            }
            Token::Var(Var::Field) => {
                // One or more characters of one segment, at most a part's length.
                let segment = rest.split('/').next().unwrap_or("");
                segment
                    .char_indices()
                    .map(|(at, ch)| at + ch.len_utf8())
                    .take_while(|&end| end <= MAX_PART_BYTES)
                    .any(|end| {
                        let mut attempt = *c;
                        let matched = self.match_tokens(tail, &rest[end..], topic, &mut attempt);
                        if matched {
                            *c = attempt;
                        }
                        matched
                    })
            }
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Captured {
    partition: Option<i32>,
    first: Option<i64>,
    last: Option<i64>,
}

fn name(var: Var) -> &'static str {
    VARIABLES
        .iter()
        .find(|(_, v)| *v == var)
        .map(|(name, _)| *name)
        .expect("every variable has a name")
}

fn tokenize(template: &str) -> Result<Vec<Token>, TemplateError> {
    let mut tokens = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            Some(0) if rest.starts_with('{') => {
                let end = rest
                    .find('}')
                    .ok_or_else(|| error("key_template", "has a '{' without its '}'"))?;
                let var = &rest[1..end];
                let Some((_, var)) = VARIABLES.iter().find(|(name, _)| *name == var) else {
                    let known: Vec<String> = VARIABLES
                        .iter()
                        .map(|(name, _)| format!("{{{name}}}"))
                        .collect();
                    return Err(error(
                        "key_template",
                        format!(
                            "unknown variable {{{var}}}; the variables are {} (and \"{{prefix}}\" \
                             at the start)",
                            known.join(" ")
                        ),
                    ));
                };
                tokens.push(Token::Var(*var));
                rest = &rest[end + 1..];
            }
            Some(0) => return Err(error("key_template", "has a '}' without its '{'")),
            Some(at) => {
                tokens.push(Token::Lit(rest[..at].to_owned()));
                rest = &rest[at..];
            }
            None => {
                tokens.push(Token::Lit(rest.to_owned()));
                rest = "";
            }
        }
    }
    Ok(tokens)
}

fn parse_field(spec: &str, default: &str) -> Result<FieldSpec, TemplateError> {
    let (from_key, path) = match spec.split_once('.') {
        None if spec == "key" => (true, ""),
        None if spec == "value" => (false, ""),
        Some(("key", path)) => (true, path),
        Some(("value", path)) => (false, path),
        _ => {
            return Err(error(
                "key_field",
                format!(
                    "must be \"key\", \"value\", \"key.<name>\" or \"value.<name>\" (a member of \
                     a JSON object, dotted for nested ones), got {spec:?}"
                ),
            ))
        }
    };
    let path: Vec<String> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('.').map(str::to_owned).collect()
    };
    if path.iter().any(String::is_empty) {
        return Err(error("key_field", format!("has an empty name in {spec:?}")));
    }
    if default.is_empty() {
        return Err(error("key_field_default", "must not be empty"));
    }
    Ok(FieldSpec {
        from_key,
        path,
        default: confine(default),
    })
}

mod field;
mod time;

#[cfg(test)]
mod tests;
