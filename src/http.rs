//! bsi's one HTTP client, for every server a device talks to (a DDM server, an MDM server, a
//! SCEP CA): `http://` or `https://` (rustls; the system's web roots, or the CAs the caller
//! trusts; a client certificate when the identity travels in TLS). Every answer is
//! size-limited. Connection failures, timeouts, HTTP 429 and 5xx are retried a bounded number
//! of times with backoff, within a whole-operation deadline, and a signal stops a request at
//! once; any other status, and a body over its limit, fail at once with one message naming the
//! service, the endpoint and what went wrong, and a hint.

use std::time::{Duration, Instant};

use crate::untrusted::clip;
use crate::{Error, Result};

/// Attempts for a request that failed in a way worth retrying.
const ATTEMPTS: u32 = 3;

/// How one attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth another attempt.
    Transient(String),
    /// Worth another attempt, from a server that is up: it answered with this status (429, 5xx).
    Answered(String),
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

/// What a TLS connection trusts and presents.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tls {
    /// Certificates (DER) trusted as roots; none: the web's roots.
    pub roots: Vec<Vec<u8>>,
    /// A client certificate (DER) and its key (PKCS #8 PEM).
    pub client: Option<(Vec<u8>, String)>,
}

const UNTRUSTED: &str = "TLS: the server's certificate is not trusted";

impl Failure {
    fn is_untrusted(&self) -> bool {
        matches!(self, Failure::Final(why, _) if why.starts_with(UNTRUSTED))
    }
}

/// What an HTTP status means for the service, and what to do about it.
pub(crate) type StatusHints = fn(u16, &str) -> Failure;

/// The default reading of a status: 429 and 5xx are worth another attempt.
#[must_use]
pub(crate) fn plain_status(status: u16, reason: &str) -> Failure {
    let problem = format!("HTTP {status} {reason}");
    match status {
        429 | 500..=599 => Failure::Answered(problem),
        _ => Failure::Final(problem, "check the URL and the server's log".to_owned()),
    }
}

/// A server bsi talks to: a base URL, an agent (its TLS and connection pool), and the bounds.
#[derive(Clone)]
pub(crate) struct Link {
    service: &'static str,
    base: String,
    agent: ureq::Agent,
    timeout: Duration,
    backoff: Duration,
    /// When the whole operation must be done, and how long it was given (for the message).
    deadline: Option<(Instant, Duration)>,
    hints: StatusHints,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("service", &self.service)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
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
        ureq::Error::Io(io) if io.to_string().contains("certificate") => Failure::Final(
            format!(
                "TLS: the server's certificate is not trusted ({})",
                clip(&io.to_string())
            ),
            "trust the server's CA with --ca FILE (PEM), or check the server's certificate"
                .to_owned(),
        ),
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) | ureq::Error::HostNotFound => {
            Failure::Transient(format!("cannot connect ({e})"))
        }
        ureq::Error::BodyExceedsLimit(limit) => Failure::Final(
            format!("the answer is larger than {limit} bytes"),
            "is the URL the server's device endpoint? Its answers are small documents".to_owned(),
        ),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => Failure::Final(
            format!("TLS: {}", clip(&e.to_string())),
            "trust the server's CA with --ca FILE (PEM), or check the server's certificate"
                .to_owned(),
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
    status_failure: StatusHints,
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
            Failure::Transient(why) | Failure::Answered(why) | Failure::Final(why, _) => {
                Failure::Final(
                    format!("reading the answer: {why}"),
                    "check the server's log, then try again".to_owned(),
                )
            }
        })
}

fn tls_config(tls: &Tls) -> Result<ureq::tls::TlsConfig> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let mut builder = TlsConfig::builder();
    if !tls.roots.is_empty() {
        let roots: Vec<Certificate<'static>> = tls
            .roots
            .iter()
            .map(|der| Certificate::from_der(der).to_owned())
            .collect();
        builder = builder.root_certs(RootCerts::new_with_certs(&roots));
    }
    if let Some((cert, key)) = &tls.client {
        let chain = [Certificate::from_der(cert).to_owned()];
        let key = PrivateKey::from_pem(key.as_bytes()).map_err(|e| {
            Error::usage(
                format!(
                    "the TLS client key does not read ({})",
                    clip(&e.to_string())
                ),
                "re-enroll the device (`bsi mdm enroll`)",
            )
        })?;
        builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(builder.build())
}

impl Link {
    /// `service` (e.g. "DDM server") at `url`, each request bounded by `timeout`, with room for
    /// `connections` idle connections, TLS as `tls` says.
    pub(crate) fn new(
        service: &'static str,
        url: &str,
        timeout: Duration,
        connections: usize,
        tls: &Tls,
    ) -> Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        let scheme = ["http://", "https://"]
            .into_iter()
            .find(|s| base.starts_with(s) && base.len() > s.len());
        if scheme.is_none() || base.contains(char::is_whitespace) {
            return Err(Error::usage(
                format!("{} is not an http:// or https:// URL", clip(url)),
                "give the server's URL, e.g. http://127.0.0.1:9002 or https://mdm.example.com/mdm",
            ));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections(connections.max(1))
            .max_idle_connections_per_host(connections.max(1))
            .user_agent(concat!("bsi/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls_config(tls)?)
            .build();
        Ok(Self {
            service,
            base,
            agent: ureq::Agent::new_with_config(config),
            timeout,
            backoff: Duration::from_millis(200),
            deadline: None,
            hints: plain_status,
        })
    }

    /// This link, reading statuses with `hints`.
    #[must_use]
    pub(crate) fn with_hints(mut self, hints: StatusHints) -> Self {
        self.hints = hints;
        self
    }

    /// This link, every request from now on done within `deadline` in all (a slow server
    /// dripping answers just inside the per-request timeout cannot hold the device for longer).
    #[must_use]
    pub(crate) fn until(&self, deadline: Duration) -> Self {
        self.by(Instant::now() + deadline, deadline)
    }

    /// This link, every request from now on done by `end`, a deadline of `total` in all (for
    /// an operation that spans several links).
    #[must_use]
    pub(crate) fn by(&self, end: Instant, total: Duration) -> Self {
        Self {
            deadline: Some((end, total)),
            ..self.clone()
        }
    }

    /// The base URL.
    #[must_use]
    pub(crate) fn url(&self) -> &str {
        &self.base
    }

    /// The error for `endpoint`, naming this link's service.
    pub(crate) fn error(
        &self,
        method: &'static str,
        endpoint: &str,
        problem: String,
        hint: String,
    ) -> Error {
        Error::Server {
            service: self.service,
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
                    "it did not finish within its deadline of {} s",
                    total.as_secs_f64()
                ),
                "check that the server answers promptly, then try again (--deadline SECONDS sets the bound)".to_owned(),
            ));
        }
        Ok(wanted.min(left))
    }

    /// Whether the server can be reached and its TLS certificate is trusted, before work that
    /// cannot simply be redone (a CA issues a device one identity): any HTTP answer will do,
    /// as will a TLS alert asking for a client certificate.
    pub(crate) fn probe(&self) -> Result<()> {
        let x = Exchange {
            method: "GET",
            endpoint: String::new(),
            headers: Vec::new(),
            body: None,
            limit: 0,
        };
        let mut last = String::new();
        for n in 0..ATTEMPTS {
            if n > 0 {
                crate::interrupt::sleep(self.within(self.backoff * 4u32.pow(n - 1), &x)?)?;
            }
            let timeout = self.within(self.timeout, &x)?;
            let (agent, url) = (self.agent.clone(), self.base.clone());
            let outcome = crate::interrupt::wait_for(move || {
                let e = match timed(agent.get(&url), timeout).call() {
                    Ok(_) | Err(ureq::Error::StatusCode(_)) => return Ok(()),
                    Err(e) => e,
                };
                let unreachable = match &e {
                    ureq::Error::ConnectionFailed
                    | ureq::Error::HostNotFound
                    | ureq::Error::Timeout(_) => true,
                    ureq::Error::Io(io) => matches!(
                        io.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut
                    ),
                    _ => false,
                };
                match classify(&e, timeout) {
                    f @ Failure::Final(..) if f.is_untrusted() => Err(f),
                    f if unreachable => Err(f),
                    _ => Ok(()),
                }
            })?;
            match outcome {
                Ok(()) => return Ok(()),
                Err(Failure::Transient(why) | Failure::Answered(why)) => last = why,
                Err(Failure::Final(why, hint)) => return Err(self.error("GET", "", why, hint)),
            }
        }
        Err(self.error(
            "GET",
            "",
            format!("{last} ({ATTEMPTS} attempts)"),
            format!(
                "check that the server runs at {} and answers, then try again",
                self.base
            ),
        ))
    }

    /// One exchange with retries, each attempt within the per-request timeout and the
    /// deadline, and stopped at once by SIGINT or SIGTERM; the body of a 2xx answer.
    pub(crate) fn exchange(&self, x: &Exchange) -> Result<Vec<u8>> {
        let url = format!("{}{}", self.base, x.endpoint);
        // The last attempt's failure, and whether the server answered it (with an error status).
        let (mut last, mut answered) = (String::new(), false);
        for n in 0..ATTEMPTS {
            if n > 0 {
                crate::interrupt::sleep(self.within(self.backoff * 4u32.pow(n - 1), x)?)?;
            }
            let timeout = self.within(self.timeout, x)?;
            let (agent, url, job, hints) = (self.agent.clone(), url.clone(), x.clone(), self.hints);
            let outcome =
                crate::interrupt::wait_for(move || attempt(&agent, &url, &job, timeout, hints))?;
            match outcome {
                Ok(body) => return Ok(body),
                Err(Failure::Transient(why)) => (last, answered) = (why, false),
                Err(Failure::Answered(why)) => (last, answered) = (why, true),
                Err(Failure::Final(why, hint)) => {
                    return Err(self.error(x.method, &x.endpoint, why, hint));
                }
            }
        }
        // A server that answered each time with an error status is running: its log says why.
        let hint = if answered {
            format!(
                "the server at {} answered every attempt with an error: check its log, then try again",
                self.base
            )
        } else {
            format!(
                "check that the server runs at {} and answers, then try again",
                self.base
            )
        };
        Err(self.error(
            x.method,
            &x.endpoint,
            format!("{last} ({ATTEMPTS} attempts)"),
            hint,
        ))
    }
}

/// Certificates (DER) from a PEM file's text: every `CERTIFICATE` block.
/// The certificates of a `--ca FILE` (PEM), to trust as roots.
pub(crate) fn trust_file(path: &std::path::Path) -> Result<Vec<Vec<u8>>> {
    let bytes = crate::input::read_named(path, 1 << 20, "CA certificate")?;
    pem_certificates(&String::from_utf8_lossy(&bytes)).map_err(|why| {
        Error::usage(
            format!("--ca {}: {why}", path.display()),
            "give the CA's certificate as PEM (-----BEGIN CERTIFICATE-----)",
        )
    })
}

pub(crate) fn pem_certificates(text: &str) -> std::result::Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for block in text.split("-----END CERTIFICATE-----") {
        let Some(start) = block.find("-----BEGIN CERTIFICATE-----") else {
            continue;
        };
        let pem = format!("{}-----END CERTIFICATE-----\n", &block[start..]);
        let cert = <x509_cert::Certificate as der::DecodePem>::from_pem(pem.as_bytes())
            .map_err(|e| format!("a certificate does not read ({})", clip(&e.to_string())))?;
        out.push(der::Encode::to_der(&cert).map_err(|e| e.to_string())?);
    }
    if out.is_empty() {
        return Err("no PEM certificate in it".to_owned());
    }
    Ok(out)
}
