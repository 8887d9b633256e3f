//! Orphaned multipart uploads: a writer killed between the parts of an object (or one that lost
//! the partition and is still sending) leaves an incomplete upload behind, invisible but billed.
//! When a partition's first records arrive (with the recovery listing), its batcher starts a
//! sweep beside it: list the incomplete uploads under the partition's folder and abort those of
//! the partition's object keys that were created before this assignment began.
//!
//! - Never one of this process's own: the store leaves out the uploads it is running, and only
//!   uploads created before the assignment are aborted (the store's clock against this host's:
//!   an orphan created just before the assignment on a store whose clock runs ahead is left for
//!   the next assignment's sweep).
//! - Aborting fences a writer that lost the partition: its CompleteMultipartUpload then fails
//!   with `NoSuchUpload`, which its uploader retries as a new upload (never a refused object),
//!   and conditional create keeps that from replacing the new owner's object.
//! - Off the hot path: a task of its own, so records are processed while it runs; it ends with
//!   the batcher (dropped with it) and stops aborting once the assignment ended.
//! - A store that cannot list or abort uploads (501 `NotImplemented`, a key pair without the
//!   permission) is said once per process, at warn, naming the permission and the lifecycle rule
//!   that is then needed; the connector goes on. A transient failure is retried a few times; the
//!   next assignment sweeps again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::messages::CancelFlag;
use crate::metrics;
use crate::staging;
/// The offsets of one of the partition's object keys; `None` for any other key (under the key
/// template, see [`crate::key_template::KeyTemplate::parse_key`]).
pub(crate) type KeyParser = Arc<dyn Fn(&str) -> Option<(i64, i64)> + Send + Sync>;
use crate::store::{IncompleteUpload, SharedStore, StoreError};

/// Attempts of each request before the sweep gives up until the next assignment.
const ATTEMPTS: u32 = 4;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);

/// Said once per process: the store refused to list, or to abort, incomplete uploads.
static LIST_REFUSED: AtomicBool = AtomicBool::new(false);
static ABORT_REFUSED: AtomicBool = AtomicBool::new(false);

/// The start-up probe found that incomplete uploads cannot be listed and said so: the sweeps do
/// not say it again.
pub(crate) fn listing_refusal_reported() {
    LIST_REFUSED.store(true, Ordering::Relaxed);
}

/// The partition's sweep: when its assignment began, and the task once started.
pub(super) struct OrphanSweep {
    assigned_at: SystemTime,
    task: Option<JoinHandle<()>>,
}

impl Drop for OrphanSweep {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl OrphanSweep {
    /// At the assignment.
    pub(super) fn new() -> Self {
        OrphanSweep {
            assigned_at: SystemTime::now(),
            task: None,
        }
    }

    /// Starts the sweep of `partition_prefix` and of the partition's staging folder
    /// (`staging_prefix`, where objects stream: `None` spares every other partition two
    /// requests), once per assignment.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        &mut self,
        store: SharedStore,
        partition_prefix: String,
        staging_prefix: Option<String>,
        parse: KeyParser,
        topic: Arc<str>,
        partition: i32,
        cancel: CancelFlag,
    ) {
        if self.task.is_some() {
            return;
        }
        let assigned_at = self.assigned_at;
        self.task = Some(actix::spawn(async move {
            sweep(
                &store,
                &partition_prefix,
                staging_prefix.as_deref(),
                &*parse,
                &topic,
                partition,
                assigned_at,
                &cancel,
            )
            .await;
        }));
    }
}

/// What a sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Swept {
    /// Orphans aborted (of objects and of staging objects).
    pub aborted: usize,
    /// Staging objects deleted.
    pub deleted: usize,
    /// The store could not list (or abort) uploads, or stayed unavailable.
    pub incomplete: bool,
}

/// Lists and aborts the partition's orphans, then sweeps its staging folder; counts the aborted
/// uploads in `kafka_oss_sink_orphaned_uploads_aborted_total`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn sweep(
    store: &SharedStore,
    partition_prefix: &str,
    staging_prefix: Option<&str>,
    parse: &(dyn Fn(&str) -> Option<(i64, i64)> + Send + Sync),
    topic: &str,
    partition: i32,
    assigned_at: SystemTime,
    cancel: &CancelFlag,
) -> Swept {
    let mut swept = Swept::default();
    'uploads: {
        let uploads = match retried(|| store.list_uploads(partition_prefix)).await {
            Ok(uploads) => {
                metrics::set_capability(metrics::LIST_UPLOADS_CHECK, true);
                uploads
            }
            Err(error) => {
                swept.incomplete = true;
                refused(&error, Refused::List, topic, partition);
                break 'uploads;
            }
        };
        let mut uploads = orphans(parse, uploads, assigned_at);
        if let Some(staging_prefix) = staging_prefix {
            match retried(|| store.list_uploads(staging_prefix)).await {
                Ok(staging) => uploads.extend(staging_orphans(staging, assigned_at)),
                Err(error) => {
                    swept.incomplete = true;
                    refused(&error, Refused::List, topic, partition);
                }
            }
        }
        for orphan in uploads {
            if cancel.is_cancelled() {
                // The partition has (or will have) another owner, whose sweep this is now.
                swept.incomplete = true;
                break;
            }
            match retried(|| store.abort_upload(&orphan.key, &orphan.upload_id)).await {
                Ok(()) => {
                    swept.aborted += 1;
                    info!(%topic, partition, key = %orphan.key, upload_id = %orphan.upload_id,
                        initiated = ?orphan.initiated,
                        "aborted an incomplete multipart upload left by an earlier owner of the partition (a crash between parts, or a writer that lost the partition)");
                }
                Err(error) => {
                    swept.incomplete = true;
                    refused(&error, Refused::Abort, topic, partition);
                    break;
                }
            }
        }
    }
    metrics::record_orphans_aborted(topic, partition, swept.aborted as u64);
    // Staging objects are objects: listed and deleted also where ListMultipartUploads is refused.
    sweep_staging_objects(
        store,
        staging_prefix,
        topic,
        partition,
        assigned_at,
        cancel,
        &mut swept,
    )
    .await;
    swept
}

/// Deletes the partition's staging objects (`crate::staging`) made before the assignment and
/// not this process's: an earlier writer completed them and crashed (or was fenced) before it
/// created the object from them, or before it deleted them.
async fn sweep_staging_objects(
    store: &SharedStore,
    staging_prefix: Option<&str>,
    topic: &str,
    partition: i32,
    assigned_at: SystemTime,
    cancel: &CancelFlag,
    swept: &mut Swept,
) {
    let Some(staging_prefix) = staging_prefix else {
        return;
    };
    // A folder listing (delimiter `/`): staging keys hold no further `/`, and a store that
    // walks its whole tree for a recursive listing (s3s-fs) is spared it at every assignment.
    let keys = match retried(|| store.list_folder(staging_prefix, None)).await {
        Ok(keys) => keys,
        Err(error) => {
            swept.incomplete = true;
            debug!(%topic, partition, %error, "staging objects not listed; the next assignment tries again");
            return;
        }
    };
    let stale = keys.into_iter().filter(|key| {
        !staging::is_live(key) && staging::created(key).is_some_and(|at| at < assigned_at)
    });
    for key in stale {
        if cancel.is_cancelled() {
            swept.incomplete = true;
            return;
        }
        match retried(|| store.delete(&key)).await {
            Ok(()) => {
                swept.deleted += 1;
                info!(%topic, partition, %key, "deleted a staging object left by an earlier owner of the partition (a crash or a fenced writer before its object was created from it)");
            }
            Err(error) => {
                swept.incomplete = true;
                warn!(%topic, partition, %key, %error, "cannot delete a staging object left by an earlier owner (grant oss:DeleteObject, AWS: s3:DeleteObject); the next assignment tries again");
                return;
            }
        }
    }
}

/// The staging uploads to abort: of staging keys, created before the assignment began, and not
/// this process's own streams.
pub(super) fn staging_orphans(
    uploads: Vec<IncompleteUpload>,
    assigned_at: SystemTime,
) -> Vec<IncompleteUpload> {
    uploads
        .into_iter()
        .filter(|upload| staging::created(&upload.key).is_some() && !staging::is_live(&upload.key))
        .filter(|upload| upload.initiated.is_some_and(|at| at < assigned_at))
        .collect()
}

/// The uploads to abort: of the partition's object keys (anything else under its folder is not
/// the connector's), created before the assignment began. Uploads the store gave no creation
/// time for are left alone.
pub(super) fn orphans(
    parse: &(dyn Fn(&str) -> Option<(i64, i64)> + Send + Sync),
    uploads: Vec<IncompleteUpload>,
    assigned_at: SystemTime,
) -> Vec<IncompleteUpload> {
    uploads
        .into_iter()
        .filter(|upload| parse(&upload.key).is_some())
        .filter(|upload| upload.initiated.is_some_and(|at| at < assigned_at))
        .collect()
}

/// Retries transient failures ([`StoreError::Transient`]) a few times with backoff.
async fn retried<T, F, Fut>(mut call: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = FIRST_RETRY_DELAY;
    let mut attempt = 1;
    loop {
        match call().await {
            Err(StoreError::Transient { .. }) if attempt < ATTEMPTS => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[derive(Clone, Copy)]
enum Refused {
    List,
    Abort,
}

/// Logs a failed listing or abort: once per process when the store refuses it (the capability
/// gauge says it too), at debug when it was only unavailable (the next assignment tries again).
fn refused(error: &StoreError, what: Refused, topic: &str, partition: i32) {
    let unavailable = matches!(error, StoreError::Transient { .. });
    if unavailable {
        debug!(%topic, partition, %error, "incomplete multipart uploads not swept (the bucket is unavailable); the next assignment tries again");
        return;
    }
    let (flag, permission, request) = match what {
        Refused::List => {
            metrics::set_capability(metrics::LIST_UPLOADS_CHECK, false);
            (
                &LIST_REFUSED,
                "oss:ListMultipartUploads (AWS: s3:ListBucketMultipartUploads)",
                "ListMultipartUploads",
            )
        }
        Refused::Abort => (
            &ABORT_REFUSED,
            "oss:AbortMultipartUpload (AWS: s3:AbortMultipartUpload)",
            "AbortMultipartUpload",
        ),
    };
    if flag.swap(true, Ordering::Relaxed) {
        debug!(%topic, partition, %error, "{request} refused again; incomplete multipart uploads not swept");
        return;
    }
    let cause = match error {
        StoreError::AccessDenied { .. } => format!("grant {permission}"),
        StoreError::Rejected { status: 501, .. } => "the store does not implement it".to_owned(),
        _ => format!("check that {permission} is granted"),
    };
    warn!(%topic, partition, %error,
        "{request} refused ({cause}): multipart uploads left by a crash between parts are not aborted at assignment; give the bucket a lifecycle rule that aborts incomplete multipart uploads (said once per process)");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::object_key::{object_key, partition_prefix};
    use crate::store::{FaultyStore, MemoryStore, Operation};

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    fn prefix() -> String {
        partition_prefix("p/", "t", 3)
    }

    fn staging_prefix() -> String {
        staging::staging_prefix("p/", "t", 3)
    }

    fn parse(key: &str) -> Option<(i64, i64)> {
        crate::object_key::parse_partition_key(&prefix(), key)
    }

    fn upload(key: &str, initiated: Option<SystemTime>) -> IncompleteUpload {
        IncompleteUpload {
            key: key.into(),
            upload_id: "u".into(),
            initiated,
        }
    }

    #[test]
    fn only_the_partitions_objects_created_before_the_assignment_are_orphans() {
        let ours = object_key("p/", "t", 3, 0, 9);
        let uploads = vec![
            upload(&ours, Some(at(10))),
            // Created after the assignment began: not aborted (a writer that started since is
            // not proven dead; its object is kept from replacing ours by conditional create).
            upload(&object_key("p/", "t", 3, 10, 19), Some(at(30))),
            // No creation time: not aborted.
            upload(&object_key("p/", "t", 3, 20, 29), None),
            // Not an object key of the partition.
            upload(&format!("{}backup/x.json", prefix()), Some(at(10))),
            upload(&format!("{}notes.txt", prefix()), Some(at(10))),
        ];
        let orphans = orphans(&parse, uploads, at(20));
        assert_eq!(orphans, [upload(&ours, Some(at(10)))]);
    }

    async fn run(store: SharedStore, assigned_at: SystemTime) -> Swept {
        sweep(
            &store,
            &prefix(),
            Some(&staging_prefix()),
            &parse,
            "t",
            3,
            assigned_at,
            &CancelFlag::default(),
        )
        .await
    }

    #[tokio::test]
    async fn orphans_are_aborted_and_other_uploads_kept() {
        let memory = Arc::new(MemoryStore::new("b"));
        let orphan = object_key("p/", "t", 3, 0, 9);
        memory.begin_upload(&orphan, at(10));
        let other_partition = object_key("p/", "t", 30, 0, 9);
        memory.begin_upload(&other_partition, at(10));
        let later = object_key("p/", "t", 3, 10, 19);
        memory.begin_upload(&later, at(30));
        let swept = run(memory.clone(), at(20)).await;
        assert_eq!(
            swept,
            Swept {
                aborted: 1,
                deleted: 0,
                incomplete: false
            }
        );
        let left: Vec<String> = memory.uploads().into_iter().map(|u| u.key).collect();
        assert_eq!(left, [later, other_partition]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_cannot_list_uploads_is_given_up_on_at_once_and_aborts_nothing() {
        let memory = Arc::new(MemoryStore::new("b"));
        memory.begin_upload(&object_key("p/", "t", 3, 0, 9), at(10));
        let faulty = Arc::new(FaultyStore::new(memory.clone(), 1));
        let not_implemented = StoreError::Rejected {
            bucket: "b".into(),
            status: 501,
            code: "NotImplemented".into(),
            message: String::new(),
        };
        faulty.fail_always(Operation::ListUploads, not_implemented);
        let swept = run(faulty.clone(), at(20)).await;
        assert_eq!(
            swept,
            Swept {
                aborted: 0,
                deleted: 0,
                incomplete: true
            }
        );
        // Refusals are not retried; the upload stays (a lifecycle rule's job now).
        assert_eq!(faulty.calls(Operation::ListUploads), 1);
        assert_eq!(faulty.calls(Operation::AbortUpload), 0);
        assert_eq!(memory.uploads().len(), 1);
        // Said once per process: the flag is set, a second refusal is not warned again.
        assert!(LIST_REFUSED.load(Ordering::Relaxed));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_then_left_to_the_next_assignment() {
        let memory = Arc::new(MemoryStore::new("b"));
        memory.begin_upload(&object_key("p/", "t", 3, 0, 9), at(10));
        let faulty = Arc::new(FaultyStore::new(memory.clone(), 1));
        let unavailable = StoreError::Transient {
            bucket: "b".into(),
            detail: "injected".into(),
        };
        faulty.fail_next(Operation::ListUploads, 2, unavailable.clone());
        faulty.fail_next(Operation::AbortUpload, 1, unavailable.clone());
        assert_eq!(run(faulty.clone(), at(20)).await.aborted, 1);
        // Three of the partition's folder, one of its staging folder.
        assert_eq!(faulty.calls(Operation::ListUploads), 4);
        assert_eq!(faulty.calls(Operation::AbortUpload), 2);
        assert!(memory.uploads().is_empty());

        memory.begin_upload(&object_key("p/", "t", 3, 10, 19), at(10));
        faulty.fail_always(Operation::ListUploads, unavailable);
        let swept = run(faulty.clone(), at(20)).await;
        assert!(swept.incomplete && swept.aborted == 0, "{swept:?}");
        assert_eq!(
            faulty.calls(Operation::ListUploads),
            4 + u64::from(ATTEMPTS)
        );
        assert_eq!(memory.uploads().len(), 1);
    }

    #[tokio::test]
    async fn stale_staging_objects_and_uploads_are_removed_and_live_ones_kept() {
        let memory = Arc::new(MemoryStore::new("b"));
        let staging = |first| staging::staging_key("p/", "t", 3, first);
        // Left by an earlier writer: a completed staging object and an incomplete upload.
        let (stale_object, stale_upload) = (staging(0), staging(10));
        memory.insert(&stale_object, bytes::Bytes::from_static(b"[{"));
        memory.begin_upload(&stale_upload, at(10));
        // Another partition's staging object: not this sweep's.
        let other = staging::staging_key("p/", "t", 30, 0);
        memory.insert(&other, bytes::Bytes::from_static(b"[{"));
        std::thread::sleep(Duration::from_millis(2));
        let assigned_at = SystemTime::now();
        std::thread::sleep(Duration::from_millis(2));
        // Made since the assignment began: kept.
        let newer = staging(20);
        memory.insert(&newer, bytes::Bytes::from_static(b"[{"));
        let swept = run(memory.clone(), assigned_at).await;
        assert_eq!(
            swept,
            Swept {
                aborted: 1,
                deleted: 1,
                incomplete: false
            }
        );
        assert_eq!(memory.keys(), [newer.clone(), other.clone()]);
        assert!(memory.uploads().is_empty());

        // A store without ListMultipartUploads still gets its staging objects deleted.
        memory.insert(&stale_object, bytes::Bytes::from_static(b"[{"));
        let faulty = Arc::new(FaultyStore::new(memory.clone(), 1));
        faulty.fail_always(
            Operation::ListUploads,
            StoreError::Rejected {
                bucket: "b".into(),
                status: 501,
                code: "NotImplemented".into(),
                message: String::new(),
            },
        );
        let swept = run(faulty, SystemTime::now()).await;
        assert_eq!(swept.deleted, 2, "{swept:?}");
        assert_eq!(memory.keys(), [other]);
    }

    #[tokio::test]
    async fn nothing_is_aborted_once_the_assignment_ended() {
        let memory = Arc::new(MemoryStore::new("b"));
        memory.begin_upload(&object_key("p/", "t", 3, 0, 9), at(10));
        let cancel = CancelFlag::default();
        cancel.cancel();
        let store: SharedStore = memory.clone();
        let swept = sweep(
            &store,
            &prefix(),
            Some(&staging_prefix()),
            &parse,
            "t",
            3,
            at(20),
            &cancel,
        )
        .await;
        assert_eq!(swept.aborted, 0);
        assert_eq!(memory.uploads().len(), 1);
    }
}
