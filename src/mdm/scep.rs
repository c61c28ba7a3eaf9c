//! A SCEP client (RFC 8894), as an Apple device runs one for a `com.apple.security.scep`
//! payload: `GetCACaps`, `GetCACert` (checked against `CAFingerprint` when the payload has
//! one), then `PKCSReq`: a new RSA key of the payload's `Keysize`, a certificate request with
//! its `Challenge`, enveloped to the CA and signed with a temporary self-signed certificate for
//! the same key; the CA's `CertRep`, signed by the CA, is checked (status, nonce) and its
//! envelope opened with the key to find the issued certificate.
//!
//! Every answer is bounded (64 KiB for the capabilities and CA certificates, 1 MiB for a
//! `CertRep`) and read as untrusted input.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, PrintableStringRef};
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use super::cms;
use super::pki::{self, Identity, Key};
use super::profile::ScepPayload;
use crate::http::{Exchange, Link, Tls};
use crate::untrusted::clip;
use crate::{Error, Result};

const MESSAGE_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.2");
const PKI_STATUS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.3");
const FAIL_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.4");
const SENDER_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.5");
const RECIPIENT_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.6");
const TRANSACTION_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.7");

/// Largest `GetCACaps` or `GetCACert` answer bsi reads.
const MAX_SMALL: u64 = 64 << 10;
/// Largest `CertRep` bsi reads.
const MAX_CERT_REP: u64 = 1 << 20;

/// What to ask the CA for.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// The payload.
    pub payload: &'a ScepPayload,
    /// The subject, with the profile's variables filled in.
    pub subject: String,
    /// The challenge, filled in likewise.
    pub challenge: Option<String>,
    /// TLS for an `https://` SCEP URL.
    pub tls: &'a Tls,
    /// Each request's bound.
    pub timeout: Duration,
    /// When the whole enrollment must be done, and its deadline in all.
    pub deadline: (std::time::Instant, Duration),
}

fn query(name: Option<&str>, operation: &str) -> String {
    match name {
        Some(n) => format!(
            "?operation={operation}&message={}",
            crate::ddm::client::segment(n)
        ),
        None => format!("?operation={operation}"),
    }
}

fn get(link: &Link, endpoint: String) -> Result<Vec<u8>> {
    link.exchange(&Exchange {
        method: "GET",
        endpoint,
        headers: Vec::new(),
        body: None,
        limit: MAX_SMALL,
    })
}

/// The CA's certificates from a `GetCACert` answer: one DER certificate, or a degenerate
/// `SignedData` holding the CA and an RA.
fn ca_certificates(bytes: &[u8]) -> std::result::Result<Vec<Certificate>, String> {
    if let Ok(cert) = Certificate::from_der(bytes) {
        return Ok(vec![cert]);
    }
    let signed = cms::read_signed(bytes).map_err(|e| e.0)?;
    let certs = cms::certificates(&signed);
    if certs.is_empty() {
        return Err("it holds no certificate".to_owned());
    }
    Ok(certs)
}

/// The certificate to encrypt to: an RA's (not self-issued) when the CA sent one, else the CA's.
fn recipient(certs: &[Certificate]) -> &Certificate {
    certs
        .iter()
        .find(|c| c.tbs_certificate().subject() != c.tbs_certificate().issuer())
        .unwrap_or(&certs[0])
}

fn check_fingerprint(certs: &[Certificate], wanted: &[u8]) -> std::result::Result<(), String> {
    let matches = certs.iter().any(|c| {
        let der = c.to_der().unwrap_or_default();
        match wanted.len() {
            32 => Sha256::digest(&der).as_slice() == wanted,
            20 => sha1::Sha1::digest(&der).as_slice() == wanted,
            _ => false,
        }
    });
    if matches {
        Ok(())
    } else if ![20, 32].contains(&wanted.len()) {
        Err(format!(
            "the profile's CAFingerprint is {} bytes; bsi checks SHA-256 (32) and SHA-1 (20) fingerprints",
            wanted.len()
        ))
    } else {
        Err("no certificate the server sent matches the profile's CAFingerprint".to_owned())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

/// A failure to make the request that no input causes: a bug in bsi.
fn internal(e: impl std::fmt::Display) -> Error {
    Error::identity(
        format!("making the certificate request: {e}"),
        "report this as a bug in bsi",
    )
}

fn printable(text: &str) -> Result<der::Any> {
    let value = PrintableStringRef::new(text).map_err(internal)?;
    pki::any(&value).map_err(internal)
}

/// The `PKCSReq` message: the enveloped request signed with a temporary self-signed
/// certificate for `key`, with its message type, transaction ID and a new nonce. Returns the
/// message, the nonce and the signer (which holds the key the issued certificate is for).
fn pki_request(
    subject: &x509_cert::name::Name,
    key: Key,
    envelope: Vec<u8>,
) -> Result<(Vec<u8>, [u8; 16], Identity)> {
    let temporary = pki::self_signed(subject, &key).map_err(internal)?;
    let public = key.public().map_err(internal)?.to_der().map_err(internal)?;
    let transaction = hex(&Sha256::digest(&public));
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(internal)?;
    let attributes = vec![
        pki::attribute(MESSAGE_TYPE, printable("19")?),
        pki::attribute(TRANSACTION_ID, printable(&transaction)?),
        pki::attribute(
            SENDER_NONCE,
            pki::any(&OctetString::new(nonce.to_vec()).map_err(internal)?).map_err(internal)?,
        ),
    ];
    let signer = Identity::new(temporary, key);
    let message = signer
        .signed_data(
            &pki::data_content(envelope).map_err(internal)?,
            None,
            attributes,
        )
        .map_err(internal)?;
    Ok((message, nonce, signer))
}

/// Gets an identity from the CA.
pub(crate) fn enroll(req: &Request<'_>) -> Result<Identity> {
    let p = req.payload;
    let link = Link::new("SCEP server", &p.url, req.timeout, 1, req.tls)?
        .by(req.deadline.0, req.deadline.1);
    let caps_at = query(p.name.as_deref(), "GetCACaps");
    let caps = String::from_utf8_lossy(&get(&link, caps_at)?).into_owned();
    let post = caps.lines().any(|l| l.trim() == "POSTPKIOperation");
    let failed = |endpoint: &str, problem: String, hint: &str| {
        let method = if endpoint.contains("PKIOperation") && post {
            "POST"
        } else {
            "GET"
        };
        link.error(method, endpoint, problem, hint.to_owned())
    };
    let cert_at = query(p.name.as_deref(), "GetCACert");
    let certs = ca_certificates(&get(&link, cert_at.clone())?).map_err(|why| {
        failed(
            &cert_at,
            format!("the CA certificate does not read: {why}"),
            "check the SCEP URL: it is the server's /scep endpoint",
        )
    })?;
    if let Some(wanted) = &p.ca_fingerprint {
        check_fingerprint(&certs, wanted).map_err(|why| {
            failed(
                &cert_at,
                why,
                "the server is not the CA the profile names; check the profile and the SCEP URL",
            )
        })?;
    }
    let to = recipient(&certs);

    let key = Key::generate_rsa(p.key_size).map_err(internal)?;
    let subject = pki::parse_name(&req.subject).map_err(|e| {
        Error::usage(
            format!("the profile's SCEP Subject does not read: {e}"),
            "fix the profile's Subject (an array of [type, value] pairs)",
        )
    })?;
    let csr = pki::request(&subject, &key, req.challenge.as_deref()).map_err(internal)?;
    let envelope = cms::envelope(&csr, to).map_err(|e| {
        failed(
            &cert_at,
            e.0,
            "the CA's certificate must hold an RSA key to encrypt the request to",
        )
    })?;
    let (message, nonce, signer) = pki_request(&subject, key, envelope)?;
    let op_at = query(None, "PKIOperation");
    let answer = if post {
        link.exchange(&Exchange {
            method: "POST",
            endpoint: op_at.clone(),
            headers: Vec::new(),
            body: Some((message, "application/x-pki-message")),
            limit: MAX_CERT_REP,
        })?
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&message);
        link.exchange(&Exchange {
            method: "GET",
            endpoint: format!("{op_at}&message={}", crate::ddm::client::segment(&b64)),
            headers: Vec::new(),
            body: None,
            limit: MAX_CERT_REP,
        })?
    };
    let Identity { key, .. } = signer;
    read_cert_rep(&answer, &certs, &nonce, &key)
        .map_err(|(why, hint)| failed(&op_at, why, &hint))
        .map(|cert| Identity::new(cert, key))
}

/// The certificate a `CertRep` issues, after checking who signed it, its status and nonce.
pub(crate) fn read_cert_rep(
    answer: &[u8],
    ca: &[Certificate],
    nonce: &[u8],
    key: &Key,
) -> std::result::Result<Certificate, (String, String)> {
    let retry = "check the SCEP server's log, then enroll again".to_owned();
    let cms = cms::read_signed(answer)
        .map_err(|e| (format!("the answer is not a CertRep: {e}"), retry.clone()))?;
    let signer = cms::verify_embedded(&cms).map_err(|e| {
        (
            format!("the CertRep's signature does not hold: {e}"),
            retry.clone(),
        )
    })?;
    if !ca.iter().any(|c| c == &signer) {
        return Err((
            "the CertRep is not signed by the CA the server named in GetCACert".to_owned(),
            retry,
        ));
    }
    let status =
        cms::signed_attribute(&cms, PKI_STATUS).map(|v| String::from_utf8_lossy(&v).into_owned());
    match status.as_deref() {
        Some("0") => {}
        Some("2") => {
            let info = cms::signed_attribute(&cms, FAIL_INFO)
                .map(|v| String::from_utf8_lossy(&v).into_owned());
            let why = match info.as_deref() {
                Some("0") => "badAlg: the CA does not take the algorithm",
                Some("1") => "badMessageCheck: the CA could not check the request's signature",
                Some("2") => {
                    "badRequest: the CA refused the request (a wrong challenge, or a certificate it already issued for this subject)"
                }
                Some("3") => "badTime: the CA finds the request's time wrong",
                Some("4") => "badCertId: the CA does not know the certificate named",
                _ => "no reason given",
            };
            return Err((
                format!("the CA refused the certificate request (FAILURE, {why})"),
                "check the profile's Challenge, and give each device its own Subject (%UDID% in the profile's Subject), or let the CA issue again for a subject (scepserver -allowrenew 0)".to_owned(),
            ));
        }
        Some("3") => {
            return Err((
                "the CA holds the request for approval (PENDING); bsi does not poll for it"
                    .to_owned(),
                "approve the request at the CA or use a CA that issues at once, then enroll again"
                    .to_owned(),
            ));
        }
        other => {
            return Err((
                format!(
                    "the CertRep has the status {:?}, not one of SCEP's",
                    other.map(clip)
                ),
                retry,
            ));
        }
    }
    if cms::signed_attribute(&cms, RECIPIENT_NONCE).as_deref() != Some(nonce) {
        return Err((
            "the CertRep does not answer this request (its recipient nonce differs)".to_owned(),
            retry,
        ));
    }
    let inner =
        cms::content(&cms).ok_or_else(|| ("the CertRep is empty".to_owned(), retry.clone()))?;
    let plain = cms::open_envelope(&inner, key)
        .map_err(|e| (format!("the CertRep's envelope: {e}"), retry.clone()))?;
    let issued = cms::read_signed(&plain)
        .map_err(|e| (format!("the CertRep's certificates: {e}"), retry.clone()))?;
    let ours = key.public().ok().and_then(|p| p.to_der().ok());
    cms::certificates(&issued)
        .into_iter()
        .find(|c| c.tbs_certificate().subject_public_key_info().to_der().ok() == ours)
        .ok_or_else(|| {
            (
                "the CertRep holds no certificate for this device's key".to_owned(),
                retry.clone(),
            )
        })
        .and_then(|c| {
            pki::check_validity(&c, SystemTime::now())
                .map(|()| c)
                .map_err(|why| {
                    (
                        format!("the issued certificate is not valid now: {why}"),
                        "check the clocks of the CA and this machine".to_owned(),
                    )
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_and_recipients() {
        let key = Key::generate_rsa(1024).unwrap();
        let ca = pki::self_signed(&pki::parse_name("CN=CA").unwrap(), &key).unwrap();
        let der = ca.to_der().unwrap();
        let certs = vec![ca];
        assert!(check_fingerprint(&certs, &Sha256::digest(&der)).is_ok());
        assert!(check_fingerprint(&certs, &sha1::Sha1::digest(&der)).is_ok());
        assert!(check_fingerprint(&certs, &[0u8; 32]).is_err());
        assert!(
            check_fingerprint(&certs, &[0u8; 16])
                .unwrap_err()
                .contains("16 bytes")
        );
        assert_eq!(recipient(&certs), &certs[0]);
        assert_eq!(ca_certificates(&der).unwrap().len(), 1);
        assert!(ca_certificates(b"junk").is_err());
        assert_eq!(
            query(Some("a b"), "GetCACert"),
            "?operation=GetCACert&message=a%20b"
        );
    }
}
