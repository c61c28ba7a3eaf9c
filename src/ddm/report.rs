//! `bsi report`: a DDM `StatusReport` (`protocol/statusreport.yaml`: `StatusItems` nested by the
//! dotted item names, `Errors`, `FullReport`) shaped like the reports real devices send
//! (`reference/status-report-*.json`), its items and their values from the one registry
//! (`declarations::items`).
//!
//! What a report carries, as real devices decide it: the items a status-subscriptions
//! configuration in effect subscribes to, and the two a device always reports
//! (`management.client-capabilities`, `management.declarations`), each only where the device's OS
//! version and enrollment support it; `FullReport` only from iOS 17 and macOS 14. `report --all`
//! shows every item the device supports, subscribed or not (for people; a device sends no such
//! report).
//!
//! Incremental reports: `report --delivered` records the items of the report it prints as what
//! the server acknowledged (`report-delivered.json`); `report --changes` prints only the items
//! whose value differs from that record, with `FullReport` false, as real devices do between
//! their full ("safety sync") reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Result;
use crate::ddm::software_update;
use crate::declarations::declaration::{Category, Reason};
use crate::declarations::items;
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

/// `softwareupdate.pending-version`: both keys filled, or both `""`; the enforcing
/// declaration's deadline with them, where Apple's current documentation has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct PendingVersionItem {
    /// e.g. `26.3.1 (a)`.
    #[serde(rename = "os-version")]
    pub os_version: String,
    /// e.g. `25D771280a`.
    #[serde(rename = "build-version")]
    pub build_version: String,
    /// The enforcement's `TargetLocalDateTime`, when a declaration enforces the pending install.
    #[serde(
        rename = "target-local-date-time",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub target_local_date_time: Option<String>,
}

/// `softwareupdate.failure-reason`: Apple's keys only (bsi's own detail of a failure, its
/// domain and code, is in `status --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct FailureReasonItem {
    /// Failed attempts at the pending install; 0 when none, or nothing is pending.
    pub count: u32,
    /// The last failure, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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

/// The report: items by dotted name, flat; [`StatusReport::to_json`] nests them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StatusReport {
    /// Items by dotted name.
    pub items: BTreeMap<&'static str, Value>,
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
            insert(&mut items, name, item.clone());
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
fn digest(item: &Value) -> String {
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

/// Which items a report carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// What the device sends: the subscribed items and the implicit ones.
    Subscribed,
    /// Every item the device supports (`report --all`).
    All,
}

/// Builds the full report of `device` (`scope` deciding which items).
pub(crate) fn build(device: &Device, scope: Scope) -> Result<StatusReport> {
    build_with_policy(device, scope).map(|(r, _)| r)
}

/// Builds the full report of `device`, with the management policy it was made from.
pub(crate) fn build_with_policy(device: &Device, scope: Scope) -> Result<(StatusReport, Policy)> {
    // Everything comes from the status the device reports, so the two cannot disagree.
    let (s, snapshot, policy) = status::collect::collect_all(device)?;
    let facts: DeviceFacts = policy.facts;
    let su = software_update::derive(device, &s);
    let (os_version, build_version) = su
        .pending
        .as_ref()
        .map(|p| (p.version.clone(), p.build.clone()))
        .unwrap_or_default();
    let deadline = su.reason.as_ref().and_then(|(r, id)| {
        let id = id.as_ref().filter(|_| r == "declaration")?;
        policy
            .enforcements
            .iter()
            .find(|(e, _)| e == id)
            .map(|(_, e)| {
                e.target_local_date_time
                    .format(crate::declarations::declaration::LOCAL_DATE_TIME)
                    .to_string()
            })
    });
    let f = &su.failure;
    let failure = FailureReasonItem {
        count: f.count,
        reason: f.reason.clone().filter(|_| f.count > 0),
        timestamp: f.timestamp.clone().filter(|_| f.count > 0),
    };
    let (reason, declaration_id) = match &su.reason {
        Some((r, id)) => (vec![r.clone()], id.clone().filter(|_| r == "declaration")),
        None => (Vec::new(), None),
    };
    let to_value = |v: &dyn erased::Value| v.value();
    let software_update = serde_json::Map::from_iter([
        ("install-state".to_owned(), to_value(&su.state)),
        (
            "pending-version".to_owned(),
            to_value(&PendingVersionItem {
                os_version,
                build_version,
                target_local_date_time: deadline,
            }),
        ),
        ("failure-reason".to_owned(), to_value(&failure)),
        (
            "install-reason".to_owned(),
            to_value(&InstallReasonItem {
                reason,
                declaration_id,
            }),
        ),
    ]);
    let identity = device.info().identity();
    let inputs = items::Inputs {
        facts,
        identity: &identity,
        build: snapshot.base.build.to_string(),
        supplemental_build: snapshot.supplemental_build(),
        extra: snapshot.extra(),
        declarations: Some(to_value(&declarations_item(&policy))),
        software_update: Some(software_update),
    };
    let wanted = |name: &str| {
        scope == Scope::All
            || items::IMPLICIT.contains(&name)
            || policy.subscriptions.contains(name)
    };
    let items = items::ITEMS
        .iter()
        .filter(|i| i.support.allows(&facts) && wanted(i.name))
        .filter_map(|i| Some((i.name, (i.value)(&inputs)?)))
        .collect();
    Ok((
        StatusReport {
            items,
            full_report: support::full_report(&facts).then_some(true),
        },
        policy,
    ))
}

/// Serialising the typed item values into the report's JSON.
mod erased {
    pub(super) trait Value {
        fn value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Value for T {
        fn value(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
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
                ("device.operating-system.version", Value::from("26.3.1")),
                ("softwareupdate.install-state", Value::from("prepared")),
            ]),
            full_report: Some(true),
        };
        let mut delivered = report.digests();
        let none = changes(&report, Some(&delivered));
        assert!(none.items.is_empty());
        assert_eq!(none.full_report, Some(false));
        delivered.insert(
            "softwareupdate.install-state".into(),
            digest(&Value::from("none")),
        );
        let one = changes(&report, Some(&delivered));
        assert_eq!(
            one.items.keys().copied().collect::<Vec<_>>(),
            ["softwareupdate.install-state"]
        );
        assert_eq!(changes(&report, None), report);
    }
}
