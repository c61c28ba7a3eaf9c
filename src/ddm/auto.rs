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

use crate::Result;
use crate::ddm::catalog::Catalog;
use crate::ddm::software_update;
use crate::lifecycle::journal::Tx;
use crate::progress::Progress;

use super::enforce;
pub(crate) use super::pass::{AutoOptions, AutoOutcome};
use super::pass::{Candidate, install, scan};
use crate::gates::policy::Policy;

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
    let (mut applicable, mut later) = scan(device, &opts.from, catalog.as_ref(), &mut log)?;
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
        updated: None,
        dry_run: opts.dry_run,
        log: Vec::new(),
    };
    let had_wanted = software_update::wanted(device).is_some();

    // 1. Enforcement declarations in effect.
    let pass = enforce::Pass {
        applicable: &mut applicable,
        later: &mut later,
        snapshot: &snapshot,
        policy: &policy,
        catalog: catalog.as_ref(),
        staged: staged.as_ref(),
        active,
        outcome: &mut outcome,
        log: &mut log,
    };
    if enforce::enforce(tx, opts, progress, pass)? {
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
            policy.automatic_forced.as_ref().map_or_else(
                || "user's setting".to_owned(),
                |(_, id)| format!("declaration {id}")
            )
        )),
        Some(c) => {
            log.push(format!(
                "automatic install is on; {} {}",
                if opts.dry_run {
                    "would install"
                } else {
                    "installing"
                },
                c.version
            ));
            install(tx, progress, opts, c, None, false, &mut outcome, &mut log)?;
        }
    }
    log_waiting(&later, &policy, &mut log);
    // Nothing is wanted any more (the enforcement went, or what it wanted is in place).
    if had_wanted && !opts.dry_run && software_update::wanted(device).is_some() {
        tx.begin()?;
        software_update::forget_wanted(device)?;
    }
    outcome.log = log;
    Ok(outcome)
}

/// Says why each response for a later minor version waits.
fn log_waiting(later: &[Candidate], policy: &Policy, log: &mut Vec<String>) {
    for c in later {
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
}
