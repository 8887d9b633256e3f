//! `RotatingCredentials`: the S3 client's credentials provider, for every [`CredentialSource`].
//!
//! The client asks for credentials before each request (its own identity cache is switched off
//! in `s3.rs`), so this provider is the only cache and decides when to look again:
//! - `Static`: the environment's pair, forever;
//! - `File`: the file's modification time and size are checked at most once a second; a change
//!   means the file is read again (a rotated Kubernetes secret, a sidecar's rewrite);
//! - `EcsRamRole`, `Rrsa`: temporary credentials, fetched again before they expire (half their
//!   remaining lifetime before, at most [`REFRESH_BEFORE`] before).
//!
//! A source that cannot be read is no reason to stop: the last credentials that have not expired
//! stay in use, and the source is tried again a second later. Without any, the request fails,
//! which the store classifies as transient: the uploader retries and `/readyz` reports the bucket.
//! Nothing here ever prints a secret or a token: errors name the source and what was wrong
//! (a status, a missing field, a JSON position), never a value read from it.

mod ecs;
mod file;
mod http;
mod rrsa;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_credential_types::Credentials;
use serde::Deserialize;
use tracing::{info, warn};

use crate::settings::CredentialSource;

/// Temporary credentials are fetched again at most this long before they expire.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(15 * 60);
/// How long a source that failed (or a file that did not change) is left alone.
const RECHECK: Duration = Duration::from_secs(1);
/// How often credentials without an expiration are fetched again from a remote source.
const REFRESH_WITHOUT_EXPIRATION: Duration = Duration::from_secs(5 * 60);

/// The provider the S3 client holds. Cheap to clone (shares its cache).
#[derive(Clone)]
pub struct RotatingCredentials {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    state: tokio::sync::Mutex<State>,
}

enum Source {
    Static(Credentials),
    File(file::FileSource),
    Ecs(ecs::EcsSource),
    Rrsa(rrsa::RrsaSource),
}

impl Source {
    fn name(&self) -> &'static str {
        match self {
            Source::Static(_) => "environment",
            Source::File(_) => "credentials file",
            Source::Ecs(_) => "ECS RAM role",
            Source::Rrsa(_) => "RRSA",
        }
    }
}

#[derive(Default)]
struct State {
    current: Option<Loaded>,
    /// When to look at the source again.
    next_check: Option<Instant>,
    /// The last failure, logged once until the source works again.
    last_error: Option<String>,
}

/// Credentials read from a source.
#[derive(Clone)]
pub(crate) struct Loaded {
    pub credentials: Credentials,
    pub expires: Option<SystemTime>,
}

/// What a source gives: the `AccessKeyId`/`AccessKeySecret`/`SecurityToken`/`Expiration` JSON
/// object shared by the credentials file, the ECS metadata service and STS.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AlibabaCredentials {
    access_key_id: String,
    access_key_secret: String,
    #[serde(default)]
    security_token: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

impl AlibabaCredentials {
    /// Into the SDK's type; `provider` names the source in the SDK's (never printed) debug output.
    pub(crate) fn into_loaded(self, provider: &'static str) -> Result<Loaded, String> {
        if self.access_key_id.is_empty() || self.access_key_secret.is_empty() {
            return Err("AccessKeyId or AccessKeySecret is empty".to_owned());
        }
        let expires = match self.expiration.as_deref().filter(|e| !e.is_empty()) {
            Some(text) => Some(parse_expiration(text)?),
            None => None,
        };
        let token = self.security_token.filter(|token| !token.is_empty());
        Ok(Loaded {
            credentials: Credentials::new(
                self.access_key_id,
                self.access_key_secret,
                token,
                expires,
                provider,
            ),
            expires,
        })
    }
}

/// `2026-12-05T03:00:00Z` (RFC 3339, as Alibaba writes it).
fn parse_expiration(text: &str) -> Result<SystemTime, String> {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from_str(text, Format::DateTime)
        .ok()
        .and_then(|time| SystemTime::try_from(time).ok())
        .ok_or_else(|| format!("Expiration {text:?} is not an RFC 3339 time"))
}

/// A JSON document that did not parse: where, never what (the value could be a secret).
pub(crate) fn json_problem(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Data => "a field is missing or has the wrong type",
        Category::Syntax | Category::Eof => "not valid JSON",
        Category::Io => "unreadable",
    };
    format!("{what} (line {}, column {})", error.line(), error.column())
}

impl RotatingCredentials {
    /// A provider for `source`. Does no I/O: the first request reads the source.
    pub fn new(source: &CredentialSource) -> Self {
        let source = match source {
            CredentialSource::Static(pair) => Source::Static(Credentials::new(
                pair.access_key_id.expose(),
                pair.access_key_secret.expose(),
                pair.session_token
                    .as_ref()
                    .map(|token| token.expose().to_owned()),
                None,
                "environment",
            )),
            CredentialSource::File { path } => Source::File(file::FileSource::new(path.clone())),
            CredentialSource::EcsRamRole { metadata_url, role } => {
                Source::Ecs(ecs::EcsSource::new(metadata_url, role.clone()))
            }
            CredentialSource::Rrsa {
                role_arn,
                oidc_provider_arn,
                token_file,
                sts_endpoint,
                session_name,
            } => Source::Rrsa(rrsa::RrsaSource::new(
                role_arn.clone(),
                oidc_provider_arn.clone(),
                token_file.clone(),
                sts_endpoint,
                session_name.clone(),
            )),
        };
        RotatingCredentials {
            inner: Arc::new(Inner {
                source,
                state: tokio::sync::Mutex::default(),
            }),
        }
    }

    /// The credentials to sign the next request with.
    pub async fn load(&self) -> Result<Credentials, CredentialsError> {
        let source = &self.inner.source;
        if let Source::Static(credentials) = source {
            return Ok(credentials.clone());
        }
        // One caller refreshes; the others wait for it and take its result.
        let mut state = self.inner.state.lock().await;
        let now = Instant::now();
        if state.current.is_none() || state.next_check.is_none_or(|next| now >= next) {
            let outcome = match source {
                Source::Static(_) => unreachable!("returned above"),
                Source::File(file) => file.check().await,
                Source::Ecs(ecs) => ecs.fetch().await.map(Some),
                Source::Rrsa(rrsa) => rrsa.fetch().await.map(Some),
            };
            match outcome {
                Ok(Some(loaded)) => {
                    let remote = !matches!(source, Source::File(_));
                    let wait = if remote {
                        refresh_delay(SystemTime::now(), loaded.expires)
                    } else {
                        RECHECK
                    };
                    match loaded
                        .expires
                        .and_then(|t| t.duration_since(SystemTime::now()).ok())
                    {
                        Some(left) => info!(
                            source = source.name(),
                            expires_in_s = left.as_secs(),
                            "object store credentials loaded"
                        ),
                        None => info!(source = source.name(), "object store credentials loaded"),
                    }
                    state.current = Some(loaded);
                    state.next_check = Some(Instant::now() + wait);
                    state.last_error = None;
                }
                // The file did not change.
                Ok(None) => state.next_check = Some(Instant::now() + RECHECK),
                Err(problem) => {
                    if state.last_error.as_deref() != Some(problem.as_str()) {
                        warn!(
                            source = source.name(),
                            "cannot read the object store credentials: {problem}"
                        );
                    }
                    state.last_error = Some(problem);
                    state.next_check = Some(Instant::now() + RECHECK);
                }
            }
        }
        let usable = state
            .current
            .as_ref()
            .filter(|loaded| loaded.expires.is_none_or(|t| t > SystemTime::now()));
        match (usable, &state.last_error) {
            (Some(loaded), _) => Ok(loaded.credentials.clone()),
            (None, Some(problem)) => Err(CredentialsError::provider_error(SourceError(format!(
                "{}: {problem}",
                source.name()
            )))),
            (None, None) => Err(CredentialsError::provider_error(SourceError(format!(
                "{}: the credentials expired and no new ones were given",
                source.name()
            )))),
        }
    }
}

/// How long to use credentials that expire at `expires` before fetching new ones.
fn refresh_delay(now: SystemTime, expires: Option<SystemTime>) -> Duration {
    match expires {
        None => REFRESH_WITHOUT_EXPIRATION,
        Some(expires) => {
            let left = expires.duration_since(now).unwrap_or_default();
            let before = (left / 2).min(REFRESH_BEFORE);
            (left - before).max(RECHECK)
        }
    }
}

/// Why a source gave no credentials (no secret in it).
#[derive(Debug)]
struct SourceError(String);

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceError {}

impl fmt::Debug for RotatingCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingCredentials")
            .field("source", &self.inner.source.name())
            .finish()
    }
}

impl ProvideCredentials for RotatingCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}

#[cfg(test)]
mod tests;
