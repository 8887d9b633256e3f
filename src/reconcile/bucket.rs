//! Reading the bucket: every object under the topic's folder, its user metadata (HeadObject)
//! and, with `--deep`, a summary of its body (GetObject). Requests run a few at a time.

use std::collections::BTreeMap;

use actors::store::{ObjectStore, S3Store};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::objects::{Body, ListedObject};

/// HeadObject/GetObject requests in flight at once: enough to hide latency, few enough for a
/// small machine and a bucket's request-rate limits.
const IN_FLIGHT: usize = 16;

/// Every object under `folder`, in key order, with its metadata and (with `deep`) its body's
/// summary. Objects deleted between the listing and their read are left out.
pub async fn read(store: &S3Store, folder: &str, deep: bool) -> Result<Vec<ListedObject>, String> {
    let keys = store
        .list(folder, None)
        .await
        .map_err(|error| format!("cannot list the objects under `{folder}`: {error}"))?;
    let mut objects = Vec::with_capacity(keys.len());
    let mut pending = keys.into_iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < IN_FLIGHT {
            let Some(key) = pending.next() else { break };
            let store = store.clone();
            running.spawn(async move { read_one(&store, key, deep).await });
        }
        match running.join_next().await {
            None => break,
            Some(joined) => {
                if let Some(object) = joined.expect("reading an object does not panic")? {
                    objects.push(object);
                }
            }
        }
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(objects)
}

/// One object's metadata and body summary; `None` if it is gone.
async fn read_one(
    store: &S3Store,
    key: String,
    deep: bool,
) -> Result<Option<ListedObject>, String> {
    let head = match store
        .client()
        .head_object()
        .bucket(store.bucket())
        .key(&key)
        .send()
        .await
    {
        Ok(head) => head,
        Err(SdkError::ServiceError(service)) if service.raw().status().as_u16() == 404 => {
            return Ok(None)
        }
        Err(error) => {
            return Err(format!(
                "cannot read the metadata of object `{key}` in bucket `{}`: {}",
                store.bucket(),
                describe(&error)
            ))
        }
    };
    let metadata: BTreeMap<String, String> = head
        .metadata()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .collect();
    let body = if deep {
        match store.get(&key).await {
            Ok(Some(bytes)) => Some(Body::read(&key, &bytes)),
            Ok(None) => return Ok(None),
            Err(error) => return Err(format!("cannot read object `{key}`: {error}")),
        }
    } else {
        None
    };
    Ok(Some(ListedObject {
        key,
        metadata,
        body,
    }))
}

/// An S3 error in words: the HTTP status and S3 code when the store answered, the transport
/// failure otherwise. Requests carry no secret (only its signature), so neither does this.
fn describe<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("");
            let message = service.err().message().unwrap_or("");
            match code {
                "AccessDenied" | "Forbidden" => format!(
                    "access denied ({code}): the AccessKey pair may not read this bucket's objects"
                ),
                _ => format!("{code} {message}").trim().to_owned(),
            }
        }
        other => DisplayErrorContext(other).to_string(),
    }
}
