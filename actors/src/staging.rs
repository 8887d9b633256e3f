//! Streamed objects: an open object larger than the part size goes to the bucket part by part
//! while it grows, so that a partition's big object holds about two parts in memory, not
//! `batching.max_bytes`. Only the JSON formats (Parquet writes its footer from the whole
//! object), and only where objects may be [`STREAM_MIN_PARTS`] parts or more ([`streams`]).
//!
//! An object's key carries its last offset, known only at seal, and a multipart upload's key is
//! fixed when it is created. So the parts go to a *staging* upload under a key of its own,
//! [`staging_key`] (`{key_prefix}.staging/{topic}/{partition}/{first offset}-{millis}-{run}.staging`,
//! which no key template, recovery listing or object listing takes for an object). At seal the
//! rest of the body is its last part, the staging upload is completed, the object is created
//! from the staging object on the store's side (S3: UploadPartCopy into a multipart upload of
//! the final key, completed with the same conditional create as any object) and the staging
//! object is deleted. See `uploader.rs` for the seal side.
//!
//! - [`Streamer`] (owned by the batcher's open object): hands each part to a task of its own
//!   that creates the staging upload at the first part and uploads the parts one at a time. One
//!   part at a time: the batcher cuts the next part only when the previous one is stored (it
//!   takes no records meanwhile: the usual backpressure), so a streamed object holds at most the
//!   part being uploaded and the one being filled. Parts are charged to the memory budget as
//!   `uploading`.
//! - Failures: a store that is down, refuses the credentials or lost its bucket is retried
//!   until it is back, with the part kept in memory. A part the store refuses for itself
//!   (`max_attempts` times), or a staging upload aborted under the writer while its assignment
//!   runs, cannot be sent again: the records before it are no longer in memory. The object is
//!   then *lost* ([`StreamError::Lost`]): nothing goes to an error topic, the partition stops
//!   (FAILED, not resumable in-process) and nothing is committed from the object's first offset
//!   on, so a restart reads its records again.
//! - Crash or fencing: what a writer leaves (an incomplete staging upload, or a staging object
//!   completed but not yet copied) is aborted or deleted by the partition's next assignment
//!   (`batcher::orphans`). Staging keys of this process's own streams are *live* ([`is_live`])
//!   and never swept.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, error, warn};

use crate::memory::Charge;
use crate::messages::CancelFlag;
use crate::metrics;
use crate::status::StatusBoard;
use crate::store::{SharedStore, StoreError, UploadedPart};

/// Objects stream only where `batching.max_bytes` is at least this many parts: a streamed object
/// costs the store a server-side copy and a few more requests, worth it only when it saves
/// several parts of memory.
pub const STREAM_MIN_PARTS: usize = 4;

/// Whether objects of `format` stream out in parts (JSON formats, objects of at least
/// [`STREAM_MIN_PARTS`] parts).
pub fn streams(format: crate::settings::FormatKind, max_bytes: usize, part_size: usize) -> bool {
    format != crate::settings::FormatKind::Parquet
        && max_bytes >= part_size.saturating_mul(STREAM_MIN_PARTS)
}

/// How parts are streamed and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// An open object's buffered bytes that make a part (`sink.part_size_bytes`).
    pub part_size: usize,
    pub retry: Retry,
}

/// The uploads' retry settings (`sink.retry_*`, `sink.max_upload_attempts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Refusals of one request (not infrastructure failures) before giving up; `None`: never.
    pub max_attempts: Option<u32>,
}

/// The folder of `partition`'s staging objects.
pub fn staging_prefix(key_prefix: &str, topic: &str, partition: i32) -> String {
    format!("{key_prefix}.staging/{topic}/{partition}/")
}

/// A new staging key for an object of `partition` starting at `first_offset`: unique (the
/// milliseconds since the epoch, the process id and a counter), and no object key.
pub fn staging_key(key_prefix: &str, topic: &str, partition: i32, first_offset: i64) -> String {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    format!(
        "{}{first_offset:020}-{millis:013}-{}-{}.staging",
        staging_prefix(key_prefix, topic, partition),
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    )
}

/// When a staging key was made (by its writer's clock); `None` for any other key.
pub fn created(key: &str) -> Option<SystemTime> {
    let name = key.rsplit('/').next()?.strip_suffix(".staging")?;
    let mut fields = name.split('-');
    let (_first, millis) = (fields.next()?, fields.next()?);
    let millis: u64 = millis.parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(millis))
}

fn live() -> std::sync::MutexGuard<'static, HashSet<String>> {
    static LIVE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    LIVE.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `key` is the staging key of a stream this process runs (never swept).
pub fn is_live(key: &str) -> bool {
    live().contains(key)
}

/// A staging key in use by this process: live until dropped.
#[derive(Debug)]
pub struct LiveKey(String);

impl LiveKey {
    fn new(key: String) -> Arc<Self> {
        live().insert(key.clone());
        Arc::new(LiveKey(key))
    }

    pub fn key(&self) -> &str {
        &self.0
    }
}

impl Drop for LiveKey {
    fn drop(&mut self) {
        live().remove(&self.0);
    }
}

/// Why a stream did not end with its parts in the staging upload.
#[derive(Debug, Clone)]
pub enum StreamError {
    /// The partition's assignment ended: nobody would use the object.
    Abandoned,
    /// The store refused a part for itself, or the staging upload was aborted: the parts before
    /// are no longer in memory, the object cannot be finished.
    Lost(StoreError),
}

/// The staging upload with every part handed to it, in order.
#[derive(Debug)]
pub struct Staged {
    pub upload_id: String,
    pub parts: Vec<UploadedPart>,
    /// Bytes in those parts.
    pub bytes: u64,
}

/// One part on its way to the staging upload: its bytes, their charge in the memory budget,
/// and the streamer's slot (released once stored).
struct Part {
    number: i32,
    body: Bytes,
    _memory: Charge,
    _slot: OwnedSemaphorePermit,
}

/// The streaming side of an open object (see the module docs).
pub struct Streamer {
    key: Arc<LiveKey>,
    parts: mpsc::UnboundedSender<Part>,
    slot: Arc<Semaphore>,
    done: oneshot::Receiver<Result<Staged, StreamError>>,
    sent_parts: i32,
    sent_bytes: u64,
}

impl Streamer {
    /// Starts the task that uploads the parts (on the current arbiter). The staging upload is
    /// created with the first part.
    pub fn start(
        store: SharedStore,
        key: String,
        cancel: CancelFlag,
        retry: Retry,
        topic: Arc<str>,
        partition: i32,
        status: StatusBoard,
    ) -> Self {
        let key = LiveKey::new(key);
        let (parts, receiver) = mpsc::unbounded_channel();
        let (done_sender, done) = oneshot::channel();
        let task = Task {
            store,
            key: key.clone(),
            cancel,
            retry,
            topic,
            partition,
            status,
        };
        actix::spawn(task.run(receiver, done_sender));
        Streamer {
            key,
            parts,
            slot: Arc::new(Semaphore::new(1)),
            done,
            sent_parts: 0,
            sent_bytes: 0,
        }
    }

    /// The slot a part needs: taken while a part is being uploaded.
    pub fn slot(&self) -> Arc<Semaphore> {
        self.slot.clone()
    }

    /// Hands one part to the task (`slot`: from [`Self::slot`]).
    pub fn send(&mut self, body: Bytes, memory: Charge, slot: OwnedSemaphorePermit) {
        self.sent_parts += 1;
        self.sent_bytes += body.len() as u64;
        let part = Part {
            number: self.sent_parts,
            body,
            _memory: memory,
            _slot: slot,
        };
        // The task ends only once this sender is dropped.
        let _ = self.parts.send(part);
    }

    /// Bytes handed to the task so far.
    pub fn sent_bytes(&self) -> u64 {
        self.sent_bytes
    }

    /// No more parts: what the seal hands to the uploader, or `None` if no part was sent (the
    /// object's body is then whole).
    pub fn finish(self) -> Option<StagedObject> {
        if self.sent_parts == 0 {
            return None;
        }
        Some(StagedObject {
            key: self.key,
            done: self.done,
            parts: self.sent_parts,
            bytes: self.sent_bytes,
        })
    }
}

/// A sealed object's parts already streamed: its body holds only the rest.
#[derive(Debug)]
pub struct StagedObject {
    pub key: Arc<LiveKey>,
    /// Resolves once every part is in the staging upload (or the stream failed).
    pub done: oneshot::Receiver<Result<Staged, StreamError>>,
    /// Parts streamed.
    pub parts: i32,
    /// Bytes in them.
    pub bytes: u64,
}

/// The task behind a [`Streamer`].
struct Task {
    store: SharedStore,
    key: Arc<LiveKey>,
    cancel: CancelFlag,
    retry: Retry,
    topic: Arc<str>,
    partition: i32,
    status: StatusBoard,
}

impl Task {
    async fn run(
        self,
        mut parts: mpsc::UnboundedReceiver<Part>,
        done: oneshot::Sender<Result<Staged, StreamError>>,
    ) {
        let key = self.key.key();
        let mut upload_id: Option<String> = None;
        let mut uploaded = Vec::new();
        let mut bytes = 0;
        let mut failure = None;
        while let Some(part) = parts.recv().await {
            if failure.is_some() {
                // Dropped: frees its memory and slot, so the batcher goes on to the seal.
                continue;
            }
            if upload_id.is_none() {
                match retried("create the staging upload", key, &self, || {
                    self.store.create_upload(key)
                })
                .await
                {
                    Ok(id) => {
                        debug!(topic = %self.topic, partition = self.partition, key, upload_id = %id, "staging upload created");
                        upload_id = Some(id);
                    }
                    Err(error) => {
                        failure = Some(error);
                        continue;
                    }
                }
            }
            let id = upload_id.as_deref().expect("created above");
            let sent = retried("upload a part", key, &self, || {
                self.store
                    .upload_part(key, id, part.number, part.body.clone())
            })
            .await;
            match sent {
                Ok(etag) => {
                    bytes += part.body.len() as u64;
                    uploaded.push(UploadedPart {
                        number: part.number,
                        etag,
                    });
                    metrics::record_part_streamed(&self.topic, self.partition);
                    // Crash tests: parts are in the staging upload, the object is still open.
                    fail::fail_point!("after-streamed-part");
                }
                Err(error) => failure = Some(error),
            }
        }
        let failed = failure.is_some();
        let result = match (failure, upload_id.clone()) {
            (Some(error), _) => Err(error),
            (None, Some(upload_id)) => Ok(Staged {
                upload_id,
                parts: uploaded,
                bytes,
            }),
            (None, None) => Err(StreamError::Abandoned),
        };
        // `Err`: the object was dropped (the assignment ended, or it is never uploaded).
        let unused = done.send(result).is_err();
        if let (Some(upload_id), true) = (upload_id, unused || failed) {
            // Best effort: otherwise the next assignment's sweep aborts it.
            let _ = self.store.abort_upload(key, &upload_id).await;
        }
    }
}

/// Calls `call` until the store accepts it. Infrastructure failures (down, denied, no bucket)
/// are retried forever with backoff; a refusal for the request itself counts against
/// `max_attempts`. Returns at once, as [`StreamError::Lost`], an aborted upload
/// ([`StoreError::is_upload_gone`]), a taken key and a missing source; as
/// [`StreamError::Abandoned`] once the partition's assignment ended. Every attempt counts as an
/// upload in flight of the partition.
pub(crate) async fn retried<T, F, Fut>(
    what: &str,
    key: &str,
    task: &impl Attempts,
    mut call: F,
) -> Result<T, StreamError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let retry = task.retry();
    let cancel = task.cancel();
    let mut backoff = retry.initial_backoff;
    let mut refusals = 0;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(in_flight) = cancel.begin_attempt() else {
            return Err(StreamError::Abandoned);
        };
        let result = call().await;
        drop(in_flight);
        let error = match result {
            Ok(value) => {
                task.status().set_bucket(Ok(()));
                return Ok(value);
            }
            Err(error) => error,
        };
        let final_now = error.is_upload_gone()
            || matches!(error, StoreError::AlreadyExists { .. })
            || matches!(error, StoreError::Rejected { status: 404, .. });
        if final_now {
            return Err(if cancel.is_cancelled() {
                StreamError::Abandoned
            } else {
                StreamError::Lost(error)
            });
        }
        metrics::record_retry(error.code());
        task.status()
            .set_bucket(Err((error.code(), error.to_string())));
        if !error.is_infrastructure() {
            refusals += 1;
            if retry.max_attempts.is_some_and(|max| refusals >= max) {
                error!(code = %error.code(), topic = %task.topic(), partition = task.partition(), key, attempt,
                    "cannot {what}, attempts spent: {error}");
                return Err(StreamError::Lost(error));
            }
        }
        if matches!(error, StoreError::Transient { .. }) {
            warn!(code = %error.code(), topic = %task.topic(), partition = task.partition(), key, attempt,
                retry_in_ms = backoff.as_millis() as u64, "cannot {what}, retrying: {error}");
        } else {
            error!(code = %error.code(), topic = %task.topic(), partition = task.partition(), key, attempt,
                retry_in_ms = backoff.as_millis() as u64, "cannot {what}, retrying: {error}");
        }
        tokio::time::sleep(crate::uploader::jitter(backoff)).await;
        backoff = (backoff * 2).min(retry.max_backoff);
        if cancel.is_cancelled() {
            return Err(StreamError::Abandoned);
        }
    }
}

/// Who makes the attempts of [`retried`]: for its logs, retries and cancel flag.
pub(crate) trait Attempts {
    fn retry(&self) -> Retry;
    fn cancel(&self) -> &CancelFlag;
    fn topic(&self) -> &str;
    fn partition(&self) -> i32;
    /// Where the bucket's state is reported (`/readyz`, the status topic).
    fn status(&self) -> &StatusBoard;
}

impl Attempts for Task {
    fn retry(&self) -> Retry {
        self.retry
    }
    fn cancel(&self) -> &CancelFlag {
        &self.cancel
    }
    fn topic(&self) -> &str {
        &self.topic
    }
    fn partition(&self) -> i32 {
        self.partition
    }
    fn status(&self) -> &StatusBoard {
        &self.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_keys_are_unique_dated_and_no_object_keys() {
        let before = SystemTime::now() - Duration::from_millis(1);
        let one = staging_key("p/", "t", 3, 42);
        let two = staging_key("p/", "t", 3, 42);
        assert_ne!(one, two);
        assert!(
            one.starts_with("p/.staging/t/3/00000000000000000042-"),
            "{one}"
        );
        let at = created(&one).expect("a staging key");
        assert!(at >= before && at <= SystemTime::now() + Duration::from_millis(1));
        assert_eq!(
            created("p/t/3/00000000000000000042-00000000000000000050.json"),
            None
        );
        let template = crate::key_template::KeyTemplate::default();
        assert_eq!(template.parse_key("p/", "t", Some(3), &one), None);
        assert_eq!(template.parse_key("p/", ".staging", None, &one), None);
        assert_eq!(crate::object_key::parse_offsets(&one), None);
    }

    #[test]
    fn a_key_is_live_while_held() {
        let key = staging_key("p/", "t", 1, 0);
        let live = LiveKey::new(key.clone());
        assert!(is_live(&key));
        drop(live);
        assert!(!is_live(&key));
    }
}
