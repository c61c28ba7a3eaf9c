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
use crate::ddm::software_update;
use crate::device::Device;
use crate::device::records::InstallTrigger;
use crate::device::trust;
use crate::human::{Human, Text};
use crate::lifecycle::apply::{self, ApplyOptions};
use crate::lifecycle::journal::Tx;
use crate::lifecycle::restart;
use crate::progress::Progress;
use crate::untrusted::clip;
use crate::version::{Build, ResponseVersion};
use crate::{Error, Result};

/// How the pass is asked to run.
#[derive(Clone, Debug)]
pub(crate) struct AutoOptions {
    /// Where bundles are.
    pub from: PathBuf,
    /// An optional catalog: bundles whose build it does not list, or lists as expired, are skipped.
    pub catalog: Option<PathBuf>,
    /// Report only.
    pub dry_run: bool,
}

/// What the pass did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct AutoOutcome {
    /// The response installed, if any.
    pub installed: Option<String>,
    /// Why: `declaration` or `auto-update`.
    pub reason: Option<String>,
    /// The enforcing declaration, for `declaration`.
    pub declaration: Option<String>,
    /// The pass restarted the device.
    pub restarted: bool,
    /// The response this pass staged (it waits for a restart), if any.
    pub staged: Option<String>,
    /// A response staged and waiting for the restart the user is prompted for (staged by this
    /// pass or earlier).
    pub prepared: Option<String>,
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
        if !platform.takes_bundles_for(m.product) {
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
pub(crate) fn run(
    tx: &mut Tx<'_>,
    opts: &AutoOptions,
    progress: &dyn Progress,
) -> Result<AutoOutcome> {
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
    let snapshot = device.snapshot()?;
    let policy = crate::gates::policy::of_with(device, &snapshot)?;
    let staged = snapshot
        .staged_install()
        .map(|p| (p.version, p.build.clone()));
    let active = snapshot.active.as_ref().map(|a| a.version);
    let newest_present = [active, staged.as_ref().map(|(v, _)| *v)]
        .into_iter()
        .flatten()
        .max();
    let mut outcome = AutoOutcome {
        installed: None,
        reason: None,
        declaration: None,
        restarted: false,
        staged: None,
        prepared: None,
        dry_run: opts.dry_run,
        log: Vec::new(),
    };
    let now = clock.local();
    let base = &snapshot.base;
    let had_wanted = software_update::wanted(device).is_some();

    // 1. Enforcement declarations in effect.
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
        let wanted_build = |b: &Build| e.target_build_version.as_ref().is_none_or(|t| t == b);
        // Prepared earlier (by this pass before the deadline, or by the user): the deadline
        // restarts into it.
        if let Some((version, build)) = &staged {
            let satisfies = wanted_build(build);
            let target_newer = applicable
                .iter()
                .filter(|c| wanted_build(&c.build))
                .any(|c| c.version > *version);
            if satisfies && !target_newer {
                if !due {
                    log.push(format!(
                        "enforcement {id}: {version} is prepared; the device restarts into it at the deadline {deadline} local time unless the user restarts first"
                    ));
                    outcome.prepared = Some(version.to_string());
                    continue;
                }
                log.push(format!(
                    "enforcement {id}: the deadline {deadline} has passed; {} into {version}",
                    if opts.dry_run {
                        "would restart"
                    } else {
                        "restarting"
                    }
                ));
                restart_into(
                    tx,
                    opts,
                    id,
                    &(version.to_string(), build.to_string()),
                    &mut outcome,
                    &mut log,
                )?;
                outcome.log = log;
                return Ok(outcome);
            }
        }
        let target = applicable
            .iter()
            .enumerate()
            .filter(|(_, c)| wanted_build(&c.build))
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
        if active.is_some_and(|p| p >= target.version) {
            log.push(format!(
                "enforcement {id}: {} is satisfied by {}",
                target.version,
                active.map(|p| p.to_string()).unwrap_or_default()
            ));
            continue;
        }
        if due {
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
            install(
                tx,
                progress,
                opts,
                target,
                Some(id),
                true,
                &mut outcome,
                &mut log,
            )?;
            outcome.log = log;
            return Ok(outcome);
        }
        // Before the deadline the device prepares the response, as real devices download and
        // prepare an enforced update ahead of it; only the deadline restarts.
        if !crate::gates::power::passes(device.info(), device.power()?) {
            log.push(format!(
                "enforcement {id}: {} is due at {deadline} local time; waiting for power to prepare it",
                target.version
            ));
            if !opts.dry_run {
                tx.begin()?;
                software_update::record_wanted(
                    device,
                    InstallTrigger::Declaration,
                    Some(id),
                    (&target.version.to_string(), target.build.as_str()),
                )?;
            }
            outcome.log = log;
            return Ok(outcome);
        }
        log.push(format!(
            "enforcement {id}: {} is due at {deadline} local time; {} it now",
            target.version,
            if opts.dry_run {
                "would prepare"
            } else {
                "preparing"
            }
        ));
        install(
            tx,
            progress,
            opts,
            target,
            Some(id),
            false,
            &mut outcome,
            &mut log,
        )?;
        outcome.log = log;
        return Ok(outcome);
    }

    // 2. Automatic install: stage and prompt; only App content is active at once.
    let newest = applicable
        .iter()
        .enumerate()
        .filter(|(_, c)| newest_present.is_none_or(|p| c.version > p))
        .max_by_key(|(_, c)| c.version)
        .map(|(i, _)| i);
    let newest = newest.map(|i| applicable.swap_remove(i));
    match newest {
        None => {
            log.push(format!(
                "no applicable response newer than {} in {}",
                newest_present.map_or_else(|| snapshot.version_label(), |p| p.to_string()),
                opts.from.display()
            ));
            if let Some((version, _)) = &staged {
                log.push(format!(
                    "{version} is prepared; the user is prompted to restart (`bsi restart`)"
                ));
                outcome.prepared = Some(version.to_string());
            }
        }
        Some(c) if !policy.automatic => log.push(format!(
            "{} is available, but automatic install is off ({})",
            c.version,
            policy
                .automatic_forced
                .as_ref()
                .map_or_else(|| "user's setting".to_owned(), |(_, id)| format!("declaration {id}"))
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
            install(tx, progress, opts, c, None, false, &mut outcome, &mut log)?;
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
    // Nothing is wanted any more (the enforcement went, or what it wanted is in place).
    if had_wanted && !opts.dry_run && software_update::wanted(device).is_some() {
        tx.begin()?;
        software_update::forget_wanted(device)?;
    }
    outcome.log = log;
    Ok(outcome)
}

/// A due enforcement whose response is staged: restart into it, through the power gate.
fn restart_into(
    tx: &mut Tx<'_>,
    opts: &AutoOptions,
    declaration: &str,
    target: &(String, String),
    outcome: &mut AutoOutcome,
    log: &mut Vec<String>,
) -> Result<()> {
    let (device, clock) = (tx.device(), tx.clock());
    if let Err(e) = crate::gates::power::check(device.info(), device.power()?) {
        log.push(format!("could not install {}: {e}", target.0));
        if !opts.dry_run {
            tx.begin()?;
            software_update::record_failure(device, clock, Some((&target.0, &target.1)), &e)?;
        }
        return Err(e);
    }
    let result = restart::restart(tx, opts.dry_run)?;
    log.push(result.message.clone());
    outcome.installed.clone_from(&result.activated);
    outcome.restarted = !opts.dry_run;
    outcome.reason = Some(InstallTrigger::Declaration.name().to_owned());
    outcome.declaration = Some(declaration.to_owned());
    if !opts.dry_run {
        software_update::record_success(tx.device())?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn install(
    tx: &mut Tx<'_>,
    progress: &dyn Progress,
    opts: &AutoOptions,
    c: Candidate,
    declaration: Option<&String>,
    restart: bool,
    outcome: &mut AutoOutcome,
    log: &mut Vec<String>,
) -> Result<()> {
    let trigger = if declaration.is_some() {
        InstallTrigger::Declaration
    } else {
        InstallTrigger::AutoUpdate
    };
    let apply_opts = ApplyOptions {
        bundle: c.bundle.path.clone(),
        restart,
        dry_run: opts.dry_run,
        enforced_by: declaration.cloned(),
        trigger,
    };
    let version = c.version.to_string();
    let build = c.build.to_string();
    let (device, clock) = (tx.device(), tx.clock());
    match apply::apply_verified(tx, c.bundle, &apply_opts, progress) {
        Ok(result) => {
            log.push(result.message.clone());
            match result.action {
                apply::ApplyAction::Staged => {
                    log.push(format!(
                        "{version} is prepared; the user is prompted to restart (`bsi restart`){}",
                        if declaration.is_some() {
                            ", or the deadline restarts the device"
                        } else {
                            ""
                        }
                    ));
                    outcome.prepared = Some(version.clone());
                    outcome.staged = Some(version.clone());
                }
                _ => outcome.installed = Some(version.clone()),
            }
            outcome.restarted = matches!(result.action, apply::ApplyAction::StagedAndRestarted);
            outcome.reason = Some(trigger.name().to_owned());
            outcome.declaration = declaration.cloned();
            if !opts.dry_run && result.action.installs() {
                software_update::record_success(device)?;
            }
            Ok(())
        }
        Err(e) => {
            if !opts.dry_run {
                tx.begin()?;
                software_update::record_failure(device, clock, Some((&version, &build)), &e)?;
            }
            log.push(format!("could not install {version}: {e}"));
            Err(e)
        }
    }
}

impl Human for AutoOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        for l in &self.log {
            out.line(l);
        }
    }
}
