//! The lifecycle of responses (DESIGN section 4): [`apply`], [`restart`], relaunching Safari
//! ([`safari`]), [`rollback`], [`update`] and upgrade, [`verify`], and [`recover`] / repair.
//!
//! Every operation that changes the device runs under the exclusive device lock and is handed a
//! [`journal::Tx`]: it runs every check first, opens the journal right before its first change,
//! and makes its visible change with one symlink rename (`device::atomic`), so that a crash at
//! any instant leaves the old or the new state (I3) and a refusal leaves the device untouched
//! (I4). The operations layer (`ops`) owns the lock, recovery, the `Tx` and the history; these
//! functions own the rules and the changes.

pub(crate) mod apply;
pub(crate) mod checks;
mod finding;
mod fixes;
pub(crate) mod init;
pub(crate) mod journal;
mod placement;
mod read_ahead;
pub(crate) mod recover;
mod rehash;
pub(crate) mod repair;
pub(crate) mod restart;
pub(crate) mod rollback;
pub(crate) mod safari;
mod stage;
mod tree;
pub(crate) mod update;
pub(crate) mod verify;

use std::path::Path;
use std::time::Duration;

use crate::Result;
use crate::clock::Clock;
use crate::device::{Access, Device, Holder};

/// Opens the device at `root` to change it as `command`: takes the lock, then recovers an
/// interrupted operation first.
pub(crate) fn open_to_change(
    root: &Path,
    wait: Duration,
    command: &str,
    clock: &Clock,
) -> Result<Device> {
    let device = Device::open(
        root,
        Access::Change,
        wait,
        Holder::this(command, &clock.stamp()),
    )?;
    if journal::read(&device)?.is_some() {
        device.set_phase("recovering");
        recover::recover(&device, clock)?;
    }
    check_before_change(&device)?;
    device.set_phase("checking");
    Ok(device)
}

/// What a change refuses for before it starts (`bsi repair` fixes each): a link bsi made that
/// holds something else (a change switches through them), and a history that is not one plain
/// file (an append would write through a planted hard link).
pub(crate) fn check_before_change(device: &Device) -> Result<()> {
    device.check_links()?;
    let root = device.root();
    match root.open_file(crate::device::layout::HISTORY, crate::device::Open::Read) {
        Err(e) if crate::device::is_damage(&e) => {
            Err(root.failure("reading", crate::device::layout::HISTORY, e))
        }
        _ => Ok(()),
    }
}

/// Opens the device at `root` to read it: no lock, no recovery, no write of any kind.
pub(crate) fn open_to_read(root: &Path) -> Result<Device> {
    Device::open(root, Access::Read, Duration::ZERO, Holder::this("", ""))
}
