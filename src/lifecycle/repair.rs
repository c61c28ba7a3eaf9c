//! `bsi repair`: puts right everything [`checks`] finds (directories, records, links,
//! `SystemVersion.plist` files, the base content), recovering an interrupted operation on the
//! way, and with `--from BUNDLE` restores the damaged content of the response BUNDLE is. What
//! only `bsi init --force` can undo, and a response's content without `--from`, exit 8 with the
//! one command that will.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bundle::Bundle;
use crate::clock::Clock;
use crate::device::layout;
use crate::device::{Cryptex, Device, GenName, Kind, Open, Root, origins};
use crate::error::IoContext;
use crate::history::{self, Entry};
use crate::progress::Progress;
use crate::{Error, Result};

use super::checks::{self, Damage, Fix};
use super::fixes;
use super::journal;
use super::recover::{Recovery, recover};
use crate::human::{Human, Text};

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
    /// Everything repair changed (or, with `--dry-run`, would change).
    pub actions: Vec<String>,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
}

/// What stands between the device and being opened to repair: the directories that hold bsi's
/// records, and a lock that is one plain file (no command can take one that is not). Fixed
/// before the lock is taken; with `dry_run`, only said.
pub(crate) fn prepare(path: &Path, dry_run: bool) -> Result<Vec<String>> {
    let Ok(root) = Root::open(path) else {
        return Ok(Vec::new());
    };
    let mut actions = Vec::new();
    for rel in ["private", "private/var", "private/var/db", layout::DB] {
        match root.kind(rel) {
            Ok(Some(Kind::Dir) | None) => {}
            Ok(Some(kind)) => {
                actions.push(format!(
                    "{}made {rel} a directory again (it was {})",
                    if dry_run { "would have " } else { "" },
                    kind.noun()
                ));
                if !dry_run {
                    root.remove_durable(rel).ctx("removing", root.show(rel))?;
                    root.dir().create_dir(rel).ctx("creating", root.show(rel))?;
                }
            }
            Err(e) => return Err(root.failure("reading", rel, e)),
        }
    }
    if let Err(e) = root.open_file(layout::LOCK, Open::Read)
        && crate::device::is_damage(&e)
    {
        actions.push(format!(
            "{}replaced the device lock ({e})",
            if dry_run { "would have " } else { "" }
        ));
        if !dry_run {
            if root.kind(layout::LOCK).ok().flatten() == Some(Kind::Dir) {
                root.remove_tree_if_exists(layout::LOCK)
                    .ctx("removing", root.show(layout::LOCK))?;
            } else {
                root.remove_durable(layout::LOCK)
                    .ctx("removing", root.show(layout::LOCK))?;
            }
        }
    }
    Ok(actions)
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

/// What `--dry-run` says repair would do.
fn would(device: &Device, progress: &dyn Progress) -> Result<Vec<String>> {
    let journal = journal::read(device)?;
    let mut actions = Vec::new();
    if let Some(j) = &journal {
        actions.push(format!(
            "would recover {}",
            super::journal::interrupted(&j.op, None, None)
        ));
    }
    let pending = journal.as_ref().is_some_and(|j| j.commit.is_some());
    for f in checks::findings(device, pending) {
        actions.push(match f.fix {
            Fix::Bundle => format!("cannot repair without its bundle: {}", f.message),
            Fix::Reinit => format!("cannot repair (only `bsi init --force` can): {}", f.message),
            _ => format!("would repair: {}", f.message),
        });
    }
    let (outcome, _) = super::verify::verify(device, progress)?;
    for p in outcome
        .found
        .iter()
        .filter(|p| p.damage != Damage::Structure)
    {
        actions.push(format!("would repair: {}", p.message));
    }
    actions.dedup();
    Ok(actions)
}

/// Applies the fixes of every finding `repair` can fix itself, checking again after each
/// round (a directory made again reveals what belongs in it), at most a few rounds.
fn fix_structure(
    device: &Device,
    commit_pending: bool,
    keep_current: bool,
    actions: &mut Vec<String>,
) -> Result<()> {
    for _ in 0..4 {
        let found = checks::findings(device, commit_pending);
        let mut fixed = false;
        for f in found
            .iter()
            .filter(|f| !(keep_current && f.fix == Fix::CurrentToBase))
        {
            if let Some(done) = fixes::apply(device, &f.fix)? {
                actions.push(format!("{done}: {}", f.message));
                fixed = true;
            }
        }
        if !fixed {
            break;
        }
    }
    Ok(())
}

/// `bsi repair`: recovers an interrupted operation, fixes what [`checks`] finds, makes damaged
/// base content again (bsi made it), and with `--from BUNDLE` restores the damaged content of
/// the response that BUNDLE is. A response's damaged content without `--from` exits 8 naming
/// the bundle it needs; damage nothing on the device can undo exits 8 naming `init --force`.
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
    if opts.dry_run {
        return Ok(RepairOutcome {
            recovered: None,
            actions: would(device, progress)?,
            dry_run: true,
        });
    }
    let mut actions = Vec::new();
    let commit_pending = journal::read(device)?.is_some_and(|j| j.commit.is_some());
    // The active response's generation gone, and its bundle given: restore it rather than
    // fall back to the base.
    let restore_current = match (device.current(), &from) {
        (Ok(name @ GenName::Response(_)), Some(b)) => {
            (matches!(&name, GenName::Response(build) if *build == b.manifest.build)
                && !root
                    .exists_nofollow(device.generation_path(&name))
                    .unwrap_or(false))
            .then_some(name)
        }
        _ => None,
    };
    let keep = restore_current.is_some();
    fix_structure(device, commit_pending, keep, &mut actions)?;
    let recovered = recover(device, clock)?;
    fix_structure(device, false, keep, &mut actions)?;
    if let (Some(name), Some(bundle)) = (&restore_current, from.as_mut()) {
        restore(device, bundle, name, progress)?;
        actions.push(format!(
            "restored {} ({}) from {}",
            bundle.manifest.response_version(),
            bundle.manifest.build,
            bundle.path.display()
        ));
        fix_structure(device, false, false, &mut actions)?;
    }
    let result = repair_content(device, from.as_mut(), progress, &mut actions);
    actions.extend(journal::tidy(device).unwrap_or_default());
    if !actions.is_empty() || recovered.is_some() {
        let entry = Entry::new(clock, "repair").detail(if actions.is_empty() {
            "recovered an interrupted operation".to_owned()
        } else {
            actions.join("; ")
        });
        let entry = match &result {
            Ok(()) => entry,
            Err(e) => entry.failed(e),
        };
        history::append(root, &entry)?;
    }
    result?;
    Ok(RepairOutcome {
        recovered,
        actions,
        dry_run: false,
    })
}

/// The content: damage the structure checks cannot fix (they name `init --force`), the base
/// made again, a response restored from `from`.
fn repair_content(
    device: &Device,
    mut from: Option<&mut Bundle>,
    progress: &dyn Progress,
    actions: &mut Vec<String>,
) -> Result<()> {
    let remaining = checks::findings(device, false);
    if let Some(e) = fixes::reinit_error(device, &remaining) {
        return Err(e);
    }
    let (checked, _) = super::verify::verify(device, progress)?;
    let mut damaged: Vec<Damage> = checked.found.iter().map(|p| p.damage.clone()).collect();
    damaged.sort();
    damaged.dedup();
    let mut needs_bundle = None;
    for damage in damaged {
        match damage {
            Damage::Structure => {}
            Damage::Base => {
                if let Some(done) = fixes::apply(device, &Fix::RemakeBase)? {
                    actions.push(done);
                }
            }
            Damage::Response { build } => match from.as_deref_mut() {
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
    if let Some(build) = needs_bundle {
        let origin = origins::of(device.root(), &build);
        return Err(Error::NeedsBundle {
            version: origin.as_ref().map(|o| o.version.clone()),
            build,
            bundle: origin.map(|o| o.bundle),
        });
    }
    Ok(())
}

impl Human for RepairOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        if let Some(rec) = &self.recovered {
            out.line(format!(
                "recovered {}",
                super::journal::interrupted(&rec.interrupted, Some(rec.pid), None)
            ));
        }
        for a in &self.actions {
            out.line(a);
        }
        if self.actions.is_empty() && self.recovered.is_none() {
            out.line("nothing to repair");
        }
    }
}
