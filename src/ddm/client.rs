//! The device side of Apple's declarative-management protocol over HTTP, as a DDM server (e.g.
//! `KMFDDM` behind `NanoMDM`) serves it: `GET /tokens`, `GET /declaration-items`,
//! `GET /declaration/{type}/{identifier}` and `PUT /status`, each with the enrollment in the
//! `X-Enrollment-ID` header (what an MDM server sets after authenticating the device).
//!
//! Plain HTTP only (bsi talks to a server on the test network, or through a TLS-terminating
//! proxy). Every answer is size-limited and typed before bsi uses it. Connection failures,
//! timeouts, HTTP 429 and 5xx are retried a bounded number of times with backoff; any other
//! status, and a body that is not what the endpoint returns, fail at once with one message naming
//! the endpoint and what went wrong, and a hint.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;

use crate::untrusted::clip;
use crate::{Error, Result};

/// The header carrying the enrollment identifier.
pub(crate) const ENROLLMENT_HEADER: &str = "X-Enrollment-ID";
/// Largest tokens or declaration-items answer bsi reads.
const MAX_LIST_BYTES: u64 = 4 * 1024 * 1024;
/// Largest declaration bsi reads (as `policy set`).
const MAX_DECLARATION_BYTES: u64 = crate::declarations::store::MAX_DECLARATION_BYTES;
/// Attempts for a request that failed in a way worth retrying.
const ATTEMPTS: u32 = 3;

/// `TokensResponse`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TokensResponse {
    /// `SyncTokens`.
    pub sync_tokens: SyncTokens,
}

/// `SynchronizationTokens`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SyncTokens {
    /// Changes whenever the set of declarations for the enrollment changes (its `Timestamp` is
    /// not used).
    pub declarations_token: String,
}

/// One `ManifestDeclaration`: an identifier and its server token.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ManifestDeclaration {
    /// `Identifier`.
    pub identifier: String,
    /// `ServerToken`.
    pub server_token: String,
}

/// `ManifestDeclarationItems`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ManifestDeclarationItems {
    /// Activations.
    pub activations: Vec<ManifestDeclaration>,
    /// Configurations.
    pub configurations: Vec<ManifestDeclaration>,
    /// Assets.
    pub assets: Vec<ManifestDeclaration>,
    /// Management declarations.
    pub management: Vec<ManifestDeclaration>,
}

impl ManifestDeclarationItems {
    /// Every listed declaration with the path segment of its type (`activation`, ...).
    pub(crate) fn all(&self) -> impl Iterator<Item = (&'static str, &ManifestDeclaration)> {
        self.activations
            .iter()
            .map(|d| ("activation", d))
            .chain(self.configurations.iter().map(|d| ("configuration", d)))
            .chain(self.assets.iter().map(|d| ("asset", d)))
            .chain(self.management.iter().map(|d| ("management", d)))
    }
}

/// `DeclarationItemsResponse` (its `DeclarationsToken` is not used: bsi keeps the token
/// `/tokens` gives, which KMFDDM spells differently).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeclarationItemsResponse {
    /// `Declarations`.
    pub declarations: ManifestDeclarationItems,
}

/// A DDM server's device endpoints.
#[derive(Clone, Debug)]
pub(crate) struct Server {
    base: String,
    agent: ureq::Agent,
    timeout: Duration,
    backoff: Duration,
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters pass).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// How one attempt failed.
enum Failure {
    /// Worth another attempt.
    Transient(String),
    /// Final.
    Final(String, String),
}

impl Server {
    /// A server at `url` (`http://host:port[/prefix]`), each request bounded by `timeout`, with
    /// room for `connections` idle connections (one per worker of a fleet).
    pub(crate) fn new(url: &str, timeout: Duration, connections: usize) -> Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        if base.starts_with("https://") {
            return Err(Error::usage(
                format!(
                    "{} is an https URL; bsi speaks plain HTTP to DDM servers",
                    clip(url)
                ),
                "run the server on http:// for testing, or put a TLS-terminating proxy in front of bsi",
            ));
        }
        if !base.starts_with("http://") || base.len() <= "http://".len() {
            return Err(Error::usage(
                format!("--server {} is not an http:// URL", clip(url)),
                "pass the base URL of the server's device endpoints, e.g. --server http://127.0.0.1:9002",
            ));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Each phase bounded, not the whole call: a global timeout makes ureq resolve the
            // host on a new thread for every request (a thread per request in a fleet).
            .timeout_connect(Some(timeout))
            .timeout_send_request(Some(timeout))
            .timeout_send_body(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_recv_body(Some(timeout))
            .max_redirects(0)
            .max_idle_connections(connections.max(1))
            .max_idle_connections_per_host(connections.max(1))
            .user_agent(concat!("bsi/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            base,
            agent: ureq::Agent::new_with_config(config),
            timeout,
            backoff: Duration::from_millis(200),
        })
    }

    /// The base URL.
    #[must_use]
    pub(crate) fn url(&self) -> &str {
        &self.base
    }

    fn error(&self, method: &'static str, endpoint: &str, problem: String, hint: String) -> Error {
        Error::Server {
            method,
            endpoint: format!("{}{endpoint}", self.base),
            problem,
            hint,
        }
    }

    fn classify(&self, e: &ureq::Error) -> Failure {
        match e {
            ureq::Error::Timeout(_) => {
                Failure::Transient(format!("no answer within {} s", self.timeout.as_secs_f64()))
            }
            ureq::Error::ConnectionFailed | ureq::Error::Io(_) | ureq::Error::HostNotFound => {
                Failure::Transient(format!("cannot connect ({e})"))
            }
            ureq::Error::BodyExceedsLimit(limit) => Failure::Final(
                format!("the answer is larger than {limit} bytes"),
                "is --server a DDM server? Its answers are small JSON documents".to_owned(),
            ),
            other => Failure::Final(
                clip(&other.to_string()),
                "check the --server URL".to_owned(),
            ),
        }
    }

    fn status_failure(status: u16, reason: &str, enrollment: &str) -> Failure {
        let problem = format!("HTTP {status} {reason}");
        match status {
            429 | 500..=599 => Failure::Transient(problem),
            400 => Failure::Final(
                problem,
                format!("the server refused the request; check the enrollment identifier ({enrollment}, --enrollment-id) and the --server URL"),
            ),
            401 | 403 => Failure::Final(
                problem,
                "the server wants authentication bsi does not send: point --server at the device endpoints the MDM server passes to (KMFDDM's, which take the enrollment from X-Enrollment-ID)".to_owned(),
            ),
            404 => Failure::Final(
                problem,
                "check the --server URL: it is the base where the server answers GET /tokens".to_owned(),
            ),
            _ => Failure::Final(problem, "check the --server URL and the server's log".to_owned()),
        }
    }

    /// One request with retries; returns the body of a 2xx answer.
    fn request(
        &self,
        method: &'static str,
        endpoint: &str,
        enrollment: &str,
        body: Option<&[u8]>,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let url = format!("{}{endpoint}", self.base);
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(self.backoff * 4u32.pow(attempt - 1));
            }
            let response = match body {
                None => self
                    .agent
                    .get(&url)
                    .header(ENROLLMENT_HEADER, enrollment)
                    .call(),
                Some(bytes) => self
                    .agent
                    .put(&url)
                    .header(ENROLLMENT_HEADER, enrollment)
                    .content_type("application/json")
                    .send(bytes),
            };
            let mut response = match response {
                Ok(r) => r,
                Err(e) => match self.classify(&e) {
                    Failure::Transient(why) => {
                        last = why;
                        continue;
                    }
                    Failure::Final(why, hint) => {
                        return Err(self.error(method, endpoint, why, hint));
                    }
                },
            };
            let status = response.status();
            if !status.is_success() {
                match Self::status_failure(
                    status.as_u16(),
                    status.canonical_reason().unwrap_or(""),
                    enrollment,
                ) {
                    Failure::Transient(why) => {
                        last = why;
                        continue;
                    }
                    Failure::Final(why, hint) => {
                        return Err(self.error(method, endpoint, why, hint));
                    }
                }
            }
            return response
                .body_mut()
                .with_config()
                .limit(limit)
                .read_to_vec()
                .map_err(|e| match self.classify(&e) {
                    Failure::Transient(why) | Failure::Final(why, _) => self.error(
                        method,
                        endpoint,
                        format!("reading the answer: {why}"),
                        "check the server's log, then sync again".to_owned(),
                    ),
                });
        }
        Err(self.error(
            method,
            endpoint,
            format!("{last} ({ATTEMPTS} attempts)"),
            format!(
                "check that the server runs at {} and answers, then sync again",
                self.base
            ),
        ))
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        enrollment: &str,
        what: &str,
    ) -> Result<T> {
        let bytes = self.request("GET", endpoint, enrollment, None, MAX_LIST_BYTES)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            self.error(
                "GET",
                endpoint,
                format!("the answer is not a {what} ({})", clip(&e.to_string())),
                "is --server a DDM server? It should answer as Apple's protocol says".to_owned(),
            )
        })
    }

    /// `GET /tokens`.
    pub(crate) fn tokens(&self, enrollment: &str) -> Result<TokensResponse> {
        self.json("/tokens", enrollment, "TokensResponse")
    }

    /// `GET /declaration-items`.
    pub(crate) fn declaration_items(&self, enrollment: &str) -> Result<DeclarationItemsResponse> {
        self.json("/declaration-items", enrollment, "DeclarationItemsResponse")
    }

    /// `GET /declaration/{kind}/{identifier}`: the declaration's bytes.
    pub(crate) fn declaration(
        &self,
        enrollment: &str,
        kind: &str,
        identifier: &str,
    ) -> Result<Vec<u8>> {
        let endpoint = format!("/declaration/{kind}/{}", segment(identifier));
        self.request("GET", &endpoint, enrollment, None, MAX_DECLARATION_BYTES)
    }

    /// `PUT /status`.
    pub(crate) fn put_status(&self, enrollment: &str, report: &[u8]) -> Result<()> {
        self.request("PUT", "/status", enrollment, Some(report), MAX_LIST_BYTES)
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_segments() {
        assert_eq!(segment("com.example.a b/c"), "com.example.a%20b%2Fc");
        assert!(Server::new("https://x", Duration::from_secs(1), 1).is_err());
        assert!(Server::new("ftp://x", Duration::from_secs(1), 1).is_err());
        assert_eq!(
            Server::new("http://127.0.0.1:9002/", Duration::from_secs(1), 1)
                .unwrap()
                .url(),
            "http://127.0.0.1:9002"
        );
    }

    #[test]
    fn protocol_documents_parse() {
        let t: TokensResponse = serde_json::from_str(
            r#"{"SyncTokens":{"DeclarationsToken":"abc","Timestamp":"2026-12-01T10:00:00Z"}}"#,
        )
        .unwrap();
        assert_eq!(t.sync_tokens.declarations_token, "abc");
        let i: DeclarationItemsResponse = serde_json::from_str(
            r#"{"Declarations":{"Activations":[{"Identifier":"a","ServerToken":"1"}],"Configurations":[],"Assets":[],"Management":[]},"DeclarationsToken":"abc"}"#,
        )
        .unwrap();
        assert_eq!(
            i.declarations
                .all()
                .map(|(k, d)| (k, d.identifier.as_str()))
                .collect::<Vec<_>>(),
            [("activation", "a")]
        );
    }
}
