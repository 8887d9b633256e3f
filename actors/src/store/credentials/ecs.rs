//! The ECS instance's RAM role, from the metadata service:
//! `GET {base}/latest/meta-data/ram/security-credentials/` gives the role's name,
//! `GET {base}/latest/meta-data/ram/security-credentials/{role}` its temporary credentials
//! (`{"Code": "Success", "AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration", ...}`).
//!
//! The metadata service's hardened mode is supported: a token is asked for first
//! (`PUT {base}/latest/api/token`) and sent with the other requests; a service that does not
//! give one (normal mode) is asked without it.

use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;

use super::http::Http;
use super::{json_problem, AlibabaCredentials, Loaded};

const ROLES_PATH: &str = "/latest/meta-data/ram/security-credentials/";
const TOKEN_PATH: &str = "/latest/api/token";
const TOKEN_TTL_HEADER: &str = "X-aliyun-ecs-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aliyun-ecs-metadata-token";

pub(super) struct EcsSource {
    base: String,
    /// From the config, or looked up once.
    role: Mutex<Option<String>>,
    http: Http,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Status {
    #[serde(default)]
    code: Option<String>,
}

impl EcsSource {
    pub fn new(base: &str, role: Option<String>) -> Self {
        EcsSource {
            base: base.trim_end_matches('/').to_owned(),
            role: Mutex::new(role),
            http: Http::new(),
        }
    }

    pub async fn fetch(&self) -> Result<Loaded, String> {
        let token = self.token().await;
        let known = self.role.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let role = match known {
            Some(role) => role,
            None => {
                let body = self.get(ROLES_PATH, token.as_deref(), "role name").await?;
                let role = String::from_utf8_lossy(&body)
                    .lines()
                    .map(str::trim)
                    .find(|line| !line.is_empty())
                    .map(str::to_owned)
                    .ok_or(
                        "the metadata service names no RAM role: is one attached to the instance?",
                    )?;
                *self.role.lock().unwrap_or_else(|p| p.into_inner()) = Some(role.clone());
                role
            }
        };
        let path = format!("{ROLES_PATH}{role}");
        let body = self.get(&path, token.as_deref(), "credentials").await?;
        let status: Status = serde_json::from_slice(&body)
            .map_err(|e| format!("role {role}: {}", json_problem(&e)))?;
        if let Some(code) = status.code.filter(|code| code != "Success") {
            return Err(format!(
                "role {role}: the metadata service answered Code {code:?}"
            ));
        }
        let parsed: AlibabaCredentials = serde_json::from_slice(&body)
            .map_err(|e| format!("role {role}: {}", json_problem(&e)))?;
        parsed
            .into_loaded("ecs-ram-role")
            .map_err(|problem| format!("role {role}: {problem}"))
    }

    /// A hardened-mode token, or `None` where the service does not give one.
    async fn token(&self) -> Option<String> {
        let request = http::Request::put(format!("{}{TOKEN_PATH}", self.base))
            .header(TOKEN_TTL_HEADER, "21600")
            .body(Full::new(Bytes::new()))
            .ok()?;
        match self.http.send("ECS metadata token", request).await {
            Ok((200, body)) => Some(String::from_utf8_lossy(&body).trim().to_owned()),
            _ => None,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>, what: &str) -> Result<Bytes, String> {
        let mut request = http::Request::get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header(TOKEN_HEADER, token);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("metadata URL {}: {e}", self.base))?;
        let what = format!("ECS metadata ({what})");
        match self.http.send(&what, request).await? {
            (200, body) => Ok(body),
            (404, _) if path == ROLES_PATH => Err(format!(
                "{what}: 404: is a RAM role attached to the instance?"
            )),
            (status, _) => Err(format!("{what} {}{path}: HTTP {status}", self.base)),
        }
    }
}
