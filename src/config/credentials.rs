//! Secrets: where they may come from, and how they are kept out of everything printed.
//!
//! The object store's AccessKey pair is read from the environment only, never from the file: a
//! config file gets copied, committed and written to the config topic, an environment does not.
//! A credential-looking key in the file is therefore an error (its value never echoed), and
//! librdkafka properties that look secret (`sasl.password`) are shown as `"***"` by `check`.

use actors::settings::{Credentials, Secret};

use super::error::ConfigError;

/// The message for a credential-looking key in the file.
pub(super) const IN_FILE_MESSAGE: &str = "credentials are not read from the config file; \
     set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET in the environment";

/// What to say about a credential-looking key found in `section` of the file.
pub(super) fn in_file_message(section: &str) -> String {
    if section == "source" {
        format!(
            "{IN_FILE_MESSAGE}; Kafka SASL settings go in `source.properties` \
             (e.g. \"sasl.username\", \"sasl.password\")"
        )
    } else {
        IN_FILE_MESSAGE.to_owned()
    }
}

/// Keys that look like credentials: never accepted in the file, and their values never echoed.
pub(super) fn is_credential_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('-', "_");
    const EXACT: &[&str] = &[
        "access_key_id",
        "access_key_secret",
        "secret_access_key",
        "secret",
        "password",
        "session_token",
        "security_token",
        "token",
        "access_key",
        "secret_key",
        "credentials",
    ];
    EXACT.contains(&name.as_str())
        || name.contains("secret")
        || name.contains("password")
        || name.contains("access_key")
        || name.ends_with("_token")
}

/// Whether the value of a librdkafka property is shown as `"***"` by `check` (and in the config
/// topic).
pub(super) fn is_sensitive_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "token", "key"]
        .iter()
        .any(|word| name.contains(word))
}

/// The AccessKey pair from the environment: `OSS_ACCESS_KEY_ID` / `OSS_ACCESS_KEY_SECRET`
/// (+ optional `OSS_SESSION_TOKEN`); if neither OSS variable is set, `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` (+ optional `AWS_SESSION_TOKEN`). The two families are never mixed.
/// Empty values count as unset. Errors name variables, never values.
pub fn credentials_from_env(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Credentials, ConfigError> {
    struct Family {
        id: &'static str,
        secret: &'static str,
        token: &'static str,
    }
    const OSS: Family = Family {
        id: "OSS_ACCESS_KEY_ID",
        secret: "OSS_ACCESS_KEY_SECRET",
        token: "OSS_SESSION_TOKEN",
    };
    const AWS: Family = Family {
        id: "AWS_ACCESS_KEY_ID",
        secret: "AWS_SECRET_ACCESS_KEY",
        token: "AWS_SESSION_TOKEN",
    };
    let var = |name: &str| get(name).filter(|value| !value.is_empty());

    let family = if var(OSS.id).is_some() || var(OSS.secret).is_some() {
        OSS
    } else if var(AWS.id).is_some() || var(AWS.secret).is_some() {
        AWS
    } else {
        return Err(ConfigError::new(
            OSS.id,
            "not set; set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET \
             (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) in the environment",
        ));
    };
    let id = var(family.id);
    let secret = var(family.secret);
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Credentials {
            access_key_id: Secret::new(id),
            access_key_secret: Secret::new(secret),
            session_token: var(family.token).map(Secret::new),
        }),
        (Some(_), None) => Err(ConfigError::new(
            family.secret,
            format!("not set, but {} is; set both", family.id),
        )),
        _ => Err(ConfigError::new(
            family.id,
            format!("not set, but {} is; set both", family.secret),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn credentials_from_oss_variables() {
        let c = credentials_from_env(env(&[
            ("OSS_ACCESS_KEY_ID", "oss-id"),
            ("OSS_ACCESS_KEY_SECRET", "oss-secret"),
            ("OSS_SESSION_TOKEN", "oss-token"),
            ("AWS_ACCESS_KEY_ID", "aws-id"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ]))
        .unwrap();
        assert_eq!(c.access_key_id.expose(), "oss-id");
        assert_eq!(c.access_key_secret.expose(), "oss-secret");
        assert_eq!(
            c.session_token.as_ref().map(Secret::expose),
            Some("oss-token")
        );

        let c = credentials_from_env(env(&[
            ("OSS_ACCESS_KEY_ID", "oss-id"),
            ("OSS_ACCESS_KEY_SECRET", "oss-secret"),
            ("OSS_SESSION_TOKEN", ""),
        ]))
        .unwrap();
        assert!(c.session_token.is_none(), "empty counts as unset");
    }

    #[test]
    fn credentials_fall_back_to_aws_variables() {
        let c = credentials_from_env(env(&[
            ("OSS_ACCESS_KEY_ID", ""),
            ("AWS_ACCESS_KEY_ID", "aws-id"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("AWS_SESSION_TOKEN", "aws-token"),
            ("OSS_SESSION_TOKEN", "oss-token"),
        ]))
        .unwrap();
        assert_eq!(c.access_key_id.expose(), "aws-id");
        assert_eq!(c.access_key_secret.expose(), "aws-secret");
        assert_eq!(
            c.session_token.as_ref().map(Secret::expose),
            Some("aws-token")
        );
    }

    #[test]
    fn missing_credential_variables_are_named_and_families_never_mixed() {
        let err = credentials_from_env(env(&[("OSS_ACCESS_KEY_ID", "oss-id")])).unwrap_err();
        assert_eq!(err.key, "OSS_ACCESS_KEY_SECRET");
        assert!(!err.to_string().contains("oss-id"));

        // An OSS id with only an AWS secret is an error, not a mixed pair.
        let err = credentials_from_env(env(&[
            ("OSS_ACCESS_KEY_ID", "oss-id"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ]))
        .unwrap_err();
        assert_eq!(err.key, "OSS_ACCESS_KEY_SECRET");
        assert!(!err.to_string().contains("aws-secret"));

        let err = credentials_from_env(env(&[
            ("OSS_ACCESS_KEY_SECRET", "oss-secret"),
            ("AWS_ACCESS_KEY_ID", "aws-id"),
        ]))
        .unwrap_err();
        assert_eq!(err.key, "OSS_ACCESS_KEY_ID");
        assert!(!err.to_string().contains("oss-secret"));

        let err = credentials_from_env(env(&[("AWS_ACCESS_KEY_ID", "aws-id")])).unwrap_err();
        assert_eq!(err.key, "AWS_SECRET_ACCESS_KEY");

        let err = credentials_from_env(env(&[])).unwrap_err();
        assert_eq!(err.key, "OSS_ACCESS_KEY_ID");
        assert!(err.message.contains("OSS_ACCESS_KEY_SECRET"));
        assert!(err.message.contains("AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn credential_looking_keys_and_secret_properties() {
        for key in [
            "access_key_id",
            "Access-Key-Secret",
            "acess_key_secret",
            "session_token",
            "credentials",
            "my_password",
        ] {
            assert!(is_credential_key(key), "{key}");
        }
        for key in ["key_prefix", "bucket", "tokens", "max_bytes"] {
            assert!(!is_credential_key(key), "{key}");
        }
        for name in [
            "sasl.password",
            "ssl.key.location",
            "sasl.oauthbearer.client.secret",
        ] {
            assert!(is_sensitive_property(name), "{name}");
        }
        for name in ["security.protocol", "fetch.wait.max.ms", "client.id"] {
            assert!(!is_sensitive_property(name), "{name}");
        }
    }
}
