//! Crash recovery: what every changing command does first when it finds a journal (an
//! operation was cut short), and what `bsi repair` runs before it repairs anything.
//!
//! Because each operation's visible change is one symlink rename, an interrupted device is
//! always in its old or its new state (I3); recovery only completes a committed base change,
//! drops a `proposed` link that no longer means anything, and removes leftovers (temporaries
//! named `.bsi-tmp.*` and generations nothing links to: [`journal::tidy`]). Then it records the
//! interruption in the history and removes the journal.

use crate::Result;
use crate::clock::Clock;
use crate::device::Device;
use crate::history::{self, Entry, OpResult};

use super::journal;
use super::update;

/// What recovery found and did.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Recovery {
    /// The interrupted operation.
    pub interrupted: String,
    /// Its process id.
    pub pid: u32,
    /// Whether it was completed (a committed update) rather than rolled back.
    pub completed: bool,
    /// What recovery did.
    pub actions: Vec<String>,
}

/// If an operation was cut short, completes or undoes it. Needs the exclusive lock.
pub(crate) fn recover(device: &Device, clock: &Clock) -> Result<Option<Recovery>> {
    let Some(j) = journal::read(device)? else {
        return Ok(None);
    };
    let before = device.snapshot().map(|s| s.version_label()).ok();
    let mut completed = false;
    if let Some(change) = &j.commit {
        update::complete(device, change)?;
        completed = true;
    }
    let actions = journal::tidy(device)?;
    let after = device.snapshot().map(|s| s.version_label()).ok();
    let mut entry = Entry::new(clock, &j.op).detail(format!(
        "interrupted (pid {}, started {}); recovered: {}",
        j.pid,
        j.started,
        if completed {
            "completed from the journal"
        } else {
            "the device is in the state of its last completed step"
        }
    ));
    entry.result = OpResult::Interrupted;
    entry.exit_code = 1;
    entry.error = Some("interrupted before it finished".to_owned());
    entry.before = before;
    entry.after = after;
    history::append(device.root(), &entry)?;
    journal::end(device)?;
    Ok(Some(Recovery {
        interrupted: j.op,
        pid: j.pid,
        completed,
        actions,
    }))
}
