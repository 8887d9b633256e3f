//! RRSA on ACK: the pod's OIDC token (a file the kubelet rotates) exchanged for temporary
//! credentials with STS `AssumeRoleWithOIDC`, an RPC-style call that needs no signature. The
//! token goes in the POST body, never in the URL (which proxies and access logs keep).

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;

use super::http::Http;
use super::{json_problem, AlibabaCredentials, Loaded};

/// How long the credentials asked for last (STS's default; the role's maximum may be higher).
const DURATION_SECONDS: &str = "3600";

pub(super) struct RrsaSource {
    role_arn: String,
    oidc_provider_arn: String,
    token_file: PathBuf,
    endpoint: String,
    session_name: String,
    http: Http,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(default)]
    credentials: Option<AlibabaCredentials>,
    #[serde(default)]
    code: Option<String>,
}

impl RrsaSource {
    pub fn new(
        role_arn: String,
        oidc_provider_arn: String,
        token_file: PathBuf,
        endpoint: &str,
        session_name: String,
    ) -> Self {
        RrsaSource {
            role_arn,
            oidc_provider_arn,
            token_file,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            session_name,
            http: Http::new(),
        }
    }

    pub async fn fetch(&self) -> Result<Loaded, String> {
        // Read for every call: the kubelet replaces the token before it expires.
        let token = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|e| format!("OIDC token file {}: {e}", self.token_file.display()))?;
        let body = form(&[
            ("Action", "AssumeRoleWithOIDC"),
            ("Format", "JSON"),
            ("Version", "2015-04-01"),
            ("RoleArn", &self.role_arn),
            ("OIDCProviderArn", &self.oidc_provider_arn),
            ("OIDCToken", token.trim()),
            ("RoleSessionName", &self.session_name),
            ("DurationSeconds", DURATION_SECONDS),
        ]);
        let request = http::Request::post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("STS endpoint {}: {e}", self.endpoint))?;
        let (status, answer) = self.http.send("STS AssumeRoleWithOIDC", request).await?;
        let what = format!("STS AssumeRoleWithOIDC at {}", self.endpoint);
        let answer: Answer = serde_json::from_slice(&answer)
            .map_err(|e| format!("{what}: HTTP {status}, {}", json_problem(&e)))?;
        match (status, answer.credentials) {
            (200, Some(credentials)) => credentials
                .into_loaded("rrsa")
                .map_err(|problem| format!("{what}: {problem}")),
            // Only the code: STS's message could quote what was sent.
            (status, _) => Err(format!(
                "{what}: HTTP {status}, Code {:?} (role {})",
                answer.code.unwrap_or_default(),
                self.role_arn
            )),
        }
    }
}

/// `application/x-www-form-urlencoded`.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        encode(&mut out, name);
        out.push('=');
        encode(&mut out, value);
    }
    out
}

fn encode(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_encoding() {
        assert_eq!(
            super::form(&[("RoleArn", "acs:ram::1:role/a b"), ("T", "x+y=z&")]),
            "RoleArn=acs%3Aram%3A%3A1%3Arole%2Fa%20b&T=x%2By%3Dz%26"
        );
    }
}
