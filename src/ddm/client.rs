//! The device side of Apple's declarative-management protocol over HTTP, as a DDM server (e.g.
//! `KMFDDM` behind `NanoMDM`) serves it: `GET /tokens`, `GET /declaration-items`,
//! `GET /declaration/{type}/{identifier}` and `PUT /status`, each with the enrollment in the
//! `X-Enrollment-ID` header (what an MDM server sets after authenticating the device).
//!
//! Or the same requests through an MDM server, as `DeclarativeManagement` check-ins that a
//! [`Carrier`] (the enrolled device's MDM channel) sends. Requests go through `http` (size
//! limits, retries, deadline); every answer is typed before bsi uses it.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::http::{Exchange, Failure, Link};
use crate::untrusted::clip;
use crate::{Error, Result};

/// The header carrying the enrollment identifier.
pub(crate) const ENROLLMENT_HEADER: &str = "X-Enrollment-ID";
/// Largest tokens or declaration-items answer bsi reads.
const MAX_LIST_BYTES: u64 = 4 * 1024 * 1024;
/// Largest declaration bsi reads (as `policy set`).
const MAX_DECLARATION_BYTES: u64 = crate::declarations::store::MAX_DECLARATION_BYTES;

/// `TokensResponse`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TokensResponse {
    /// `SyncTokens`.
    pub sync_tokens: SyncTokens,
}

impl TokensResponse {
    /// Tokens holding `declarations_token`: the device's own, when it reports without asking.
    pub(crate) fn holding(declarations_token: String) -> Self {
        Self {
            sync_tokens: SyncTokens { declarations_token },
        }
    }
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

/// How DDM requests travel: straight to a DDM server (its device endpoints, naming the
/// enrollment in `X-Enrollment-ID`), or through an MDM server as `DeclarativeManagement`
/// check-ins, which a [`Carrier`] (the MDM device's channel) sends.
#[derive(Clone, Debug)]
enum Route {
    Direct(Link),
    Carried(Arc<dyn Carrier>),
}

/// Something that carries DDM requests for the device: `endpoint` is the protocol's
/// (`tokens`, `declaration-items`, `declaration/{type}/{id}`, `status`), `data` the body of a
/// `status` report.
pub(crate) trait Carrier: Send + Sync + std::fmt::Debug {
    /// Sends one request and returns the answer (at most `limit` bytes).
    fn carry(&self, endpoint: &str, data: Option<&[u8]>, limit: u64) -> Result<Vec<u8>>;
    /// What the device syncs with, for messages and records (the check-in URL).
    fn label(&self) -> &str;
    /// This carrier, every request done within `deadline` in all.
    fn until(&self, deadline: Duration) -> Arc<dyn Carrier>;
}

/// A DDM server, as the device reaches it.
#[derive(Clone, Debug)]
pub(crate) struct Server {
    route: Route,
}

fn ddm_status(status: u16, reason: &str) -> Failure {
    let problem = format!("HTTP {status} {reason}");
    match status {
        429 | 500..=599 => Failure::Answered(problem),
        400 => Failure::Final(
            problem,
            "the server refused the request; check the enrollment identifier (--enrollment-id) and the --server URL".to_owned(),
        ),
        401 | 403 => Failure::Final(
            problem,
            "the server wants authentication bsi does not send: point --server at the device endpoints the MDM server passes to (KMFDDM's, which take the enrollment from X-Enrollment-ID), or enroll the device in the MDM server (`bsi mdm enroll`) and sync through it".to_owned(),
        ),
        404 => Failure::Final(
            problem,
            "check the --server URL: it is the base where the server answers GET /tokens".to_owned(),
        ),
        _ => Failure::Final(problem, "check the --server URL and the server's log".to_owned()),
    }
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

impl Server {
    /// A DDM server at `url` (`http[s]://host:port[/prefix]`), each request bounded by
    /// `timeout`, with room for `connections` idle connections (one per worker of a fleet).
    pub(crate) fn new(
        url: &str,
        timeout: Duration,
        connections: usize,
        tls: &crate::http::Tls,
    ) -> Result<Self> {
        let link = Link::new("DDM server", url, timeout, connections, tls)
            .map_err(|_| {
                Error::usage(
                    format!("--server {} is not an http:// or https:// URL", clip(url)),
                    "pass the base URL of the server's device endpoints, e.g. --server http://127.0.0.1:9002",
                )
            })?
            .with_hints(ddm_status);
        Ok(Self {
            route: Route::Direct(link),
        })
    }

    /// DDM through an MDM server: every request a `DeclarativeManagement` check-in.
    #[must_use]
    pub(crate) fn through(carrier: Arc<dyn Carrier>) -> Self {
        Self {
            route: Route::Carried(carrier),
        }
    }

    /// This server, with every request from now on done within `deadline` in all (a sync's
    /// whole-sync bound: a server dripping answers just inside the per-request timeout cannot
    /// hold the device lock for longer).
    #[must_use]
    pub(crate) fn until(&self, deadline: Duration) -> Self {
        Self {
            route: match &self.route {
                Route::Direct(link) => Route::Direct(link.until(deadline)),
                Route::Carried(c) => Route::Carried(c.until(deadline)),
            },
        }
    }

    /// The base URL (the check-in URL, through an MDM server).
    #[must_use]
    pub(crate) fn url(&self) -> &str {
        match &self.route {
            Route::Direct(link) => link.url(),
            Route::Carried(c) => c.label(),
        }
    }

    fn error(&self, method: &'static str, endpoint: &str, problem: String, hint: String) -> Error {
        match &self.route {
            Route::Direct(link) => link.error(method, endpoint, problem, hint),
            Route::Carried(c) => Error::Server {
                service: "MDM server",
                method: "PUT",
                endpoint: format!(
                    "{} (DeclarativeManagement {})",
                    c.label(),
                    endpoint.trim_start_matches('/')
                ),
                problem,
                hint,
            },
        }
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
        match &self.route {
            Route::Direct(link) => link.exchange(&Exchange {
                method,
                endpoint: endpoint.to_owned(),
                headers: vec![(ENROLLMENT_HEADER, enrollment.to_owned())],
                body: body.map(|b| (b.to_vec(), "application/json")),
                limit,
            }),
            Route::Carried(c) => c.carry(endpoint.trim_start_matches('/'), body, limit),
        }
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
        assert!(
            Server::new(
                "https://x",
                Duration::from_secs(1),
                1,
                &crate::http::Tls::default()
            )
            .is_ok()
        );
        assert!(
            Server::new(
                "ftp://x",
                Duration::from_secs(1),
                1,
                &crate::http::Tls::default()
            )
            .is_err()
        );
        assert_eq!(
            Server::new(
                "http://127.0.0.1:9002/",
                Duration::from_secs(1),
                1,
                &crate::http::Tls::default()
            )
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
