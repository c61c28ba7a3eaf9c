//! The other `--json` outputs the tests read, typed like `status_view`: every key named, unknown
//! keys refused, so a renamed or dropped key fails to parse instead of reading as null.

#![allow(dead_code)]

use serde::Deserialize;

/// One line of `history --json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryEntry {
    pub at: String,
    pub action: String,
    pub result: String,
    pub error: Option<String>,
    pub exit_code: u8,
    pub before: Option<String>,
    pub after: Option<String>,
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// `apply --json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplyView {
    pub action: String,
    pub version: String,
    pub build: String,
    pub restart_required: bool,
    pub dry_run: bool,
    /// What the apply cancelled that was staged (issue 25 item 7).
    pub cancelled: Option<String>,
    pub message: String,
}

/// `lookup --json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct LookupView {
    pub releases: Vec<CatalogEntryView>,
    pub background_security_improvements: Vec<CatalogEntryView>,
    pub answer: Option<AnswerView>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogEntryView {
    pub platform: String,
    pub set: String,
    pub product_version: String,
    pub extra: Option<String>,
    pub version: String,
    pub build: String,
    pub prerequisite_build: Option<String>,
    pub posting_date: Option<String>,
    pub expiration_date: Option<String>,
    pub expired: bool,
    pub supported_devices: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnswerView {
    pub query: String,
    pub target_os_version: String,
    pub target_build_version: String,
    pub platform: String,
    pub declaration_payload: serde_json::Map<String, serde_json::Value>,
}

/// The part of `bundle inspect --json` the tests judge: the verdicts.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub(crate) struct InspectVerdicts {
    pub ok: bool,
    pub signature: Verdict,
    pub payload: Verdict,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Verdict {
    pub ok: bool,
    pub error: Option<String>,
}
