//! `bsi report`: a DDM `StatusReport` (`protocol/statusreport.yaml`: `StatusItems` nested by the
//! dotted item names, `Errors`, `FullReport`) shaped like the reports real devices send
//! (`reference/status-report-*.json`).
//!
//! Items: `device.operating-system.{family,version,build-version}` (the build stays the base
//! build while a response is active), `device.operating-system.supplemental.{build-version,
//! extra-version}` (`extra-version` is `(a)` with a response and `""` without, never null),
//! `management.declarations` (every stored declaration with `active`, `valid`, `reasons`), and
//! `softwareupdate.{install-state,pending-version,failure-reason,install-reason}`
//! (`ddm::software_update`). Each item is reported only where the device's OS version and
//! enrollment support it (`declarations::support`), and `FullReport` only from iOS 17 and
//! macOS 14.
//!
//! Incremental reports: `report --delivered` records the items of the report it prints as what
//! the server acknowledged (`report-delivered.json`); `report --changes` prints only the items
//! whose value differs from that record, with `FullReport` false, as real devices do between
//! their full ("safety sync") reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Result;
use crate::ddm::software_update::{self, InstallState};
use crate::declarations::declaration::{Category, Reason};
use crate::declarations::state::Validity;
use crate::declarations::support::{self, DeviceFacts};
use crate::device::Device;
use crate::device::layout::REPORT_DELIVERED_RECORD;
use crate::device::records;
use crate::gates::policy::Policy;
use crate::status;

/// One declaration in `management.declarations`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct DeclarationItem {
    /// `Identifier`.
    pub identifier: String,
    /// `ServerToken`.
    #[serde(rename = "server-token")]
    pub server_token: String,
    /// Active on the device.
    pub active: bool,
    /// `valid`, `invalid` or `unknown`.
    pub valid: Validity,
    /// Why, in Apple's codes; left out when there is none, as real devices do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
}

/// `management.declarations`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct DeclarationsItem {
    /// Activations.
    pub activations: Vec<DeclarationItem>,
    /// Configurations.
    pub configurations: Vec<DeclarationItem>,
    /// Assets.
    pub assets: Vec<DeclarationItem>,
    /// Management declarations.
    pub management: Vec<DeclarationItem>,
}

/// `softwareupdate.pending-version`: both keys filled, or both `""`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct PendingVersionItem {
    /// e.g. `26.3.1 (a)`.
    #[serde(rename = "os-version")]
    pub os_version: String,
    /// e.g. `25D771280a`.
    #[serde(rename = "build-version")]
    pub build_version: String,
}

/// `softwareupdate.failure-reason`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct FailureReasonItem {
    /// Failed attempts at the pending install; 0 when none.
    pub count: u32,
    /// The last failure, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its domain.
    #[serde(
        rename = "error-domain",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub error_domain: Option<String>,
    /// Its code.
    #[serde(
        rename = "error-code",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub error_code: Option<i64>,
    /// When, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// `softwareupdate.install-reason`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct InstallReasonItem {
    /// Why the pending install happens; empty when nothing is pending.
    pub reason: Vec<String>,
    /// The enforcing declaration, with `declaration`.
    #[serde(
        rename = "declaration-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub declaration_id: Option<String>,
}

/// A status item's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub(crate) enum Item {
    /// A string item.
    Text(String),
    /// `softwareupdate.install-state`.
    InstallState(InstallState),
    /// `softwareupdate.pending-version`.
    PendingVersion(PendingVersionItem),
    /// `softwareupdate.failure-reason`.
    FailureReason(FailureReasonItem),
    /// `softwareupdate.install-reason`.
    InstallReason(InstallReasonItem),
    /// `management.declarations`.
    Declarations(DeclarationsItem),
}

/// The report: items by dotted name, flat; [`StatusReport::to_json`] nests them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StatusReport {
    /// Items by dotted name.
    pub items: BTreeMap<&'static str, Item>,
    /// `FullReport`: `None` where the device's OS does not send the key.
    pub full_report: Option<bool>,
}

/// Nests dotted item names: `a.b.c = v` becomes `{"a": {"b": {"c": v}}}`.
fn insert(map: &mut Map<String, Value>, dotted: &str, value: Value) {
    let mut parts = dotted.split('.').peekable();
    let mut cur = map;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(part.to_owned(), value);
            return;
        }
        let next = cur
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        let Value::Object(inner) = next else { return };
        cur = inner;
    }
}

impl StatusReport {
    /// The JSON a device sends.
    #[must_use]
    pub(crate) fn to_json(&self) -> Value {
        let mut items = Map::new();
        for (name, item) in &self.items {
            insert(
                &mut items,
                name,
                serde_json::to_value(item).unwrap_or(Value::Null),
            );
        }
        let mut out = Map::new();
        out.insert("StatusItems".into(), Value::Object(items));
        out.insert("Errors".into(), Value::Array(Vec::new()));
        if let Some(full) = self.full_report {
            out.insert("FullReport".into(), Value::Bool(full));
        }
        Value::Object(out)
    }

    /// Each item's SHA-256 over its JSON value, by dotted name: what `report --delivered` and
    /// `sync` record of a report the server acknowledged.
    #[must_use]
    pub(crate) fn digests(&self) -> BTreeMap<String, String> {
        self.items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), digest(v)))
            .collect()
    }
}

pub(crate) use crate::device::records::DeliveredReport as Delivered;

/// The SHA-256 of an item's JSON value, in hex.
fn digest(item: &Item) -> String {
    crate::bundle::digest::Digest::of(&serde_json::to_vec(item).unwrap_or_default()).to_hex()
}

fn declarations_item(policy: &Policy) -> DeclarationsItem {
    let mut out = DeclarationsItem::default();
    for c in &policy.declarations {
        let e = &c.state;
        let item = DeclarationItem {
            identifier: e.declaration.identifier.clone(),
            server_token: e.declaration.server_token.clone(),
            active: e.active,
            valid: e.valid,
            reasons: e.reasons.clone(),
        };
        match e.declaration.category() {
            Category::Activation => out.activations.push(item),
            Category::Configuration => out.configurations.push(item),
            Category::Asset => out.assets.push(item),
            Category::Management => out.management.push(item),
        }
    }
    out
}

/// Builds the full report of `device`.
pub(crate) fn build(device: &Device) -> Result<StatusReport> {
    build_with_policy(device).map(|(r, _)| r)
}

/// Builds the full report of `device`, with the management policy it was made from.
pub(crate) fn build_with_policy(device: &Device) -> Result<(StatusReport, Policy)> {
    // Everything comes from the status the device reports, so the two cannot disagree.
    let (s, _, policy) = status::collect::collect_all(device)?;
    let facts: DeviceFacts = policy.facts;
    let su = software_update::derive(device, &s);
    let mut items: BTreeMap<&'static str, Item> = BTreeMap::new();
    for (name, value) in s.ddm.items() {
        items.insert(name, Item::Text(value.to_owned()));
    }
    items.insert(
        "device.operating-system.family",
        Item::Text(facts.platform.to_string()),
    );
    items.insert(
        "management.declarations",
        Item::Declarations(declarations_item(&policy)),
    );
    items.insert("softwareupdate.install-state", Item::InstallState(su.state));
    let (os_version, build_version) = su
        .pending
        .as_ref()
        .map(|p| (p.version.clone(), p.build.clone()))
        .unwrap_or_default();
    items.insert(
        "softwareupdate.pending-version",
        Item::PendingVersion(PendingVersionItem {
            os_version,
            build_version,
        }),
    );
    let f = &su.failure;
    items.insert(
        "softwareupdate.failure-reason",
        Item::FailureReason(if f.count == 0 {
            FailureReasonItem {
                count: 0,
                reason: None,
                error_domain: None,
                error_code: None,
                timestamp: None,
            }
        } else {
            FailureReasonItem {
                count: f.count,
                reason: f.reason.clone(),
                error_domain: f.error_domain.clone(),
                error_code: f.error_code,
                timestamp: f.timestamp.clone(),
            }
        }),
    );
    let (reason, declaration_id) = match &su.reason {
        Some((r, id)) => (vec![r.clone()], id.clone().filter(|_| r == "declaration")),
        None => (Vec::new(), None),
    };
    items.insert(
        "softwareupdate.install-reason",
        Item::InstallReason(InstallReasonItem {
            reason,
            declaration_id,
        }),
    );
    items.retain(|name, _| support::status_item(name, &facts));
    Ok((
        StatusReport {
            items,
            full_report: support::full_report(&facts).then_some(true),
        },
        policy,
    ))
}

/// The last report marked delivered, if any (a damaged record reads as none: the next report is
/// then full).
#[must_use]
pub(crate) fn delivered(device: &Device) -> Option<Delivered> {
    records::read_json_lenient(device.root(), REPORT_DELIVERED_RECORD)
}

/// Only the items of `report` whose value differs from the `delivered` ones (flat, by dotted
/// name), with `FullReport` false; the whole report (`FullReport` true) when nothing was
/// delivered yet.
#[must_use]
pub(crate) fn changes(
    report: &StatusReport,
    delivered: Option<&BTreeMap<String, String>>,
) -> StatusReport {
    let Some(delivered) = delivered else {
        return report.clone();
    };
    let items = report
        .items
        .iter()
        .filter(|(name, item)| delivered.get(**name) != Some(&digest(item)))
        .map(|(name, item)| (*name, item.clone()))
        .collect();
    StatusReport {
        items,
        full_report: report.full_report.map(|_| false),
    }
}

/// Records `report` as delivered.
pub(crate) fn mark_delivered(device: &Device, report: &StatusReport, at: String) -> Result<()> {
    records::write_json(
        device.root(),
        REPORT_DELIVERED_RECORD,
        &Delivered {
            at,
            items: report.digests(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_dotted_names() {
        let mut m = Map::new();
        insert(
            &mut m,
            "device.operating-system.version",
            Value::from("26.3.1"),
        );
        insert(
            &mut m,
            "device.operating-system.supplemental.extra-version",
            Value::from("(a)"),
        );
        insert(&mut m, "softwareupdate.install-state", Value::from("none"));
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"device": {"operating-system": {"version": "26.3.1", "supplemental": {"extra-version": "(a)"}}}, "softwareupdate": {"install-state": "none"}})
        );
    }

    #[test]
    fn changes_hold_only_what_changed() {
        let report = StatusReport {
            items: BTreeMap::from([
                (
                    "device.operating-system.version",
                    Item::Text("26.3.1".into()),
                ),
                (
                    "softwareupdate.install-state",
                    Item::InstallState(InstallState::Prepared),
                ),
            ]),
            full_report: Some(true),
        };
        let mut delivered = report.digests();
        let none = changes(&report, Some(&delivered));
        assert!(none.items.is_empty());
        assert_eq!(none.full_report, Some(false));
        delivered.insert(
            "softwareupdate.install-state".into(),
            digest(&Item::InstallState(InstallState::None)),
        );
        let one = changes(&report, Some(&delivered));
        assert_eq!(
            one.items.keys().copied().collect::<Vec<_>>(),
            ["softwareupdate.install-state"]
        );
        assert_eq!(changes(&report, None), report);
    }
}
