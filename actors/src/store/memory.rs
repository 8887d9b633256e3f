//! `MemoryStore`: a bucket in a map, for actor-level tests and tools that need no server.
//!
//! Listing has S3 ListObjectsV2's semantics: keys under the prefix, strictly after
//! `start_after`, in byte order (which is `String`'s order). Never fails; wrap it in a
//! [`FaultyStore`](super::FaultyStore) for failures.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::future::{self, BoxFuture, FutureExt};

use super::{ObjectStore, StoreError};

pub struct MemoryStore {
    bucket: String,
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryStore {
    pub fn new(bucket: &str) -> Self {
        MemoryStore {
            bucket: bucket.to_owned(),
            objects: Mutex::new(BTreeMap::new()),
        }
    }

    /// The object under `key`, if any.
    pub fn object(&self, key: &str) -> Option<Bytes> {
        self.lock().get(key).cloned()
    }

    /// Every object, by key.
    pub fn objects(&self) -> BTreeMap<String, Bytes> {
        self.lock().clone()
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Puts an object directly (e.g. one "stored before a restart").
    pub fn insert(&self, key: &str, body: Bytes) {
        self.lock().insert(key.to_owned(), body);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        // A test that panicked while holding the lock cannot have left the map half-written.
        self.objects
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn keys_after(&self, prefix: &str, start_after: Option<&str>) -> Vec<String> {
        let from = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        self.lock()
            .range::<str, _>((from, Bound::Unbounded))
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// Not an MD5 like S3's: only distinct bodies need distinct tags here.
fn etag(body: &[u8]) -> String {
    // FNV-1a, 64 bits.
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

impl ObjectStore for MemoryStore {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        future::ready(Ok(())).boxed()
    }

    fn put<'a>(&'a self, key: &'a str, body: Bytes) -> BoxFuture<'a, Result<String, StoreError>> {
        let tag = etag(&body);
        self.insert(key, body);
        future::ready(Ok(tag)).boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, StoreError>> {
        future::ready(Ok(self.object(key))).boxed()
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        future::ready(Ok(self.keys_after(prefix, start_after))).boxed()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    fn store(keys: &[&str]) -> MemoryStore {
        let store = MemoryStore::new("b");
        for key in keys {
            store.insert(key, Bytes::from_static(b"[]"));
        }
        store
    }

    fn list(store: &MemoryStore, prefix: &str, start_after: Option<&str>) -> Vec<String> {
        store
            .list(prefix, start_after)
            .now_or_never()
            .expect("ready")
            .expect("never fails")
    }

    #[test]
    fn lists_like_list_objects_v2() {
        let store = store(&["a/1", "a/2", "a/10", "ab/1", "b/1", "a"]);
        assert_eq!(list(&store, "a/", None), ["a/1", "a/10", "a/2"]);
        assert_eq!(list(&store, "a/", Some("a/1")), ["a/10", "a/2"]);
        // A start-after before the prefix lists from the prefix; one after it lists nothing.
        assert_eq!(list(&store, "a/", Some("0")), ["a/1", "a/10", "a/2"]);
        assert_eq!(list(&store, "a/", Some("a/3")), Vec::<String>::new());
        assert_eq!(
            list(&store, "", None),
            ["a", "a/1", "a/10", "a/2", "ab/1", "b/1"]
        );
        assert_eq!(list(&store, "c", None), Vec::<String>::new());
    }

    #[test]
    fn objects_read_back_and_are_overwritten() {
        let store = MemoryStore::new("b");
        let first = store
            .put("k", Bytes::from_static(b"one"))
            .now_or_never()
            .unwrap()
            .unwrap();
        let second = store
            .put("k", Bytes::from_static(b"two"))
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_ne!(first, second);
        assert_eq!(store.object("k").as_deref(), Some(&b"two"[..]));
        let got = store.get("k").now_or_never().unwrap().unwrap();
        assert_eq!(got.as_deref(), Some(&b"two"[..]));
        assert_eq!(store.get("x").now_or_never().unwrap().unwrap(), None);
    }
}
