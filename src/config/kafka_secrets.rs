//! The Kafka clients' secrets: `sasl.password` and the other [`SECRET_PROPERTIES`].
//!
//! Never from the config file ([`super::properties`] refuses them there): from the environment
//! (`KAFKA_SASL_PASSWORD`, ..., see [`secret_variable`]), or from a file named after the property
//! in the directory `source.secrets_dir` names (a mounted Kubernetes Secret whose keys are the
//! property names, or systemd's credentials directory). Read once, when the config is loaded: a
//! changed password takes a restart. The values join the clients' librdkafka properties and
//! nothing else: not the rendered config, not the config topic, not a message.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use actors::settings::ClientProperties;

use super::error::ConfigError;
use super::keys::{SOURCE_PROPERTIES, SOURCE_SECRETS_DIR};
use super::properties::{secret_variable, SECRET_PROPERTIES};
use super::values::Values;

/// SASL mechanisms that authenticate with a user name and a password.
const PASSWORD_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Reads every secret property that is set: from the environment (`get`; an empty value counts
/// as unset) or from its file in `source.secrets_dir` (`read`; a trailing newline is not part of
/// the secret). Errors name variables, files and keys, never values.
pub(super) fn resolve(
    values: &Values,
    get: impl Fn(&str) -> Option<String>,
    read: impl Fn(&Path) -> io::Result<Option<String>>,
) -> Result<ClientProperties, Vec<ConfigError>> {
    let dir = values.optional_str(&SOURCE_SECRETS_DIR).map(Path::new);
    let mut errors = Vec::new();
    let mut secrets = BTreeMap::new();
    for property in SECRET_PROPERTIES {
        let variable = secret_variable(property);
        let from_env = get(&variable).filter(|value| !value.is_empty());
        let file = dir.map(|dir| dir.join(property));
        let from_file = match &file {
            Some(file) => match read(file) {
                Ok(Some(text)) => {
                    let value = text.trim_end_matches(['\n', '\r']).to_owned();
                    if value.is_empty() {
                        errors.push(ConfigError::new(
                            SOURCE_SECRETS_DIR.path,
                            format!("{} is empty", file.display()),
                        ));
                        continue;
                    }
                    Some(value)
                }
                Ok(None) => None,
                Err(error) => {
                    errors.push(ConfigError::new(
                        SOURCE_SECRETS_DIR.path,
                        format!("cannot read {}: {error}", file.display()),
                    ));
                    continue;
                }
            },
            None => None,
        };
        match (from_env, from_file, file) {
            (Some(_), Some(_), Some(file)) => errors.push(ConfigError::new(
                variable.as_str(),
                format!(
                    "`{property}` is set twice: by {variable} in the environment and by the \
                     file {}; keep one",
                    file.display()
                ),
            )),
            (Some(value), None, _) | (None, Some(value), _) => {
                secrets.insert((*property).to_owned(), value);
            }
            _ => {}
        }
    }
    if let Some(dir) = dir {
        if !dir.is_dir() {
            errors.push(ConfigError::new(
                SOURCE_SECRETS_DIR.path,
                format!("{} is not a directory", dir.display()),
            ));
        }
    }
    if errors.is_empty() {
        Ok(ClientProperties(secrets))
    } else {
        Err(errors)
    }
}

/// A file's text; `None` if there is no such file.
pub(super) fn read_file(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// A SASL mechanism that needs a user name and a password is configured without one of them.
/// Checked by the commands that talk to Kafka (`run`, `check`, `reconcile`, `send`), not by those
/// that only talk to a running connector's admin address.
pub(super) fn missing(values: &Values, secrets: &ClientProperties) -> Option<ConfigError> {
    let properties = &values.properties(&SOURCE_PROPERTIES).0;
    let protocol = properties
        .get("security.protocol")
        .map(|protocol| protocol.to_ascii_uppercase())?;
    if !protocol.starts_with("SASL_") {
        return None;
    }
    let mechanism = properties
        .get("sasl.mechanism")
        .or_else(|| properties.get("sasl.mechanisms"))
        .map(|mechanism| mechanism.trim().to_ascii_uppercase())
        .unwrap_or_else(|| "GSSAPI".to_owned());
    if !PASSWORD_MECHANISMS.contains(&mechanism.as_str()) {
        return None;
    }
    if !properties.contains_key("sasl.username") {
        return Some(ConfigError::new(
            format!("{}.\"sasl.username\"", SOURCE_PROPERTIES.path),
            format!("required with security.protocol {protocol} and SASL mechanism {mechanism}"),
        ));
    }
    if !secrets.0.contains_key("sasl.password") {
        let variable = secret_variable("sasl.password");
        return Some(ConfigError::new(
            variable.as_str(),
            format!(
                "not set: SASL mechanism {mechanism} needs the password of `sasl.username`; set \
                 {variable} in the environment, or put it in a file named `sasl.password` in the \
                 directory `source.secrets_dir` names"
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    const BASE: &str = "name = \"a\"\n[source]\nbootstrap_servers = \"k:9092\"\ntopic = \"t\"\n";
    const SINK: &str = "[sink]\nbucket = \"bkt\"\n";

    fn values(source: &str) -> Values {
        parse_config(&format!("{BASE}{source}\n{SINK}"))
            .expect("valid")
            .values
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn no_files(_: &Path) -> io::Result<Option<String>> {
        Ok(None)
    }

    #[test]
    fn a_secret_in_the_file_is_refused_naming_its_variable_and_never_its_value() {
        let errors = parse_config(&format!(
            "{BASE}[source.properties]\n\"sasl.username\" = \"u\"\n\"sasl.password\" = \"hunter2-value\"\n\"ssl.key.password\" = \"other-value\"\n{SINK}"
        ))
        .expect_err("refused");
        let text = errors.to_string();
        assert!(
            text.contains("source.properties.\"sasl.password\""),
            "{text}"
        );
        assert!(text.contains("KAFKA_SASL_PASSWORD"), "{text}");
        assert!(text.contains("KAFKA_SSL_KEY_PASSWORD"), "{text}");
        assert!(
            !text.contains("hunter2-value") && !text.contains("other-value"),
            "{text}"
        );
    }

    #[test]
    fn secrets_come_from_the_environment_or_the_secrets_directory() {
        let from_env = resolve(
            &values(""),
            env(&[("KAFKA_SASL_PASSWORD", "pw-env"), ("KAFKA_SSL_KEY_PEM", "")]),
            no_files,
        )
        .expect("resolved");
        assert_eq!(from_env.0.len(), 1, "an empty variable counts as unset");
        assert_eq!(from_env.0["sasl.password"], "pw-env");

        let dir = std::env::temp_dir().join(format!("kos-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sasl.password"), "pw-file\n").unwrap();
        std::fs::write(dir.join("ssl.key.password"), "key-pw\r\n").unwrap();
        let dir_values = values(&format!("secrets_dir = {:?}", dir.display().to_string()));
        let from_dir = resolve(&dir_values, env(&[]), read_file).expect("resolved");
        assert_eq!(from_dir.0["sasl.password"], "pw-file");
        assert_eq!(from_dir.0["ssl.key.password"], "key-pw");

        // Both sources for one property: ambiguous, refused naming both, never the value.
        let errors = resolve(
            &dir_values,
            env(&[("KAFKA_SASL_PASSWORD", "pw-env")]),
            read_file,
        )
        .expect_err("set twice");
        let text = errors[0].to_string();
        assert!(text.contains("KAFKA_SASL_PASSWORD") && text.contains("sasl.password"));
        assert!(
            !text.contains("pw-env") && !text.contains("pw-file"),
            "{text}"
        );

        // An empty file, and a directory that is not there.
        std::fs::write(dir.join("ssl.key.password"), "\n").unwrap();
        let errors = resolve(&dir_values, env(&[]), read_file).expect_err("empty");
        assert!(errors[0].to_string().contains("is empty"), "{}", errors[0]);
        std::fs::remove_dir_all(&dir).unwrap();
        let errors = resolve(&dir_values, env(&[]), read_file).expect_err("no directory");
        assert!(
            errors[0].to_string().contains("source.secrets_dir")
                && errors[0].to_string().contains("not a directory"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn a_password_mechanism_needs_a_user_name_and_a_password() {
        let sasl = |mechanism: &str| {
            values(&format!(
                "[source.properties]\n\"security.protocol\" = \"sasl_ssl\"\n\"sasl.mechanisms\" = \"{mechanism}\"\n\"sasl.username\" = \"u\""
            ))
        };
        let none = ClientProperties::default();
        let with_password = ClientProperties(
            [("sasl.password".to_owned(), "pw".to_owned())]
                .into_iter()
                .collect(),
        );
        for mechanism in ["PLAIN", "SCRAM-SHA-256", "scram-sha-512"] {
            let error = missing(&sasl(mechanism), &none).expect("no password");
            assert!(error.to_string().contains("KAFKA_SASL_PASSWORD"), "{error}");
            assert!(missing(&sasl(mechanism), &with_password).is_none());
        }
        // Kerberos and OAUTHBEARER take no password; plaintext and SSL need no SASL at all.
        assert!(missing(&sasl("GSSAPI"), &none).is_none());
        assert!(missing(&sasl("OAUTHBEARER"), &none).is_none());
        assert!(missing(&values(""), &none).is_none());
        let no_user = values(
            "[source.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"PLAIN\"",
        );
        let error = missing(&no_user, &with_password).expect("no user name");
        assert!(error.to_string().contains("sasl.username"), "{error}");
    }
}
