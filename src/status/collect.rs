//! Builds [`Status`] from the device's records: the links and `SystemVersion.plist` files (via
//! [`Device::snapshot`]), the power, settings, declarations, included and last-operation records.

use std::collections::BTreeMap;

use super::model::{
    AutoSourceStatus, AutomaticInstallStatus, DdmStatus, DeclarationStatus, DeviceStatus,
    InstallFailure, LastOperationStatus, OsStatus, PolicyStatus, PowerStatus, RecoveryAction,
    RecoveryPending, ResponseStatus, RollbackStatus, SCHEMA_VERSION, SafariStatus, StagedAction,
    StagedStatus, Status,
};
use crate::device::layout::INCLUDED_RECORD;
use crate::device::records::Included;
use crate::device::{
    Cryptex, Device, DeviceInfo, Platform, Power, Present, Snapshot, Source, Staged, records,
};
use crate::gates::policy::{AutoSource, Policy};
use crate::gates::power;
use crate::lifecycle::journal::BaseChange;
use crate::{Error, Result, history};

fn sources(sources: &BTreeMap<Cryptex, Source>) -> BTreeMap<String, String> {
    sources
        .iter()
        .map(|(c, s)| (c.to_string(), s.version.clone()))
        .collect()
}

fn response(p: &Present) -> ResponseStatus {
    ResponseStatus {
        version: p.version.to_string(),
        extra: p.version.extra.to_string(),
        build: p.build.to_string(),
        cryptexes: p.cryptexes.iter().map(ToString::to_string).collect(),
        sources: sources(&p.sources),
    }
}

/// Why `bsi rollback` would be refused now, if it would.
#[must_use]
pub(crate) fn rollback_refusal(snapshot: &Snapshot, policy: &Policy) -> Option<String> {
    if let Some(id) = &policy.rollback_blocked_by {
        return Some(format!(
            "removal is turned off by declaration {id} (RapidSecurityResponse.EnableRollback = false)"
        ));
    }
    match (&snapshot.active, &snapshot.staged) {
        (_, Some(Staged::Install(_))) | (Some(_), None) => None,
        (Some(a), Some(Staged::Remove)) => Some(format!(
            "the removal of {} is already staged; restart to complete it",
            a.version
        )),
        (None, _) => Some("no response is active or staged".to_owned()),
    }
}

/// What Safari uses.
pub(crate) fn safari(device: &Device, snapshot: &Snapshot) -> Result<Option<SafariStatus>> {
    Ok(
        crate::lifecycle::safari::uses(device, snapshot)?.map(|u| SafariStatus {
            version: u.version,
            relaunched: u.relaunched,
        }),
    )
}

/// What Safari uses when its record cannot be read: the active content.
fn safari_default(device: &Device, snapshot: &Snapshot) -> Option<SafariStatus> {
    (device.info().platform == Platform::MacOs).then(|| SafariStatus {
        version: snapshot.version_label(),
        relaunched: false,
    })
}

/// The responses the current base includes.
pub(crate) fn included(device: &Device, snapshot: &Snapshot) -> Result<Vec<String>> {
    let record: Option<Included> = records::read_json_opt(device.root(), INCLUDED_RECORD)?;
    Ok(match record {
        Some(r) if r.base == snapshot.base.to_string() => r.versions,
        _ => Vec::new(),
    })
}

/// A secondary record's value, or its default when the record is damaged: `status` still
/// answers, and says what is damaged and which command fixes it.
fn lenient<T: Default>(read: Result<T>, notes: &mut Vec<String>) -> Result<T> {
    match read {
        Ok(v) => Ok(v),
        Err(e @ Error::Damaged { .. }) => {
            notes.push(format!("{e}; `bsi repair` rebuilds it"));
            Ok(T::default())
        }
        Err(e) => Err(e),
    }
}

/// How often a reader reads again when a change in flight made the state disagree with itself.
const RETRIES: u32 = 100;

/// Collects the status of `device`. A reader holds no lock: when a change switches state while
/// this reads (one link already moved, a generation already gone), the parts disagree; then it
/// reads again, so what it returns is always one committed state.
pub(crate) fn collect(device: &Device) -> Result<Status> {
    collect_with_snapshot(device).map(|(s, _)| s)
}

/// [`collect`], with the typed snapshot the status was made from (for `--require`).
pub(crate) fn collect_with_snapshot(device: &Device) -> Result<(Status, Snapshot)> {
    collect_all(device).map(|(s, snapshot, _)| (s, snapshot))
}

/// [`collect`], with the snapshot and the management policy the status was made from (for the
/// report, which needs all three and should not read them twice).
pub(crate) fn collect_all(device: &Device) -> Result<(Status, Snapshot, Policy)> {
    let mut attempt = 0;
    loop {
        match collect_once(device) {
            Ok(s) => return Ok(s),
            Err(_) if attempt < RETRIES && device.operation().is_some() => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

fn collect_once(device: &Device) -> Result<(Status, Snapshot, Policy)> {
    let operation = device.operation();
    let (committed, recovery_pending) = pending_recovery(device, operation.is_some())?;
    let info = device.info();
    // A committed update cut short is the new base already: recovery only completes it. Report
    // the state its completion gives, whatever files it had switched.
    let snapshot = match &committed {
        Some(c) => device.snapshot_committed(c.version.parse()?, c.build.parse()?)?,
        None => device.snapshot()?,
    };
    // I2: what is reported as active is what the links resolve to; a link bsi did not make
    // means it is not.
    device.check_links()?;
    let policy = crate::gates::policy::of_with(device, &snapshot)?;
    let power_record = device.power()?;
    let rollback_reason = rollback_refusal(&snapshot, &policy);
    let mut notes = Vec::new();
    let last_operation = lenient(history::last(device.root()), &mut notes)?;
    let included = match &committed {
        Some(c) if c.build == snapshot.base.build.as_str() => c.included.clone(),
        _ => lenient(included(device, &snapshot), &mut notes)?,
    };
    let safari = match safari(device, &snapshot) {
        Err(e @ Error::Damaged { .. }) => {
            notes.push(format!("{e}; `bsi repair` rebuilds it"));
            safari_default(device, &snapshot)
        }
        other => other?,
    };
    policy_notes(&policy, &mut notes);
    let status = Status {
        schema_version: SCHEMA_VERSION,
        device: DeviceStatus {
            platform: info.platform,
            chip: info.chip,
            portable: info.portable,
            supervised: info.supervised,
            enrollment_id: info.enrollment().to_owned(),
        },
        os: OsStatus {
            version: snapshot.base.version.to_string(),
            build: snapshot.base.build.to_string(),
        },
        active: snapshot.active.as_ref().map(response),
        staged: staged_status(&snapshot),
        restart_required: snapshot.staged.is_some(),
        safari,
        rollback: RollbackStatus {
            available: rollback_reason.is_none(),
            reason: rollback_reason,
        },
        included,
        power: power_status(info, power_record),
        automatic_install: automatic_status(&policy),
        policy: policy_status(info, &policy),
        last_operation: last_operation.map(|l| LastOperationStatus {
            action: l.action,
            result: l.result,
            error: l.error,
            exit_code: l.exit_code,
            at: l.at,
        }),
        ddm: DdmStatus {
            version: snapshot.base.version.to_string(),
            build_version: snapshot.base.build.to_string(),
            supplemental_build_version: snapshot.supplemental_build(),
            supplemental_extra_version: snapshot.extra(),
        },
        prompt: match &snapshot.staged {
            Some(Staged::Install(p)) => Some(format!(
                "restart to finish installing {}: `bsi restart`",
                p.version
            )),
            _ => None,
        },
        notes,
        version: snapshot.version_label(),
        operation,
        recovery_pending,
        install_failure: install_failure(device),
        mdm: mdm_status(device)?,
    };
    Ok((status, snapshot, policy))
}

/// An operation cut short, waiting for recovery (none while a changer is at work: `busy`):
/// the base change it committed, if any, and what recovery will do.
fn pending_recovery(
    device: &Device,
    busy: bool,
) -> Result<(Option<BaseChange>, Option<RecoveryPending>)> {
    let journal = if busy {
        None
    } else {
        crate::lifecycle::journal::read(device)?
    };
    let committed = journal.as_ref().and_then(|j| j.commit.clone());
    let recovery_pending = if busy {
        None
    } else {
        journal.map(|j| RecoveryPending {
            command: j.op,
            pid: j.pid,
            started_at: j.started,
            will: if j.commit.is_some() {
                RecoveryAction::Complete
            } else {
                RecoveryAction::Tidy
            },
        })
    };
    Ok((committed, recovery_pending))
}

/// What is staged for the next restart.
fn staged_status(snapshot: &Snapshot) -> Option<StagedStatus> {
    match &snapshot.staged {
        None => None,
        Some(Staged::Install(p)) => Some(StagedStatus {
            action: StagedAction::Install,
            version: p.version.to_string(),
            extra: p.version.extra.to_string(),
            build: p.build.to_string(),
            sources: sources(&p.sources),
        }),
        Some(Staged::Remove) => snapshot.active.as_ref().map(|a| StagedStatus {
            action: StagedAction::Remove,
            version: a.version.to_string(),
            extra: a.version.extra.to_string(),
            build: a.build.to_string(),
            sources: snapshot
                .staged_sources
                .as_ref()
                .map(sources)
                .unwrap_or_default(),
        }),
    }
}

/// The power record and the rule the power gate applies.
fn power_status(info: &DeviceInfo, record: Power) -> PowerStatus {
    let rule = power::rule(info);
    PowerStatus {
        on_ac: record.on_ac,
        battery_percent: record.battery_percent,
        minimum_percent: rule.minimum,
        ok: power::passes(info, record),
        reason: rule.why.to_owned(),
    }
}

/// Whether responses install automatically, and who decided.
fn automatic_status(policy: &Policy) -> AutomaticInstallStatus {
    AutomaticInstallStatus {
        enabled: policy.automatic,
        source: match policy.automatic_source {
            AutoSource::User => AutoSourceStatus::User,
            AutoSource::Policy { .. } => AutoSourceStatus::Policy,
        },
        declaration: match &policy.automatic_source {
            AutoSource::User => None,
            AutoSource::Policy { identifier } => Some(identifier.clone()),
        },
    }
}

/// The management policy in effect, and each declaration's part in it.
fn policy_status(info: &DeviceInfo, policy: &Policy) -> PolicyStatus {
    PolicyStatus {
        supervised: info.supervised,
        user_install_allowed: policy.install_blocked_by.is_none(),
        rollback_allowed: policy.rollback_blocked_by.is_none(),
        declarations: policy
            .declarations
            .iter()
            .map(|c| DeclarationStatus {
                identifier: c.state.declaration.identifier.clone(),
                kind: c.state.declaration.kind.clone(),
                server_token: c.state.declaration.server_token.clone(),
                active: c.state.active,
                valid: c.state.valid,
                reasons: c.state.reasons.clone(),
                honored: c.honored,
                note: c.note.clone(),
                unknown_keys: c.state.declaration.unknown_keys.clone(),
            })
            .collect(),
    }
}

/// The last failed install, while it is the last word on the install.
fn install_failure(device: &Device) -> Option<InstallFailure> {
    records::read_json_lenient::<crate::device::records::Failure>(
        device.root(),
        crate::device::layout::FAILURE_RECORD,
    )
    .filter(|f| f.count > 0)
    .map(|f| InstallFailure {
        count: f.count,
        target: f.target,
        reason: f.reason,
        error_domain: f.error_domain,
        error_code: f.error_code,
        at: f.timestamp,
    })
}

/// The MDM enrollment, if the device is enrolled.
fn mdm_status(device: &Device) -> Result<Option<crate::status::model::MdmEnrollment>> {
    Ok(
        crate::device::enrollment::load(device)?.map(|e| crate::status::model::MdmEnrollment {
            server_url: e.server_url,
            checkin_url: e.checkin_url,
            topic: e.topic,
            udid: e.udid,
            sign_message: e.sign_message,
            identity: e.identity,
            enrolled_at: e.enrolled_at,
            last_checkin: e.last_checkin,
        }),
    )
}

/// What the policy says that people should know: a deferral, and declarations not honored.
fn policy_notes(policy: &Policy, notes: &mut Vec<String>) {
    if let Some((key, days, id)) = &policy.deferral {
        notes.push(format!(
            "{key} = {days} (declaration {id}) defers OS updates; responses ignore deferrals, but each applies only to the latest minor version, so a response for a deferred minor update waits until that update is installed"
        ));
    }
    for c in policy.declarations.iter().filter(|c| !c.honored) {
        notes.push(format!(
            "declaration {}: {}",
            c.state.declaration.identifier, c.note
        ));
    }
}
