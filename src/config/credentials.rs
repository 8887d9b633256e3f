//! Secrets: where they may come from, and how they are kept out of everything printed.
//!
//! The object store's AccessKey pair is never read from the config file: a config file gets
//! copied, committed and written to the config topic, an environment does not. It comes from the
//! environment, or from a source named in `[sink.credentials]` that gives temporary or rotated
//! credentials while running (a credentials file, the ECS RAM role, RRSA; see
//! [`credential_source`]). A credential-looking key in the file is therefore an error (its value
//! never echoed), and librdkafka properties that look secret (`sasl.password`) are shown as
//! `"***"` by `check`.

use actors::settings::{CredentialSource, Credentials, Secret};

use super::error::ConfigError;
use super::keys;
use super::values::Values;

/// The ECS RAM role's name, as Alibaba's SDKs read it; setting it also selects the ECS RAM role
/// when `sink.credentials.source` is `auto`.
pub const ECS_ROLE_VARIABLE: &str = "ALIBABA_CLOUD_ECS_METADATA";
/// RRSA's variables, which ACK sets in pods that use it.
pub const RRSA_ROLE_ARN: &str = "ALIBABA_CLOUD_ROLE_ARN";
pub const RRSA_OIDC_PROVIDER_ARN: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
pub const RRSA_OIDC_TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
/// Overrides the STS session name (default `kafka-oss-sink-<name>`).
pub const RRSA_SESSION_NAME: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";

/// The environment's AccessKey variables (either family).
const ENV_PAIR_VARIABLES: [&str; 4] = [
    "OSS_ACCESS_KEY_ID",
    "OSS_ACCESS_KEY_SECRET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
];

/// Where the object store's credentials come from: `sink.credentials.source`, or for `auto` the
/// first of: the environment's AccessKey pair (any of its variables set), `sink.credentials.file`
/// (set), the ECS RAM role ([`ECS_ROLE_VARIABLE`] set), RRSA (any of its variables set). With
/// none of them, the environment's error (its variables are the documented default). Errors
/// name keys and variables, never values.
pub(super) fn credential_source(
    values: &Values,
    get: impl Fn(&str) -> Option<String>,
) -> Result<CredentialSource, ConfigError> {
    let var = |name: &str| get(name).filter(|value| !value.trim().is_empty());
    let chosen = values.str(&keys::SINK_CREDENTIALS_SOURCE);
    let file = values.optional_str(&keys::SINK_CREDENTIALS_FILE);
    let source = match chosen {
        "auto" if ENV_PAIR_VARIABLES.iter().any(|name| var(name).is_some()) => "env",
        "auto" if file.is_some() => "file",
        "auto" if var(ECS_ROLE_VARIABLE).is_some() => "ecs_ram_role",
        "auto"
            if [RRSA_ROLE_ARN, RRSA_OIDC_PROVIDER_ARN, RRSA_OIDC_TOKEN_FILE]
                .iter()
                .any(|name| var(name).is_some()) =>
        {
            "rrsa"
        }
        "auto" => "env",
        other => other,
    };
    match source {
        "env" => credentials_from_env(get).map(CredentialSource::Static),
        "file" => match file {
            Some(path) => Ok(CredentialSource::File { path: path.into() }),
            None => Err(ConfigError::new(
                keys::SINK_CREDENTIALS_FILE.path,
                "required when `sink.credentials.source` is \"file\"",
            )),
        },
        "ecs_ram_role" => Ok(CredentialSource::EcsRamRole {
            metadata_url: values.string(&keys::SINK_CREDENTIALS_METADATA_URL),
            role: var(ECS_ROLE_VARIABLE).map(|role| role.trim().to_owned()),
        }),
        "rrsa" => {
            let required = |name: &'static str| {
                var(name)
                    .map(|value| value.trim().to_owned())
                    .ok_or_else(|| {
                        ConfigError::new(
                            name,
                            format!(
                            "not set; RRSA needs {RRSA_ROLE_ARN}, {RRSA_OIDC_PROVIDER_ARN} and \
                             {RRSA_OIDC_TOKEN_FILE} (ACK sets them in pods of a service account \
                             with RRSA enabled)"
                        ),
                        )
                    })
            };
            Ok(CredentialSource::Rrsa {
                role_arn: required(RRSA_ROLE_ARN)?,
                oidc_provider_arn: required(RRSA_OIDC_PROVIDER_ARN)?,
                token_file: required(RRSA_OIDC_TOKEN_FILE)?.into(),
                sts_endpoint: values.string(&keys::SINK_CREDENTIALS_STS_ENDPOINT),
                session_name: var(RRSA_SESSION_NAME)
                    .unwrap_or_else(|| format!("kafka-oss-sink-{}", values.str(&keys::NAME))),
            })
        }
        other => unreachable!("`sink.credentials.source` has no option {other:?}"),
    }
}

/// The message for a credential-looking key in the file.
pub(super) const IN_FILE_MESSAGE: &str = "credentials are not read from the config file; \
     set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET in the environment";

/// What to say about a credential-looking key found in `section` of the file.
pub(super) fn in_file_message(section: &str) -> String {
    if section == "source" {
        format!(
            "{IN_FILE_MESSAGE}; Kafka SASL settings go in `source.properties` \
             (\"sasl.username\"), the password in KAFKA_SASL_PASSWORD"
        )
    } else if section == "sink.credentials" {
        format!(
            "{IN_FILE_MESSAGE}, or name their source here: `source`, `file`, `metadata_url`, \
             `sts_endpoint` (config/README.md, Credentials)"
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
             (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) in the environment, \
             or choose another source in [sink.credentials]",
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

    fn values(credentials_section: &str) -> Values {
        let text = format!(
            "name = \"n\"\n[source]\nbootstrap_servers = \"k:1\"\ntopic = \"t\"\n\
             [sink]\nbucket = \"bkt\"\n[sink.credentials]\n{credentials_section}\n"
        );
        super::super::walk::walk(toml::from_str(&text).unwrap()).unwrap()
    }

    const PAIR: &[(&str, &str)] = &[
        ("OSS_ACCESS_KEY_ID", "oss-id"),
        ("OSS_ACCESS_KEY_SECRET", "oss-secret"),
    ];
    const RRSA: &[(&str, &str)] = &[
        (RRSA_ROLE_ARN, "acs:ram::1:role/r"),
        (RRSA_OIDC_PROVIDER_ARN, "acs:ram::1:oidc-provider/p"),
        (RRSA_OIDC_TOKEN_FILE, "/var/run/token"),
    ];

    fn kind(source: &CredentialSource) -> &'static str {
        match source {
            CredentialSource::Static(_) => "env",
            CredentialSource::File { .. } => "file",
            CredentialSource::EcsRamRole { .. } => "ecs_ram_role",
            CredentialSource::Rrsa { .. } => "rrsa",
        }
    }

    #[test]
    fn auto_detects_sources_in_the_documented_order() {
        let with_file = values("file = \"/etc/creds.json\"");
        let all: Vec<(&str, &str)> = PAIR
            .iter()
            .chain(RRSA)
            .copied()
            .chain([(ECS_ROLE_VARIABLE, "role")])
            .collect();
        let source = credential_source(&with_file, env(&all)).unwrap();
        assert_eq!(
            kind(&source),
            "env",
            "the environment's pair stays the default"
        );
        let no_pair: Vec<_> = all[2..].to_vec();
        let source = credential_source(&with_file, env(&no_pair)).unwrap();
        assert!(
            matches!(&source, CredentialSource::File { path } if path.to_str() == Some("/etc/creds.json"))
        );
        let none = values("");
        let source = credential_source(&none, env(&no_pair)).unwrap();
        let CredentialSource::EcsRamRole { metadata_url, role } = source else {
            panic!("{source:?}");
        };
        assert_eq!(metadata_url, "http://100.100.100.200");
        assert_eq!(role.as_deref(), Some("role"));
        let source = credential_source(&none, env(RRSA)).unwrap();
        let CredentialSource::Rrsa {
            sts_endpoint,
            session_name,
            token_file,
            ..
        } = source
        else {
            panic!("{source:?}");
        };
        assert_eq!(sts_endpoint, "https://sts.aliyuncs.com");
        assert_eq!(session_name, "kafka-oss-sink-n");
        assert_eq!(token_file.to_str(), Some("/var/run/token"));
        // Nothing configured: the environment's variables are what is missing.
        let err = credential_source(&none, env(&[])).unwrap_err();
        assert_eq!(err.key, "OSS_ACCESS_KEY_ID");
        assert!(err.message.contains("[sink.credentials]"), "{err}");
    }

    #[test]
    fn a_chosen_source_ignores_the_others_and_names_what_it_misses() {
        let chosen = |section: &str, vars: &[(&str, &str)]| {
            credential_source(&values(section), env(vars)).map(|s| kind(&s))
        };
        let file = "source = \"file\"\nfile = \"c.json\"";
        assert_eq!(chosen(file, PAIR).unwrap(), "file");
        let url = "source = \"ecs_ram_role\"\nmetadata_url = \"http://127.0.0.1:1\"";
        assert_eq!(chosen(url, PAIR).unwrap(), "ecs_ram_role");
        assert_eq!(
            chosen("source = \"rrsa\"", &[PAIR, RRSA].concat()).unwrap(),
            "rrsa"
        );
        assert_eq!(chosen("source = \"env\"", PAIR).unwrap(), "env");

        let err = chosen("source = \"file\"", PAIR).unwrap_err();
        assert_eq!(err.key, "sink.credentials.file");
        let err = chosen("source = \"rrsa\"", &RRSA[..2]).unwrap_err();
        assert_eq!(err.key, RRSA_OIDC_TOKEN_FILE);
        assert!(!err.to_string().contains("acs:ram"), "{err}");
        let err = chosen("source = \"env\"", RRSA).unwrap_err();
        assert_eq!(err.key, "OSS_ACCESS_KEY_ID");
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
