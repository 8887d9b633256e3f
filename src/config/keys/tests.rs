use std::collections::BTreeSet;
use std::path::Path;

use toml::{Table, Value};

use super::*;

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The table's paths, sections included.
fn table_paths() -> BTreeSet<&'static str> {
    KEYS.iter().map(|key| key.path).collect()
}

#[test]
fn table_is_in_file_order_and_its_defaults_pass_their_rules() {
    assert_eq!(table_paths().len(), KEYS.len(), "a path is declared twice");
    let mut current_section = "";
    for (i, key) in KEYS.iter().enumerate() {
        match &key.kind {
            Kind::Section { .. } => {
                // A sub-section (`[sink.credentials]`) comes last in its section: rendering
                // writes the keys after its header into it.
                let parent = key.section();
                assert!(
                    parent.is_empty() || current_section.split('.').next() == Some(parent),
                    "{}: a section is top-level or a sub-section of the one before",
                    key.path
                );
                if !parent.is_empty() {
                    let next = KEYS.get(i + 1..).unwrap_or_default();
                    assert!(
                        next.iter().all(|k| k.section() != parent),
                        "{} must end its section",
                        key.path
                    );
                }
                current_section = key.path;
            }
            // Rendering writes each key under the last section header written.
            _ => assert_eq!(
                key.section(),
                current_section,
                "{} is out of place",
                key.path
            ),
        }
        if matches!(key.kind, Kind::Properties) {
            let next = KEYS.get(i + 1).map(|next| next.section());
            assert_ne!(
                next,
                Some(current_section),
                "{} must end its section",
                key.path
            );
        }
        match &key.kind {
            Kind::Str {
                default: StrDefault::Fixed(value),
                rule,
            } => assert!((rule.valid)(value), "{}: default {value:?}", key.path),
            Kind::Int(rule) => {
                assert!(
                    (rule.min..=rule.max).contains(&rule.default),
                    "{}: default out of range",
                    key.path
                );
                assert_ne!(
                    rule.except.map(|(v, _)| v),
                    Some(rule.default),
                    "{}",
                    key.path
                );
                if let Some(other) = rule.at_least {
                    assert_eq!(other.section(), key.section(), "{}", key.path);
                    assert!(matches!(other.kind, Kind::Int(_)), "{}", key.path);
                }
            }
            Kind::Choice { options, default } => {
                assert!(options.contains(default), "{}", key.path)
            }
            _ => {}
        }
    }
}

/// `config/connector.toml` sets every key (and nothing else): required keys to an example,
/// the others to their defaults, except the endpoint and region of its Alibaba OSS example.
#[test]
fn connector_example_sets_every_key_to_its_default() {
    const EXAMPLE_VALUES: &[&str] = &["sink.endpoint", "sink.region"];
    let example: Table = toml::from_str(&read("config/connector.toml")).unwrap();
    let mut found = BTreeSet::new();
    for (name, value) in &example {
        found.insert(name.clone());
        walk_example(name, value, &example, EXAMPLE_VALUES, &mut found);
    }
    // A key unset by default whose example value would change behaviour (`admin.token_file`
    // needs the file) is shown commented out, as `# key = value`, in its section.
    let text = read("config/connector.toml");
    for key in KEYS {
        let unset = matches!(
            key.kind,
            Kind::Str {
                default: StrDefault::Unset { .. },
                ..
            }
        );
        let (section, name) = (key.section(), key.name());
        let in_section = text
            .split("\n[")
            .find(|part| part.starts_with(&format!("{section}]")))
            .unwrap_or("");
        if unset && in_section.contains(&format!("\n# {name} = ")) {
            found.insert(key.path.to_owned());
        }
    }
    let declared: BTreeSet<String> = table_paths().into_iter().map(String::from).collect();
    assert_eq!(
        found.difference(&declared).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys in config/connector.toml that the table does not declare"
    );
    assert_eq!(
        declared.difference(&found).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys of the table that config/connector.toml does not show"
    );
}

/// Records `path` (and the keys of a section, sub-sections included) and checks each value.
fn walk_example(
    path: &str,
    value: &Value,
    example: &Table,
    examples: &[&str],
    found: &mut BTreeSet<String>,
) {
    found.insert(path.to_owned());
    match (KEYS.iter().find(|k| k.path == path).map(|k| &k.kind), value) {
        (Some(Kind::Section { .. }), Value::Table(section)) => {
            for (inner, value) in section {
                walk_example(&format!("{path}.{inner}"), value, example, examples, found);
            }
        }
        _ => check_example_value(path, value, example, examples),
    }
}

fn check_example_value(path: &str, value: &Value, example: &Table, examples: &[&str]) {
    let Some(key) = KEYS.iter().find(|k| k.path == path) else {
        return; // reported as undeclared by the caller
    };
    if examples.contains(&path) {
        return;
    }
    let name = example["name"].as_str().unwrap();
    let default = match &key.kind {
        Kind::Section { .. } | Kind::Properties => return,
        Kind::Str { default, .. } => match default {
            StrDefault::Required | StrDefault::Unset { .. } => return,
            StrDefault::Fixed(value) => Value::String((*value).to_owned()),
            StrDefault::FromName { prefix } => Value::String(format!("{prefix}{name}")),
        },
        Kind::Int(rule) => Value::Integer(rule.default),
        Kind::Bool { default } => Value::Boolean(*default),
        Kind::Choice { default, .. } => Value::String((*default).to_owned()),
    };
    assert_eq!(value, &default, "config/connector.toml: `{path}`");
}

/// One row of a key table of `config/README.md`: (path, type, default, allowed).
fn readme_rows() -> Vec<(String, String, String, String)> {
    let readme = read("config/README.md");
    let mut rows = Vec::new();
    let mut section: Option<String> = None;
    let mut in_key_table = false;
    for line in readme.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            // "### Top level", "### `[source]`: Kafka"
            section = Some(match heading.split_once("`[") {
                Some((_, rest)) => rest.split_once("]`").unwrap().0.to_owned(),
                None => String::new(),
            });
            in_key_table = false;
        } else if line.starts_with("#") {
            section = None;
            in_key_table = false;
        } else if line == "| Key | Type | Default | Allowed | Meaning |" {
            in_key_table = section.is_some();
        } else if in_key_table && line.starts_with("| `") {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            let name = cells[0].trim().trim_matches('`');
            let section = section.as_deref().unwrap();
            let path = if section.is_empty() {
                name.to_owned()
            } else {
                format!("{section}.{name}")
            };
            rows.push((path, cells[1].into(), cells[2].into(), cells[3].into()));
        } else if !line.starts_with('|') {
            in_key_table = false;
        }
    }
    rows
}

/// `config/README.md` has a row for every key (and none for anything else), whose type,
/// default and allowed values agree with the table.
#[test]
fn readme_key_tables_match_the_table() {
    let rows = readme_rows();
    let documented: BTreeSet<&str> = rows.iter().map(|row| row.0.as_str()).collect();
    let leaves: BTreeSet<&str> = KEYS
        .iter()
        .filter(|key| !matches!(key.kind, Kind::Section { .. }))
        .map(|key| key.path)
        .collect();
    assert_eq!(documented.len(), rows.len(), "a key is documented twice");
    assert_eq!(
        documented.difference(&leaves).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "config/README.md documents keys the table does not declare"
    );
    assert_eq!(
        leaves.difference(&documented).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "keys of the table missing from config/README.md"
    );
    let readme = read("config/README.md");
    for key in KEYS
        .iter()
        .filter(|k| matches!(k.kind, Kind::Section { .. }))
    {
        let heading = format!("### `[{}]`", key.path);
        assert!(
            readme.contains(&heading),
            "no {heading:?} in config/README.md"
        );
    }

    for (path, kind, default, allowed) in &rows {
        let key = KEYS.iter().find(|k| k.path == path).unwrap();
        let (expected_kind, expected_default) = match &key.kind {
            Kind::Section { .. } => unreachable!("sections have headings, not rows"),
            Kind::Str { default, .. } => (
                "string",
                match default {
                    StrDefault::Required => "required".to_owned(),
                    StrDefault::Unset { .. } => "unset".to_owned(),
                    StrDefault::Fixed(value) => format!("`\"{value}\"`"),
                    StrDefault::FromName { prefix } => format!("`\"{prefix}<name>\"`"),
                },
            ),
            Kind::Int(rule) => ("integer", format!("`{}`", rule.default)),
            Kind::Bool { default } => ("boolean", format!("`{default}`")),
            Kind::Choice { default, .. } => ("string", format!("`\"{default}\"`")),
            Kind::Properties => ("table", "empty".to_owned()),
        };
        assert!(kind.starts_with(expected_kind), "{path}: type {kind:?}");
        assert!(
            default.starts_with(&expected_default),
            "{path}: default {default:?}, the table says {expected_default}"
        );
        match &key.kind {
            Kind::Int(rule) => {
                let mut bounds = vec![rule.max.to_string()];
                match rule.at_least {
                    Some(other) => bounds.push(format!("`{}`", other.name())),
                    None => bounds.push(rule.min.to_string()),
                }
                for bound in bounds {
                    assert!(
                        allowed.contains(&bound),
                        "{path}: allowed {allowed:?} lacks {bound}"
                    );
                }
            }
            Kind::Choice { options, .. } => {
                for option in *options {
                    let shown = format!("`\"{option}\"`");
                    assert!(
                        allowed.contains(&shown),
                        "{path}: allowed {allowed:?} lacks {shown}"
                    );
                }
            }
            Kind::Bool { .. } => assert_eq!(allowed, "`true`, `false`", "{path}"),
            _ => {}
        }
    }
}
