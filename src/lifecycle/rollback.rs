//! `bsi rollback` (remove): a staged, not yet active response is discarded at once; an active
//! one is marked for removal (`cryptex1/proposed` names the base generation) and the device
//! returns to the base at the next restart, after which the response can be applied again.

use super::journal::Tx;
use crate::Result;
use crate::device::layout::SAFARI_RECORD;
use crate::device::{GenName, Snapshot, Staged};
use crate::error::IoContext;

use super::restart;
use crate::human::{Human, Text};

/// What `rollback` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RollbackAction {
    /// A staged install was discarded.
    DiscardedStaged,
    /// The active response is marked for removal at the next restart.
    RemovalStaged,
    /// Removed, with `--restart`.
    Removed,
    /// The removal was already staged.
    AlreadyStaged,
    /// No response was active or staged: nothing to remove.
    NothingToRemove,
}

/// The outcome of `rollback`.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct RollbackOutcome {
    /// What happened.
    pub action: RollbackAction,
    /// The response concerned.
    pub version: String,
    /// A restart is needed to complete it.
    pub restart_required: bool,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
    /// One sentence for people.
    pub message: String,
}

/// Removes a response.
pub(crate) fn rollback(
    tx: &mut Tx<'_>,
    restart_now: bool,
    dry_run: bool,
) -> Result<RollbackOutcome> {
    let device = tx.device();
    let root = device.root();
    let layout = device.layout();
    let snapshot = device.snapshot()?;
    let policy = crate::gates::policy::of_with(device, &snapshot)?;
    crate::gates::policy::check_rollback(&policy)?;
    let outcome = |action, version: String, restart_required, message| RollbackOutcome {
        action,
        version,
        restart_required,
        dry_run,
        message,
    };
    match (&snapshot.staged, &snapshot.active) {
        (Some(Staged::Install(p)), _) => {
            let v = p.version.to_string();
            if !dry_run {
                tx.begin()?;
                root.remove_durable(layout.proposed())
                    .ctx("removing", root.show(layout.proposed()))?;
                root.remove_durable(SAFARI_RECORD)
                    .ctx("removing", root.show(SAFARI_RECORD))?;
                tx.clean_up(&snapshot.base.build);
            }
            let verb = if dry_run {
                "would discard"
            } else {
                "discarded"
            };
            Ok(outcome(
                RollbackAction::DiscardedStaged,
                v.clone(),
                false,
                format!(
                    "{verb} the staged {v}; the device still runs {}",
                    snapshot.version_label()
                ),
            ))
        }
        (Some(Staged::Remove), Some(a)) => {
            let v = a.version.to_string();
            if restart_now {
                let r = restart::restart(tx, dry_run)?;
                return Ok(outcome(RollbackAction::Removed, v, false, r.message));
            }
            Ok(outcome(
                RollbackAction::AlreadyStaged,
                v.clone(),
                true,
                format!("the removal of {v} is already staged; restart to complete it"),
            ))
        }
        (None, Some(a)) => {
            remove_active(tx, &snapshot, &a.version.to_string(), restart_now, dry_run)
        }
        (_, None) => Ok(outcome(
            RollbackAction::NothingToRemove,
            snapshot.base.version.to_string(),
            false,
            format!(
                "nothing to remove: no response is active or staged; the device runs {}",
                snapshot.base.version
            ),
        )),
    }
}

/// Stages the removal of the active response `v`, and restarts into the base when asked.
fn remove_active(
    tx: &mut Tx<'_>,
    snapshot: &Snapshot,
    v: &str,
    restart_now: bool,
    dry_run: bool,
) -> Result<RollbackOutcome> {
    let device = tx.device();
    let root = device.root();
    let layout = device.layout();
    let outcome = |action, version: String, restart_required, message| RollbackOutcome {
        action,
        version,
        restart_required,
        dry_run,
        message,
    };
    if dry_run {
        let when = if restart_now {
            "now"
        } else {
            "at the next restart"
        };
        return Ok(outcome(
            RollbackAction::RemovalStaged,
            v.to_owned(),
            !restart_now,
            format!("would remove {v} {when}"),
        ));
    }
    tx.begin()?;
    let base = GenName::Base(snapshot.base.build.clone());
    root.swap_symlink(layout.proposed(), base.link_target())
        .ctx("switching", root.show(layout.proposed()))?;
    root.remove_durable(SAFARI_RECORD)
        .ctx("removing", root.show(SAFARI_RECORD))?;
    if restart_now {
        if let Err(e) = restart::activate(device) {
            // `rollback --restart` is one operation: undo the staged removal too.
            let _ = root.remove_durable(layout.proposed());
            return Err(e);
        }
        tx.clean_up(&snapshot.base.build);
    }
    Ok(if restart_now {
        outcome(
            RollbackAction::Removed,
            v.to_owned(),
            false,
            format!("removed {v}; the device runs {}", snapshot.base.version),
        )
    } else {
        outcome(
            RollbackAction::RemovalStaged,
            v.to_owned(),
            true,
            format!("{v} will be removed at the next restart (`bsi restart`)"),
        )
    })
}

impl Human for RollbackOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        out.line(&self.message);
    }
}
