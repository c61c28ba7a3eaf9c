//! bsi's own records under `private/var/db/bsi/`: the device description, the simulated power
//! source, the user's settings, the responses a minor update included, Safari's relaunch, the
//! software-update failure and install reason, plus the JSON read/write helpers every record
//! uses.
//!
//! Records are small JSON files replaced atomically (`Root::write_atomic`), so a reader sees the
//! old or the new record, never half of one. A record that does not parse is damage (exit 8).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::Root;
use crate::error::IoContext;
use crate::platform::{Chip, Platform};
use crate::{Error, Result};

/// Format version of the records this bsi writes.
pub(crate) const RECORD_FORMAT: u32 = 1;

/// `device.json`: what kind of device this is. Written once by `init`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DeviceInfo {
    /// Record format.
    pub format: u32,
    /// Platform.
    pub platform: Platform,
    /// Processor family.
    pub chip: Chip,
    /// A laptop (or iPhone/iPad) rather than a desktop.
    pub portable: bool,
    /// Supervised by an organisation (management settings only apply then).
    pub supervised: bool,
    /// The volume group UUID that names the Preboot directory.
    pub volume_group: String,
    /// The enrollment identifier a DDM server knows the device by (`X-Enrollment-ID`); devices
    /// made before it existed use their volume group UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_id: Option<String>,
    /// Its UDID, serial number and model; devices made before they were recorded derive them
    /// from their volume group ([`DeviceInfo::identity`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<super::identity::Identity>,
    /// When `init` made the device.
    pub created: String,
}

impl DeviceInfo {
    /// The enrollment identifier.
    #[must_use]
    pub(crate) fn enrollment(&self) -> &str {
        self.enrollment_id.as_deref().unwrap_or(&self.volume_group)
    }
}

/// `enrollment.json`: a copy of the identifier a server knows the device by.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Enrollment {
    /// The enrollment identifier.
    pub enrollment_id: String,
}

/// `power.json`: the simulated power source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Power {
    /// Battery charge in percent; `None` for a desktop, which has no battery.
    pub battery_percent: Option<u8>,
    /// Connected to power.
    pub on_ac: bool,
}

/// `settings.json`: the user's own switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Settings {
    /// Settings > Privacy & Security > Background Security Improvements > Automatically Install.
    pub automatic_install: bool,
}

impl Default for Settings {
    fn default() -> Self {
        // On by default, as on Apple devices.
        Self {
            automatic_install: true,
        }
    }
}

/// `included.json`: the responses the base includes through the last minor update.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Included {
    /// The base (`26.4 (25E100)`) the list belongs to.
    pub base: String,
    /// The included responses, oldest first.
    pub versions: Vec<String>,
}

/// `safari.json`: the staged generation Safari was relaunched onto.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SafariRecord {
    /// The generation's directory name.
    pub generation: String,
}

/// `failure.json`: the failed attempts at the current install (`softwareupdate.failure-reason`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Failure {
    /// Failed attempts at the current install.
    pub count: u32,
    /// The last failure's reason.
    pub reason: Option<String>,
    /// When it failed, RFC 3339.
    pub timestamp: Option<String>,
    /// What was being installed (the response version), when known.
    pub target: Option<String>,
    /// Its supplemental build, when known.
    #[serde(default)]
    pub build: Option<String>,
    /// The error's domain (`error-domain`), e.g. `bsi.power`.
    #[serde(default)]
    pub error_domain: Option<String>,
    /// The error's code (`error-code`): bsi's exit code for it.
    #[serde(default)]
    pub error_code: Option<i64>,
}

/// What started an install, in `softwareupdate.install-reason` terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum InstallTrigger {
    /// `bsi apply`.
    CommandLine,
    /// Automatic install in a background pass.
    AutoUpdate,
    /// An enforcement declaration.
    Declaration,
    /// An MDM command (`ScheduleOSUpdate`).
    Mdm,
}

impl InstallTrigger {
    /// Apple's name.
    #[must_use]
    pub(crate) const fn name(self) -> &'static str {
        match self {
            InstallTrigger::CommandLine => "command-line",
            InstallTrigger::AutoUpdate => "auto-update",
            InstallTrigger::Declaration => "declaration",
            InstallTrigger::Mdm => "mdm",
        }
    }
}

/// `install-reason.json`: the install the device is working on, and why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct InstallReason {
    /// `command-line`, `auto-update` or `declaration`.
    pub reason: String,
    /// The declaration, for `declaration`.
    pub declaration_id: Option<String>,
    /// The response version.
    pub target: Option<String>,
    /// Its supplemental build.
    #[serde(default)]
    pub build: Option<String>,
    /// A background pass wants it but has not staged it yet (`downloading`).
    #[serde(default)]
    pub wanted: bool,
}

/// `report-delivered.json`: the status items of the report last marked delivered.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct DeliveredReport {
    /// When it was marked delivered, RFC 3339.
    pub at: String,
    /// Its items by dotted name, each as the SHA-256 of its JSON value: enough to tell what
    /// changed, and a record whose size does not grow with what a server stored.
    pub items: std::collections::BTreeMap<String, String>,
}

/// `sync.json`: what `bsi sync` keeps between syncs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct SyncState {
    /// The server's base URL.
    pub server: String,
    /// The enrollment identifier used with it.
    pub enrollment_id: String,
    /// `SyncTokens.DeclarationsToken` of the declarations this device holds.
    pub declarations_token: Option<String>,
    /// When the last sync finished, RFC 3339.
    pub last_sync: String,
    /// Status reports the server acknowledged.
    pub reports_sent: u64,
    /// The status items of the last report the server acknowledged, by dotted name, each as
    /// the SHA-256 of its JSON value (the record stays small whatever the items hold).
    pub delivered: std::collections::BTreeMap<String, String>,
}

/// A record read failure: a record that is not what bsi writes (over the size limit, not a
/// regular file, hard-linked, reached through a symlink) is damage (exit 8, `bsi repair`), not
/// an I/O failure.
pub(crate) fn read_error(root: &Root, rel: impl AsRef<Path>, e: std::io::Error) -> Error {
    if super::is_damage(&e) {
        Error::damaged(format!("record {}: {e}", root.show(rel).display()))
    } else {
        Error::io("reading", root.show(rel), e)
    }
}

/// Reads and parses a JSON record; a missing or unparsable record is damage.
pub(crate) fn read_json<T: DeserializeOwned>(root: &Root, rel: &str) -> Result<T> {
    let bytes = root.read_small(rel).map_err(|e| read_error(root, rel, e))?;
    parse_json(root, rel, &bytes)
}

/// Reads a JSON record that may be absent.
pub(crate) fn read_json_opt<T: DeserializeOwned>(root: &Root, rel: &str) -> Result<Option<T>> {
    match root.read_small_opt(rel) {
        Ok(Some(bytes)) => parse_json(root, rel, &bytes).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(read_error(root, rel, e)),
    }
}

/// Reads a secondary record whose absence or damage only costs detail (an install reason, a
/// delivered report, the origins of responses): `None` when it is missing or unreadable.
#[must_use]
pub(crate) fn read_json_lenient<T: DeserializeOwned>(root: &Root, rel: &str) -> Option<T> {
    read_json_opt(root, rel).ok().flatten()
}

fn parse_json<T: DeserializeOwned>(root: &Root, rel: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::damaged(format!(
            "record {} does not parse: {}",
            root.show(rel).display(),
            crate::untrusted::clip(&e.to_string())
        ))
    })
}

/// Serialises and atomically replaces a JSON record.
pub(crate) fn write_json<T: Serialize>(
    root: &Root,
    rel: impl AsRef<Path>,
    value: &T,
) -> Result<()> {
    let rel = rel.as_ref();
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Io {
        action: "encoding",
        path: root.show(rel),
        source: std::io::Error::other(e),
    })?;
    bytes.push(b'\n');
    // What goes into a record is bounded where it is made; this is the last line of that
    // defence: never write a record the reader would refuse as damage.
    if bytes.len() as u64 > super::confine::MAX_RECORD_BYTES {
        return Err(Error::Io {
            action: "writing",
            path: root.show(rel),
            source: std::io::Error::other(format!(
                "the record would be {} bytes, over the {}-byte limit every record is read with",
                bytes.len(),
                super::confine::MAX_RECORD_BYTES
            )),
        });
    }
    root.write_atomic(rel, &bytes, 0o644)
        .ctx("writing", root.show(rel))
}
