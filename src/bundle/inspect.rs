//! `bsi bundle inspect`: shows a bundle's manifest and whether its signature and every digest
//! hold, against the device's trusted keys or a key given on the command line. It reads the
//! payload once, writing nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::keys::PublicKey;
use super::source::{CheckOnly, Form, Opened};
use super::stream;
use super::{BundleError, signature};
use crate::human::{Human, Text, clip};
use crate::progress::Progress;
use crate::{Error, Result};

/// One check's outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Check {
    /// It held.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// Per-cryptex totals.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct CryptexSummary {
    /// Number of files.
    pub files: usize,
    /// Bytes.
    pub bytes: u64,
}

/// One payload file as the manifest lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ListedFile {
    /// `OS/...` or `App/...`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits, octal.
    pub mode: String,
    /// SHA-256, hex.
    pub sha256: String,
}

/// What `inspect` found.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Report {
    /// The bundle path.
    pub path: PathBuf,
    /// Its form.
    pub form: Form,
    /// `ProductName`.
    pub product: String,
    /// The response version, e.g. `26.3.1 (a)`.
    pub version: String,
    /// `ProductVersion`.
    pub base_version: String,
    /// `PrerequisiteBuild`.
    pub prerequisite_build: String,
    /// `ProductVersionExtra`.
    pub extra: String,
    /// `ProductBuildVersion`.
    pub build: String,
    /// `Description`.
    pub description: Option<String>,
    /// `PostingDate`.
    pub posting_date: Option<String>,
    /// `SupportedDevices`.
    pub supported_devices: Vec<String>,
    /// Keys bsi does not know (kept and ignored).
    pub unknown_keys: Vec<String>,
    /// Whether the response needs a restart (it has OS content).
    pub restart_required: bool,
    /// Files and bytes per cryptex.
    pub cryptexes: BTreeMap<String, CryptexSummary>,
    /// Every payload file the manifest lists.
    pub files: Vec<ListedFile>,
    /// The signature check (`ok` is true when it was not checked: nothing to check against).
    pub signature: Check,
    /// What the signature is: `valid`, `not-signed`, `not-checked`, `untrusted`, `tampered` or
    /// `malformed`.
    pub signature_state: SignatureState,
    /// The key that made the signature: verified when `valid`, else the key the manifest names.
    pub signed_by: Option<String>,
    /// What the signature was checked against.
    pub trust: String,
    /// Structure and digest checks of the payload.
    pub payload: Check,
    /// Every check held.
    pub ok: bool,
}

/// What a bundle's signature is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SignatureState {
    /// It verifies with a trusted key.
    Valid,
    /// There is no signature.
    NotSigned,
    /// There was nothing to check it against (no key given, no device).
    NotChecked,
    /// It was made by a key that is not trusted.
    Untrusted,
    /// The manifest names a trusted key but was changed after signing.
    Tampered,
    /// It is not an Ed25519 signature.
    Malformed,
}

/// Inspects the bundle at `path`, checking its signature against `trust` (the keys and what they
/// are, for the report), or not at all without one. Returns the report and the first failure
/// (exit 6), if any.
pub(crate) fn inspect(
    path: &Path,
    trust: Option<(&[PublicKey], &str)>,
    progress: &dyn Progress,
) -> Result<(Report, Option<Error>)> {
    let opened = Opened::open(path)?;
    let mut first: Option<Error> = None;
    // The signature is checked over the raw manifest before anything parses it; a bundle no
    // trusted key signed is still shown, through the bounded parser.
    let claimed = super::manifest_xml::signer_claim(&opened.manifest_bytes);
    let (signature, state, signed_by) = check_signature(&opened, trust, claimed, &mut first);
    let trust_source = trust.map_or_else(
        || "nothing: no --key, and no device".to_owned(),
        |(_, what)| what.to_owned(),
    );
    let mut bundle = opened.parse()?;
    let m = &bundle.manifest;
    let mut report = Report {
        path: path.to_path_buf(),
        form: bundle.form,
        product: m.product.to_string(),
        version: m.response_version().to_string(),
        base_version: m.version.to_string(),
        prerequisite_build: m.prerequisite.to_string(),
        extra: m.extra.to_string(),
        build: m.build.to_string(),
        description: m.description.clone(),
        posting_date: m.posting_date.clone(),
        supported_devices: m.supported_devices.clone(),
        unknown_keys: m.unknown_keys.clone(),
        restart_required: m.has_os(),
        cryptexes: m
            .cryptexes
            .0
            .iter()
            .map(|(c, files)| {
                (
                    c.to_string(),
                    CryptexSummary {
                        files: files.len(),
                        bytes: files.iter().map(|f| f.size).sum(),
                    },
                )
            })
            .collect(),
        files: m
            .cryptexes
            .files()
            .map(|(c, f)| ListedFile {
                path: format!("{c}/{}", f.path),
                size: f.size,
                mode: format!("{:o}", f.mode),
                sha256: f.sha256.to_hex(),
            })
            .collect(),
        signature,
        signature_state: state,
        signed_by,
        trust: trust_source,
        payload: Check {
            ok: true,
            error: None,
        },
        ok: false,
    };
    let total = bundle.manifest.cryptexes.total_size();
    let payload = bundle
        .check_structure()
        .map_err(Error::from)
        .and_then(|()| {
            stream::run(progress, "checking", total, |feeder| {
                bundle.stream(feeder, &mut CheckOnly)
            })
            .map(|_| ())
        });
    if let Err(e) = payload {
        report.payload = Check {
            ok: false,
            error: Some(e.to_string()),
        };
        first.get_or_insert(e);
    }
    report.ok = first.is_none();
    Ok((report, first))
}

/// The signature's verdict: its check, its state, who signed it (or claims to), and the first
/// failure put in `first`.
fn check_signature(
    opened: &Opened,
    trust: Option<(&[PublicKey], &str)>,
    claimed: Option<String>,
    first: &mut Option<Error>,
) -> (Check, SignatureState, Option<String>) {
    let ok = |error: Option<String>| Check {
        ok: error.is_none(),
        error,
    };
    match (opened.signature.as_deref(), trust) {
        (None, None) => (ok(None), SignatureState::NotSigned, None),
        (Some(_), None) => (ok(None), SignatureState::NotChecked, claimed),
        (None, Some(_)) => {
            let e = BundleError::unsigned();
            let check = ok(Some(e.to_string()));
            *first = Some(e.into());
            (check, SignatureState::NotSigned, None)
        }
        (Some(sig), Some((trusted, _))) => {
            match signature::verify(&opened.manifest_bytes, sig, trusted) {
                Ok(key) => (
                    ok(None),
                    SignatureState::Valid,
                    Some(key.fingerprint.clone()),
                ),
                Err(e) => {
                    let state = match &e {
                        BundleError::Tampered { .. } => SignatureState::Tampered,
                        BundleError::Signature { .. } => SignatureState::Malformed,
                        _ => SignatureState::Untrusted,
                    };
                    let check = ok(Some(e.to_string()));
                    *first = Some(e.into());
                    (check, state, claimed)
                }
            }
        }
    }
}

impl Human for Report {
    /// The verdicts first; then what the manifest says, marked as unverified unless its
    /// signature is valid (an unsigned `Description` must not pass for bsi's own words).
    fn human(&self, out: &mut Text, verbose: u8) {
        let r = self;
        let form = match r.form {
            Form::Directory => "directory",
            Form::Tar => "tar",
        };
        out.line(format!("bundle:      {} ({form} form)", r.path.display()));
        let by = r
            .signed_by
            .as_ref()
            .map_or_else(String::new, |fp| format!(" by key {fp}"));
        out.line(match r.signature_state {
            SignatureState::Valid => format!("signature:   valid,{by}, trusted ({})", r.trust),
            SignatureState::NotSigned if r.signature.ok => {
                "signature:   not signed (sign it with `bsi bundle sign BUNDLE --key KEY`)"
                    .to_owned()
            }
            SignatureState::NotChecked => format!(
                "signature:   signed{by}, not checked (no --key, and no device to trust it)"
            ),
            _ => format!(
                "signature:   FAILED: {}",
                r.signature.error.clone().unwrap_or_default()
            ),
        });
        if r.payload.ok {
            out.line("payload:     every size and SHA-256 matches the manifest");
        } else {
            out.line(format!(
                "payload:     FAILED: {}",
                r.payload.error.clone().unwrap_or_default()
            ));
        }
        let verified = r.signature_state == SignatureState::Valid;
        out.line(if verified {
            "manifest (signed and verified):"
        } else {
            "manifest (NOT verified: nothing below is vouched for by a trusted signer):"
        });
        out.line(format!(
            "  response:    {} {} ({}), for {} ({})",
            clip(&r.product),
            clip(&r.version),
            clip(&r.build),
            clip(&r.base_version),
            clip(&r.prerequisite_build)
        ));
        if let Some(d) = &r.description {
            // A trusted signer's description is shown at length; anyone else's briefly.
            let shown = if verified {
                crate::untrusted::clip_to(d, 2048)
            } else {
                clip(d)
            };
            out.line(format!("  description: {shown}"));
        }
        for (name, c) in &r.cryptexes {
            out.line(format!(
                "  {:<13}{} files, {} bytes",
                format!("cryptex {name}:"),
                c.files,
                c.bytes
            ));
        }
        out.line(format!(
            "  restart:     {}",
            if r.restart_required {
                "needed (OS content)"
            } else {
                "not needed (App content only)"
            }
        ));
        if !r.unknown_keys.is_empty() {
            out.line(format!(
                "  unknown keys (ignored): {}",
                crate::untrusted::list(r.unknown_keys.iter().map(String::as_str), 20)
            ));
        }
        if verbose > 0 {
            for f in &r.files {
                out.line(format!(
                    "    {} {:>10} {} {}",
                    f.mode,
                    f.size,
                    f.sha256,
                    clip(&f.path)
                ));
            }
        }
    }
}
