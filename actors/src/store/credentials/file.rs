//! The credentials file: a JSON object `{"AccessKeyId": ..., "AccessKeySecret": ...,
//! "SecurityToken": ..., "Expiration": ...}` (the last two optional), as the ECS metadata service
//! writes it. Read again whenever its modification time or size changes.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{json_problem, AlibabaCredentials, Loaded};

pub(super) struct FileSource {
    path: PathBuf,
    /// Modification time and size of the version read last.
    stamp: Mutex<Option<(SystemTime, u64)>>,
}

impl FileSource {
    pub fn new(path: PathBuf) -> Self {
        FileSource {
            path,
            stamp: Mutex::new(None),
        }
    }

    /// The file's credentials if it changed since the last successful read, `None` if not.
    pub async fn check(&self) -> Result<Option<Loaded>, String> {
        let shown = self.path.display();
        let metadata = tokio::fs::metadata(&self.path)
            .await
            .map_err(|e| format!("{shown}: {e}"))?;
        let stamp = (
            metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            metadata.len(),
        );
        if *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) == Some(stamp) {
            return Ok(None);
        }
        let text = tokio::fs::read(&self.path)
            .await
            .map_err(|e| format!("{shown}: {e}"))?;
        let parsed: AlibabaCredentials =
            serde_json::from_slice(&text).map_err(|e| format!("{shown}: {}", json_problem(&e)))?;
        let loaded = parsed
            .into_loaded("credentials-file")
            .map_err(|problem| format!("{shown}: {problem}"))?;
        // Only a version that parsed counts as read: a half-written file is read again.
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = Some(stamp);
        Ok(Some(loaded))
    }
}
