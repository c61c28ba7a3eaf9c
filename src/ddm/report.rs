//! `bsi report`: a DDM `StatusReport` (`StatusItems` nested by the dotted item names, `Errors`,
//! `FullReport`) with the operating-system items and the software-update items, shaped like the
//! reports real devices send (`reference/status-report-macos-13.3.1-a.json`): `build-version`
//! stays the base build while a response is active, and `supplemental.extra-version` is `(a)`.
//!
//! This module also keeps the two small records the software-update items need: the failure
//! record (`failure.json`: how often the current install failed, why, when) and the install
//! reason (`install-reason.json`: `command-line`, `auto-update` or `declaration`, with the
//! declaration's identifier).

use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::device::layout::{FAILURE_RECORD, INSTALL_REASON_RECORD};
use crate::device::records::{Failure, InstallReason};
use crate::device::{Device, records};
use crate::lifecycle::apply::ApplyOutcome;
use crate::status;
use crate::status::model::StagedAction;
use crate::{Error, Result};

/// Records a failed install attempt of `target`.
pub fn record_failure_of(
    device: &Device,
    clock: &Clock,
    target: Option<&str>,
    error: &Error,
) -> Result<()> {
    let old: Failure = records::read_json_opt(device.root(), FAILURE_RECORD)?.unwrap_or_default();
    let count = if old.target.as_deref() == target {
        old.count + 1
    } else {
        1
    };
    records::write_json(
        device.root(),
        FAILURE_RECORD,
        &Failure {
            count,
            reason: Some(error.to_string()),
            timestamp: Some(clock.stamp()),
            target: target.map(str::to_owned),
        },
    )
}

/// Records a failed `apply`.
/// Records what a command-line `bsi apply` means for the software-update items: an install
/// clears the failure record and makes `command-line` the install reason; a power or policy
/// refusal counts as a failed attempt. Nothing to do, and any other refusal (a bad bundle, a
/// response that does not apply), leaves both records as they were.
pub fn record_apply(device: &Device, clock: &Clock, result: &Result<ApplyOutcome>) -> Result<()> {
    match result {
        Ok(outcome) if outcome.action.installs() => {
            record_success(device, Some(&outcome.version), Trigger::CommandLine)
        }
        Err(error) if matches!(error.exit_code(), 3 | 4) => {
            record_failure_of(device, clock, None, error)
        }
        Ok(_) | Err(_) => Ok(()),
    }
}

/// What triggered an install, in the terms of `softwareupdate.install-reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `bsi apply`.
    CommandLine,
    /// Automatic install in `bsi auto`.
    AutoUpdate,
    /// An enforcement declaration, by identifier.
    Declaration(String),
}

/// Records a successful install: clears the failure record and keeps the install reason.
pub fn record_success(device: &Device, target: Option<&str>, trigger: Trigger) -> Result<()> {
    let root = device.root();
    root.remove_durable(FAILURE_RECORD)
        .map_err(|e| Error::io("removing", root.show(FAILURE_RECORD), e))?;
    let (reason, declaration_id) = match trigger {
        Trigger::CommandLine => ("command-line", None),
        Trigger::AutoUpdate => ("auto-update", None),
        Trigger::Declaration(id) => ("declaration", Some(id)),
    };
    let reason = InstallReason {
        reason: reason.to_owned(),
        declaration_id,
        target: target.map(str::to_owned),
    };
    records::write_json(root, INSTALL_REASON_RECORD, &reason)
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

/// Builds the status report.
pub fn build(device: &Device) -> Result<Value> {
    // Everything comes from the status the device reports, so the two cannot disagree.
    let s = status::collect(device)?;
    let failure: Failure =
        records::read_json_opt(device.root(), FAILURE_RECORD)?.unwrap_or_default();
    let reason: Option<InstallReason> =
        records::read_json_opt(device.root(), INSTALL_REASON_RECORD)?;
    let mut items = Map::new();
    for (name, value) in s.ddm.items() {
        insert(
            &mut items,
            name,
            value.map_or(Value::Null, |v| Value::String(v.to_owned())),
        );
    }
    insert(
        &mut items,
        "device.operating-system.family",
        Value::String(s.device.platform.to_string()),
    );
    let (state, pending) = match &s.staged {
        Some(st) if st.action == StagedAction::Install => {
            ("prepared", Some((st.version.clone(), st.build.clone())))
        }
        // A staged removal: what is pending is the base itself.
        Some(_) => ("prepared", Some((s.os.version.clone(), s.os.build.clone()))),
        None if failure.count > 0 => ("failed", failure.target.clone().map(|t| (t, String::new()))),
        None => ("none", None),
    };
    insert(
        &mut items,
        "softwareupdate.install-state",
        Value::String(state.to_owned()),
    );
    let (os_version, build_version) = pending.unwrap_or_default();
    insert(
        &mut items,
        "softwareupdate.pending-version",
        json!({"os-version": os_version, "build-version": build_version}),
    );
    let mut failure_item = Map::new();
    failure_item.insert("count".into(), json!(failure.count));
    if failure.count > 0 {
        if let Some(r) = &failure.reason {
            failure_item.insert("reason".into(), json!(r));
        }
        if let Some(t) = &failure.timestamp {
            failure_item.insert("timestamp".into(), json!(t));
        }
    }
    insert(
        &mut items,
        "softwareupdate.failure-reason",
        Value::Object(failure_item),
    );
    let current: Vec<&str> = [
        s.active.as_ref().map(|a| a.version.as_str()),
        s.staged
            .as_ref()
            .filter(|st| st.action == StagedAction::Install)
            .map(|st| st.version.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut reason_item = Map::new();
    match reason.filter(|r| r.target.as_deref().is_some_and(|t| current.contains(&t))) {
        Some(r) => {
            reason_item.insert("reason".into(), json!([r.reason]));
            if let Some(id) = r.declaration_id {
                reason_item.insert("declaration-id".into(), json!(id));
            }
        }
        None => {
            reason_item.insert("reason".into(), json!([]));
        }
    }
    insert(
        &mut items,
        "softwareupdate.install-reason",
        Value::Object(reason_item),
    );
    Ok(json!({
        "StatusItems": Value::Object(items),
        "Errors": [],
        "FullReport": true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_dotted_names() {
        let mut m = Map::new();
        insert(&mut m, "device.operating-system.version", json!("26.3.1"));
        insert(
            &mut m,
            "device.operating-system.supplemental.extra-version",
            json!("(a)"),
        );
        insert(&mut m, "softwareupdate.install-state", json!("none"));
        assert_eq!(
            Value::Object(m),
            json!({"device": {"operating-system": {"version": "26.3.1", "supplemental": {"extra-version": "(a)"}}}, "softwareupdate": {"install-state": "none"}})
        );
    }
}
