//! The effective config as TOML: what `check` prints and what goes to the config topic.
//!
//! Every key of the table appears, in table order, with its default filled in, so a reader sees
//! what the connector actually runs with; an unset key is a comment saying what unset means.
//! Secret-looking `source.properties` values are shown as `"***"`. The output is itself a valid
//! config file that renders the same (tested), which makes it safe to copy and edit.

use std::fmt::Write as _;

use super::credentials::is_sensitive_property;
use super::keys::{Kind, StrDefault, KEYS};
use super::values::{Setting, Values};

/// Renders `values` (a valid file's) as TOML with secrets redacted.
pub(super) fn redacted_toml(values: &Values) -> String {
    let mut out = String::new();
    // `writeln!` into a String cannot fail.
    for key in KEYS {
        let name = key.name();
        match (&key.kind, values.get(key)) {
            (Kind::Section { .. }, _) => {
                let _ = write!(out, "\n[{}]\n", key.path);
            }
            (Kind::Properties, Some(Setting::Properties(properties))) => {
                // A sub-table: the table's shape test keeps it last in its section.
                let _ = write!(out, "\n[{}]\n", key.path);
                for (property, value) in &properties.0 {
                    let shown = if is_sensitive_property(property) {
                        "***"
                    } else {
                        value
                    };
                    let _ = writeln!(out, "{} = {}", toml_key(property), quote(shown));
                }
            }
            (_, Some(Setting::Str(value))) => {
                let _ = writeln!(out, "{name} = {}", quote(value));
            }
            (_, Some(Setting::Int(value))) => {
                let _ = writeln!(out, "{name} = {value}");
            }
            (_, Some(Setting::Bool(value))) => {
                let _ = writeln!(out, "{name} = {value}");
            }
            (
                Kind::Str {
                    default: StrDefault::Unset { meaning },
                    ..
                },
                None,
            ) => {
                let _ = writeln!(out, "# {name} not set: {meaning}");
            }
            (kind, setting) => {
                unreachable!("`{}` ({kind:?}) has value {setting:?}", key.path)
            }
        }
    }
    out
}

/// A TOML basic string.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when possible, quoted otherwise (`"group.id"`).
pub(super) fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        name.to_owned()
    } else {
        quote(name)
    }
}
