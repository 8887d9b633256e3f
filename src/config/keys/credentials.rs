//! `[sink.credentials]`: where the object store's AccessKey pair comes from (declared here to
//! keep `keys.rs` short; listed in [`super::KEYS`] like every other key).

use super::*;

// ---------------------------------------------------------------------------------------------
// [sink.credentials]: where the object store's AccessKey pair comes from (never the file itself).

/// Where the object store's credentials come from; the secrets themselves are never in this file.
pub(in crate::config) const SINK_CREDENTIALS: Key = Key {
    path: "sink.credentials",
    kind: optional_section(),
};
/// `auto`: the environment's AccessKey pair if set, else `file` if set, else the ECS RAM role if
/// `ALIBABA_CLOUD_ECS_METADATA` is set, else RRSA if its three variables are set.
pub(in crate::config) const SINK_CREDENTIALS_SOURCE: Key = Key {
    path: "sink.credentials.source",
    kind: Kind::Choice {
        options: &["auto", "env", "file", "ecs_ram_role", "rrsa"],
        default: "auto",
    },
};
/// The credentials file (JSON), re-read when it changes.
pub(in crate::config) const SINK_CREDENTIALS_FILE: Key = Key {
    path: "sink.credentials.file",
    kind: string(
        StrDefault::Unset {
            meaning: "no credentials file",
        },
        &rules::NON_EMPTY,
    ),
};
/// The ECS metadata service (`ecs_ram_role`).
pub(in crate::config) const SINK_CREDENTIALS_METADATA_URL: Key = Key {
    path: "sink.credentials.metadata_url",
    kind: string(
        StrDefault::Fixed("http://100.100.100.200"),
        &rules::ENDPOINT_URL,
    ),
};
/// The STS endpoint RRSA calls `AssumeRoleWithOIDC` at (`rrsa`).
pub(in crate::config) const SINK_CREDENTIALS_STS_ENDPOINT: Key = Key {
    path: "sink.credentials.sts_endpoint",
    kind: string(
        StrDefault::Fixed("https://sts.aliyuncs.com"),
        &rules::ENDPOINT_URL,
    ),
};
