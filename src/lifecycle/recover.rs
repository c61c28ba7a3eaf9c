//! Recovery: what every command does first when it finds a journal (an operation was cut short),
//! and what `bsi repair` does on demand.
//!
//! Because each operation's visible change is one symlink rename, an interrupted device is
//! always in its old or its new state (I3); recovery only completes a committed base change,
//! drops a `proposed` link that no longer means anything (it equals `current`, or is older than
//! what is active), and removes leftovers: temporaries named `.bsi-tmp.*` and generations nothing
//! links to. Then it records the interruption in the history and removes the journal.

use std::path::PathBuf;

use crate::Result;
use crate::clock::Clock;
use crate::device::generation::{collect_garbage, sweep_temporaries};
use crate::device::layout::{self, Layout, SAFARI_RECORD};
use crate::device::{Cryptex, Device, records};
use crate::error::IoContext;
use crate::history::{self, Entry, OpResult};
use crate::status::collect::SafariRecord;

use super::journal;
use super::update;

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

/// Brings links and leftovers to a consistent state; returns what it did.
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
        let current = device.current()?;
        let gen_exists = root
            .exists_nofollow(device.generation_path(&p))
            .ctx("reading", root.show(device.generation_path(&p)))?;
        let stale = if !gen_exists || p == current {
            true
        } else {
            let snapshot = device.snapshot()?;
            match (&snapshot.active, snapshot.staged_install()) {
                (None, None) => p.is_base(),
                (Some(a), Some(s)) => s.version <= a.version,
                _ => false,
            }
        };
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
    let base = device.base()?;
    let removed = collect_garbage(device, &base.build)?;
    if !removed.is_empty() {
        actions.push(format!(
            "removed unreferenced generations: {}",
            removed.join(", ")
        ));
    }
    Ok(actions)
}

/// What recovery found and did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recovery {
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
pub fn recover(device: &Device, clock: &Clock) -> Result<Option<Recovery>> {
    let Some(j) = journal::read(device)? else {
        return Ok(None);
    };
    let before = device.snapshot().map(|s| s.version_label()).ok();
    let mut completed = false;
    if let Some(change) = &j.commit {
        update::complete(device, change)?;
        completed = true;
    }
    let actions = tidy(device)?;
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

/// What `repair` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RepairOutcome {
    /// Recovery of an interrupted operation, if there was one.
    pub recovered: Option<Recovery>,
    /// Everything repair changed.
    pub actions: Vec<String>,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
}

fn expected_links(device: &Device) -> Vec<(PathBuf, PathBuf)> {
    let l = device.layout();
    let mut out = Vec::new();
    for c in Cryptex::ALL {
        out.push((Layout::system_link(c), Layout::system_link_target(c)));
        out.push((Layout::graft(c), l.graft_target(c)));
    }
    out
}

/// Links that do not point where the layout says, as (link, expected target).
pub(crate) fn wrong_links(device: &Device) -> Vec<(PathBuf, PathBuf)> {
    let root = device.root();
    let mut out = Vec::new();
    for (link, target) in expected_links(device) {
        let actual = root.read_link_opt(&link).ok().flatten();
        if actual.as_deref() != Some(target.as_path()) {
            out.push((link, target));
        }
    }
    out
}

/// `bsi repair`: recovers an interrupted operation, restores the link structure, drops what
/// nothing references. Cannot restore damaged content (there is no copy to restore from): a
/// damaged response is reported by `bsi verify`; remove it and apply it again.
pub fn repair(device: &Device, clock: &Clock, dry_run: bool) -> Result<RepairOutcome> {
    let root = device.root();
    let wrong = wrong_links(device);
    // `current` must name a generation that exists and reads as one.
    let current_ok = device
        .current()
        .and_then(|c| device.generation_system_version(&c))
        .is_ok();
    if dry_run {
        let mut actions: Vec<String> = wrong
            .iter()
            .map(|(l, t)| format!("would point {} at {}", l.display(), t.display()))
            .collect();
        if !current_ok {
            actions.push("would point cryptex1/current at the base generation".to_owned());
        }
        if journal::read(device)?.is_some() {
            actions.push("would recover an interrupted operation".to_owned());
        }
        return Ok(RepairOutcome {
            recovered: None,
            actions,
            dry_run,
        });
    }
    let recovered = if current_ok {
        recover(device, clock)?
    } else {
        None
    };
    let mut actions = Vec::new();
    if !current_ok {
        let base = device.base()?;
        let info = device.info();
        let name = crate::device::base_content::lay_down_base(
            root,
            device.layout(),
            info.platform,
            info.chip,
            &base.version,
            &base.build,
        )?;
        root.swap_symlink(device.layout().current(), name.link_target())
            .ctx("switching", root.show(device.layout().current()))?;
        actions.push(format!("pointed cryptex1/current at {}", name.dir_name()));
        if let Some(r) = recover(device, clock)? {
            actions.extend(r.actions);
        }
    }
    for (link, target) in wrong {
        if let Some(parent) = link.parent() {
            root.dir()
                .create_dir_all(parent)
                .ctx("creating", root.show(parent))?;
        }
        if root.dir().symlink_metadata(&link).is_ok_and(|m| m.is_dir()) {
            root.remove_tree_if_exists(&link)
                .ctx("removing", root.show(&link))?;
        }
        root.swap_symlink(&link, &target)
            .ctx("linking", root.show(&link))?;
        actions.push(format!(
            "pointed {} at {}",
            link.display(),
            target.display()
        ));
    }
    actions.extend(tidy(device)?);
    if !actions.is_empty() || recovered.is_some() {
        let entry = Entry::new(clock, "repair").detail(if actions.is_empty() {
            "recovered an interrupted operation".to_owned()
        } else {
            actions.join("; ")
        });
        history::append(root, &entry)?;
    }
    Ok(RepairOutcome {
        recovered,
        actions,
        dry_run,
    })
}
