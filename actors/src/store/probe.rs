//! The capability probe: what the bucket lets the connector do, checked at start-up and by
//! `kafka-oss-sink check --probe`.
//!
//! It reads the bucket (HeadBucket), writes, reads, lists and deletes one probe object under the
//! key prefix (`{prefix}.kafka-oss-sink-probe-{pid}-{nanos}`, outside every topic's folder, so
//! neither recovery nor `reconcile` ever sees it; a key of its own per run, so that instances
//! starting together do not probe each other's object), writes it again with the conditional header to see whether the
//! store refuses to overwrite, and writes it with a CRC32 checksum to see whether the store
//! takes optional checksums. Each denied action names the permission it needs.
//!
//! Last, it lists the incomplete multipart uploads under the probe key (ListMultipartUploads),
//! which each partition does at assignment to abort what a crash between parts left behind.
//!
//! Required: bucket, write, read (HeadObject: recovery reads object metadata), list (recovery by
//! listing). Without conditional create the connector still runs (deterministic keys and
//! recovery by listing hold), but a late writer (a member that lost its partitions) could replace
//! an object; it says so. Delete is only the probe's own clean-up. Without listing uploads
//! (`list uploads`), orphaned multipart uploads stay until a lifecycle rule removes them.

use std::fmt::Write as _;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use bytes::Bytes;

use super::{ObjectStore, S3Store, StoreError};
use crate::settings::ConditionalCreate;

/// One line of the probe's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was tried, e.g. `list`.
    pub action: &'static str,
    pub outcome: Outcome,
    /// What happened, in words.
    pub detail: String,
    /// The error code of a failed action.
    pub code: Option<crate::error::ErrorCode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Works differently from what the connector prefers; it still runs.
    Degraded,
    /// A required action failed: the connector cannot run.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Degraded => "degraded",
            Outcome::Failed => "FAILED",
        }
    }
}

/// The probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub checks: Vec<Check>,
    /// Whether the store refused to overwrite the probe object with the configured header.
    pub conditional_create: bool,
}

impl Capabilities {
    /// Whether every required action works.
    pub fn usable(&self) -> bool {
        self.checks
            .iter()
            .all(|check| check.outcome != Outcome::Failed)
    }

    /// The checks as a plain-text table.
    pub fn table(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|check| check.action.len())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for check in &self.checks {
            let _ = writeln!(
                out,
                "{:width$}  {:8}  {}",
                check.action,
                check.outcome.as_str(),
                check.detail
            );
        }
        out
    }

    /// The first failed check, for an error message.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks
            .iter()
            .find(|check| check.outcome == Outcome::Failed)
    }
}

/// The permission an action needs, named for both OSS's RAM policies and AWS IAM.
fn permission(action: &str) -> &'static str {
    match action {
        "bucket" => "oss:GetBucketInfo (AWS: s3:ListBucket)",
        "write" | "conditional create" | "checksums" => "oss:PutObject (AWS: s3:PutObject)",
        "read" => "oss:GetObject (AWS: s3:GetObject)",
        "list" => "oss:ListObjects (AWS: s3:ListBucket)",
        "delete" => "oss:DeleteObject (AWS: s3:DeleteObject)",
        crate::metrics::LIST_UPLOADS_CHECK => {
            "oss:ListMultipartUploads (AWS: s3:ListBucketMultipartUploads)"
        }
        _ => "",
    }
}

fn failed(action: &'static str, error: &StoreError, required: bool) -> Check {
    let detail = match error {
        StoreError::AccessDenied { .. } => {
            format!("denied: grant {} ({error})", permission(action))
        }
        other => other.to_string(),
    };
    Check {
        action,
        outcome: if required {
            Outcome::Failed
        } else {
            Outcome::Degraded
        },
        detail,
        code: Some(error.code()),
    }
}

fn ok(action: &'static str, detail: impl Into<String>) -> Check {
    Check {
        action,
        outcome: Outcome::Ok,
        detail: detail.into(),
        code: None,
    }
}

impl S3Store {
    /// Runs the probe under `key_prefix`. Stops after the first failed required action that the
    /// later ones depend on.
    pub async fn capabilities(&self, key_prefix: &str) -> Capabilities {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let key = format!(
            "{key_prefix}.kafka-oss-sink-probe-{}-{nanos}",
            std::process::id()
        );
        let body = Bytes::from_static(b"kafka-oss-sink capability probe\n");
        let mut checks = Vec::new();
        let done = |checks: Vec<Check>| Capabilities {
            checks,
            conditional_create: false,
        };
        if let Err(error) = self.probe().await {
            checks.push(failed("bucket", &error, true));
            return done(checks);
        }
        checks.push(ok("bucket", format!("bucket `{}` answers", self.bucket())));

        // Unconditional: the probe object is the probe's own, a left-over one is replaced.
        match self.put_probe(&key, body.clone(), None).await {
            Ok(()) => checks.push(ok("write", format!("wrote {key}"))),
            Err(error) => {
                checks.push(failed("write", &error, true));
                return done(checks);
            }
        }
        checks.push(match self.head(&key).await {
            Ok(Some(_)) => ok("read", "read the probe object's metadata back"),
            Ok(None) => Check {
                action: "read",
                outcome: Outcome::Failed,
                detail: format!("the object just written is not there: {key}"),
                code: Some(crate::error::ErrorCode::UploadRejected),
            },
            Err(error) => failed("read", &error, true),
        });
        checks.push(match self.list(&key, None).await {
            Ok(keys) if keys.iter().any(|listed| listed == &key) => {
                ok("list", "the probe object is listed")
            }
            Ok(_) => Check {
                action: "list",
                outcome: Outcome::Failed,
                detail: "the object just written is not listed".into(),
                code: Some(crate::error::ErrorCode::UploadRejected),
            },
            Err(error) => failed("list", &error, true),
        });

        let conditional = self.conditional;
        let (check, refused) = match conditional {
            ConditionalCreate::Off => (
                Check {
                    action: "conditional create",
                    outcome: Outcome::Degraded,
                    detail:
                        "off (sink.conditional_create = \"off\"): a late writer could replace an \
                             object; recovery by listing still prevents duplicates"
                            .into(),
                    code: None,
                },
                false,
            ),
            mode => match self.put(&key, body.clone(), &[]).await {
                Err(StoreError::AlreadyExists { .. }) => (
                    ok(
                        "conditional create",
                        format!("the store refuses to overwrite ({})", header_name(mode)),
                    ),
                    true,
                ),
                Ok(_) => (
                    Check {
                        action: "conditional create",
                        outcome: Outcome::Degraded,
                        detail: format!(
                            "the store ignored {} and overwrote the object: a late writer could \
                             replace an object; recovery by listing still prevents duplicates",
                            header_name(mode)
                        ),
                        code: None,
                    },
                    false,
                ),
                Err(error) => (
                    Check {
                        action: "conditional create",
                        outcome: Outcome::Degraded,
                        detail: format!(
                            "{} refused ({error}); set sink.conditional_create to the store's \
                             header, or \"off\"",
                            header_name(mode)
                        ),
                        code: Some(error.code()),
                    },
                    false,
                ),
            },
        };
        checks.push(check);

        checks.push(
            match self
                .put_probe(&key, body.clone(), Some(ChecksumAlgorithm::Crc32))
                .await
            {
                Ok(()) => ok(
                    "checksums",
                    "optional CRC32 checksums accepted (sink.checksum = \"when_supported\" works)",
                ),
                Err(error) => Check {
                    action: "checksums",
                    outcome: Outcome::Ok,
                    detail: format!(
                        "optional checksums refused ({}): keep sink.checksum = \"when_required\"",
                        error.code()
                    ),
                    code: None,
                },
            },
        );

        checks.push(match self.delete_probe(&key).await {
            Ok(()) => ok("delete", "removed the probe object"),
            Err(error) => failed("delete", &error, false),
        });
        checks.push(self.probe_list_uploads(&key).await);
        Capabilities {
            checks,
            conditional_create: refused,
        }
    }

    /// Whether incomplete multipart uploads can be listed (optional: without it a lifecycle
    /// rule has to remove what a crash between parts leaves).
    async fn probe_list_uploads(&self, key: &str) -> Check {
        let action = crate::metrics::LIST_UPLOADS_CHECK;
        match self.list_uploads(key).await {
            Ok(_) => ok(
                action,
                "incomplete multipart uploads can be listed (a partition aborts those of \
                 earlier owners at assignment)",
            ),
            Err(error) => {
                let mut check = failed(action, &error, false);
                check.detail = format!(
                    "{}; multipart uploads left by a crash are not aborted: give the bucket a \
                     lifecycle rule that aborts incomplete multipart uploads",
                    check.detail
                );
                check
            }
        }
    }

    async fn put_probe(
        &self,
        key: &str,
        body: Bytes,
        checksum: Option<ChecksumAlgorithm>,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(body.len() as i64)
            .set_checksum_algorithm(checksum)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|error| self.classify(error))
    }

    async fn delete_probe(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| self.classify(error))
    }
}

fn header_name(mode: ConditionalCreate) -> &'static str {
    match mode {
        ConditionalCreate::IfNoneMatch => "If-None-Match: *",
        ConditionalCreate::OssForbidOverwrite => "x-oss-forbid-overwrite: true",
        ConditionalCreate::Off => "no header",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_check_and_usability_follows_failures() {
        let mut capabilities = Capabilities {
            checks: vec![
                ok("bucket", "answers"),
                Check {
                    action: "conditional create",
                    outcome: Outcome::Degraded,
                    detail: "ignored".into(),
                    code: None,
                },
            ],
            conditional_create: false,
        };
        assert!(capabilities.usable());
        let table = capabilities.table();
        assert!(
            table.contains("bucket              ok        answers"),
            "{table}"
        );
        assert!(table.contains("degraded"), "{table}");
        capabilities.checks.push(failed(
            "list",
            &StoreError::AccessDenied {
                bucket: "b".into(),
                code: "AccessDenied".into(),
            },
            true,
        ));
        assert!(!capabilities.usable());
        let failure = capabilities.first_failure().unwrap();
        assert!(
            failure.detail.contains("oss:ListObjects"),
            "{}",
            failure.detail
        );
    }
}
