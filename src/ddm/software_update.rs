//! The software-update status items (`softwareupdate.install-state`, `pending-version`,
//! `install-reason`, `failure-reason`) as they move through an install, and the two records they
//! come from: `install-reason.json` (the install the device works on and why; written by `apply`
//! before it stages, and by a background pass that wants a response it cannot stage yet) and
//! `failure.json` (failed attempts, cleared by the next success).
//!
//! The states (docs/design.md, "The install-state lifecycle"):
//!
//! | state | when |
//! | --- | --- |
//! | `none` | nothing pending, and the last install succeeded (or there was none) |
//! | `waiting` | a background pass wants a response it has not staged yet (waiting for power before a deadline): waiting to start |
//! | `downloading` | an install is copying its payload (phase `staging`) |
//! | `prepared` | a response is staged, waiting for the restart |
//! | `installing` | an install or restart is switching generations (phase `switching`, visible to readers while it runs) |
//! | `failed` | the last attempt at the pending install failed (`failure-reason` says why and how often) |
//!
//! A staged removal is not a pending update. `pending-version` is filled (both keys) whenever
//! something is pending, else both keys are `""`; `install-reason` lists why while something is
//! pending, else it is empty.

use serde::Serialize;

use crate::clock::Clock;
use crate::device::layout::{FAILURE_RECORD, INSTALL_REASON_RECORD};
use crate::device::records::{self, Failure, InstallReason, InstallTrigger};
use crate::device::{Device, Holder};
use crate::status::model::{StagedAction, Status};
use crate::version::ResponseVersion;
use crate::{Error, ErrorKind, Result};

/// `softwareupdate.install-state`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum InstallState {
    /// Nothing pending.
    None,
    /// Waiting to start (wanted, not staged yet).
    Waiting,
    /// Fetching or copying the pending response.
    Downloading,
    /// Staged, waiting for the restart.
    Prepared,
    /// Switching to it.
    Installing,
    /// The last attempt failed.
    Failed,
}

impl InstallState {
    /// Apple's name (`none`, `waiting`, ...).
    #[must_use]
    pub(crate) const fn name(self) -> &'static str {
        match self {
            InstallState::None => "none",
            InstallState::Waiting => "waiting",
            InstallState::Downloading => "downloading",
            InstallState::Prepared => "prepared",
            InstallState::Installing => "installing",
            InstallState::Failed => "failed",
        }
    }
}

/// The pending response: version and supplemental build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    /// e.g. `26.3.1 (a)`.
    pub version: String,
    /// e.g. `25D771280a`.
    pub build: String,
}

/// The software-update state of a device.
#[derive(Clone, Debug)]
pub(crate) struct SoftwareUpdate {
    /// The install state.
    pub state: InstallState,
    /// What is pending.
    pub pending: Option<Pending>,
    /// Why (`install-reason`) and the declaration, while something is pending.
    pub reason: Option<(String, Option<String>)>,
    /// The failures of the pending install (count 0 when none).
    pub failure: Failure,
}

/// Reads a secondary record leniently: a damaged one reads as absent (`verify` names it and
/// `bsi repair` removes it).
fn lenient<T: serde::de::DeserializeOwned>(device: &Device, rel: &str) -> Option<T> {
    records::read_json_lenient(device.root(), rel)
}

fn is_stale(target: &str, status: &Status) -> bool {
    if status.active.as_ref().is_some_and(|a| a.version == target) {
        return true;
    }
    if status.included.iter().any(|v| v == target) {
        return true;
    }
    let Ok(base) = status.os.version.parse::<crate::version::OsVersion>() else {
        return true;
    };
    // A response of an older base is gone with it; one for a later version (an enforcement
    // that updates the base first) is still ahead, as is a later OS version.
    match target.parse::<ResponseVersion>() {
        Ok(t) => t.os < base,
        Err(_) => target
            .parse::<crate::version::OsVersion>()
            .map_or(true, |v| v <= base),
    }
}

/// The state `status` and the records show.
#[must_use]
pub(crate) fn derive(device: &Device, status: &Status) -> SoftwareUpdate {
    let intent: Option<InstallReason> = lenient(device, INSTALL_REASON_RECORD);
    let failure: Failure = lenient(device, FAILURE_RECORD).unwrap_or_default();
    derive_from(status, intent.as_ref(), failure)
}

fn from_intent(r: &InstallReason) -> Option<Pending> {
    Some(Pending {
        version: r.target.clone()?,
        build: r.build.clone()?,
    })
}

fn derive_from(
    status: &Status,
    intent: Option<&InstallReason>,
    failure: Failure,
) -> SoftwareUpdate {
    let live_intent = intent.filter(|r| r.target.as_deref().is_some_and(|t| !is_stale(t, status)));
    let staged = status
        .staged
        .as_ref()
        .filter(|s| s.action == StagedAction::Install)
        .map(|s| Pending {
            version: s.version.clone(),
            build: s.build.clone(),
        });
    let running: Option<&Holder> = status.operation.as_ref();
    // What a running install says it installs (the lock holder's target, which `apply` sets
    // whoever runs it: `apply`, `auto`, `sync --then-auto`).
    let announced = running.and_then(|h| {
        Some(Pending {
            version: h.target.clone()?,
            build: h.target_build.clone()?,
        })
    });
    let (mut state, mut pending) = match running.map(|h| (h.command.as_str(), h.phase.as_str())) {
        Some((_, "staging")) if announced.is_some() => (InstallState::Downloading, announced),
        Some((_, "switching")) if announced.is_some() => (InstallState::Installing, announced),
        // A restart into what is staged (the user's, or a passed deadline's in a background
        // pass) announces no target of its own.
        Some(("restart" | "auto" | "sync", "switching")) if staged.is_some() => {
            (InstallState::Installing, staged.clone())
        }
        _ => match (&staged, live_intent) {
            (Some(p), _) => (InstallState::Prepared, Some(p.clone())),
            (None, Some(r)) if r.wanted => (InstallState::Waiting, from_intent(r)),
            _ => (InstallState::None, None),
        },
    };
    // Failures count against a pending install (Apple: 0 when nothing is pending).
    let failure = match failure.target.as_deref() {
        Some(t) if !is_stale(t, status) => failure,
        _ => Failure::default(),
    };
    if failure.count > 0 && state != InstallState::Installing {
        state = InstallState::Failed;
        if pending.is_none() {
            pending = match (&failure.target, &failure.build) {
                (Some(v), Some(b)) => Some(Pending {
                    version: v.clone(),
                    build: b.clone(),
                }),
                _ => None,
            };
        }
    }
    let reason = pending.as_ref().map(|p| {
        if let Some(h) = running.filter(|h| h.target.as_deref() == Some(p.version.as_str()))
            && let Some(r) = &h.target_reason
        {
            return (r.clone(), h.target_declaration.clone());
        }
        match intent.filter(|r| r.target.as_deref() == Some(p.version.as_str())) {
            Some(r) => (r.reason.clone(), r.declaration_id.clone()),
            // A response staged before bsi kept intents: someone ran `bsi apply`.
            None => (InstallTrigger::CommandLine.name().to_owned(), None),
        }
    });
    SoftwareUpdate {
        state,
        pending,
        reason,
        failure,
    }
}

/// The `error-domain` of a failed install: `bsi.` and the error's `kind` (`bsi.power`,
/// `bsi.policy`, `bsi.io`, ...), the same name `--json` errors carry.
fn domain_of(error: &Error) -> String {
    let kind = serde_json::to_value(error.kind())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("bsi.{kind}")
}

/// Records a failed attempt at installing `target` (version, build) when known.
pub(crate) fn record_failure(
    device: &Device,
    clock: &Clock,
    target: Option<(&str, &str)>,
    error: &Error,
) -> Result<()> {
    let old: Failure = lenient(device, FAILURE_RECORD).unwrap_or_default();
    let version = target.map(|(v, _)| v.to_owned());
    let count = if old.target == version {
        old.count + 1
    } else {
        1
    };
    records::write_json(
        device.root(),
        FAILURE_RECORD,
        &Failure {
            count,
            reason: Some(crate::untrusted::clip_message(&error.to_string(), 1024)),
            timestamp: Some(clock.stamp()),
            target: version,
            build: target.map(|(_, b)| b.to_owned()),
            error_domain: Some(domain_of(error)),
            error_code: Some(i64::from(error.exit_code())),
        },
    )
}

/// Records a successful install: the failure record goes.
pub(crate) fn record_success(device: &Device) -> Result<()> {
    let root = device.root();
    root.remove_durable(FAILURE_RECORD)
        .map(drop)
        .map_err(|e| Error::io("removing", root.show(FAILURE_RECORD), e))
}

/// Records that a background pass wants `target` (version, build) but has not staged it.
pub(crate) fn record_wanted(
    device: &Device,
    trigger: InstallTrigger,
    declaration: Option<&str>,
    target: (&str, &str),
) -> Result<()> {
    records::write_json(
        device.root(),
        INSTALL_REASON_RECORD,
        &InstallReason {
            reason: trigger.name().to_owned(),
            declaration_id: declaration.map(str::to_owned),
            target: Some(target.0.to_owned()),
            build: Some(target.1.to_owned()),
            wanted: true,
        },
    )
}

/// Is a "wanted" record present (for a pass that no longer wants anything)?
#[must_use]
pub(crate) fn wanted(device: &Device) -> Option<InstallReason> {
    lenient::<InstallReason>(device, INSTALL_REASON_RECORD).filter(|r| r.wanted)
}

/// Drops the "wanted" record.
pub(crate) fn forget_wanted(device: &Device) -> Result<()> {
    let root = device.root();
    root.remove_durable(INSTALL_REASON_RECORD)
        .map(drop)
        .map_err(|e| Error::io("removing", root.show(INSTALL_REASON_RECORD), e))
}

/// What a command-line `bsi apply` means for the records: an install clears the failure
/// record; an install that started (it announced its target) and then failed (I/O, no space)
/// counts as a failure of that install. A refused request (by policy, the power gate, a bad or
/// inapplicable bundle) is no install failure: nothing was pending.
pub(crate) fn record_apply(
    device: &Device,
    clock: &Clock,
    result: &Result<crate::lifecycle::apply::ApplyOutcome>,
) -> Result<()> {
    match result {
        Ok(outcome) if outcome.action.installs() => record_success(device),
        Err(error) if matches!(error.kind(), ErrorKind::Io | ErrorKind::NoSpace) => {
            match device.announced_target() {
                Some((version, build)) => {
                    record_failure(device, clock, Some((&version, &build)), error)
                }
                None => Ok(()),
            }
        }
        Ok(_) | Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: serde_json::Value) -> Status {
        serde_json::from_value(json).unwrap()
    }

    fn base_status() -> serde_json::Value {
        serde_json::json!({
            "schema_version": 1,
            "device": {"platform": "macOS", "chip": "apple-silicon", "portable": true, "supervised": true, "enrollment_id": "E"},
            "os": {"version": "26.3.1", "build": "25D5"},
            "active": null, "staged": null, "restart_required": false, "safari": null,
            "rollback": {"available": false, "reason": "nothing"}, "included": [],
            "power": {"on_ac": true, "battery_percent": 80, "minimum_percent": 20, "ok": true, "reason": ""},
            "automatic_install": {"enabled": true, "source": "user", "declaration": null},
            "policy": {"supervised": true, "user_install_allowed": true, "rollback_allowed": true, "declarations": []},
            "last_operation": null,
            "ddm": {"device.operating-system.version": "26.3.1", "device.operating-system.build-version": "25D5",
                    "device.operating-system.supplemental.build-version": "25D5", "device.operating-system.supplemental.extra-version": ""},
            "notes": [], "version": "26.3.1", "operation": null, "recovery_pending": null, "prompt": null
        })
    }

    fn intent(wanted: bool) -> InstallReason {
        InstallReason {
            reason: "declaration".into(),
            declaration_id: Some("e".into()),
            target: Some("26.3.1 (a)".into()),
            build: Some("25D5a".into()),
            wanted,
        }
    }

    #[test]
    fn states_follow_the_install() {
        let s = status(base_status());
        let none = derive_from(&s, None, Failure::default());
        assert_eq!(
            (none.state, none.pending, none.reason),
            (InstallState::None, None, None)
        );
        let wanted = derive_from(&s, Some(&intent(true)), Failure::default());
        // Wanted, not staged yet: waiting to start.
        assert_eq!(wanted.state, InstallState::Waiting);
        assert_eq!(wanted.pending.unwrap().build, "25D5a");
        assert_eq!(wanted.reason.unwrap().1.as_deref(), Some("e"));
        // An intent left by an interrupted command is not a pending install.
        assert_eq!(
            derive_from(&s, Some(&intent(false)), Failure::default()).state,
            InstallState::None
        );
        let mut staged = base_status();
        staged["staged"] = serde_json::json!({"action": "install", "version": "26.3.1 (a)", "extra": "(a)", "build": "25D5a", "sources": {}});
        let prepared = derive_from(
            &status(staged.clone()),
            Some(&intent(false)),
            Failure::default(),
        );
        assert_eq!(prepared.state, InstallState::Prepared);
        staged["operation"] = serde_json::json!({"command": "restart", "pid": 1, "started_at": "", "phase": "switching"});
        assert_eq!(
            derive_from(&status(staged), None, Failure::default()).state,
            InstallState::Installing
        );
        // A background pass inside `sync --then-auto` staging a response is downloading it.
        let mut syncing = base_status();
        syncing["operation"] = serde_json::json!({"command": "sync", "pid": 1, "started_at": "", "phase": "staging", "target": "26.3.1 (a)", "target_build": "25D5a", "target_reason": "declaration", "target_declaration": "e"});
        let downloading = derive_from(&status(syncing), None, Failure::default());
        assert_eq!(downloading.state, InstallState::Downloading);
        assert_eq!(downloading.reason.unwrap().1.as_deref(), Some("e"));
        let failed = derive_from(
            &s,
            Some(&intent(true)),
            Failure {
                count: 2,
                target: Some("26.3.1 (a)".into()),
                build: Some("25D5a".into()),
                ..Failure::default()
            },
        );
        assert_eq!(
            (failed.state, failed.failure.count),
            (InstallState::Failed, 2)
        );
        let mut active = base_status();
        active["active"] = serde_json::json!({"version": "26.3.1 (a)", "extra": "(a)", "build": "25D5a", "cryptexes": ["OS"], "sources": {}});
        let done = derive_from(
            &status(active),
            Some(&intent(false)),
            Failure {
                count: 2,
                target: Some("26.3.1 (a)".into()),
                build: Some("25D5a".into()),
                ..Failure::default()
            },
        );
        assert_eq!(
            (done.state, done.pending, done.failure.count),
            (InstallState::None, None, 0)
        );
    }
}
