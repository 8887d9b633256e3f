//! `FaultyStore`: wraps any store and makes its calls fail, wait or hang on demand, and counts
//! them. For tests of what the pipeline does when the bucket misbehaves.
//!
//! Faults are set per [`Operation`] and may be changed while the store is in use. A call first
//! waits the operation's latency (or forever, if it hangs), then fails if a programmed failure
//! is due (the next-N failures first, then the random ones), else goes to the wrapped store.
//! Random failures come from a seeded generator, so a test's run can be replayed.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{self, BoxFuture, FutureExt};

use std::collections::HashMap;

use super::{IncompleteUpload, ObjectStore, SharedStore, StoreError, UploadedPart};

/// The store calls faults can be set for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Probe,
    Put,
    Get,
    Head,
    List,
    ListUploads,
    AbortUpload,
    CreateUpload,
    UploadPart,
    CompleteUpload,
    CopyCreate,
    Delete,
}

impl Operation {
    const ALL: [Operation; 12] = [
        Operation::Probe,
        Operation::Put,
        Operation::Get,
        Operation::Head,
        Operation::List,
        Operation::ListUploads,
        Operation::AbortUpload,
        Operation::CreateUpload,
        Operation::UploadPart,
        Operation::CompleteUpload,
        Operation::CopyCreate,
        Operation::Delete,
    ];
}

#[derive(Default)]
struct Faults {
    /// Failures still to give, and with what.
    fail_next: u32,
    next_error: Option<StoreError>,
    /// Each call fails with this probability (after the next-N failures).
    probability: f64,
    random_error: Option<StoreError>,
    latency: Duration,
    hang: bool,
    calls: u64,
    failures: u64,
}

pub struct FaultyStore {
    inner: SharedStore,
    faults: Mutex<[Faults; Operation::ALL.len()]>,
    /// SplitMix64 state.
    rng: Mutex<u64>,
}

impl FaultyStore {
    /// Passes every call through until told otherwise.
    pub fn new(inner: SharedStore, seed: u64) -> Self {
        FaultyStore {
            inner,
            faults: Mutex::new(Default::default()),
            rng: Mutex::new(seed),
        }
    }

    /// The next `count` calls of `operation` fail with `error`.
    pub fn fail_next(&self, operation: Operation, count: u32, error: StoreError) {
        self.with(operation, |faults| {
            faults.fail_next = count;
            faults.next_error = Some(error);
        });
    }

    /// Every call of `operation` fails with `error`, until [`FaultyStore::heal`].
    pub fn fail_always(&self, operation: Operation, error: StoreError) {
        self.fail_next(operation, u32::MAX, error);
    }

    /// Each call of `operation` fails with `error` with `probability` (0 to 1).
    pub fn fail_randomly(&self, operation: Operation, probability: f64, error: StoreError) {
        self.with(operation, |faults| {
            faults.probability = probability;
            faults.random_error = Some(error);
        });
    }

    /// Each call of `operation` waits `latency` before doing anything else.
    pub fn delay(&self, operation: Operation, latency: Duration) {
        self.with(operation, |faults| faults.latency = latency);
    }

    /// Calls of `operation` never complete (a hung connection without a timeout), until healed.
    /// Calls already hanging stay hung.
    pub fn hang(&self, operation: Operation) {
        self.with(operation, |faults| faults.hang = true);
    }

    /// Removes every fault of every operation; the counters stay.
    pub fn heal(&self) {
        for operation in Operation::ALL {
            self.with(operation, |faults| {
                *faults = Faults {
                    calls: faults.calls,
                    failures: faults.failures,
                    ..Faults::default()
                }
            });
        }
    }

    /// Calls of `operation` so far, failed or not.
    pub fn calls(&self, operation: Operation) -> u64 {
        self.with(operation, |faults| faults.calls)
    }

    /// Calls of `operation` that an injected fault failed.
    pub fn failures(&self, operation: Operation) -> u64 {
        self.with(operation, |faults| faults.failures)
    }

    fn with<T>(&self, operation: Operation, f: impl FnOnce(&mut Faults) -> T) -> T {
        let mut faults = self
            .faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut faults[operation as usize])
    }

    /// A uniform draw in [0, 1).
    fn draw(&self) -> f64 {
        let mut state = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Decides the call's fate when it is made, so that concurrent calls take the programmed
    /// failures in the order they were made.
    fn fault<'a, T: Send + 'a>(
        &'a self,
        operation: Operation,
        call: impl FnOnce() -> BoxFuture<'a, Result<T, StoreError>> + Send + 'a,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        let (latency, hang, failure) = self.with(operation, |faults| {
            faults.calls += 1;
            let failure = if faults.fail_next > 0 {
                faults.fail_next -= 1;
                faults.next_error.clone()
            } else if faults.probability > 0.0 && self.draw() < faults.probability {
                faults.random_error.clone()
            } else {
                None
            };
            faults.failures += u64::from(failure.is_some());
            (faults.latency, faults.hang, failure)
        });
        async move {
            if hang {
                future::pending::<()>().await;
            }
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            match failure {
                Some(error) => Err(error),
                None => call().await,
            }
        }
        .boxed()
    }
}

impl ObjectStore for FaultyStore {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.fault(Operation::Probe, || self.inner.probe())
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        metadata: &'a [(&'static str, String)],
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        self.fault(Operation::Put, move || self.inner.put(key, body, metadata))
    }

    fn head<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<HashMap<String, String>>, StoreError>> {
        self.fault(Operation::Head, move || self.inner.head(key))
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, StoreError>> {
        self.fault(Operation::Get, move || self.inner.get(key))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        self.fault(Operation::List, move || {
            self.inner.list(prefix, start_after)
        })
    }

    fn list_uploads<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IncompleteUpload>, StoreError>> {
        self.fault(Operation::ListUploads, move || {
            self.inner.list_uploads(prefix)
        })
    }

    fn abort_upload<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.fault(Operation::AbortUpload, move || {
            self.inner.abort_upload(key, upload_id)
        })
    }

    fn create_upload<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<String, StoreError>> {
        self.fault(Operation::CreateUpload, move || {
            self.inner.create_upload(key)
        })
    }

    fn upload_part<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
        number: i32,
        body: Bytes,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        self.fault(Operation::UploadPart, move || {
            self.inner.upload_part(key, upload_id, number, body)
        })
    }

    fn complete_upload<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
        parts: &'a [UploadedPart],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.fault(Operation::CompleteUpload, move || {
            self.inner.complete_upload(key, upload_id, parts)
        })
    }

    fn copy_create<'a>(
        &'a self,
        source: &'a str,
        length: u64,
        key: &'a str,
        metadata: &'a [(&'static str, String)],
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        self.fault(Operation::CopyCreate, move || {
            self.inner.copy_create(source, length, key, metadata)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.fault(Operation::Delete, move || self.inner.delete(key))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::MemoryStore;

    fn unavailable() -> StoreError {
        StoreError::Transient {
            bucket: "b".into(),
            detail: "injected".into(),
        }
    }

    fn put(store: &FaultyStore, key: &str) -> Result<String, StoreError> {
        store
            .put(key, Bytes::from_static(b"[]"), &[])
            .now_or_never()
            .expect("no latency set")
    }

    #[test]
    fn fails_the_next_calls_then_passes_them_through() {
        let memory = Arc::new(MemoryStore::new("b"));
        let store = FaultyStore::new(memory.clone(), 1);
        store.fail_next(Operation::Put, 2, unavailable());
        assert!(put(&store, "a").is_err());
        assert!(put(&store, "a").is_err());
        assert!(put(&store, "a").is_ok());
        assert_eq!(memory.keys(), ["a"]);
        assert_eq!(store.calls(Operation::Put), 3);
        assert_eq!(store.failures(Operation::Put), 2);
        // Other operations are not affected.
        let listed = store.list("", None).now_or_never().unwrap().unwrap();
        assert_eq!(listed, ["a"]);
        assert_eq!(store.calls(Operation::List), 1);
    }

    #[test]
    fn random_failures_follow_the_seed() {
        let outcomes = |seed| {
            let store = FaultyStore::new(Arc::new(MemoryStore::overwriting("b")), seed);
            store.fail_randomly(Operation::Put, 0.5, unavailable());
            (0..200)
                .map(|_| put(&store, "k").is_ok())
                .collect::<Vec<_>>()
        };
        let first = outcomes(7);
        assert_eq!(first, outcomes(7));
        let failed = first.iter().filter(|ok| !**ok).count();
        assert!((60..140).contains(&failed), "{failed} of 200 failed");
    }

    #[test]
    fn healing_removes_faults_and_keeps_counters() {
        let store = FaultyStore::new(Arc::new(MemoryStore::new("b")), 1);
        store.fail_always(Operation::Put, unavailable());
        store.hang(Operation::Get);
        assert!(put(&store, "k").is_err());
        assert!(store.get("k").now_or_never().is_none(), "hangs");
        store.heal();
        assert!(put(&store, "k").is_ok());
        assert!(store.get("k").now_or_never().is_some());
        assert_eq!(store.failures(Operation::Put), 1);
        assert_eq!(store.calls(Operation::Get), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_the_call() {
        let store = FaultyStore::new(Arc::new(MemoryStore::new("b")), 1);
        store.delay(Operation::Probe, Duration::from_secs(3));
        let started = tokio::time::Instant::now();
        store.probe().await.expect("passes through");
        assert!(started.elapsed() >= Duration::from_secs(3));
    }
}
