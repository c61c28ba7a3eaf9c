//! `bsi restart`: activates what is staged. The one change is the rename of `cryptex1/current`
//! onto the staged generation (or, for a staged removal, onto the base generation): the grafted
//! `Preboot/Cryptexes` trees, the `System/Cryptexes` links that lead to them, and
//! `current/SystemVersion.plist` all switch together in that rename (I1, I2). The now-redundant
//! `proposed` link, the Safari record and the old generation are removed afterwards; if that is
//! cut short, recovery finishes it.

use super::journal::Tx;
use crate::Result;
use crate::device::layout::SAFARI_RECORD;
use std::path::Path;

use crate::device::{Device, Root, Staged};
use crate::error::IoContext;
use crate::faults::fault_point;
use crate::human::{Human, Text};

/// What `restart` did.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct RestartOutcome {
    /// The response now active, if one was installed.
    pub activated: Option<String>,
    /// The response removed, if a removal was staged.
    pub removed: Option<String>,
    /// Nothing was staged.
    pub nothing_staged: bool,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
    /// One sentence for people.
    pub message: String,
}

/// Switches `current` to the staged generation and drops `proposed` and the Safari record.
/// Assumes the journal is open; the caller cleans up unused generations (`Tx::clean_up`).
pub(crate) fn activate(device: &Device) -> Result<()> {
    let root = device.root();
    let layout = device.layout();
    let Some(proposed) = device.proposed()? else {
        return Ok(());
    };
    switch_current(root, &layout.current(), &proposed.link_target())
        .ctx("switching", root.show(layout.current()))?;
    root.remove_durable(layout.proposed())
        .ctx("removing", root.show(layout.proposed()))?;
    root.remove_durable(SAFARI_RECORD)
        .ctx("removing", root.show(SAFARI_RECORD))?;
    Ok(())
}

/// The commit point of a restart: `current` names the staged generation.
fn switch_current(root: &Root, current: &Path, target: &Path) -> std::io::Result<()> {
    fault_point!("restart.switch");
    root.swap_symlink(current, target)
}

/// Restarts the device.
pub(crate) fn restart(tx: &mut Tx<'_>, dry_run: bool) -> Result<RestartOutcome> {
    let device = tx.device();
    let snapshot = device.snapshot()?;
    let (activated, removed) = match &snapshot.staged {
        None => {
            return Ok(RestartOutcome {
                activated: None,
                removed: None,
                nothing_staged: true,
                dry_run,
                message: format!(
                    "nothing was staged; the device still runs {}",
                    snapshot.version_label()
                ),
            });
        }
        Some(Staged::Install(p)) => (Some(p.version.to_string()), None),
        Some(Staged::Remove) => (
            None,
            snapshot.active.as_ref().map(|a| a.version.to_string()),
        ),
    };
    let message = match (&activated, &removed, dry_run) {
        (Some(v), _, false) => format!("restarted; {v} is active"),
        (Some(v), _, true) => format!("would restart and activate {v}"),
        (None, Some(v), false) => format!(
            "restarted; {v} was removed and the device runs {}",
            snapshot.base.version
        ),
        (None, Some(v), true) => format!("would restart and remove {v}"),
        (None, None, _) => String::new(),
    };
    if !dry_run {
        tx.begin()?;
        tx.phase("switching");
        crate::faults::pause_point!("restart.switching");
        activate(device)?;
        tx.clean_up(&snapshot.base.build);
    }
    Ok(RestartOutcome {
        activated,
        removed,
        nothing_staged: false,
        dry_run,
        message,
    })
}

impl Human for RestartOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        out.line(&self.message);
    }
}
