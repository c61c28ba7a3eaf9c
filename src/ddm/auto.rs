//! `bsi auto --from DIR`: one background pass, as a device makes when it checks for responses.
//!
//! 1. An enforcement declaration whose `TargetLocalDateTime` has passed (device local time)
//!    installs its target, the bundle in DIR whose version and supplemental build match
//!    `TargetOSVersion` and `TargetBuildVersion`, and restarts, even with automatic install off or
//!    `RapidSecurityResponse.Enable = false`.
//! 2. With automatic install on (and user installs not turned off by policy), the newest
//!    applicable, trusted bundle in DIR newer than what is active or staged is installed,
//!    restarting only if it has OS content.
//!
//! The power gate still holds: a due install that the battery blocks installs nothing, is
//! recorded as a failure (`report`'s `failure-reason`), and the pass exits 3; the next pass after
//! power returns installs it. Bundles for a later minor version are reported as waiting for that
//! update (and for its deferral, if one is set). The pass prints what it did and why.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bundle::source::Opened;
use crate::bundle::{Bundle, BundleError};
use crate::ddm::catalog::Catalog;
use crate::ddm::report;
use crate::device::Device;
use crate::device::trust;
use crate::lifecycle::apply::{self, ApplyOptions};
use crate::lifecycle::journal::Tx;
use crate::progress::Progress;
use crate::untrusted::clip;
use crate::version::{Build, ResponseVersion};
use crate::{Error, Result};

/// How the pass is asked to run.
#[derive(Clone, Debug)]
pub struct AutoOptions {
    /// Where bundles are.
    pub from: PathBuf,
    /// An optional catalog: bundles whose build it does not list, or lists as expired, are skipped.
    pub catalog: Option<PathBuf>,
    /// Report only.
    pub dry_run: bool,
}

/// What the pass did.
#[derive(Clone, Debug, Serialize)]
pub struct AutoOutcome {
    /// The response installed, if any.
    pub installed: Option<String>,
    /// Why: `declaration` or `auto-update`.
    pub reason: Option<String>,
    /// The enforcing declaration, for `declaration`.
    pub declaration: Option<String>,
    /// The pass restarted the device.
    pub restarted: bool,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
    /// What it did and why, line by line.
    pub log: Vec<String>,
}

/// A bundle the scan opened and checked (signature, structure): it is the one applied, never
/// reopened by path.
struct Candidate {
    bundle: Bundle,
    version: ResponseVersion,
    build: Build,
}

fn scan(
    device: &Device,
    dir: &Path,
    catalog: Option<&Catalog>,
    log: &mut Vec<String>,
) -> Result<(Vec<Candidate>, Vec<Candidate>)> {
    let trusted = trust::load(device.root())?;
    let base = device.base()?;
    let platform = device.info().platform;
    let mut applicable = Vec::new();
    let mut later = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::usage(
                format!("no directory at {}", dir.display()),
                "--from takes a directory of bundles",
            )
        } else {
            Error::io("listing", dir, e)
        }
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        let name = clip(&name);
        // Only bundles are considered: other files in the directory are left alone quietly.
        let opened = match Opened::open(&path) {
            Ok(o) => o,
            Err(BundleError::NotABundle { .. }) => continue,
            Err(e) => {
                log.push(format!("skipped {name}: {e}"));
                continue;
            }
        };
        let mut bundle = match opened.verify(&trusted) {
            Ok((b, _)) => b,
            Err(e) => {
                log.push(format!("skipped {name}: {e}"));
                continue;
            }
        };
        if let Err(e) = bundle.check_structure() {
            log.push(format!("skipped {name}: damaged: {e}"));
            continue;
        }
        let m = &bundle.manifest;
        if m.product != platform {
            continue;
        }
        if let Some(cat) = catalog {
            match cat.lists_build(platform, m.build.as_str()) {
                None => {
                    log.push(format!(
                        "skipped {name}: the catalog does not list build {}",
                        m.build
                    ));
                    continue;
                }
                Some(e) if e.expired => {
                    log.push(format!(
                        "skipped {name}: the catalog lists {} as expired",
                        m.build
                    ));
                    continue;
                }
                Some(_) => {}
            }
        }
        let fits = base.accepts(&m.version, &m.prerequisite);
        let later_minor = m.version > base.version && m.version.major() == base.version.major();
        let candidate = Candidate {
            version: m.response_version(),
            build: m.build.clone(),
            bundle,
        };
        if fits {
            applicable.push(candidate);
        } else if later_minor {
            later.push(candidate);
        }
    }
    Ok((applicable, later))
}

/// Runs one background pass.
pub fn run(tx: &mut Tx<'_>, opts: &AutoOptions, progress: &dyn Progress) -> Result<AutoOutcome> {
    let device = tx.device();
    let clock = tx.clock();
    let mut log = Vec::new();
    let catalog = opts
        .catalog
        .as_deref()
        .map(|p| Catalog::load(p, clock))
        .transpose()?;
    let (mut applicable, later) = scan(device, &opts.from, catalog.as_ref(), &mut log)?;
    crate::faults::pause_point!("auto.scanned");
    let policy = crate::gates::policy::of(device)?;
    let snapshot = device.snapshot()?;
    let newest_present = [
        snapshot.active.as_ref().map(|a| a.version),
        snapshot.staged_install().map(|p| p.version),
    ]
    .into_iter()
    .flatten()
    .max();
    let mut outcome = AutoOutcome {
        installed: None,
        reason: None,
        declaration: None,
        restarted: false,
        dry_run: opts.dry_run,
        log: Vec::new(),
    };
    let now = clock.local();
    let base = &snapshot.base;

    // 1. Enforcement deadlines.
    for (id, e) in &policy.enforcements {
        let due = e.target_local_date_time <= now;
        let deadline = e.target_local_date_time.format("%Y-%m-%dT%H:%M:%S");
        if e.target_build_version.as_ref() == Some(&base.build)
            || (e.target_build_version.is_none()
                && e.target_os_version == base.version
                && newest_present.is_none()
                && applicable.is_empty())
        {
            log.push(format!(
                "enforcement {id}: the device already runs {} ({})",
                base.version, base.build
            ));
            continue;
        }
        if e.target_os_version < base.version {
            log.push(format!(
                "enforcement {id}: the device runs {}, which already includes {}",
                base.version, e.target_os_version
            ));
            continue;
        }
        if e.target_os_version > base.version {
            log.push(format!(
                "enforcement {id}: {} is an OS update; simulate it with `bsi update`",
                e.target_os_version
            ));
            continue;
        }
        let target = applicable
            .iter()
            .enumerate()
            .filter(|(_, c)| match &e.target_build_version {
                Some(b) => &c.build == b,
                None => true,
            })
            .max_by_key(|(_, c)| c.version)
            .map(|(i, _)| i);
        let Some(target) = target else {
            let what = e.target_build_version.as_ref().map_or_else(
                || e.target_os_version.to_string(),
                |b| format!("{} ({b})", e.target_os_version),
            );
            if snapshot
                .active
                .as_ref()
                .is_some_and(|a| Some(&a.build) == e.target_build_version.as_ref())
            {
                log.push(format!("enforcement {id}: {what} is active"));
            } else {
                log.push(format!(
                    "enforcement {id}: no bundle for {what} in {}",
                    opts.from.display()
                ));
            }
            continue;
        };
        let target = applicable.swap_remove(target);
        if newest_present.is_some_and(|p| p >= target.version) {
            log.push(format!(
                "enforcement {id}: {} is satisfied by {}",
                target.version,
                newest_present.map(|p| p.to_string()).unwrap_or_default()
            ));
            continue;
        }
        if !due {
            log.push(format!(
                "enforcement {id}: {} is due at {deadline} local time; not yet",
                target.version
            ));
            continue;
        }
        log.push(format!(
            "enforcement {id}: the deadline {deadline} has passed; {} {} and {}",
            if opts.dry_run {
                "would install"
            } else {
                "installing"
            },
            target.version,
            if opts.dry_run {
                "restart"
            } else {
                "restarting"
            }
        ));
        install(tx, progress, opts, target, Some(id), &mut outcome, &mut log)?;
        outcome.log = log;
        return Ok(outcome);
    }

    // 2. Automatic install.
    let newest = applicable
        .iter()
        .enumerate()
        .filter(|(_, c)| newest_present.is_none_or(|p| c.version > p))
        .max_by_key(|(_, c)| c.version)
        .map(|(i, _)| i);
    let newest = newest.map(|i| applicable.swap_remove(i));
    match newest {
        None => log.push(format!("no applicable response newer than {} in {}", snapshot.version_label(), opts.from.display())),
        Some(c) if !policy.automatic => log.push(format!(
            "{} is available, but automatic install is off ({})",
            c.version,
            policy.automatic_forced.as_ref().map_or_else(|| "user's setting".to_owned(), |(_, id)| format!("declaration {id}"))
        )),
        Some(c) if policy.install_blocked_by.is_some() => log.push(format!(
            "{} is available, but installs are turned off by declaration {} (RapidSecurityResponse.Enable = false)",
            c.version,
            policy.install_blocked_by.clone().unwrap_or_default()
        )),
        Some(c) => {
            log.push(format!(
                "automatic install is on; {} {}",
                if opts.dry_run { "would install" } else { "installing" },
                c.version
            ));
            install(tx, progress, opts, c, None, &mut outcome, &mut log)?;
        }
    }
    for c in &later {
        let wait = match &policy.deferral {
            Some((key, days, id)) => format!(
                ", which declaration {id} defers ({key} = {days}); responses ignore deferrals but need the latest minor version"
            ),
            None => String::new(),
        };
        log.push(format!(
            "{} waits for the minor update to {}{wait}",
            c.version, c.version.os
        ));
    }
    outcome.log = log;
    Ok(outcome)
}

fn install(
    tx: &mut Tx<'_>,
    progress: &dyn Progress,
    opts: &AutoOptions,
    c: Candidate,
    declaration: Option<&String>,
    outcome: &mut AutoOutcome,
    log: &mut Vec<String>,
) -> Result<()> {
    let apply_opts = ApplyOptions {
        bundle: c.bundle.path.clone(),
        restart: true,
        dry_run: opts.dry_run,
        enforced_by: declaration.cloned(),
    };
    let version = c.version.to_string();
    let (device, clock) = (tx.device(), tx.clock());
    match apply::apply_verified(tx, c.bundle, &apply_opts, progress) {
        Ok(result) => {
            log.push(result.message.clone());
            outcome.installed = Some(version.clone());
            outcome.restarted = matches!(result.action, apply::ApplyAction::StagedAndRestarted);
            outcome.reason = Some(
                if declaration.is_some() {
                    "declaration"
                } else {
                    "auto-update"
                }
                .to_owned(),
            );
            outcome.declaration = declaration.cloned();
            if !opts.dry_run {
                let trigger = declaration.map_or(report::Trigger::AutoUpdate, |id| {
                    report::Trigger::Declaration(id.clone())
                });
                report::record_success(device, Some(&version), trigger)?;
            }
            Ok(())
        }
        Err(e) => {
            if !opts.dry_run {
                report::record_failure_of(device, clock, Some(&version), &e)?;
            }
            log.push(format!("could not install {version}: {e}"));
            Err(e)
        }
    }
}
