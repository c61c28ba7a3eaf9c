//! `status --json` as the tests read it: every key named, unknown keys refused, nothing
//! defaulted, so a key renamed, added or dropped without a test fails to parse instead of
//! reading as null. Shared by the integration and model tests (`#[path]`), independent of the
//! library's own types on purpose: it is what a script sees.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole document (schema version 1).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Status {
    pub schema_version: u32,
    pub device: DeviceView,
    pub os: OsView,
    pub active: Option<ResponseView>,
    pub staged: Option<StagedView>,
    pub restart_required: bool,
    pub safari: Option<SafariView>,
    pub rollback: RollbackView,
    pub included: Vec<String>,
    pub power: PowerView,
    pub automatic_install: AutomaticView,
    pub policy: PolicyView,
    pub last_operation: Option<LastOperationView>,
    pub ddm: BTreeMap<String, String>,
    pub notes: Vec<String>,
    pub version: String,
    pub operation: Option<HolderView>,
    pub recovery_pending: Option<RecoveryView>,
    pub prompt: Option<String>,
    pub install_failure: Option<InstallFailureView>,
    pub mdm: Option<MdmView>,
}

/// `mdm`: the MDM enrollment.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct MdmView {
    pub server_url: String,
    pub checkin_url: String,
    pub topic: String,
    pub udid: String,
    pub sign_message: bool,
    pub identity: IdentityView,
    pub enrolled_at: String,
    pub last_checkin: Option<String>,
}

/// `mdm.identity`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityView {
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
    pub source: String,
}

/// `install_failure`: bsi's own detail of the last failed install.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct InstallFailureView {
    pub count: u32,
    pub target: Option<String>,
    pub reason: Option<String>,
    pub error_domain: Option<String>,
    pub error_code: Option<i64>,
    pub at: Option<String>,
}

impl Status {
    /// A DDM status item by its dotted name (`device.operating-system.version`).
    #[track_caller]
    pub(crate) fn ddm(&self, item: &str) -> &str {
        self.ddm
            .get(item)
            .unwrap_or_else(|| panic!("status has no DDM item {item}: {:?}", self.ddm))
    }

    /// The stored declaration `identifier`.
    #[track_caller]
    pub(crate) fn declaration(&self, identifier: &str) -> &DeclarationView {
        self.policy
            .declarations
            .iter()
            .find(|d| d.identifier == identifier)
            .unwrap_or_else(|| panic!("status lists no declaration {identifier}"))
    }

    /// The active response's version, or `None` on the base.
    pub(crate) fn active_version(&self) -> Option<&str> {
        self.active.as_ref().map(|a| a.version.as_str())
    }

    /// The staged work's version, if any.
    pub(crate) fn staged_version(&self) -> Option<&str> {
        self.staged.as_ref().map(|s| s.version.as_str())
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceView {
    pub platform: String,
    pub chip: String,
    pub portable: bool,
    pub supervised: bool,
    pub enrollment_id: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct OsView {
    pub version: String,
    pub build: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResponseView {
    pub version: String,
    pub extra: String,
    pub build: String,
    pub cryptexes: Vec<String>,
    pub sources: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct StagedView {
    pub action: String,
    pub version: String,
    pub extra: String,
    pub build: String,
    pub sources: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SafariView {
    pub version: String,
    pub relaunched: bool,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollbackView {
    pub available: bool,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct PowerView {
    pub on_ac: bool,
    pub battery_percent: Option<u8>,
    pub minimum_percent: Option<u8>,
    pub ok: bool,
    pub reason: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct AutomaticView {
    pub enabled: bool,
    pub source: String,
    pub declaration: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyView {
    pub supervised: bool,
    pub user_install_allowed: bool,
    pub rollback_allowed: bool,
    pub declarations: Vec<DeclarationView>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeclarationView {
    pub identifier: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub server_token: String,
    pub active: bool,
    pub valid: String,
    pub reasons: Vec<ReasonView>,
    pub honored: bool,
    pub note: String,
    pub unknown_keys: Vec<String>,
}

impl DeclarationView {
    /// The reason codes, in order.
    pub(crate) fn codes(&self) -> Vec<&str> {
        self.reasons.iter().map(|r| r.code.as_str()).collect()
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonView {
    pub code: String,
    pub description: String,
    pub details: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct LastOperationView {
    pub action: String,
    pub result: String,
    pub error: Option<String>,
    pub exit_code: u8,
    pub at: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct HolderView {
    pub command: String,
    pub pid: u32,
    pub started_at: String,
    pub phase: String,
    pub target: Option<String>,
    pub target_build: Option<String>,
    pub target_reason: Option<String>,
    pub target_declaration: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecoveryView {
    pub command: String,
    pub pid: u32,
    pub started_at: String,
    pub will: String,
}

/// The `sources` map of a response: which version's content each cryptex holds.
pub(crate) fn sources(app: &str, os: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("App".to_owned(), app.to_owned()),
        ("OS".to_owned(), os.to_owned()),
    ])
}
