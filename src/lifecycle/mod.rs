//! The lifecycle of responses (DESIGN section 4): [`apply`], [`restart`], relaunching Safari
//! ([`safari`]), [`rollback`], [`update`] and upgrade, [`verify`], and [`recover`] / repair.
//!
//! Every operation that changes the device runs under the exclusive device lock, inside a
//! [`journal`]ed section, and makes its visible change with one symlink rename (`device::atomic`),
//! so that a crash at any instant leaves the old or the new state (I3) and a refusal leaves the
//! device untouched (I4). [`open`] is how every command gets a device: it takes the lock and, if
//! an earlier command was cut short, recovers first.

pub mod apply;
pub mod journal;
pub mod recover;
pub mod restart;
pub mod rollback;
pub mod safari;
mod stage;
pub mod update;
pub mod verify;

use std::path::Path;
use std::time::Duration;

use crate::Result;
use crate::clock::Clock;
use crate::device::{Access, Device};

/// Opens the device at `root` with `access`, recovering an interrupted operation first.
pub fn open(
    root: &Path,
    access: Access,
    wait: Duration,
    command: &str,
    clock: &Clock,
) -> Result<Device> {
    let mut device = Device::open(root, access, wait, command)?;
    if journal::read(&device)?.is_some() {
        if device.access() == Access::Read {
            // Recovery changes the device: take the lock exclusively first. Another command may
            // have recovered meanwhile; `recover` finds no journal then and does nothing.
            device.upgrade_lock(wait, command)?;
        }
        recover::recover(&device, clock)?;
    }
    Ok(device)
}

/// Runs `body` as operation `op` inside the journal: the command's own journal when one is
/// open (the CLI opens one around every changing command, history included), else a journal of
/// its own. If `body` fails, the device is tidied back to a consistent state (its visible change
/// either happened or not), so the failure leaves no leftovers.
pub(crate) fn journaled<T>(
    device: &Device,
    clock: &Clock,
    op: &str,
    body: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let outer = device.journal_open();
    if !outer {
        journal::begin(device, clock, op)?;
    }
    match body() {
        Ok(value) => {
            if !outer {
                journal::end(device)?;
            }
            Ok(value)
        }
        Err(e) => {
            abandon(device, !outer);
            Err(e)
        }
    }
}

/// After a failed step: tidy up and, if the journal is this operation's own (not the
/// command's), close it; if even tidying fails, the journal stays and the next command recovers.
pub(crate) fn abandon(device: &Device, own_journal: bool) {
    if recover::tidy(device).is_ok() && own_journal {
        let _ = journal::end(device);
    }
}
