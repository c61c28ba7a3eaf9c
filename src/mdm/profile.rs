//! Enrollment profiles as MDM servers hand them out: a configuration profile (an XML property
//! list, or one signed as CMS `SignedData`) whose `com.apple.mdm` payload names the server and
//! whose `com.apple.security.scep` or `com.apple.security.pkcs12` payload gives the identity
//! (`apple/device-management` `mdm/profiles/*.yaml`). Certificate payloads
//! (`com.apple.security.root`, `.pem`, `.pkcs1`) are trust anchors for the server's TLS.
//!
//! The profile is untrusted input: read through the one bounded plist reader, every text
//! clipped in messages, and a signed profile's signature checked against its content (whether
//! to trust its signer is the admin's call; `ProfileList` reports who signed it).
//!
//! A profile file shared by a fleet may name the device in its SCEP `Subject` and `Challenge`
//! with `%UDID%`, `%SerialNumber%` and `%DeviceName%`, which bsi fills in per device, as an MDM
//! server fills them in before it hands a profile to one device.

pub(crate) use crate::device::enrollment::PayloadSummary;
use plist::{Dictionary, Value};

use super::cms;
use super::pki;
use crate::plist_xml;
use crate::untrusted::clip;

/// The largest profile bsi reads.
pub(crate) const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// What is wrong with a profile.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ProfileError(pub String);

/// The `com.apple.mdm` payload.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct MdmPayload {
    /// `ServerURL`: where the device polls for commands.
    pub server_url: String,
    /// `CheckInURL`: where check-ins go (`ServerURL` when absent).
    pub checkin_url: String,
    /// `Topic`: the push topic the device names in its check-ins.
    pub topic: String,
    /// `IdentityCertificateUUID`: the payload that gives the identity.
    pub identity_uuid: String,
    /// `SignMessage`: sign each message (`Mdm-Signature`); else the identity is the TLS
    /// client certificate.
    pub sign_message: bool,
    /// `AccessRights`: what the server may ask (Apple's bit mask).
    pub access_rights: u64,
    /// `CheckOutWhenRemoved`.
    pub check_out_when_removed: bool,
    /// `ServerCapabilities`.
    pub server_capabilities: Vec<String>,
}

/// How the device gets its identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IdentitySource {
    /// `com.apple.security.scep`.
    Scep(ScepPayload),
    /// `com.apple.security.pkcs12`: the identity itself, encrypted with `Password`.
    Pkcs12 {
        /// The PKCS #12 bytes.
        data: Vec<u8>,
        /// `Password`.
        password: Option<String>,
    },
}

/// The `com.apple.security.scep` payload's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScepPayload {
    /// `URL`.
    pub url: String,
    /// `Name`: the CA identifier sent with `GetCACert`.
    pub name: Option<String>,
    /// `Subject`, as RFC 4514 text (most specific first).
    pub subject: String,
    /// `Challenge`.
    pub challenge: Option<String>,
    /// `Keysize` (default 1024).
    pub key_size: usize,
    /// `CAFingerprint`: the CA certificate's SHA-256 or SHA-1 digest.
    pub ca_fingerprint: Option<Vec<u8>>,
}

/// A read enrollment profile.
#[derive(Clone, Debug)]
pub(crate) struct Profile {
    /// The top level, as `ProfileList` reports it.
    pub top: PayloadSummary,
    /// `PayloadOrganization`.
    pub organization: Option<String>,
    /// `PayloadRemovalDisallowed`.
    pub removal_disallowed: bool,
    /// Its payloads.
    pub payloads: Vec<PayloadSummary>,
    /// The MDM payload.
    pub mdm: MdmPayload,
    /// Where the identity comes from.
    pub identity: IdentitySource,
    /// Certificates the profile installs (DER): trust anchors for the server's TLS.
    pub anchors: Vec<Vec<u8>>,
    /// The signer's subject, for a signed profile.
    pub signer: Option<String>,
}

fn bad(message: impl Into<String>) -> ProfileError {
    ProfileError(message.into())
}

fn text<'a>(d: &'a Dictionary, key: &str) -> Option<&'a str> {
    d.get(key).and_then(Value::as_string)
}

fn need<'a>(d: &'a Dictionary, key: &str, within: &str) -> Result<&'a str, ProfileError> {
    match d.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(bad(format!("{within}: `{key}` is empty"))),
        Some(_) => Err(bad(format!("{within}: `{key}` is not a string"))),
        None => Err(bad(format!("{within}: `{key}` is missing"))),
    }
}

fn flag(d: &Dictionary, key: &str, within: &str) -> Result<bool, ProfileError> {
    match d.get(key) {
        None => Ok(false),
        Some(Value::Boolean(b)) => Ok(*b),
        Some(_) => Err(bad(format!("{within}: `{key}` is not a boolean"))),
    }
}

fn integer(d: &Dictionary, key: &str, within: &str) -> Result<Option<i64>, ProfileError> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Integer(i)) => i
            .as_signed()
            .map(Some)
            .ok_or_else(|| bad(format!("{within}: `{key}` is out of range"))),
        Some(_) => Err(bad(format!("{within}: `{key}` is not an integer"))),
    }
}

fn summary(d: &Dictionary, within: &str) -> Result<PayloadSummary, ProfileError> {
    Ok(PayloadSummary {
        payload_type: need(d, "PayloadType", within)?.to_owned(),
        identifier: need(d, "PayloadIdentifier", within)?.to_owned(),
        uuid: need(d, "PayloadUUID", within)?.to_owned(),
        version: integer(d, "PayloadVersion", within)?.unwrap_or(1),
        display_name: text(d, "PayloadDisplayName").map(str::to_owned),
    })
}

fn http_url(url: &str, what: &str) -> Result<String, ProfileError> {
    if (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(char::is_whitespace)
    {
        Ok(url.to_owned())
    } else {
        Err(bad(format!(
            "{what} `{}` is not an http:// or https:// URL",
            clip(url)
        )))
    }
}

fn mdm_payload(d: &Dictionary) -> Result<MdmPayload, ProfileError> {
    let within = "the com.apple.mdm payload";
    let server_url = http_url(need(d, "ServerURL", within)?, "its ServerURL")?;
    let checkin_url = match text(d, "CheckInURL") {
        Some(u) => http_url(u, "its CheckInURL")?,
        None => server_url.clone(),
    };
    let access_rights = integer(d, "AccessRights", within)?.unwrap_or(8191);
    let capabilities = match d.get("ServerCapabilities") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_string)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            return Err(bad(format!(
                "{within}: `ServerCapabilities` is not an array"
            )));
        }
    };
    Ok(MdmPayload {
        server_url,
        checkin_url,
        topic: need(d, "Topic", within)?.to_owned(),
        identity_uuid: need(d, "IdentityCertificateUUID", within)?.to_owned(),
        sign_message: flag(d, "SignMessage", within)?,
        access_rights: u64::try_from(access_rights)
            .map_err(|_| bad(format!("{within}: `AccessRights` is negative")))?,
        check_out_when_removed: flag(d, "CheckOutWhenRemoved", within)?,
        server_capabilities: capabilities,
    })
}

/// RFC 4514 text of one attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == value.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// SCEP's `Subject` (`[[["O","Example"]],[["CN","device"]]]`, least specific first) as RFC 4514
/// text (most specific first).
fn subject(value: Option<&Value>) -> Result<String, ProfileError> {
    let within = "the SCEP payload's Subject";
    let Some(value) = value else {
        return Ok(String::new());
    };
    let Some(rdns) = value.as_array() else {
        return Err(bad(format!("{within} is not an array")));
    };
    let mut parts = Vec::new();
    for rdn in rdns {
        let pairs = rdn
            .as_array()
            .ok_or_else(|| bad(format!("{within} holds something that is not an array")))?;
        let mut rdn_text = Vec::new();
        for pair in pairs {
            match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(kind), Value::String(v)]) => {
                    if kind.is_empty()
                        || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
                    {
                        return Err(bad(format!(
                            "{within}: `{}` is not an attribute type",
                            clip(kind)
                        )));
                    }
                    rdn_text.push(format!("{kind}={}", escape(v)));
                }
                _ => return Err(bad(format!("{within}: a pair is not [type, value]"))),
            }
        }
        parts.push(rdn_text.join("+"));
    }
    parts.reverse();
    Ok(parts.join(","))
}

fn scep_payload(d: &Dictionary) -> Result<ScepPayload, ProfileError> {
    let within = "the com.apple.security.scep payload";
    let Some(Value::Dictionary(c)) = d.get("PayloadContent") else {
        return Err(bad(format!(
            "{within}: `PayloadContent` is missing or not a dictionary"
        )));
    };
    let key_size = integer(c, "Keysize", within)?.unwrap_or(1024);
    let key_size = match key_size {
        1024 | 2048 | 4096 => usize::try_from(key_size).unwrap_or(1024),
        other => {
            return Err(bad(format!(
                "{within}: `Keysize` is {other}; Apple's devices take 1024, 2048 or 4096"
            )));
        }
    };
    if let Some(kind) = text(c, "Key Type")
        && kind != "RSA"
    {
        return Err(bad(format!(
            "{within}: `Key Type` is `{}`; SCEP keys are RSA",
            clip(kind)
        )));
    }
    let ca_fingerprint = match c.get("CAFingerprint") {
        None => None,
        Some(Value::Data(b)) => Some(b.clone()),
        Some(_) => return Err(bad(format!("{within}: `CAFingerprint` is not data"))),
    };
    Ok(ScepPayload {
        url: http_url(need(c, "URL", within)?, "its URL")?,
        name: text(c, "Name").map(str::to_owned),
        subject: subject(c.get("Subject"))?,
        challenge: text(c, "Challenge").map(str::to_owned),
        key_size,
        ca_fingerprint,
    })
}

/// The content of a profile: its bytes when XML, the signed content when CMS, and the signer.
fn unwrap_signed(bytes: &[u8]) -> Result<(Vec<u8>, Option<String>), ProfileError> {
    if bytes.first() != Some(&0x30) {
        return Ok((bytes.to_vec(), None));
    }
    let cms = cms::read_signed(bytes).map_err(|e| bad(format!("a signed profile: {e}")))?;
    let content = cms::content(&cms).ok_or_else(|| bad("a signed profile without its content"))?;
    let signer = cms::verify_embedded(&cms).map_err(|e| {
        bad(format!(
            "a signed profile whose signature does not hold: {e}"
        ))
    })?;
    Ok((
        content,
        Some(pki::name_of(signer.tbs_certificate().subject())),
    ))
}

impl Profile {
    /// Reads an enrollment profile.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, ProfileError> {
        let (content, signer) = unwrap_signed(bytes)?;
        let top: Dictionary = plist_xml::read(&content, plist_xml::SMALL)
            .map_err(|e| bad(format!("not a configuration profile: {e}")))?;
        let within = "the profile";
        if text(&top, "PayloadType") != Some("Configuration") {
            return Err(bad(
                "not a configuration profile: its PayloadType is not `Configuration`",
            ));
        }
        let summary_top = summary(&top, within)?;
        let Some(Value::Array(content)) = top.get("PayloadContent") else {
            return Err(bad("the profile has no PayloadContent array"));
        };
        let mut payloads = Vec::new();
        let mut mdm = None;
        let mut identities = Vec::new();
        let mut anchors = Vec::new();
        for p in content {
            let Some(d) = p.as_dictionary() else {
                return Err(bad(
                    "the profile's PayloadContent holds something that is not a payload",
                ));
            };
            let s = summary(d, "a payload")?;
            match s.payload_type.as_str() {
                "com.apple.mdm" => {
                    if mdm.is_some() {
                        return Err(bad("the profile has two com.apple.mdm payloads"));
                    }
                    mdm = Some(mdm_payload(d)?);
                }
                "com.apple.security.scep" => {
                    identities.push((s.uuid.clone(), IdentitySource::Scep(scep_payload(d)?)));
                }
                "com.apple.security.pkcs12" => {
                    let Some(Value::Data(data)) = d.get("PayloadContent") else {
                        return Err(bad("the com.apple.security.pkcs12 payload has no data"));
                    };
                    identities.push((
                        s.uuid.clone(),
                        IdentitySource::Pkcs12 {
                            data: data.clone(),
                            password: text(d, "Password").map(str::to_owned),
                        },
                    ));
                }
                "com.apple.security.root"
                | "com.apple.security.pem"
                | "com.apple.security.pkcs1" => {
                    if let Some(Value::Data(der)) = d.get("PayloadContent") {
                        anchors.push(pem_or_der(der));
                    }
                }
                _ => {}
            }
            payloads.push(s);
        }
        let mdm = mdm.ok_or_else(|| bad("the profile has no com.apple.mdm payload"))?;
        let identity = identities
            .into_iter()
            .find(|(uuid, _)| *uuid == mdm.identity_uuid)
            .map(|(_, i)| i)
            .ok_or_else(|| {
                bad(format!(
                    "the com.apple.mdm payload's IdentityCertificateUUID `{}` names no SCEP or PKCS #12 payload of the profile",
                    clip(&mdm.identity_uuid)
                ))
            })?;
        Ok(Profile {
            top: summary_top,
            organization: text(&top, "PayloadOrganization").map(str::to_owned),
            removal_disallowed: flag(&top, "PayloadRemovalDisallowed", within)?,
            payloads,
            mdm,
            identity,
            anchors,
            signer,
        })
    }
}

/// A certificate payload's bytes as DER (they may be PEM text).
fn pem_or_der(bytes: &[u8]) -> Vec<u8> {
    use der::DecodePem as _;
    match x509_cert::Certificate::from_pem(bytes) {
        Ok(c) => der::Encode::to_der(&c).unwrap_or_else(|_| bytes.to_vec()),
        Err(_) => bytes.to_vec(),
    }
}

/// Fills in `%UDID%`, `%SerialNumber%` and `%DeviceName%` (see the module's text).
#[must_use]
pub(crate) fn fill_in(text: &str, udid: &str, serial: &str, name: &str) -> String {
    text.replace("%UDID%", udid)
        .replace("%SerialNumber%", serial)
        .replace("%DeviceName%", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn example(extra: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>com.example.enroll</string>
<key>PayloadUUID</key><string>TOP-UUID</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadDisplayName</key><string>Example MDM</string>
<key>PayloadContent</key><array>
<dict><key>PayloadType</key><string>com.apple.security.scep</string>
<key>PayloadIdentifier</key><string>com.example.scep</string><key>PayloadUUID</key><string>SCEP-UUID</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadContent</key><dict><key>URL</key><string>http://127.0.0.1:8080/scep</string>
<key>Challenge</key><string>secret</string><key>Keysize</key><integer>2048</integer>
<key>Subject</key><array><array><array><string>O</string><string>Example, Inc.</string></array></array><array><array><string>CN</string><string>%UDID%</string></array></array></array>
</dict></dict>
<dict><key>PayloadType</key><string>com.apple.mdm</string>
<key>PayloadIdentifier</key><string>com.example.mdm</string><key>PayloadUUID</key><string>MDM-UUID</string>
<key>PayloadVersion</key><integer>1</integer>
<key>ServerURL</key><string>http://127.0.0.1:9000/mdm</string>
<key>Topic</key><string>com.apple.mgmt.External.example</string>
<key>IdentityCertificateUUID</key><string>SCEP-UUID</string>
<key>SignMessage</key><true/>{extra}
</dict></array></dict></plist>"#
        )
    }

    #[test]
    fn an_enrollment_profile_reads_as_apple_describes_it() {
        let p = Profile::parse(example("").as_bytes()).unwrap();
        assert_eq!(p.mdm.checkin_url, "http://127.0.0.1:9000/mdm");
        assert!(p.mdm.sign_message);
        assert_eq!(p.mdm.access_rights, 8191);
        let IdentitySource::Scep(s) = &p.identity else {
            panic!("scep")
        };
        assert_eq!(s.subject, r"CN=%UDID%,O=Example\, Inc.");
        assert_eq!((s.key_size, s.challenge.as_deref()), (2048, Some("secret")));
        assert_eq!(p.payloads.len(), 2);
        assert_eq!(
            fill_in(&s.subject, "U-1", "S", "N"),
            r"CN=U-1,O=Example\, Inc."
        );
    }

    #[test]
    fn a_signed_profile_is_read_when_its_signature_holds() {
        let key = pki::Key::generate_rsa(1024).unwrap();
        let cert = pki::self_signed(&pki::parse_name("CN=Example Signer").unwrap(), &key).unwrap();
        let author = pki::Identity::new(cert, key);
        let xml = example("").into_bytes();
        let signed = author
            .signed_data(&pki::data_content(xml.clone()).unwrap(), None, Vec::new())
            .unwrap();
        let p = Profile::parse(&signed).unwrap();
        assert_eq!(p.signer.as_deref(), Some("CN=Example Signer"));
        // One byte of the content changed: refused.
        let at = signed.windows(8).position(|w| w == b"Example ").unwrap();
        let mut tampered = signed.clone();
        tampered[at] = b'e';
        let e = Profile::parse(&tampered).unwrap_err();
        assert!(e.0.contains("does not hold"), "{e}");
    }

    #[test]
    fn what_is_not_an_enrollment_profile_is_refused_with_why() {
        for (bytes, why) in [
            (b"bplist00...".to_vec(), "binary property list"),
            (
                b"<plist version=\"1.0\"><dict/></plist>".to_vec(),
                "not `Configuration`",
            ),
            (
                example("")
                    .replace("<key>Topic</key>", "<key>NotTopic</key>")
                    .into_bytes(),
                "`Topic` is missing",
            ),
            (
                example("")
                    .replace(
                        "SCEP-UUID</string>\n<key>SignMessage",
                        "OTHER</string>\n<key>SignMessage",
                    )
                    .into_bytes(),
                "names no SCEP",
            ),
            (
                example("")
                    .replace("<integer>2048</integer>", "<integer>512</integer>")
                    .into_bytes(),
                "Keysize",
            ),
            (vec![0x30, 0x03, 0x02, 0x01, 0x00], "a signed profile"),
        ] {
            let e = Profile::parse(&bytes).unwrap_err();
            assert!(e.0.contains(why), "{why}: {e}");
        }
    }
}
