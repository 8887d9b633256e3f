//! `MemoryStore`: a bucket in a map, for actor-level tests and tools that need no server.
//!
//! Listing has S3 ListObjectsV2's semantics: keys under the prefix, strictly after
//! `start_after`, in byte order (which is `String`'s order). Puts are conditional creates (a
//! taken key fails with [`StoreError::AlreadyExists`]) unless made with
//! [`MemoryStore::overwriting`], like a store that ignores the conditional header. Never fails
//! otherwise; wrap it in a [`FaultyStore`](super::FaultyStore) for failures.
//!
//! Puts are atomic (no multipart upload is ever in progress), but the store keeps incomplete
//! multipart uploads that a test leaves in it with [`MemoryStore::begin_upload`] (what a writer
//! killed between parts leaves behind), and lists and aborts them like S3.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::{self, BoxFuture, FutureExt};

use super::{classify_status, IncompleteUpload, ObjectStore, StoreError, UploadedPart};

/// A stored object: its body and user metadata.
type Stored = (Bytes, HashMap<String, String>);

pub struct MemoryStore {
    bucket: String,
    objects: Mutex<BTreeMap<String, Stored>>,
    /// Puts replace a taken key instead of failing.
    overwrite: bool,
    /// Incomplete multipart uploads, by key and upload id: when each was created.
    uploads: Mutex<BTreeMap<(String, String), SystemTime>>,
    /// The parts of the uploads begun with `create_upload`, by upload id.
    parts: Mutex<HashMap<String, BTreeMap<i32, Bytes>>>,
    /// Upload ids given so far.
    upload_ids: AtomicU64,
}

impl MemoryStore {
    pub fn new(bucket: &str) -> Self {
        MemoryStore {
            bucket: bucket.to_owned(),
            objects: Mutex::new(BTreeMap::new()),
            overwrite: false,
            uploads: Mutex::new(BTreeMap::new()),
            parts: Mutex::new(HashMap::new()),
            upload_ids: AtomicU64::new(0),
        }
    }

    /// A store that ignores conditional creates: every put replaces the key.
    pub fn overwriting(bucket: &str) -> Self {
        MemoryStore {
            overwrite: true,
            ..MemoryStore::new(bucket)
        }
    }

    /// The object under `key`, if any.
    pub fn object(&self, key: &str) -> Option<Bytes> {
        self.lock().get(key).map(|(body, _)| body.clone())
    }

    /// The user metadata of the object under `key`, if any.
    pub fn metadata(&self, key: &str) -> Option<HashMap<String, String>> {
        self.lock().get(key).map(|(_, metadata)| metadata.clone())
    }

    /// Every object, by key.
    pub fn objects(&self) -> BTreeMap<String, Bytes> {
        self.lock()
            .iter()
            .map(|(key, (body, _))| (key.clone(), body.clone()))
            .collect()
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Puts an object directly, without metadata (e.g. one another tool wrote), replacing any.
    pub fn insert(&self, key: &str, body: Bytes) {
        self.insert_with_metadata(key, body, HashMap::new());
    }

    /// Puts an object directly with user metadata, replacing any.
    pub fn insert_with_metadata(&self, key: &str, body: Bytes, metadata: HashMap<String, String>) {
        self.lock().insert(key.to_owned(), (body, metadata));
    }

    /// Removes an object.
    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Leaves an incomplete multipart upload of `key`, created at `initiated` (a writer that
    /// died between parts); returns its upload id.
    pub fn begin_upload(&self, key: &str, initiated: SystemTime) -> String {
        let mut uploads = self.lock_uploads();
        let upload_id = format!(
            "upload-{}",
            self.upload_ids.fetch_add(1, Ordering::Relaxed) + 1
        );
        uploads.insert((key.to_owned(), upload_id.clone()), initiated);
        upload_id
    }

    /// The incomplete multipart uploads, by key, then upload id.
    pub fn uploads(&self) -> Vec<IncompleteUpload> {
        self.uploads_under("")
    }

    fn uploads_under(&self, prefix: &str) -> Vec<IncompleteUpload> {
        self.lock_uploads()
            .iter()
            .filter(|((key, _), _)| key.starts_with(prefix))
            .map(|((key, upload_id), initiated)| IncompleteUpload {
                key: key.clone(),
                upload_id: upload_id.clone(),
                initiated: Some(*initiated),
            })
            .collect()
    }

    fn lock_uploads(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), SystemTime>> {
        self.uploads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Stored>> {
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

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        metadata: &'a [(&'static str, String)],
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        let tag = etag(&body);
        let metadata = metadata
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        let mut objects = self.lock();
        if !self.overwrite && objects.contains_key(key) {
            return future::ready(Err(StoreError::AlreadyExists {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
            }))
            .boxed();
        }
        objects.insert(key.to_owned(), (body, metadata));
        future::ready(Ok(tag)).boxed()
    }

    fn head<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<HashMap<String, String>>, StoreError>> {
        future::ready(Ok(self.metadata(key))).boxed()
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

    fn list_uploads<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IncompleteUpload>, StoreError>> {
        future::ready(Ok(self.uploads_under(prefix))).boxed()
    }

    fn abort_upload<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.lock_uploads()
            .remove(&(key.to_owned(), upload_id.to_owned()));
        self.lock_parts().remove(upload_id);
        future::ready(Ok(())).boxed()
    }

    fn create_upload<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<String, StoreError>> {
        let upload_id = self.begin_upload(key, SystemTime::now());
        self.lock_parts().insert(upload_id.clone(), BTreeMap::new());
        future::ready(Ok(upload_id)).boxed()
    }

    fn upload_part<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
        number: i32,
        body: Bytes,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        let result = if self.has_upload(key, upload_id) {
            let tag = etag(&body);
            self.lock_parts()
                .entry(upload_id.to_owned())
                .or_default()
                .insert(number, body);
            Ok(tag)
        } else {
            Err(self.no_such_upload())
        };
        future::ready(result).boxed()
    }

    fn complete_upload<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
        parts: &'a [UploadedPart],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        if !self.has_upload(key, upload_id) {
            return future::ready(Err(self.no_such_upload())).boxed();
        }
        let uploaded = self.lock_parts().remove(upload_id).unwrap_or_default();
        let mut body = Vec::new();
        for part in parts {
            match uploaded.get(&part.number) {
                Some(bytes) if etag(bytes) == part.etag => body.extend_from_slice(bytes),
                _ => {
                    return future::ready(Err(StoreError::Rejected {
                        bucket: self.bucket.clone(),
                        status: 400,
                        code: "InvalidPart".into(),
                        message: format!("part {} of {upload_id}", part.number),
                    }))
                    .boxed()
                }
            }
        }
        self.lock_uploads()
            .remove(&(key.to_owned(), upload_id.to_owned()));
        self.lock()
            .insert(key.to_owned(), (Bytes::from(body), HashMap::new()));
        future::ready(Ok(())).boxed()
    }

    fn copy_create<'a>(
        &'a self,
        source: &'a str,
        length: u64,
        key: &'a str,
        metadata: &'a [(&'static str, String)],
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        let Some(body) = self.object(source) else {
            return future::ready(Err(StoreError::Rejected {
                bucket: self.bucket.clone(),
                status: 404,
                code: "NoSuchKey".into(),
                message: source.to_owned(),
            }))
            .boxed();
        };
        let body = body.slice(..(length as usize).min(body.len()));
        self.put(key, body, metadata)
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.remove(key);
        future::ready(Ok(())).boxed()
    }
}

impl MemoryStore {
    fn lock_parts(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<i32, Bytes>>> {
        self.parts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn has_upload(&self, key: &str, upload_id: &str) -> bool {
        self.lock_uploads()
            .contains_key(&(key.to_owned(), upload_id.to_owned()))
    }

    fn no_such_upload(&self) -> StoreError {
        classify_status(
            self.bucket.clone(),
            404,
            "NoSuchUpload".into(),
            String::new(),
        )
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
    fn incomplete_uploads_are_listed_by_prefix_and_aborted() {
        let store = MemoryStore::new("b");
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let first = store.begin_upload("a/1", at);
        let second = store.begin_upload("b/1", at);
        let listed = store.list_uploads("a/").now_or_never().unwrap().unwrap();
        assert_eq!(
            listed,
            [IncompleteUpload {
                key: "a/1".into(),
                upload_id: first.clone(),
                initiated: Some(at),
            }]
        );
        store
            .abort_upload("a/1", &first)
            .now_or_never()
            .unwrap()
            .unwrap();
        // Gone already: no error.
        store
            .abort_upload("a/1", &first)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert!(store
            .list_uploads("a/")
            .now_or_never()
            .unwrap()
            .unwrap()
            .is_empty());
        assert_eq!(store.uploads().len(), 1);
        assert_eq!(store.uploads()[0].upload_id, second);
        // An incomplete upload is no object.
        assert!(store.keys().is_empty());
    }

    fn put(store: &MemoryStore, key: &str, body: &'static [u8]) -> Result<String, StoreError> {
        let metadata = [("kos-format", "1".to_owned())];
        store
            .put(key, Bytes::from_static(body), &metadata)
            .now_or_never()
            .unwrap()
    }

    #[test]
    fn puts_never_replace_an_object_unless_overwriting() {
        let store = MemoryStore::new("b");
        put(&store, "k", b"one").unwrap();
        let refused = put(&store, "k", b"two").unwrap_err();
        assert!(matches!(refused, StoreError::AlreadyExists { ref key, .. } if key == "k"));
        assert_eq!(store.object("k").as_deref(), Some(&b"one"[..]));
        let got = store.get("k").now_or_never().unwrap().unwrap();
        assert_eq!(got.as_deref(), Some(&b"one"[..]));
        assert_eq!(store.get("x").now_or_never().unwrap().unwrap(), None);
        let head = store.head("k").now_or_never().unwrap().unwrap().unwrap();
        assert_eq!(head.get("kos-format").map(String::as_str), Some("1"));
        assert_eq!(store.head("x").now_or_never().unwrap().unwrap(), None);

        let careless = MemoryStore::overwriting("b");
        let first = put(&careless, "k", b"one").unwrap();
        let second = put(&careless, "k", b"two").unwrap();
        assert_ne!(first, second);
        assert_eq!(careless.object("k").as_deref(), Some(&b"two"[..]));
    }
}
