//! Reading the stack's bucket back through the S3 API.

use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;

use super::{Stack, ACCESS_KEY_ID};

impl Stack {
    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.s3_at(&self.endpoint())
    }

    /// A client with this stack's credentials for another endpoint (e.g. an `S3Proxy`'s).
    /// Change its retries or timeouts with `client.config().to_builder()`.
    pub fn s3_at(&self, endpoint: &str) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                ACCESS_KEY_ID,
                &self.secret,
                None,
                None,
                "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Every object under `prefix` in key order, with its parsed JSON array.
    pub fn objects(&self, bucket: &str, prefix: &str) -> Vec<(String, Vec<Value>)> {
        let client = self.s3();
        self.runtime.block_on(async {
            let mut keys: Vec<String> = actors::store::list_objects(&client, bucket, prefix, None)
                .await
                .expect("list objects")
                .into_iter()
                .filter_map(|object| object.key)
                .collect();
            keys.sort();
            let mut objects = Vec::new();
            for key in keys {
                let body = client
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .expect("get object");
                let bytes = body.body.collect().await.unwrap().into_bytes();
                let array: Vec<Value> = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|error| panic!("object {key} is not a JSON array: {error}"));
                objects.push((key, array));
            }
            objects
        })
    }

    /// `(key, size, ETag)` of every object under `prefix`, in key order.
    pub fn object_sizes(&self, bucket: &str, prefix: &str) -> Vec<(String, i64, String)> {
        let client = self.s3();
        self.runtime.block_on(async {
            let objects = actors::store::list_objects(&client, bucket, prefix, None)
                .await
                .expect("list objects");
            let mut out = Vec::new();
            for object in objects {
                let key = object.key.expect("listed object without key");
                let head = client
                    .head_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .expect("head object");
                out.push((
                    key,
                    head.content_length().unwrap_or(-1),
                    head.e_tag().unwrap_or("").to_owned(),
                ));
            }
            out
        })
    }

    /// Polls the bucket until `count` records are in it (or the deadline passes), returns them.
    pub fn wait_for_records(
        &self,
        bucket: &str,
        prefix: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<(String, Vec<Value>)> {
        let deadline = Instant::now() + timeout;
        loop {
            let objects = self.objects(bucket, prefix);
            let found: usize = objects.iter().map(|(_, records)| records.len()).sum();
            if found >= count || Instant::now() > deadline {
                return objects;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
