//! Why a Connect key has no equivalent: the reasons of the "Not mapped" list.

/// The reason for a key the mapping did not take.
pub(super) fn unmapped_reason(key: &str) -> String {
    let reason = match key {
        "aws.access.key.id" | "aws.secret.access.key" | "s3.credentials.provider.class" => {
            "credentials are never copied: set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET in the environment"
        }
        k if k.starts_with("s3.sse") || k.starts_with("s3.ssea") => {
            "server-side encryption headers are not sent: use the bucket's default encryption"
        }
        "s3.acl.canned" => "no ACL is sent: objects get the bucket's ACL",
        k if k.starts_with("s3.object.tagging") || k == "s3.object.behavior.on.tagging.error" => {
            "objects are not tagged (OSS's S3 API has no PutObjectTagging); their metadata holds offsets and counts"
        }
        k if k.starts_with("s3.proxy.") => "no HTTP proxy support",
        "s3.part.retries" | "retry.backoff.ms" => {
            "uploads retry whole objects: sink.max_upload_attempts and sink.retry_*_backoff_ms"
        }
        k if k.starts_with("s3.elastic.buffer") => {
            "buffers are sized by batching.max_bytes and pooled"
        }
        "s3.wan.mode" | "s3.http.send.expect.continue" | "s3.send.digest" => {
            "an S3 client option with no equivalent (bodies are signed unless sink.sign_payload = false)"
        }
        k if k.starts_with("key.converter")
            || k.starts_with("value.converter")
            || k.starts_with("header.converter") =>
        {
            "keys and values are written as UTF-8 text as they are (no converter, no Schema Registry)"
        }
        k if k.starts_with("transforms") || k.starts_with("predicates") => {
            "single message transforms are not supported"
        }
        "filename.offset.zero.pad.width" | "directory.delim" | "file.delim"
        | "rotate.file.on.partition.change" => {
            "the object key layout is fixed: <key_prefix><topic>/<partition>/<first>-<last>.<ext>"
        }
        "schema.compatibility" | "schema.generator.class" | "avro.codec"
        | "json.decimal.format" | "enhanced.avro.schema.support" | "connect.meta.data" => {
            "schemas are not read: records are written as text"
        }
        k if k.starts_with("format.bytearray") => "raw byte output is not supported",
        "keys.format.class" | "headers.format.class" => {
            "keys (and headers with [format] headers) are written inside each record"
        }
        "storage.class" => "the bucket is always written through the S3 API",
        "partition.field.name" => "kafka-oss-sink does not read fields of record values",
        "path.format" | "partition.duration.ms" | "timezone" | "locale" | "timestamp.extractor"
        | "timestamp.field" => "used by Confluent's time-based partitioners only",
        "report.null.values.to.dlq" => "tombstones are written to the bucket, never to the dead-letter topic",
        k if k.starts_with("errors.retry") => {
            "record errors are not retried; upload retries: sink.max_upload_attempts"
        }
        k if k.starts_with("producer.override.") || k.starts_with("admin.override.") => {
            "the connector's producer and admin client take no overrides"
        }
        k if k.starts_with("consumer.override.") => "see the consumer properties above",
        _ => "no kafka-oss-sink equivalent",
    };
    reason.to_owned()
}
