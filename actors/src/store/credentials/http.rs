//! A small HTTP(S) client for the ECS metadata service and STS: one request, the status and the
//! body, within a timeout. Errors say which URL failed and how, never the body sent.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A request to a credentials endpoint may take this long, body included.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Larger answers are refused: a credentials document is well under a kilobyte.
const MAX_BODY: usize = 64 * 1024;

pub(super) struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Http {
    pub fn new() -> Self {
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_provider_and_native_roots(provider.clone()) {
            Ok(builder) => builder,
            // No CA certificates on this machine: HTTPS endpoints then fail their handshake,
            // with that error, while plain HTTP ones (the metadata service) still work.
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("the default provider supports the default versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            ),
        };
        let connector = builder.https_or_http().enable_http1().build();
        Http {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Sends `request`; `(status, body)`. `what` names the endpoint in errors.
    pub async fn send(
        &self,
        what: &str,
        request: http::Request<Full<Bytes>>,
    ) -> Result<(u16, Bytes), String> {
        let uri = request.uri().clone();
        let shown = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |a| a.as_str()),
            uri.path()
        );
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{what} {shown}: {}", error_chain(&e)))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{what} {shown}: reading the answer: {e}"))?
                .to_bytes();
            if body.len() > MAX_BODY {
                return Err(format!("{what} {shown}: answer too large"));
            }
            Ok((status, body))
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .unwrap_or_else(|_| Err(format!("{what} {shown}: no answer within {TIMEOUT:?}")))
    }
}

/// An error with its sources (hyper's own says only "client error (Connect)").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
