//! The `status --json` document, schema version 1. Stable and append-only: keys are never
//! removed or renamed; new ones may be added. Every key is always present, `null` where empty.
//! `docs/status.schema.json` is generated from these types (`bsi status --schema`) and a test
//! fails when the two drift.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::device::{Chip, Holder, Platform};
use crate::history::OpResult;

/// The schema version this bsi writes.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The state of a simulated device.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Status {
    /// Always 1 for this layout; consumers should check it.
    pub schema_version: u32,
    /// What kind of device this is.
    pub device: DeviceStatus,
    /// The base OS.
    pub os: OsStatus,
    /// The active response; null when the device runs its base OS content.
    pub active: Option<ResponseStatus>,
    /// Staged work waiting for a restart (an install or a removal); null when nothing is staged.
    pub staged: Option<StagedStatus>,
    /// A restart is needed to activate or remove staged content.
    pub restart_required: bool,
    /// What Safari and its associated processes use (macOS only; null elsewhere).
    pub safari: Option<SafariStatus>,
    /// Whether the user can remove a response now.
    pub rollback: RollbackStatus,
    /// Responses the base OS includes through the last minor update (e.g. `26.3.1 (a)`).
    pub included: Vec<String>,
    /// The power source and the power gate.
    pub power: PowerStatus,
    /// Automatic installation of responses.
    pub automatic_install: AutomaticInstallStatus,
    /// Management: supervision and declarations.
    pub policy: PolicyStatus,
    /// The most recent operation; null on a device with no history.
    pub last_operation: Option<LastOperationStatus>,
    /// The DDM status items for the OS version, as a server would read them.
    pub ddm: DdmStatus,
    /// Explanations a person should see (e.g. why a response waits for a deferred update).
    pub notes: Vec<String>,
    /// The full version the device runs: `26.3.1 (a)` with a response active, else `26.3.1`.
    pub version: String,
    /// A change another bsi is making right now (this status is the last committed state);
    /// null when no change is in flight.
    pub operation: Option<Holder>,
    /// An operation that was cut short (killed, power lost) and that the next changing command
    /// or `bsi repair` will finish or undo; null when there is none.
    pub recovery_pending: Option<RecoveryPending>,
    /// What the user is prompted to do, as a device shows it: a staged response waits for the
    /// restart (`restart to finish installing 26.3.1 (b): bsi restart`); null when nothing waits.
    pub prompt: Option<String>,
    /// The last failed attempt at an install, with bsi's own detail (its error kind and exit
    /// code), which the status report's `softwareupdate.failure-reason` leaves out; null when
    /// the last install succeeded or none failed.
    pub install_failure: Option<InstallFailure>,
    /// The MDM enrollment (`bsi mdm enroll`); null when the device is not enrolled.
    pub mdm: Option<MdmEnrollment>,
}

/// How the device is enrolled in an MDM server.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct MdmEnrollment {
    /// `ServerURL`: where the device polls for commands.
    pub server_url: String,
    /// `CheckInURL`.
    pub checkin_url: String,
    /// The push topic.
    pub topic: String,
    /// The UDID the device enrolled as.
    pub udid: String,
    /// Messages are signed (`Mdm-Signature`), else the identity is the TLS client certificate.
    pub sign_message: bool,
    /// The identity certificate: subject, issuer, expiry, source (the key is never shown).
    pub identity: crate::device::enrollment::IdentityNames,
    /// When the device enrolled.
    pub enrolled_at: String,
    /// The last check-in or poll the server answered.
    pub last_checkin: Option<String>,
}

/// A failed install attempt, as bsi records it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct InstallFailure {
    /// Failed attempts at this install.
    pub count: u32,
    /// The response it was installing, when known.
    pub target: Option<String>,
    /// Why it failed, in words.
    pub reason: Option<String>,
    /// The error's kind, as `--json` errors name it (`bsi.power`, `bsi.io`, ...).
    pub error_domain: Option<String>,
    /// bsi's exit code for it.
    pub error_code: Option<i64>,
    /// When, RFC 3339.
    pub at: Option<String>,
}

/// An interrupted operation waiting for recovery.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct RecoveryPending {
    /// The command that was cut short, e.g. `apply`; `unknown` when its journal cannot be read
    /// (torn by a crash while it was written, or not one bsi wrote).
    pub command: String,
    /// Its process id; 0 when unknown.
    pub pid: u32,
    /// When it started, RFC 3339; empty when unknown.
    pub started_at: String,
    /// What recovery will do: complete it (a committed update) or put the device back to the
    /// state before it.
    pub will: RecoveryAction,
}

/// What recovery will do with an interrupted operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RecoveryAction {
    /// Finish it: it had committed (an update or upgrade).
    Complete,
    /// Tidy up: the device is in the state of the operation's last completed step.
    Tidy,
}

/// The kind of device.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct DeviceStatus {
    /// `macOS`, `iOS` or `iPadOS`.
    pub platform: Platform,
    /// `apple-silicon` or `intel`.
    pub chip: Chip,
    /// A laptop (or iPhone/iPad) rather than a desktop.
    pub portable: bool,
    /// Supervised by an organisation.
    pub supervised: bool,
    /// The enrollment identifier a DDM server knows the device by (`bsi sync`).
    pub enrollment_id: String,
}

/// The base OS.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct OsStatus {
    /// Marketing version, e.g. `26.3.1`.
    pub version: String,
    /// Base build, e.g. `25D2128`.
    pub build: String,
}

/// A response.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ResponseStatus {
    /// Full version, e.g. `26.3.1 (a)`.
    pub version: String,
    /// The letter, e.g. `(a)`.
    pub extra: String,
    /// Supplemental build, e.g. `25D771280a`.
    pub build: String,
    /// The cryptexes the response carries itself, sorted (`App`, `OS`).
    pub cryptexes: Vec<String>,
    /// For each cryptex (`App`, `OS`), the version whose content it holds: this response, an
    /// earlier response it replaced and that supplied that cryptex (responses are cumulative per
    /// cryptex), or the base OS version. E.g. `{"App": "26.3.1 (d)", "OS": "26.3.1 (c)"}`.
    pub sources: BTreeMap<String, String>,
}

/// Staged work.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct StagedStatus {
    /// `install` or `remove`.
    pub action: StagedAction,
    /// The response being installed or removed.
    pub version: String,
    /// Its letter.
    pub extra: String,
    /// Its supplemental build.
    pub build: String,
    /// For each cryptex (`App`, `OS`), the version whose content it will hold after the restart
    /// (for a removal: the base OS version).
    pub sources: BTreeMap<String, String>,
}

/// What a restart will do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StagedAction {
    /// Activate a staged response.
    Install,
    /// Remove the active response and return to the base.
    Remove,
}

/// What Safari uses.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct SafariStatus {
    /// The version whose content Safari and its associated processes use: the staged response's
    /// after `relaunch-safari`, otherwise the active one's (or the base version).
    pub version: String,
    /// Safari was relaunched onto staged content that the rest of the OS gets at restart.
    pub relaunched: bool,
}

/// Removal.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct RollbackStatus {
    /// `bsi rollback` would remove something now.
    pub available: bool,
    /// Why not, when it is not available.
    pub reason: Option<String>,
}

/// The power gate.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct PowerStatus {
    /// Connected to power.
    pub on_ac: bool,
    /// Battery charge; null for a desktop.
    pub battery_percent: Option<u8>,
    /// Minimum battery to apply when not on power; null when there is no gate.
    pub minimum_percent: Option<u8>,
    /// The gate passes now.
    pub ok: bool,
    /// The rule that applies, in words.
    pub reason: String,
}

/// Automatic installation.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct AutomaticInstallStatus {
    /// Responses install automatically.
    pub enabled: bool,
    /// `user` (the user's switch) or `policy` (a declaration forces it).
    pub source: AutoSourceStatus,
    /// The declaration that forces it, when `source` is `policy`.
    pub declaration: Option<String>,
}

/// Who decides automatic install.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AutoSourceStatus {
    /// The user's switch.
    User,
    /// A management declaration.
    Policy,
}

/// Management.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct PolicyStatus {
    /// Supervised: settings declarations take effect only then.
    pub supervised: bool,
    /// Users may install responses themselves (`RapidSecurityResponse.Enable`).
    pub user_install_allowed: bool,
    /// Users may remove responses (`RapidSecurityResponse.EnableRollback`).
    pub rollback_allowed: bool,
    /// Every stored declaration and how the device treats it.
    pub declarations: Vec<DeclarationStatus>,
}

/// A stored declaration.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct DeclarationStatus {
    /// `Identifier`.
    pub identifier: String,
    /// `Type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `ServerToken`.
    pub server_token: String,
    /// Active on the device (`management.declarations`).
    pub active: bool,
    /// `valid`, `invalid` or `unknown` (`management.declarations`).
    pub valid: crate::declarations::state::Validity,
    /// Apple's reasons (`management.declarations`).
    pub reasons: Vec<crate::declarations::declaration::Reason>,
    /// It (or some of its keys) takes effect on this device.
    pub honored: bool,
    /// What it does, or why it is ignored.
    pub note: String,
    /// Payload keys the device does not know (ignored).
    pub unknown_keys: Vec<String>,
}

/// The most recent operation.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct LastOperationStatus {
    /// The command, e.g. `apply`.
    pub action: String,
    /// `ok`, `nothing-to-do`, `refused`, `failed` or `interrupted`.
    pub result: OpResult,
    /// The error message, if it did not succeed.
    pub error: Option<String>,
    /// bsi's exit code.
    pub exit_code: u8,
    /// When, RFC 3339.
    pub at: String,
}

/// DDM status items, keyed by Apple's dotted names.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct DdmStatus {
    /// The OS version (`ProductVersion`).
    #[serde(rename = "device.operating-system.version")]
    pub version: String,
    /// The base build: it stays the base build while a response is active, as on real devices.
    #[serde(rename = "device.operating-system.build-version")]
    pub build_version: String,
    /// The active response's supplemental build, or the base build when none is active.
    #[serde(rename = "device.operating-system.supplemental.build-version")]
    pub supplemental_build_version: String,
    /// The active response's letter as devices report it, e.g. `(a)`; `""` when none is active
    /// (the item is a string on every report, never null).
    #[serde(rename = "device.operating-system.supplemental.extra-version")]
    pub supplemental_extra_version: String,
}

/// The JSON Schema of [`Status`] as bsi writes it (`docs/status.schema.json`). Generated for
/// the serialising side, so that every key is required and empty ones are nullable, as the
/// output always carries every key.
#[must_use]
pub(crate) fn schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<Status>()).unwrap_or_default()
}
