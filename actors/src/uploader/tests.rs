use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::*;
use crate::encode::HeaderSidecar;
use crate::metadata::Fingerprint;
use crate::metrics::PartitionMetrics;
use crate::store::{FaultyStore, MemoryStore, Operation};

/// Stands in for the batcher: hands every outcome to the test.
struct Capture(mpsc::UnboundedSender<UploadOutcome>);

impl Actor for Capture {
    type Context = Context<Self>;
}

impl Handler<UploadOutcome> for Capture {
    type Result = ();
    fn handle(&mut self, outcome: UploadOutcome, _: &mut Context<Self>) {
        let _ = self.0.send(outcome);
    }
}

const KEY: &str = "p/t/0/00000000000000000010-00000000000000000012.json";
const BODY: &[u8] = b"[{\"offset\":10},{\"offset\":11},{\"offset\":12}]";

/// An uploader on `store` with millisecond backoffs, the queue that feeds it and the
/// outcomes it sends back.
struct Harness {
    queue: async_channel::Sender<SealedObject>,
    reply: Recipient<UploadOutcome>,
    outcomes: mpsc::UnboundedReceiver<UploadOutcome>,
    _uploader: Addr<Uploader>,
}

impl Harness {
    fn start(store: SharedStore, max_attempts: Option<u32>) -> Self {
        let (queue, receiver) = async_channel::bounded(1);
        let uploader = Uploader::new(
            0,
            store,
            receiver,
            Duration::from_millis(1),
            Duration::from_millis(4),
            max_attempts,
            StatusBoard::new("t"),
        )
        .start();
        let (sender, outcomes) = mpsc::unbounded_channel();
        Harness {
            queue,
            reply: Capture(sender).start().recipient(),
            outcomes,
            _uploader: uploader,
        }
    }

    async fn upload(&mut self) -> UploadOutcome {
        let object = self.object();
        self.queue.send(object).await.expect("uploader running");
        tokio::time::timeout(Duration::from_secs(5), self.outcomes.recv())
            .await
            .expect("an outcome within 5 s")
            .expect("capture running")
    }

    fn object(&self) -> SealedObject {
        SealedObject {
            key: KEY.into(),
            body: Bytes::from_static(BODY),
            topic: Arc::from("t"),
            partition: 0,
            first_offset: 10,
            last_offset: 12,
            records: 3,
            unit: 4,
            headers: HeaderSidecar::default(),
            metadata: ObjectMetadata {
                topic: "t".into(),
                partition: 0,
                first_offset: 10,
                last_offset: 12,
                records: 3,
                first_record: Fingerprint::of(1, None, Some(b"a")),
                last_record: Fingerprint::of(1, None, Some(b"c")),
                connector: "c".into(),
                generation: -1,
                routed: Vec::new(),
                body_format: "json_array".into(),
            },
            oldest_timestamp: Some(1_795_608_269_111),
            metrics: PartitionMetrics::new("t", 0),
            reply: self.reply.clone(),
            cancel: Default::default(),
            memory: crate::memory::Charge::none(),
            staged: None,
        }
    }
}

fn unavailable() -> StoreError {
    StoreError::Transient {
        bucket: "b".into(),
        detail: "injected".into(),
    }
}

fn assert_stored(outcome: UploadOutcome) {
    match outcome {
        UploadOutcome::Stored { unit, key, bytes } => {
            assert_eq!((unit, key.as_str(), bytes), (4, KEY, BODY.len()));
        }
        UploadOutcome::Failed { error, .. } => panic!("not stored: {error}"),
        UploadOutcome::Foreign { reason, .. } => panic!("not stored: {reason}"),
        UploadOutcome::Lost { error, .. } => panic!("not stored: {error}"),
    }
}

/// Issue 11, finding 6: once the partition's assignment ended (drain timeout, lost), the
/// object is not attempted again and no outcome is sent, even when the store comes back.
#[actix::test]
async fn a_cancelled_object_is_not_attempted_again() {
    let memory = Arc::new(MemoryStore::new("b"));
    let faulty = Arc::new(FaultyStore::new(memory.clone(), 1));
    faulty.fail_always(Operation::Put, unavailable());
    let mut harness = Harness::start(faulty.clone(), None);
    let mut object = harness.object();
    let cancel = crate::messages::CancelFlag::default();
    object.cancel = cancel.clone();
    harness.queue.send(object).await.expect("uploader running");
    let deadline = Instant::now() + Duration::from_secs(5);
    while faulty.calls(Operation::Put) < 2 {
        assert!(Instant::now() < deadline, "attempts retried");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    cancel.cancel();
    let attempts = faulty.calls(Operation::Put);
    faulty.heal();
    // Backoffs are at most 4 ms: an uncancelled object would be stored by now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        faulty.calls(Operation::Put) <= attempts + 1,
        "no attempt after the one in progress"
    );
    assert!(memory.keys().is_empty(), "not stored");
    assert!(harness.outcomes.try_recv().is_err(), "no outcome");
}

#[actix::test]
async fn a_queued_object_lands_in_the_store() {
    let memory = Arc::new(MemoryStore::new("b"));
    let mut harness = Harness::start(memory.clone(), Some(3));
    assert_stored(harness.upload().await);
    assert_eq!(memory.object(KEY).as_deref(), Some(BODY));
    assert_eq!(memory.keys(), [KEY]);
}

#[actix::test]
async fn transient_failures_are_retried_until_stored() {
    let memory = Arc::new(MemoryStore::new("b"));
    let faulty = Arc::new(FaultyStore::new(memory.clone(), 1));
    faulty.fail_next(Operation::Put, 2, unavailable());
    let mut harness = Harness::start(faulty.clone(), None);
    assert_stored(harness.upload().await);
    assert_eq!(faulty.calls(Operation::Put), 3);
    assert_eq!(memory.object(KEY).as_deref(), Some(BODY));
}

#[actix::test]
async fn spent_attempts_send_the_object_back_with_the_error() {
    let memory = Arc::new(MemoryStore::new("b"));
    let faulty = Arc::new(FaultyStore::new(memory.clone(), 1));
    faulty.fail_always(
        Operation::Put,
        StoreError::Rejected {
            bucket: "b".into(),
            status: 400,
            code: "InvalidArgument".into(),
            message: "no".into(),
        },
    );
    let mut harness = Harness::start(faulty.clone(), Some(2));
    match harness.upload().await {
        UploadOutcome::Failed { object, error } => {
            assert_eq!(error.code().as_str(), "UPLOAD_REJECTED");
            assert_eq!((object.key.as_str(), &object.body[..]), (KEY, BODY));
            assert_eq!(
                (object.first_offset, object.last_offset, object.unit),
                (10, 12, 4)
            );
        }
        other => panic!("not refused in a store that refuses everything: {other:?}"),
    }
    assert_eq!(faulty.calls(Operation::Put), 2);
    assert!(memory.keys().is_empty());
}

#[actix::test]
async fn an_unavailable_or_unauthorised_store_is_retried_past_max_attempts() {
    let memory = Arc::new(MemoryStore::new("b"));
    let faulty = Arc::new(FaultyStore::new(memory.clone(), 1));
    faulty.fail_next(Operation::Put, 4, unavailable());
    let mut harness = Harness::start(faulty.clone(), Some(2));
    assert_stored(harness.upload().await);
    assert_eq!(faulty.calls(Operation::Put), 5);

    let memory = Arc::new(MemoryStore::new("b"));
    let faulty = Arc::new(FaultyStore::new(memory.clone(), 1));
    let denied = StoreError::AccessDenied {
        bucket: "b".into(),
        code: "AccessDenied".into(),
    };
    faulty.fail_next(Operation::Put, 3, denied);
    let mut harness = Harness::start(faulty.clone(), Some(1));
    assert_stored(harness.upload().await);
    assert_eq!(memory.object(KEY).as_deref(), Some(BODY));
}

#[actix::test]
async fn a_taken_key_with_the_same_records_counts_as_stored() {
    let memory = Arc::new(MemoryStore::new("b"));
    let mut harness = Harness::start(memory.clone(), Some(3));
    assert_stored(harness.upload().await);
    // The same object again (a retry whose answer was lost, a restart): not overwritten.
    memory.insert_with_metadata(
        KEY,
        Bytes::from_static(b"kept"),
        memory.metadata(KEY).unwrap(),
    );
    assert_stored(harness.upload().await);
    assert_eq!(memory.object(KEY).as_deref(), Some(&b"kept"[..]));
}

#[actix::test]
async fn a_taken_key_with_other_records_is_foreign_and_kept() {
    let memory = Arc::new(MemoryStore::new("b"));
    memory.insert(KEY, Bytes::from_static(b"someone else's"));
    let mut harness = Harness::start(memory.clone(), Some(3));
    match harness.upload().await {
        UploadOutcome::Foreign { object, reason } => {
            assert_eq!(object.key, KEY);
            assert!(reason.contains("no kafka-oss-sink metadata"), "{reason}");
        }
        other => panic!("a foreign object must stop the upload: {other:?}"),
    }
    assert_eq!(memory.object(KEY).as_deref(), Some(&b"someone else's"[..]));

    let mut other = memory.metadata(KEY).unwrap();
    other.extend(
        ObjectMetadata {
            topic: "t".into(),
            partition: 0,
            first_offset: 10,
            last_offset: 12,
            records: 3,
            first_record: Fingerprint::of(2, None, Some(b"recreated")),
            last_record: Fingerprint::of(1, None, Some(b"c")),
            connector: "c".into(),
            generation: -1,
            routed: Vec::new(),
            body_format: "json_array".into(),
        }
        .to_pairs()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value)),
    );
    memory.insert_with_metadata(KEY, Bytes::from_static(b"old topic"), other);
    match harness.upload().await {
        UploadOutcome::Foreign { reason, .. } => {
            assert!(reason.contains("recreated"), "{reason}")
        }
        other => panic!("other records under the key must stop the upload: {other:?}"),
    }
    assert_eq!(memory.object(KEY).as_deref(), Some(&b"old topic"[..]));
}

#[test]
fn jitter_stays_between_half_and_full_backoff() {
    for _ in 0..100 {
        let delay = jitter(Duration::from_millis(1000));
        assert!(
            delay >= Duration::from_millis(500) && delay <= Duration::from_millis(1000),
            "{delay:?}"
        );
    }
}
