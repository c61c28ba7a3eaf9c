//! `bsi mdm enroll` and `bsi mdm unenroll`, and the records an enrollment keeps.
//!
//! Enrolling reads the profile, gets the identity (SCEP, or `--identity`/`--key`), then sends
//! `Authenticate` and `TokenUpdate`; only when the server has taken both does the device write
//! its records, so a refused enrollment leaves the device as it was. The records, under
//! `private/var/db/bsi/mdm/`: `identity.pem` (certificate and key, mode 0600, never printed),
//! `trust.pem` (the CAs trusted for TLS) and `enrollment.json` (written last: what makes the
//! device enrolled). Unenrolling sends `CheckOut` and removes them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use plist::{Dictionary, Value};
use serde::Serialize;

use super::channel::{Channel, Endpoints};
use super::pki::{self, Identity};
use super::profile::{self, IdentitySource, Profile};
use super::scep;
pub(crate) use crate::device::enrollment::{Enrollment, IdentityNames, InstalledProfile, load};
use crate::device::layout::{MDM_DIR, MDM_ENROLLMENT, MDM_IDENTITY, MDM_TRUST};
use crate::device::records;
use crate::device::{Device, Root};
use crate::error::IoContext;
use crate::human::{Human, Text};
use crate::lifecycle::journal::Tx;
use crate::platform::Platform;
use crate::untrusted::clip;
use crate::{Error, Result};

/// How `bsi mdm enroll` is asked to run.
#[derive(Clone, Debug)]
pub(crate) struct EnrollOptions {
    /// The enrollment profile.
    pub profile: PathBuf,
    /// `--identity CERT --key KEY` instead of the profile's identity payload.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// `--ca FILE`: CAs (PEM) to trust for the servers' TLS.
    pub ca: Option<PathBuf>,
    /// Each request's bound.
    pub timeout: Duration,
    /// The whole enrollment's bound (probe, SCEP, `Authenticate`, `TokenUpdate`), so that a
    /// slow server cannot hold the device lock for longer.
    pub deadline: Duration,
    /// Read the profile and say what would happen; contact nobody, change nothing.
    pub dry_run: bool,
}

/// What `bsi mdm enroll` did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct EnrollOutcome {
    /// `ServerURL`.
    pub server_url: String,
    /// `CheckInURL`.
    pub checkin_url: String,
    /// `Topic`.
    pub topic: String,
    /// The UDID.
    pub udid: String,
    /// Messages are signed (`Mdm-Signature`), else the identity is the TLS client certificate.
    pub sign_message: bool,
    /// The identity (none with `--dry-run`).
    pub identity: Option<IdentityNames>,
    /// Where the identity comes from.
    pub identity_source: String,
    /// Nothing was sent or changed because of `--dry-run`.
    pub dry_run: bool,
}

/// What `bsi mdm unenroll` did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct UnenrollOutcome {
    /// The server the device left.
    pub server_url: String,
    /// `CheckOut` was sent and the server took it.
    pub checked_out: bool,
    /// Why `CheckOut` could not be sent, when it could not (the device left anyway).
    pub check_out_error: Option<String>,
    /// Nothing was sent or changed because of `--dry-run`.
    pub dry_run: bool,
}

/// The enrollment, or the error that says how to make one.
pub(crate) fn require(device: &Device) -> Result<Enrollment> {
    load(device)?.ok_or_else(|| {
        Error::usage(
            "the device is not enrolled in an MDM server",
            "enroll it with `bsi mdm enroll --profile FILE.mobileconfig`",
        )
    })
}

fn identity_error(e: &pki::PkiError, what: &str) -> Error {
    Error::identity(
        format!("{what}: {e}"),
        "enroll again with `bsi mdm enroll` (the records hold a copy bsi wrote)",
    )
}

/// The identity the device enrolled with, checked against the real clock.
pub(crate) fn identity(device: &Device) -> Result<Identity> {
    let bytes = device
        .root()
        .read_small(MDM_IDENTITY)
        .map_err(|e| device.root().failure("reading", MDM_IDENTITY, e))?;
    let text = String::from_utf8_lossy(&bytes);
    let identity = Identity::from_records(&text).map_err(|e| {
        identity_error(&e, "the MDM identity in the device's records does not read")
    })?;
    pki::check_validity(&identity.cert, SystemTime::now()).map_err(|why| {
        Error::identity(
            format!("the device's MDM identity certificate is not valid now: {why}"),
            "enroll again with `bsi mdm enroll` to get a new identity",
        )
    })?;
    Ok(identity)
}

/// The CAs trusted for TLS (DER).
pub(crate) fn trust(device: &Device) -> Result<Vec<Vec<u8>>> {
    match device.root().read_small_opt(MDM_TRUST) {
        Ok(None) => Ok(Vec::new()),
        Ok(Some(bytes)) => crate::http::pem_certificates(&String::from_utf8_lossy(&bytes))
            .map_err(|why| Error::damaged(format!("record {MDM_TRUST}: {why}"))),
        Err(e) => Err(device.root().failure("reading", MDM_TRUST, e)),
    }
}

/// The channel of the enrolled device.
pub(crate) fn channel(
    device: &Device,
    enrollment: &Enrollment,
    timeout: Duration,
    connections: usize,
) -> Result<Channel> {
    let identity = identity(device)?;
    Channel::new(
        Endpoints {
            server_url: enrollment.server_url.clone(),
            checkin_url: enrollment.checkin_url.clone(),
            sign: enrollment.sign_message,
            udid: enrollment.udid.clone(),
        },
        Arc::new(identity),
        trust(device)?,
        timeout,
        connections,
    )
}

fn names(identity: &Identity, source: &str) -> IdentityNames {
    let tbs = identity.cert.tbs_certificate();
    IdentityNames {
        subject: pki::name_of(tbs.subject()),
        issuer: pki::name_of(tbs.issuer()),
        not_after: crate::clock::rfc3339(pki::not_after(&identity.cert)),
        source: source.to_owned(),
    }
}

fn read_pem(path: &std::path::Path, what: &str) -> Result<String> {
    let bytes = crate::input::read_named(path, 1 << 20, what)?;
    String::from_utf8(bytes).map_err(|_| {
        Error::usage(
            format!("{} is not PEM text", path.display()),
            format!("give the {what} as PEM"),
        )
    })
}

fn bad_profile(path: &std::path::Path, why: &str) -> Error {
    Error::usage(
        format!(
            "{} is not an enrollment profile bsi can use: {why}",
            path.display()
        ),
        "give the .mobileconfig the MDM server hands out (a com.apple.mdm payload and a SCEP or PKCS #12 identity)",
    )
}

/// Gets the identity the profile (or `--identity`) says.
fn get_identity(
    device: &Device,
    profile: &Profile,
    opts: &EnrollOptions,
    roots: &[Vec<u8>],
    ends_at: std::time::Instant,
) -> Result<(Identity, &'static str)> {
    if let Some((cert, key)) = &opts.identity {
        let identity = Identity::from_pem(
            &read_pem(cert, "certificate")?,
            &read_pem(key, "private key")?,
        )
        .map_err(|e| {
            Error::usage(
                format!("--identity {} --key {}: {e}", cert.display(), key.display()),
                "give the identity certificate and its private key, both PEM",
            )
        })?;
        return Ok((identity, "file"));
    }
    let id = device.info().identity();
    match &profile.identity {
        IdentitySource::Scep(payload) => {
            let fill =
                |t: &str| profile::fill_in(t, &id.udid, &id.serial_number, &id.device_name());
            let subject = if payload.subject.is_empty() {
                format!("CN={}", id.udid)
            } else {
                fill(&payload.subject)
            };
            let tls = crate::http::Tls {
                roots: roots.to_vec(),
                client: None,
            };
            let identity = scep::enroll(&scep::Request {
                payload,
                subject,
                challenge: payload.challenge.as_deref().map(fill),
                tls: &tls,
                timeout: opts.timeout,
                deadline: (ends_at, opts.deadline),
            })?;
            Ok((identity, "scep"))
        }
        IdentitySource::Pkcs12 { data, password } => {
            let identity = super::pkcs12::identity(data, password.as_deref()).map_err(|why| {
                bad_profile(&opts.profile, &format!("its PKCS #12 identity: {why}"))
            })?;
            Ok((identity, "pkcs12"))
        }
    }
}

/// The `Authenticate` message's fields for `device`, as a device of its platform sends them.
fn authenticate_fields(device: &Device, topic: &str) -> Result<Dictionary> {
    let info = device.info();
    let id = info.identity();
    let snapshot = device.snapshot()?;
    let mut d = Dictionary::new();
    d.insert("Topic".into(), topic.into());
    if info.platform == Platform::MacOs {
        d.insert("DeviceName".into(), id.device_name().into());
    }
    d.insert("Model".into(), id.model_identifier.clone().into());
    d.insert("ModelName".into(), id.model_name.clone().into());
    d.insert("ProductName".into(), id.model_identifier.clone().into());
    d.insert("SerialNumber".into(), id.serial_number.clone().into());
    d.insert("OSVersion".into(), snapshot.base.version.to_string().into());
    d.insert(
        "BuildVersion".into(),
        snapshot.base.build.to_string().into(),
    );
    Ok(d)
}

fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b)
        .map_err(|e| Error::identity(format!("drawing random bytes: {e}"), "try again"))?;
    Ok(b)
}

/// The enrollment profile, and the trust anchors for the servers: the profile's own, and the
/// `--ca` file's.
fn read_profile(opts: &EnrollOptions) -> Result<(Profile, Vec<Vec<u8>>)> {
    let bytes = crate::input::read_named(
        &opts.profile,
        profile::MAX_PROFILE_BYTES,
        "enrollment profile",
    )?;
    let profile = Profile::parse(&bytes).map_err(|e| bad_profile(&opts.profile, &e.0))?;
    let mut roots = profile.anchors.clone();
    if let Some(ca) = &opts.ca {
        roots.extend(crate::http::trust_file(ca)?);
    }
    Ok((profile, roots))
}

/// Refuses a profile whose SCEP key cannot be a TLS client certificate, as it must be with
/// `SignMessage` false.
fn check_key_size(profile: &Profile, opts: &EnrollOptions) -> Result<()> {
    if let (IdentitySource::Scep(scep), false, None) =
        (&profile.identity, profile.mdm.sign_message, &opts.identity)
        && scep.key_size < super::channel::MIN_TLS_RSA_BITS
    {
        return Err(bad_profile(
            &opts.profile,
            &format!(
                "its SCEP Keysize is {}, but with SignMessage false the identity is a TLS client certificate, which needs {} bits or more",
                scep.key_size,
                super::channel::MIN_TLS_RSA_BITS
            ),
        ));
    }
    Ok(())
}

/// Sends `TokenUpdate` with a simulated push token and magic, and returns them.
fn token_update(channel: &Channel, topic: &str) -> Result<(Vec<u8>, String)> {
    let token = random_bytes(32)?;
    let magic = crate::lifecycle::init::uuid_text(random_bytes(16)?.try_into().unwrap_or([0; 16]));
    let mut update = Dictionary::new();
    update.insert("Topic".into(), topic.into());
    update.insert("Token".into(), Value::Data(token.clone()));
    update.insert("PushMagic".into(), magic.clone().into());
    update.insert("AwaitingConfiguration".into(), false.into());
    channel.checkin("TokenUpdate", update)?;
    Ok((token, magic))
}

/// Keeps the identity (its key mode 0600) and the server's trust anchors.
fn store_identity(root: &Root, identity: &Identity, roots: &[Vec<u8>]) -> Result<()> {
    root.dir()
        .create_dir_all(MDM_DIR)
        .ctx("creating", root.show(MDM_DIR))?;
    let pem = identity
        .to_pem()
        .map_err(|e| identity_error(&e, "writing the identity"))?;
    root.write_atomic(MDM_IDENTITY, pem.as_bytes(), 0o600)
        .ctx("writing", root.show(MDM_IDENTITY))?;
    if roots.is_empty() {
        root.remove_if_exists(MDM_TRUST)
            .ctx("removing", root.show(MDM_TRUST))?;
    } else {
        let pems: String = roots
            .iter()
            .map(|der| {
                der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der)
                    .unwrap_or_default()
            })
            .collect();
        root.write_atomic(MDM_TRUST, pems.as_bytes(), 0o644)
            .ctx("writing", root.show(MDM_TRUST))?;
    }
    Ok(())
}

/// Enrolls the device of `tx`.
pub(crate) fn enroll(tx: &mut Tx<'_>, opts: &EnrollOptions) -> Result<EnrollOutcome> {
    let ends_at = std::time::Instant::now() + opts.deadline;
    let device = tx.device();
    if let Some(e) = load(device)? {
        return Err(Error::usage(
            format!("the device is already enrolled in {}", clip(&e.server_url)),
            "unenroll it first with `bsi mdm unenroll`",
        ));
    }
    let (profile, roots) = read_profile(opts)?;
    let udid = device.info().identity().udid;
    let mdm = &profile.mdm;
    let source = match (&opts.identity, &profile.identity) {
        (Some(_), _) => "file",
        (None, IdentitySource::Scep(_)) => "scep",
        (None, IdentitySource::Pkcs12 { .. }) => "pkcs12",
    };
    let mut outcome = EnrollOutcome {
        server_url: mdm.server_url.clone(),
        checkin_url: mdm.checkin_url.clone(),
        topic: mdm.topic.clone(),
        udid: udid.clone(),
        sign_message: mdm.sign_message,
        identity: None,
        identity_source: source.to_owned(),
        dry_run: opts.dry_run,
    };
    if opts.dry_run {
        return Ok(outcome);
    }
    check_key_size(&profile, opts)?;
    if matches!(profile.identity, IdentitySource::Scep(_)) && opts.identity.is_none() {
        // The CA issues one identity per subject: make sure the MDM server can be reached
        // before asking for it, so that a wrong URL or CA can be fixed and enrollment retried.
        let tls = crate::http::Tls {
            roots: roots.clone(),
            client: None,
        };
        crate::http::Link::new("MDM server", &mdm.server_url, opts.timeout, 1, &tls)?
            .by(ends_at, opts.deadline)
            .probe()?;
    }
    let (identity, source) = get_identity(device, &profile, opts, &roots, ends_at)?;
    pki::check_validity(&identity.cert, SystemTime::now()).map_err(|why| {
        Error::identity(
            format!("the identity certificate is not valid now: {why}"),
            "get a current certificate for the device, then enroll again",
        )
    })?;
    let identity = Arc::new(identity);
    let channel = Channel::new(
        Endpoints {
            server_url: mdm.server_url.clone(),
            checkin_url: mdm.checkin_url.clone(),
            sign: mdm.sign_message,
            udid: udid.clone(),
        },
        Arc::clone(&identity),
        roots.clone(),
        opts.timeout,
        1,
    )?
    .by(ends_at, opts.deadline);
    channel.checkin("Authenticate", authenticate_fields(device, &mdm.topic)?)?;
    let (token, magic) = token_update(&channel, &mdm.topic)?;

    // The server has the device: keep the identity, then the trust, then the enrollment.
    tx.begin()?;
    let root = device.root();
    store_identity(root, &identity, &roots)?;
    let names = names(&identity, source);
    let now = tx.clock().stamp();
    records::write_json(
        root,
        MDM_ENROLLMENT,
        &Enrollment {
            server_url: mdm.server_url.clone(),
            checkin_url: mdm.checkin_url.clone(),
            topic: mdm.topic.clone(),
            sign_message: mdm.sign_message,
            access_rights: mdm.access_rights,
            check_out_when_removed: mdm.check_out_when_removed,
            udid,
            push_token: base64::engine::general_purpose::STANDARD.encode(&token),
            push_magic: magic,
            profile: InstalledProfile {
                top: profile.top.clone(),
                organization: profile.organization.clone(),
                removal_disallowed: profile.removal_disallowed,
                payloads: profile.payloads.clone(),
                signer: profile.signer.clone(),
            },
            identity: names.clone(),
            enrolled_at: now.clone(),
            last_checkin: Some(now),
        },
    )?;
    outcome.identity = Some(names);
    source.clone_into(&mut outcome.identity_source);
    Ok(outcome)
}

/// Removes the enrollment's records.
fn forget(device: &Device) -> Result<()> {
    let root = device.root();
    // The enrollment first: without it the device is not enrolled, whatever else remains.
    for rel in [MDM_ENROLLMENT, MDM_IDENTITY, MDM_TRUST] {
        root.remove_if_exists(rel).ctx("removing", root.show(rel))?;
    }
    root.remove_tree_if_exists(MDM_DIR)
        .ctx("removing", root.show(MDM_DIR))?;
    Ok(())
}

/// Unenrolls the device of `tx`: `CheckOut`, then its records go (even when the server cannot
/// be reached: the device leaves, as a device whose MDM profile is removed does).
pub(crate) fn unenroll(
    tx: &mut Tx<'_>,
    timeout: Duration,
    dry_run: bool,
) -> Result<UnenrollOutcome> {
    let device = tx.device();
    let enrollment = require(device)?;
    let mut outcome = UnenrollOutcome {
        server_url: enrollment.server_url.clone(),
        checked_out: false,
        check_out_error: None,
        dry_run,
    };
    if dry_run {
        return Ok(outcome);
    }
    let sent = channel(device, &enrollment, timeout, 1).and_then(|c| {
        let mut d = Dictionary::new();
        d.insert("Topic".into(), enrollment.topic.clone().into());
        c.checkin("CheckOut", d)
    });
    match sent {
        Ok(_) => outcome.checked_out = true,
        Err(e) => {
            let why = e.to_string();
            tx.warn(format!(
                "CheckOut was not delivered ({why}); the device left anyway"
            ));
            outcome.check_out_error = Some(why);
        }
    }
    tx.begin()?;
    forget(device)?;
    Ok(outcome)
}

/// Records that the server answered a check-in or poll now.
pub(crate) fn note_checkin(device: &Device, enrollment: &Enrollment, stamp: String) -> Result<()> {
    let mut e = enrollment.clone();
    e.last_checkin = Some(stamp);
    records::write_json(device.root(), MDM_ENROLLMENT, &e)
}

impl Human for EnrollOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        let o = self;
        if o.dry_run {
            out.line(format!(
                "would enroll as {} in {} (topic {}), the identity from {}; nothing was sent",
                o.udid,
                clip(&o.server_url),
                clip(&o.topic),
                o.identity_source
            ));
            return;
        }
        out.line(format!(
            "enrolled as {} in {} (topic {})",
            o.udid,
            clip(&o.server_url),
            clip(&o.topic)
        ));
        if let Some(i) = &o.identity {
            out.line(format!(
                "identity: {} issued by {} ({}), valid until {}",
                clip(&i.subject),
                clip(&i.issuer),
                i.source,
                i.not_after
            ));
        }
        out.line(if o.sign_message {
            "messages are signed (Mdm-Signature); next: `bsi mdm poll` answers the server's commands"
        } else {
            "the identity is the TLS client certificate; next: `bsi mdm poll` answers the server's commands"
        });
    }
}

impl Human for UnenrollOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        if self.dry_run {
            out.line(format!(
                "would send CheckOut to {} and remove the enrollment; nothing was changed",
                clip(&self.server_url)
            ));
        } else if self.checked_out {
            out.line(format!(
                "checked out of {}; the device is not enrolled",
                clip(&self.server_url)
            ));
        } else {
            out.line(format!(
                "left {} without CheckOut ({}); the device is not enrolled",
                clip(&self.server_url),
                self.check_out_error.as_deref().unwrap_or("not sent")
            ));
        }
    }
}
