//! The device's channel to its MDM server: check-in messages (`Authenticate`, `TokenUpdate`,
//! `CheckOut`, `DeclarativeManagement`) to the check-in URL, and command polls and results to
//! the server URL. Every body is an XML property list; each is signed in an `Mdm-Signature`
//! header when the profile says `SignMessage`, else the identity travels as the TLS client
//! certificate (an `https://` server).
//!
//! The channel also carries declarative management for an enrolled device: each DDM request is
//! a `DeclarativeManagement` check-in whose `Endpoint` names it (the [`Carrier`] `ddm` uses).

use std::sync::Arc;
use std::time::Duration;

use plist::{Dictionary, Value};

use super::pki::Identity;
use crate::ddm::client::Carrier;
use crate::http::{Exchange, Failure, Link, Tls};
use crate::{Error, Result};

/// Content type of check-in messages.
const CHECKIN: &str = "application/x-apple-aspen-mdm-checkin";
/// Content type of command polls and results.
const CONNECT: &str = "application/x-apple-aspen-mdm";
/// The smallest RSA key TLS client authentication takes (rustls refuses smaller ones).
pub(crate) const MIN_TLS_RSA_BITS: usize = 2048;
/// Largest answer bsi reads from the MDM server (a command, or a DDM document through it).
pub(crate) const MAX_ANSWER: u64 = 4 << 20;

/// Where the channel goes and who speaks on it.
#[derive(Clone, Debug)]
pub(crate) struct Endpoints {
    /// `ServerURL`.
    pub server_url: String,
    /// `CheckInURL`.
    pub checkin_url: String,
    /// Sign messages (`Mdm-Signature`).
    pub sign: bool,
    /// The device's UDID.
    pub udid: String,
}

/// The channel.
#[derive(Clone, Debug)]
pub(crate) struct Channel {
    server: Link,
    checkin: Link,
    identity: Arc<Identity>,
    ends: Endpoints,
}

fn mdm_status(status: u16, reason: &str) -> Failure {
    let problem = format!("HTTP {status} {reason}");
    match status {
        429 | 500..=599 => Failure::Answered(problem),
        400 => Failure::Final(
            problem,
            "the server could not read or authenticate the message (NanoMDM answers 400 when the Mdm-Signature does not verify); check that its -ca is the CA that issued the device's identity".to_owned(),
        ),
        401 | 403 => Failure::Final(
            problem,
            "the server does not accept the device's identity (an unknown or expired certificate, or another device's); enroll again with `bsi mdm enroll`".to_owned(),
        ),
        404 => Failure::Final(
            problem,
            "check the profile's ServerURL and CheckInURL: they are where the server takes MDM requests (NanoMDM: /mdm)".to_owned(),
        ),
        _ => Failure::Final(problem, "check the server's log".to_owned()),
    }
}

/// An XML property list of `dict`.
pub(crate) fn to_xml(dict: Dictionary) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    Value::Dictionary(dict)
        .to_writer_xml(&mut out)
        .map_err(|e| {
            Error::identity(
                format!("writing a message: {e}"),
                "report this as a bug in bsi",
            )
        })?;
    Ok(out)
}

impl Channel {
    /// The channel for `ends`, speaking as `identity`, trusting `roots` for TLS.
    pub(crate) fn new(
        ends: Endpoints,
        identity: Arc<Identity>,
        roots: Vec<Vec<u8>>,
        timeout: Duration,
        connections: usize,
    ) -> Result<Self> {
        let client = if ends.sign {
            None
        } else {
            if let Some(bits) = identity.key.rsa_bits().filter(|b| *b < MIN_TLS_RSA_BITS) {
                return Err(Error::identity(
                    format!(
                        "the identity's RSA key has {bits} bits; as a TLS client certificate (SignMessage false) it needs {MIN_TLS_RSA_BITS} or more"
                    ),
                    "give the identity a 2048-bit key (the SCEP payload's Keysize), then enroll again",
                ));
            }
            let cert = identity
                .cert_der()
                .map_err(|e| Error::identity(e.0, "enroll again with `bsi mdm enroll`"))?;
            let key = identity
                .key
                .to_pkcs8_pem()
                .map_err(|e| Error::identity(e.0, "enroll again with `bsi mdm enroll`"))?;
            Some((cert, key))
        };
        let tls = Tls { roots, client };
        let server = Link::new("MDM server", &ends.server_url, timeout, connections, &tls)?
            .with_hints(mdm_status);
        let checkin = Link::new("MDM server", &ends.checkin_url, timeout, connections, &tls)?
            .with_hints(mdm_status);
        Ok(Self {
            server,
            checkin,
            identity,
            ends,
        })
    }

    /// This channel, every request from now on done within `deadline` in all.
    #[must_use]
    pub(crate) fn until(&self, deadline: Duration) -> Self {
        self.by(std::time::Instant::now() + deadline, deadline)
    }

    /// This channel, every request done by `end`, a deadline of `total` in all.
    #[must_use]
    pub(crate) fn by(&self, end: std::time::Instant, total: Duration) -> Self {
        Self {
            server: self.server.by(end, total),
            checkin: self.checkin.by(end, total),
            ..self.clone()
        }
    }

    fn send(&self, link: &Link, kind: &'static str, body: Vec<u8>, limit: u64) -> Result<Vec<u8>> {
        let mut headers = Vec::new();
        if self.ends.sign {
            let signature = self.identity.mdm_signature(&body).map_err(|e| {
                Error::identity(
                    format!("signing the message: {e}"),
                    "enroll again with `bsi mdm enroll`",
                )
            })?;
            headers.push(("Mdm-Signature", signature));
        }
        link.exchange(&Exchange {
            method: "PUT",
            endpoint: String::new(),
            headers,
            body: Some((body, kind)),
            limit,
        })
    }

    /// Sends a check-in message (its `MessageType` and `UDID` are added); the answer's body.
    pub(crate) fn checkin(&self, message_type: &str, mut fields: Dictionary) -> Result<Vec<u8>> {
        fields.insert("MessageType".into(), message_type.into());
        fields.insert("UDID".into(), self.ends.udid.clone().into());
        self.send(&self.checkin, CHECKIN, to_xml(fields)?, MAX_ANSWER)
    }

    /// Sends a poll (`Status` `Idle`) or a command's result to the server URL (its `UDID` is
    /// added); the answer's body: the next command, or nothing.
    pub(crate) fn connect(&self, mut fields: Dictionary) -> Result<Vec<u8>> {
        fields.insert("UDID".into(), self.ends.udid.clone().into());
        self.send(&self.server, CONNECT, to_xml(fields)?, MAX_ANSWER)
    }
}

impl Carrier for Channel {
    fn carry(&self, endpoint: &str, data: Option<&[u8]>, limit: u64) -> Result<Vec<u8>> {
        let mut fields = Dictionary::new();
        fields.insert("Endpoint".into(), endpoint.into());
        if let Some(d) = data {
            fields.insert("Data".into(), Value::Data(d.to_vec()));
        }
        fields.insert("MessageType".into(), "DeclarativeManagement".into());
        fields.insert("UDID".into(), self.ends.udid.clone().into());
        self.send(
            &self.checkin,
            CHECKIN,
            to_xml(fields)?,
            limit.min(MAX_ANSWER),
        )
    }

    fn label(&self) -> &str {
        self.checkin.url()
    }

    fn until(&self, deadline: Duration) -> Arc<dyn Carrier> {
        Arc::new(Channel::until(self, deadline))
    }
}
