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
use std::time::{Duration, Instant};

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
    /// When the whole sync must be done, and how long it was given (for the message).
    deadline: Option<(Instant, Duration)>,
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters pass).
pub(crate) fn segment(text: &str) -> String {
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
pub(crate) enum Failure {
    /// Worth another attempt.
    Transient(String),
    /// Final: what went wrong, and what to do.
    Final(String, String),
}

/// One HTTP exchange: what to send, and how much of the answer to take.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    /// `GET`, `PUT` or `POST`.
    pub method: &'static str,
    /// The path after the base URL (for the URL and for messages).
    pub endpoint: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body and its content type.
    pub body: Option<(Vec<u8>, &'static str)>,
    /// The largest answer read.
    pub limit: u64,
}

/// Each phase of a request bounded by `timeout` (a global timeout makes ureq resolve the host
/// on a new thread for every request).
fn timed<B>(request: ureq::RequestBuilder<B>, timeout: Duration) -> ureq::RequestBuilder<B> {
    request
        .config()
        .timeout_connect(Some(timeout))
        .timeout_send_request(Some(timeout))
        .timeout_send_body(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_recv_body(Some(timeout))
        .build()
}

fn classify(e: &ureq::Error, timeout: Duration) -> Failure {
    match e {
        ureq::Error::Timeout(_) => {
            Failure::Transient(format!("no answer within {} s", timeout.as_secs_f64()))
        }
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) | ureq::Error::HostNotFound => {
            Failure::Transient(format!("cannot connect ({e})"))
        }
        ureq::Error::BodyExceedsLimit(limit) => Failure::Final(
            format!("the answer is larger than {limit} bytes"),
            "is it the server's device endpoint? Its answers are small documents".to_owned(),
        ),
        other => Failure::Final(clip(&other.to_string()), "check the server URL".to_owned()),
    }
}

/// One attempt at `x` on `url` within `timeout`; the answer's body, or how it failed.
pub(crate) fn attempt(
    agent: &ureq::Agent,
    url: &str,
    x: &Exchange,
    timeout: Duration,
    status_failure: fn(u16, &str) -> Failure,
) -> std::result::Result<Vec<u8>, Failure> {
    let response = match (&x.body, x.method) {
        (None, _) => {
            let mut r = timed(agent.get(url), timeout);
            for (k, v) in &x.headers {
                r = r.header(*k, v);
            }
            r.call()
        }
        (Some((bytes, kind)), method) => {
            let mut r = timed(
                if method == "POST" {
                    agent.post(url)
                } else {
                    agent.put(url)
                },
                timeout,
            );
            for (k, v) in &x.headers {
                r = r.header(*k, v);
            }
            r.content_type(*kind).send(bytes)
        }
    };
    let mut response = response.map_err(|e| classify(&e, timeout))?;
    let status = response.status();
    if !status.is_success() {
        return Err(status_failure(
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
        ));
    }
    response
        .body_mut()
        .with_config()
        .limit(x.limit)
        .read_to_vec()
        .map_err(|e| match classify(&e, timeout) {
            Failure::Transient(why) | Failure::Final(why, _) => Failure::Final(
                format!("reading the answer: {why}"),
                "check the server's log, then try again".to_owned(),
            ),
        })
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
            deadline: None,
        })
    }

    /// This server, with every request from now on done within `deadline` in all (a sync's
    /// whole-sync bound: a server dripping answers just inside the per-request timeout cannot
    /// hold the device lock for longer).
    #[must_use]
    pub(crate) fn until(&self, deadline: Duration) -> Self {
        Self {
            deadline: Some((Instant::now() + deadline, deadline)),
            ..self.clone()
        }
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

    /// `wanted`, cut to what is left before the deadline; an error once it has passed.
    fn within(&self, wanted: Duration, x: &Exchange) -> Result<Duration> {
        let Some((end, total)) = self.deadline else {
            return Ok(wanted);
        };
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.error(
                x.method,
                &x.endpoint,
                format!(
                    "the sync did not finish within its deadline of {} s",
                    total.as_secs_f64()
                ),
                "check that the server answers promptly, then sync again (--deadline SECONDS sets the bound)".to_owned(),
            ));
        }
        Ok(wanted.min(left))
    }

    fn status_failure(status: u16, reason: &str) -> Failure {
        let problem = format!("HTTP {status} {reason}");
        match status {
            429 | 500..=599 => Failure::Transient(problem),
            400 => Failure::Final(
                problem,
                "the server refused the request; check the enrollment identifier (--enrollment-id) and the --server URL".to_owned(),
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

    /// One exchange with retries (connection failures, timeouts, HTTP 429 and 5xx, a bounded
    /// number of times with backoff), each attempt within the per-request timeout and the
    /// whole-sync deadline, and stopped at once by SIGINT or SIGTERM; the body of a 2xx answer.
    pub(crate) fn exchange(&self, x: &Exchange) -> Result<Vec<u8>> {
        let url = format!("{}{}", self.base, x.endpoint);
        let mut last = String::new();
        for n in 0..ATTEMPTS {
            if n > 0 {
                crate::interrupt::sleep(self.within(self.backoff * 4u32.pow(n - 1), x)?)?;
            }
            let timeout = self.within(self.timeout, x)?;
            let (agent, url, job) = (self.agent.clone(), url.clone(), x.clone());
            let outcome = crate::interrupt::wait_for(move || {
                attempt(&agent, &url, &job, timeout, Self::status_failure)
            })?;
            match outcome {
                Ok(body) => return Ok(body),
                Err(Failure::Transient(why)) => last = why,
                Err(Failure::Final(why, hint)) => {
                    return Err(self.error(x.method, &x.endpoint, why, hint));
                }
            }
        }
        Err(self.error(
            x.method,
            &x.endpoint,
            format!("{last} ({ATTEMPTS} attempts)"),
            format!(
                "check that the server runs at {} and answers, then sync again",
                self.base
            ),
        ))
    }

    /// A `GET` or `PUT` of the DDM protocol, naming the enrollment.
    fn request(
        &self,
        method: &'static str,
        endpoint: &str,
        enrollment: &str,
        body: Option<&[u8]>,
        limit: u64,
    ) -> Result<Vec<u8>> {
        self.exchange(&Exchange {
            method,
            endpoint: endpoint.to_owned(),
            headers: vec![(ENROLLMENT_HEADER, enrollment.to_owned())],
            body: body.map(|b| (b.to_vec(), "application/json")),
            limit,
        })
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
