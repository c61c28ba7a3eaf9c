//! The journal (`private/var/db/bsi/journal.json`): the operation in progress. Every command that
//! changes the device writes it (durably) before its first change and removes it after its last,
//! so that the next command, finding it, knows an operation was cut short and recovers the device
//! before doing anything else (`recover.rs`).
//!
//! Most operations need no more than the journal's presence: their changes become visible in one
//! symlink rename, so recovery only has to tidy up (I3). `update` and `upgrade` change several
//! files; once their journal says `committed`, recovery completes them from the journal's record.
//!
//! [`Tx`] is the journal of one operation as an RAII guard. It writes nothing until the operation
//! calls [`Tx::begin`] right before its first change, so a command refused by a check (a bad
//! bundle, a gate) never opens a journal; the operations layer appends the history while the
//! journal is still open and then calls [`Tx::finish`]. Dropped without `finish` (an error, a
//! panic), it tidies the device back to a consistent state and removes the journal, unless the
//! operation committed a base change, which recovery must complete. [`tidy`], what both that
//! and recovery do, lives here with the journal it cleans up after.

use serde::{Deserialize, Serialize};

use std::path::PathBuf;

use crate::clock::Clock;
use crate::device::generation::{collect_garbage, sweep_temporaries};
use crate::device::layout::JOURNAL;
use crate::device::layout::{self, SAFARI_RECORD};
use crate::device::records::SafariRecord;
use crate::device::{Device, records};
use crate::error::IoContext;
use crate::{Error, Result};

/// What was in progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Journal {
    /// The command, e.g. `apply`.
    pub op: String,
    /// Its process id.
    pub pid: u32,
    /// When it started.
    pub started: String,
    /// For `update`/`upgrade` once committed: what to complete.
    pub commit: Option<BaseChange>,
}

/// A base change that recovery must complete once committed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BaseChange {
    /// `ProductName`.
    pub product_name: String,
    /// The new version.
    pub version: String,
    /// The new build.
    pub build: String,
    /// The responses the new base includes.
    pub included: Vec<String>,
}

/// The journal of one operation: opened lazily, closed by [`Tx::finish`], or abandoned (tidied)
/// when dropped.
#[derive(Debug)]
pub(crate) struct Tx<'d> {
    device: &'d Device,
    clock: &'d Clock,
    op: &'static str,
    open: bool,
    committed: bool,
    warnings: Vec<String>,
}

impl<'d> Tx<'d> {
    /// A journal for operation `op` on `device`; nothing is written yet.
    #[must_use]
    pub(crate) fn new(device: &'d Device, clock: &'d Clock, op: &'static str) -> Self {
        Self {
            device,
            clock,
            op,
            open: false,
            committed: false,
            warnings: Vec::new(),
        }
    }

    /// Notes a secondary failure after the change was made: the change stands, the command
    /// exits 0 and shows the warning, and the history records it.
    pub(crate) fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    /// The warnings noted so far.
    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Removes what the change left unused (old generations), best effort: the change is made
    /// already, so a failure here is a warning, and `bsi repair` finishes the job.
    pub(crate) fn clean_up(&mut self, base: &crate::version::Build) {
        if let Err(e) = crate::device::generation::collect_garbage(self.device, base) {
            self.warn(format!(
                "the change is made, but removing the content it left unused failed ({e}); `bsi repair` removes it"
            ));
        }
    }

    /// The device.
    #[must_use]
    pub(crate) fn device(&self) -> &'d Device {
        self.device
    }

    /// The clock.
    #[must_use]
    pub(crate) fn clock(&self) -> &'d Clock {
        self.clock
    }

    /// The operation's name, e.g. `apply`.
    #[must_use]
    pub(crate) fn op(&self) -> &'static str {
        self.op
    }

    /// Tells readers what the operation is doing now (`staging`, `switching`, ...).
    pub(crate) fn phase(&self, phase: &str) {
        self.device.set_phase(phase);
    }

    /// Writes the journal (durably) if it is not open yet. Call right before the first change.
    pub(crate) fn begin(&mut self) -> Result<()> {
        if !self.open {
            begin(self.device, self.clock, self.op)?;
            self.open = true;
        }
        Ok(())
    }

    /// Records a committed base change: from now on recovery completes it.
    pub(crate) fn commit(&mut self, change: BaseChange) -> Result<()> {
        self.begin()?;
        write(
            self.device,
            &Journal {
                op: self.op.to_owned(),
                pid: std::process::id(),
                started: self.clock.stamp(),
                commit: Some(change),
            },
        )?;
        self.committed = true;
        Ok(())
    }

    /// One step of a multi-step operation is complete and durable (a committed base change,
    /// finished): closes its journal, so a crash in the next step never replays this one over it.
    pub(crate) fn settle(&mut self) -> Result<()> {
        if self.open {
            end(self.device)?;
            self.open = false;
            self.committed = false;
        }
        Ok(())
    }

    /// The operation finished: removes the journal.
    pub(crate) fn finish(mut self) -> Result<()> {
        if self.open {
            end(self.device)?;
            self.open = false;
        }
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open && !self.committed {
            // If even tidying fails, the journal stays and the next command recovers.
            if tidy(self.device).is_ok() {
                let _ = end(self.device);
            }
        }
    }
}

/// Records that `op` starts. The journal is written in place (not through a temporary), so a
/// crash while writing it leaves a (perhaps partial) journal that the next command sees and
/// recovers from, never an unnoticed temporary.
fn begin(device: &Device, clock: &Clock, op: &str) -> Result<()> {
    let journal = Journal {
        op: op.to_owned(),
        pid: std::process::id(),
        started: clock.stamp(),
        commit: None,
    };
    let root = device.root();
    let bytes = serde_json::to_vec(&journal).unwrap_or_default();
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        // Opened as every file bsi keeps (no symlink followed, no FIFO, one link), then cut:
        // a planted link's other name is never truncated.
        let mut file = root.open_file(JOURNAL, crate::device::Open::ReadWrite)?;
        file.set_len(0)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        root.sync_dir(crate::device::layout::DB)
    };
    if let Err(e) = write() {
        if crate::device::is_damage(&e) {
            return Err(records::read_error(root, JOURNAL, e));
        }
        let _ = root.remove_if_exists(JOURNAL);
        return Err(Error::io("writing", root.show(JOURNAL), e));
    }
    Ok(())
}

/// Writes the journal.
fn write(device: &Device, journal: &Journal) -> Result<()> {
    records::write_json(device.root(), JOURNAL, journal)
}

/// The operation name of a journal bsi cannot read (see [`read`]).
const UNKNOWN_OP: &str = "unknown";

/// What was cut short, in words: "an interrupted apply (pid 42, started ...)", with the pid and
/// the start where given; a journal bsi cannot read (torn by a crash while it was written, or
/// not one bsi wrote) names no command, pid or time, so none is made up for it.
pub(crate) fn interrupted(op: &str, pid: Option<u32>, started: Option<&str>) -> String {
    if op == UNKNOWN_OP && pid.is_none_or(|p| p == 0) {
        return "an interrupted operation whose journal cannot be read".to_owned();
    }
    match (pid, started) {
        (Some(pid), Some(at)) => format!("an interrupted {op} (pid {pid}, started {at})"),
        (Some(pid), None) => format!("an interrupted {op} (pid {pid})"),
        _ => format!("an interrupted {op}"),
    }
}

/// The journal, if an operation is in progress (or was cut short). A journal that does not
/// parse, or is not what bsi writes (too large, a FIFO, a symlink, hard-linked), is reported as
/// an interrupted operation of unknown kind: recovery tidies the device and removes the entry
/// (unlinked, never followed).
pub(crate) fn read(device: &Device) -> Result<Option<Journal>> {
    let root = device.root();
    let unknown = Journal {
        op: UNKNOWN_OP.to_owned(),
        pid: 0,
        started: String::new(),
        commit: None,
    };
    let bytes = match root.read_small_opt(JOURNAL) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(e) if crate::device::is_damage(&e) => return Ok(Some(unknown)),
        Err(e) => return Err(Error::io("reading", root.show(JOURNAL), e)),
    };
    Ok(Some(serde_json::from_slice(&bytes).unwrap_or(unknown)))
}

/// Records that the operation finished.
pub(crate) fn end(device: &Device) -> Result<()> {
    let root = device.root();
    root.remove_durable(JOURNAL)
        .ctx("removing", root.show(JOURNAL))?;
    Ok(())
}

/// Directories where a crash can leave `.bsi-tmp.*` entries.
fn temp_dirs(device: &Device) -> Vec<PathBuf> {
    let l = device.layout();
    vec![
        PathBuf::from(layout::DB),
        PathBuf::from(layout::TRUST),
        PathBuf::from(layout::DECLARATIONS),
        PathBuf::from("System/Library/CoreServices"),
        PathBuf::from(layout::SYSTEM_CRYPTEXES),
        PathBuf::from(layout::PREBOOT_CRYPTEXES),
        l.cryptex1(),
        l.generations(),
    ]
}

/// Brings the `proposed` link and leftovers to a consistent state after an operation that did
/// not finish (a crash, an error): temporaries, a stale `proposed` link or Safari record,
/// unreferenced generations. Returns what it did.
pub(crate) fn tidy(device: &Device) -> Result<Vec<String>> {
    let root = device.root();
    let mut actions = Vec::new();
    for dir in temp_dirs(device) {
        let n = sweep_temporaries(root, &dir)?;
        if n > 0 {
            actions.push(format!(
                "removed {n} temporary entr{} in {}",
                if n == 1 { "y" } else { "ies" },
                dir.display()
            ));
        }
    }
    let proposed_rel = device.layout().proposed();
    let proposed = if let Ok(p) = device.proposed() {
        p
    } else {
        root.remove_durable(&proposed_rel)
            .ctx("removing", root.show(&proposed_rel))?;
        actions.push("removed a proposed link that named no generation".to_owned());
        None
    };
    if let Some(p) = proposed {
        // The snapshot drops a `proposed` link that means nothing any more (it names `current`,
        // a generation that is gone, or no newer response): remove such a link.
        let stale = device.snapshot().map_or(true, |s| s.proposed.is_none());
        if stale {
            root.remove_durable(&proposed_rel)
                .ctx("removing", root.show(&proposed_rel))?;
            actions.push(format!(
                "removed the stale proposed link to {}",
                p.dir_name()
            ));
        }
    }
    let record: Option<SafariRecord> = records::read_json_opt(root, SAFARI_RECORD).unwrap_or(None);
    if let Some(r) = record
        && device
            .proposed()?
            .is_none_or(|p| p.dir_name() != r.generation)
    {
        root.remove_durable(SAFARI_RECORD)
            .ctx("removing", root.show(SAFARI_RECORD))?;
        actions.push("removed a stale Safari record".to_owned());
    }
    // Unused generations go only when the base is readable (a damaged base is repair's).
    let removed = match device.base() {
        Ok(base) => collect_garbage(device, &base.build)?,
        Err(_) => Vec::new(),
    };
    if !removed.is_empty() {
        actions.push(format!(
            "removed unreferenced generations: {}",
            removed.join(", ")
        ));
    }
    Ok(actions)
}
