//! Recovery: what every command does first when it finds a journal (an operation was cut short),
//! and what `bsi repair` does on demand.
//!
//! Because each operation's visible change is one symlink rename, an interrupted device is
//! always in its old or its new state (I3); recovery only completes a committed base change,
//! drops a `proposed` link that no longer means anything (it equals `current`, or is older than
//! what is active), and removes leftovers: temporaries named `.bsi-tmp.*` and generations nothing
//! links to. Then it records the interruption in the history and removes the journal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bundle::Bundle;
use crate::clock::Clock;
use crate::device::generation::{collect_garbage, sweep_temporaries};
use crate::device::layout::{self, Layout, SAFARI_RECORD};
use crate::device::records::{Failure, Included, InstallReason, SafariRecord};
use crate::device::{Cryptex, Device, GenName, Power, Settings, origins, records};
use crate::error::IoContext;
use crate::history::{self, Entry, LastOperation, OpResult};
use crate::progress::Progress;
use crate::{Error, Result};

use super::verify::Damage;

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

/// How `repair` is asked to run.
#[derive(Clone, Debug, Default)]
pub(crate) struct RepairOptions {
    /// The bundle of a response whose content is damaged, to restore it from.
    pub from: Option<PathBuf>,
    /// Report what would be done; change nothing.
    pub dry_run: bool,
}

/// What `repair` did.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct RepairOutcome {
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

/// One record that does not read, and what repair does about it.
struct BadRecord {
    rel: PathBuf,
    why: String,
    fix: RecordFix,
}

enum RecordFix {
    /// Write this value instead (a record the device cannot do without).
    Write(Vec<u8>),
    /// Remove it (the device works without it).
    Remove,
}

fn check<T: serde::de::DeserializeOwned>(device: &Device, rel: &str) -> Option<String> {
    records::read_json_opt::<T>(device.root(), rel)
        .err()
        .map(|e| e.to_string())
}

/// Every record of bsi's that does not read, with the fix for it.
fn bad_records(device: &Device) -> Vec<BadRecord> {
    let mut out = Vec::new();
    let root = device.root();
    let info = device.info();
    let power = Power {
        battery_percent: info.portable.then_some(100),
        on_ac: true,
    };
    let pretty = |v: &dyn erased::Json| v.bytes();
    if let Some(why) = check::<Power>(device, layout::POWER_RECORD).or_else(|| {
        (!root.exists_nofollow(layout::POWER_RECORD).unwrap_or(true))
            .then(|| "it is missing".to_owned())
    }) {
        out.push(BadRecord {
            rel: layout::POWER_RECORD.into(),
            why,
            fix: RecordFix::Write(pretty(&power)),
        });
    }
    if let Some(why) = check::<Settings>(device, layout::SETTINGS_RECORD) {
        out.push(BadRecord {
            rel: layout::SETTINGS_RECORD.into(),
            why,
            fix: RecordFix::Write(pretty(&Settings::default())),
        });
    }
    if let Some(why) = check::<LastOperation>(device, layout::LAST_OPERATION) {
        let fix = match history::read_all(root).ok().and_then(|h| h.last().cloned()) {
            Some(last) => RecordFix::Write(pretty(&LastOperation::from(&last))),
            None => RecordFix::Remove,
        };
        out.push(BadRecord {
            rel: layout::LAST_OPERATION.into(),
            why,
            fix,
        });
    }
    let removable = [
        (
            layout::INCLUDED_RECORD,
            check::<Included>(device, layout::INCLUDED_RECORD),
        ),
        (
            layout::SAFARI_RECORD,
            check::<SafariRecord>(device, layout::SAFARI_RECORD),
        ),
        (
            layout::FAILURE_RECORD,
            check::<Failure>(device, layout::FAILURE_RECORD),
        ),
        (
            layout::INSTALL_REASON_RECORD,
            check::<InstallReason>(device, layout::INSTALL_REASON_RECORD),
        ),
        (
            layout::SYNC_RECORD,
            check::<crate::device::records::SyncState>(device, layout::SYNC_RECORD),
        ),
        (
            layout::REPORT_DELIVERED_RECORD,
            check::<crate::device::records::DeliveredReport>(
                device,
                layout::REPORT_DELIVERED_RECORD,
            ),
        ),
        (
            layout::ORIGINS_RECORD,
            check::<BTreeMap<String, origins::Origin>>(device, layout::ORIGINS_RECORD),
        ),
    ];
    for (rel, why) in removable {
        if let Some(why) = why {
            out.push(BadRecord {
                rel: rel.into(),
                why,
                fix: RecordFix::Remove,
            });
        }
    }
    for (dir, ext) in [(layout::TRUST, "pub"), (layout::DECLARATIONS, "json")] {
        let Ok(entries) = root.dir().read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(&format!(".{ext}")) {
                continue;
            }
            let rel = Path::new(dir).join(&name);
            let why = match root.read_small(&rel) {
                Err(e) => Some(e.to_string()),
                Ok(bytes) if ext == "pub" => {
                    crate::bundle::keys::parse_public_key(&String::from_utf8_lossy(&bytes), &rel)
                        .err()
                        .map(|e| e.to_string())
                }
                Ok(bytes) => envelope_problem(&bytes),
            };
            if let Some(why) = why {
                out.push(BadRecord {
                    rel,
                    why,
                    fix: RecordFix::Remove,
                });
            }
        }
    }
    out
}

/// Every record of bsi's that does not read, as messages (for `verify`).
pub(crate) fn record_problems(device: &Device) -> Vec<String> {
    bad_records(device)
        .into_iter()
        .map(|r| format!("{}: {}", r.rel.display(), r.why))
        .collect()
}

/// Why stored declaration bytes are not a declaration envelope, if they are not.
fn envelope_problem(bytes: &[u8]) -> Option<String> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Err(e) => Some(format!("not JSON: {e}")),
        Ok(v) => ["Type", "Identifier", "ServerToken", "Payload"]
            .iter()
            .find(|k| v.get(**k).is_none())
            .map(|k| format!("the declaration has no `{k}`")),
    }
}

/// Small serialisation helper for records repair writes.
mod erased {
    pub(super) trait Json {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn bytes(&self) -> Vec<u8> {
            let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
            out.push(b'\n');
            out
        }
    }
}

/// Restores generation `name` (a response's) from `bundle`: staged afresh with the same atomic
/// protocol as `apply`, then put in place of the damaged generation in one exchange. The
/// cryptexes the response does not carry keep the suppliers they had; when the damaged
/// generation's links are gone, the newest earlier response on the device that carries the
/// cryptex supplies it (responses are cumulative), else the base.
fn restore(
    device: &Device,
    bundle: &mut Bundle,
    name: &GenName,
    progress: &dyn Progress,
) -> Result<()> {
    let base = device.base()?;
    let previous = device.generation_sources(name).unwrap_or_default();
    let version = bundle.manifest.response_version();
    let mut carriers: Vec<(crate::version::ResponseVersion, GenName, Vec<Cryptex>)> = Vec::new();
    let gens = device.layout().generations();
    if let Ok(entries) = device.root().dir().read_dir(&gens) {
        for entry in entries.flatten() {
            let Some(g @ GenName::Response(_)) =
                GenName::parse(&entry.file_name().to_string_lossy())
            else {
                continue;
            };
            if g == *name {
                continue;
            }
            let Ok(sv) = device.generation_system_version(&g) else {
                continue;
            };
            let (Some(extra), true) = (sv.extra, sv.version == base.version) else {
                continue;
            };
            let v = crate::version::ResponseVersion::new(sv.version, extra);
            if v >= version {
                continue;
            }
            let carried = device
                .generation_sources(&g)
                .map(|s| {
                    s.into_iter()
                        .filter(|(_, o)| *o == g)
                        .map(|(c, _)| c)
                        .collect()
                })
                .unwrap_or_default();
            carriers.push((v, g, carried));
        }
    }
    carriers.sort_by_key(|c| std::cmp::Reverse(c.0));
    let suppliers: BTreeMap<Cryptex, GenName> = Cryptex::ALL
        .into_iter()
        .filter(|c| !bundle.manifest.cryptexes.0.contains_key(c))
        .map(|c| {
            let supplier = previous
                .get(&c)
                .filter(|g| {
                    *g != name
                        && device
                            .root()
                            .exists_nofollow(device.generation_path(g))
                            .unwrap_or(false)
                })
                .cloned()
                .or_else(|| {
                    carriers
                        .iter()
                        .find(|(_, _, carried)| carried.contains(&c))
                        .map(|(_, g, _)| g.clone())
                })
                .unwrap_or_else(|| GenName::Base(base.build.clone()));
            (c, supplier)
        })
        .collect();
    super::stage::stage(device, bundle, &suppliers, progress)?;
    // Only hints read the origins record.
    let _ = origins::record(device.root(), device.layout(), bundle);
    Ok(())
}

/// Opens `path` as the bundle to restore from, with every check `apply` makes before staging
/// (signature against the device's trusted keys, manifest, paths, structure, platform, base).
fn open_restore_bundle(device: &Device, path: &Path) -> Result<Bundle> {
    let trusted = crate::device::trust::load(device.root())?;
    let spool = device.spool_dir();
    let (mut bundle, _) = Bundle::open_verified(path, &trusted, spool.as_ref())?;
    bundle.check_structure()?;
    let m = &bundle.manifest;
    let base = device.base()?;
    if !device.info().platform.takes_bundles_for(m.product)
        || !base.accepts(&m.version, &m.prerequisite)
    {
        return Err(Error::usage(
            format!(
                "{} is {} {} ({}) for {} ({}); the device runs {} {base}, so it holds no such response",
                path.display(),
                m.product,
                m.response_version(),
                m.build,
                m.version,
                m.prerequisite,
                device.info().platform
            ),
            "pass the bundle of the damaged response that `bsi verify` names",
        ));
    }
    Ok(bundle)
}

/// `bsi repair`: recovers an interrupted operation, rebuilds damaged records, restores the link
/// structure, makes damaged base content again (bsi made it), and with `--from BUNDLE` restores
/// the damaged content of the response that BUNDLE is. A response's damaged content without
/// `--from` exits 8 naming the bundle it needs.
pub(crate) fn repair(
    device: &Device,
    clock: &Clock,
    opts: &RepairOptions,
    progress: &dyn Progress,
) -> Result<RepairOutcome> {
    let root = device.root();
    let mut from = match &opts.from {
        Some(path) => Some(open_restore_bundle(device, path)?),
        None => None,
    };
    let records = bad_records(device);
    let wrong = wrong_links(device);
    let current = device.current().ok();
    let current_missing = current.as_ref().is_none_or(|c| {
        !root
            .exists_nofollow(device.generation_path(c))
            .unwrap_or(false)
    });
    let restore_current = match (&current, &from) {
        (Some(GenName::Response(build)), Some(b)) if current_missing => *build == b.manifest.build,
        _ => false,
    };
    if opts.dry_run {
        let mut actions: Vec<String> = records
            .iter()
            .map(|r| format!("would repair {} ({})", r.rel.display(), r.why))
            .collect();
        actions.extend(
            wrong
                .iter()
                .map(|(l, t)| format!("would point {} at {}", l.display(), t.display())),
        );
        if current_missing && !restore_current {
            actions.push("would point cryptex1/current at the base generation".to_owned());
        }
        if journal::read(device)?.is_some() {
            actions.push("would recover an interrupted operation".to_owned());
        }
        let (outcome, _) = super::verify::verify(device, progress)?;
        for p in &outcome.found {
            actions.push(format!("would repair: {}", p.message));
        }
        return Ok(RepairOutcome {
            recovered: None,
            actions,
            dry_run: true,
        });
    }
    let mut actions = Vec::new();
    for r in records {
        match &r.fix {
            RecordFix::Write(bytes) => root
                .write_atomic(&r.rel, bytes, 0o644)
                .ctx("writing", root.show(&r.rel))?,
            RecordFix::Remove => {
                root.remove_durable(&r.rel)
                    .ctx("removing", root.show(&r.rel))?;
            }
        }
        actions.push(format!(
            "{} {} ({})",
            match r.fix {
                RecordFix::Write(_) => "rewrote",
                RecordFix::Remove => "removed",
            },
            r.rel.display(),
            r.why
        ));
    }
    let mut recovered = None;
    if current_missing {
        if restore_current && let (Some(name), Some(bundle)) = (&current, from.as_mut()) {
            restore(device, bundle, name, progress)?;
            actions.push(format!(
                "restored {} ({}) from {}",
                bundle.manifest.response_version(),
                bundle.manifest.build,
                bundle.path.display()
            ));
        } else {
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
            actions.push(format!(
                "pointed cryptex1/current at {} (the active generation was gone; the device runs its base)",
                name.dir_name()
            ));
        }
    }
    recovered = recover(device, clock)?.or(recovered);
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
    // Content: make the base again if it is damaged; restore the response --from names.
    let (checked, _) = super::verify::verify(device, progress)?;
    let mut damaged: Vec<Damage> = checked.found.iter().map(|p| p.damage.clone()).collect();
    damaged.sort();
    damaged.dedup();
    let mut needs_bundle = None;
    for damage in damaged {
        match damage {
            Damage::Structure => {}
            Damage::Base => {
                let base = device.base()?;
                let info = device.info();
                crate::device::base_content::remake_base(
                    root,
                    device.layout(),
                    info.platform,
                    info.chip,
                    &base.version,
                    &base.build,
                )?;
                actions.push(format!(
                    "made the base content of {base} again (it was damaged)"
                ));
            }
            Damage::Response { build } => match from.as_mut() {
                Some(bundle) if bundle.manifest.build.as_str() == build => {
                    let name = GenName::Response(bundle.manifest.build.clone());
                    restore(device, bundle, &name, progress)?;
                    actions.push(format!(
                        "restored the content of {} ({build}) from {}",
                        bundle.manifest.response_version(),
                        bundle.path.display()
                    ));
                }
                _ => {
                    needs_bundle.get_or_insert(build);
                }
            },
        }
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
    if let Some(build) = needs_bundle {
        let origin = origins::of(root, &build);
        return Err(Error::NeedsBundle {
            version: origin.as_ref().map(|o| o.version.clone()),
            build,
            bundle: origin.map(|o| o.bundle),
        });
    }
    Ok(RepairOutcome {
        recovered,
        actions,
        dry_run: false,
    })
}
