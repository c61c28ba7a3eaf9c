//! The lifecycle of responses (DESIGN section 4): [`apply`], [`restart`], relaunching Safari
//! ([`safari`]), [`rollback`], [`update`] and upgrade, [`verify`], and [`recover`] / repair.
//!
//! Every operation that changes the device runs under the exclusive device lock and is handed a
//! [`journal::Tx`]: it runs every check first, opens the journal right before its first change,
//! and makes its visible change with one symlink rename (`device::atomic`), so that a crash at
//! any instant leaves the old or the new state (I3) and a refusal leaves the device untouched
//! (I4). The operations layer (`ops`) owns the lock, recovery, the `Tx` and the history; these
//! functions own the rules and the changes.

pub mod apply;
pub mod init;
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
