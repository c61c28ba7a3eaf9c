//! Step 1 of a background pass (`bsi auto`): the enforcement declarations in effect. One whose
//! `TargetLocalDateTime` has passed (device local time) installs its target, the bundle whose
//! version and supplemental build match `TargetOSVersion` and `TargetBuildVersion`, and
//! restarts, whatever the automatic-install settings; before the deadline the device prepares it.
//! A target whose base is a later minor version is reached in two phases on macOS 15 and iOS 18
//! and later, as Apple's devices do since then: the OS update first (its build from the
//! response's prerequisite, or the catalog), then the response.

use crate::Result;
use crate::ddm::catalog::Catalog;
use crate::ddm::software_update;
use crate::declarations::declaration::EnforcementPayload as Enforcement;
use crate::device::Snapshot;
use crate::device::records::InstallTrigger;
use crate::gates::policy::Policy;
use crate::lifecycle::journal::Tx;
use crate::lifecycle::update;
use crate::progress::Progress;
use crate::version::BaseMove;
use crate::version::{Build, ResponseVersion};

use super::pass::{AutoOptions, AutoOutcome, Candidate, install, restart_into};

/// What the pass knows when it looks at the enforcements.
pub(super) struct Pass<'a> {
    /// Bundles for the device's base.
    pub applicable: &'a mut Vec<Candidate>,
    /// Bundles for a later minor version.
    pub later: &'a mut Vec<Candidate>,
    /// The device's state.
    pub snapshot: &'a Snapshot,
    /// The policy in effect.
    pub policy: &'a Policy,
    /// The catalog, when the pass was given one.
    pub catalog: Option<&'a Catalog>,
    /// The staged install, if any.
    pub staged: Option<&'a (ResponseVersion, Build)>,
    /// The active response, if any.
    pub active: Option<ResponseVersion>,
    /// What the pass did.
    pub outcome: &'a mut AutoOutcome,
    /// What it says.
    pub log: &'a mut Vec<String>,
}

/// Acts on the first enforcement that calls for something; `true` when it did (the pass ends).
pub(super) fn enforce(
    tx: &mut Tx<'_>,
    opts: &AutoOptions,
    progress: &dyn Progress,
    mut pass: Pass<'_>,
) -> Result<bool> {
    let now = tx.clock().local();
    let policy = pass.policy;
    let base = &pass.snapshot.base;
    for (id, e) in &policy.enforcements {
        let deadline = e
            .target_local_date_time
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let target = Enforced {
            id,
            enforcement: e,
            due: e.target_local_date_time <= now,
            deadline: &deadline,
        };
        // An OS target (no build, or a base build) the device has reached. (A same-version OS
        // target that arrived on this version is invalid and never gets here.)
        if e.target_build_version.as_ref() == Some(&base.build)
            || (e.target_build_version.is_none() && e.target_os_version == base.version)
        {
            pass.log.push(format!(
                "enforcement {id}: the device already runs {} ({})",
                base.version, base.build
            ));
            continue;
        }
        if e.target_os_version < base.version {
            pass.log.push(format!(
                "enforcement {id}: the device runs {}, which already includes {}",
                base.version, e.target_os_version
            ));
            continue;
        }
        let acted = if e.target_os_version > base.version {
            pass.update_first(tx, opts, progress, target)?
        } else {
            pass.same_minor(tx, opts, progress, target)?
        };
        if acted {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Pass<'_> {
    /// A target on the device's minor version: restart into it when it is prepared and due,
    /// else install or prepare it. `true` when the pass acted.
    fn same_minor(
        &mut self,
        tx: &mut Tx<'_>,
        opts: &AutoOptions,
        progress: &dyn Progress,
        target: Enforced<'_>,
    ) -> Result<bool> {
        let Enforced {
            id,
            enforcement: e,
            due,
            deadline,
        } = target;
        if let Some(acted) = self.staged_target(tx, opts, target)? {
            return Ok(acted);
        }
        let found = self
            .applicable
            .iter()
            .enumerate()
            .filter(|(_, c)| target.wants(&c.build))
            .max_by_key(|(_, c)| c.version)
            .map(|(i, _)| i);
        let Some(found) = found else {
            let what = e.target_build_version.as_ref().map_or_else(
                || e.target_os_version.to_string(),
                |b| format!("{} ({b})", e.target_os_version),
            );
            if self
                .snapshot
                .active
                .as_ref()
                .is_some_and(|a| Some(&a.build) == e.target_build_version.as_ref())
            {
                self.log.push(format!("enforcement {id}: {what} is active"));
            } else {
                self.log.push(format!(
                    "enforcement {id}: no bundle for {what} in {}",
                    opts.from.display()
                ));
            }
            return Ok(false);
        };
        let found = self.applicable.swap_remove(found);
        let active = self.active;
        if active.is_some_and(|p| p >= found.version) {
            self.log.push(format!(
                "enforcement {id}: {} is satisfied by {}",
                found.version,
                active.map(|p| p.to_string()).unwrap_or_default()
            ));
            return Ok(false);
        }
        if due {
            self.log.push(format!(
                "enforcement {id}: the deadline {deadline} has passed; {} {} and {}",
                if opts.dry_run {
                    "would install"
                } else {
                    "installing"
                },
                found.version,
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
                found,
                Some(id),
                true,
                self.outcome,
                self.log,
            )?;
            return Ok(true);
        }
        self.prepare(tx, opts, progress, target, found)?;
        Ok(true)
    }

    /// Before the deadline the device prepares the response, as real devices download and
    /// prepare an enforced update ahead of it (once there is power); only the deadline restarts.
    fn prepare(
        &mut self,
        tx: &mut Tx<'_>,
        opts: &AutoOptions,
        progress: &dyn Progress,
        target: Enforced<'_>,
        found: Candidate,
    ) -> Result<()> {
        let Enforced { id, deadline, .. } = target;
        let device = tx.device();
        if !crate::gates::power::passes(device.info(), device.power()?) {
            self.log.push(format!(
                "enforcement {id}: {} is due at {deadline} local time; waiting for power to prepare it",
                found.version
            ));
            if !opts.dry_run {
                tx.begin()?;
                software_update::record_wanted(
                    device,
                    InstallTrigger::Declaration,
                    Some(id),
                    (&found.version.to_string(), found.build.as_str()),
                )?;
            }
            return Ok(());
        }
        self.log.push(format!(
            "enforcement {id}: {} is due at {deadline} local time; {} it now",
            found.version,
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
            found,
            Some(id),
            false,
            self.outcome,
            self.log,
        )
    }

    /// A response prepared earlier (by this pass before the deadline, or by the user) that
    /// satisfies the target: the deadline restarts into it. `None` when there is none.
    fn staged_target(
        &mut self,
        tx: &mut Tx<'_>,
        opts: &AutoOptions,
        target: Enforced<'_>,
    ) -> Result<Option<bool>> {
        let Enforced {
            id, due, deadline, ..
        } = target;
        let Some((version, build)) = self.staged else {
            return Ok(None);
        };
        let target_newer = self
            .applicable
            .iter()
            .filter(|c| target.wants(&c.build))
            .any(|c| c.version > *version);
        if !target.wants(build) || target_newer {
            return Ok(None);
        }
        if !due {
            self.log.push(format!(
                "enforcement {id}: {version} is prepared; the device restarts into it at the deadline {deadline} local time unless the user restarts first"
            ));
            self.outcome.prepared = Some(version.to_string());
            return Ok(Some(false));
        }
        self.log.push(format!(
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
            self.outcome,
            self.log,
        )?;
        Ok(Some(true))
    }
}

/// An enforcement in effect, with when it is due.
#[derive(Clone, Copy)]
struct Enforced<'e> {
    id: &'e str,
    enforcement: &'e Enforcement,
    due: bool,
    deadline: &'e str,
}

impl Enforced<'_> {
    /// Whether a response of `build` is what the enforcement targets: its build, or any when
    /// it names none.
    fn wants(&self, build: &Build) -> bool {
        self.enforcement
            .target_build_version
            .as_ref()
            .is_none_or(|t| t == build)
    }
}

/// Where the OS update an enforcement needs first comes from: the response's prerequisite, a
/// base build the declaration names, the catalog's release, or the prerequisite of any bundle
/// for that version.
fn base_build_for(
    e: &Enforcement,
    response: Option<&Candidate>,
    later: &[Candidate],
    catalog: Option<&Catalog>,
    platform: crate::platform::Platform,
) -> Option<Build> {
    if let Some(c) = response {
        return Some(c.bundle.manifest.prerequisite.clone());
    }
    if let Some(b) = &e.target_build_version
        && Build::parse_base(b.as_str()).is_ok()
    {
        return Some(b.clone());
    }
    catalog
        .and_then(|c| c.release_build(platform, &e.target_os_version))
        .and_then(|b| b.parse().ok())
        .or_else(|| {
            later
                .iter()
                .find(|c| c.version.os == e.target_os_version)
                .map(|c| c.bundle.manifest.prerequisite.clone())
        })
}

/// What a later-minor target needs: the base build to update to, and the response to install
/// after it (its index in the later bundles), if any.
struct UpdatePlan {
    build: Build,
    response: Option<usize>,
}

impl Pass<'_> {
    /// A target on a later minor version: since iOS 18 and macOS 15 the device updates its base
    /// first, then installs the response, reporting each phase; earlier versions say the OS
    /// update comes first on its own. `true` when the pass acted.
    fn update_first(
        &mut self,
        tx: &mut Tx<'_>,
        opts: &AutoOptions,
        progress: &dyn Progress,
        target: Enforced<'_>,
    ) -> Result<bool> {
        let Enforced {
            id,
            enforcement: e,
            due,
            deadline,
        } = target;
        let os = e.target_os_version;
        let Some(UpdatePlan { build, response }) = self.plan_update(tx, opts, target)? else {
            return Ok(false);
        };
        let what = response.map(|i| self.later[i].version.to_string());
        let plan = match &what {
            Some(r) => format!("updates to {os} ({build}), then installs {r}"),
            None => format!("updates to {os} ({build})"),
        };
        if !due {
            self.log.push(format!(
                "enforcement {id}: due at {deadline} local time; at the deadline the device {plan}"
            ));
            return Ok(false);
        }
        if opts.dry_run {
            self.log.push(format!(
                "enforcement {id}: the deadline {deadline} has passed; the device would {}",
                plan.replacen("updates", "update", 1)
                    .replacen("installs", "install", 1)
            ));
            return Ok(true);
        }
        self.run_update(tx, opts, progress, target, UpdatePlan { build, response })?;
        Ok(true)
    }

    /// The base build a later-minor target updates to, or `None` (said in the log) when the
    /// device cannot reach it by itself.
    fn plan_update(
        &mut self,
        tx: &Tx<'_>,
        opts: &AutoOptions,
        target: Enforced<'_>,
    ) -> Result<Option<UpdatePlan>> {
        let Enforced {
            id, enforcement: e, ..
        } = target;
        let device = tx.device();
        let base = device.base()?;
        let platform = device.info().platform;
        let os = e.target_os_version;
        if os.major() != base.version.major() {
            self.log.push(format!(
                "enforcement {id}: {os} is a major upgrade from {}; simulate it with `bsi upgrade --version {os} --build BUILD`",
                base.version
            ));
            return Ok(None);
        }
        // A response build names the response to install after the update; without one (or
        // with a base build) the target is the OS update alone.
        let later = &*self.later;
        let response = e.target_build_version.as_ref().and_then(|t| {
            later
                .iter()
                .position(|c| c.version.os == os && c.build == *t)
        });
        if let Some(t) = &e.target_build_version
            && response.is_none()
            && Build::parse_base(t.as_str()).is_err()
        {
            self.log.push(format!(
                "enforcement {id}: no bundle for {os} ({t}) in {}",
                opts.from.display()
            ));
            return Ok(None);
        }
        let found = base_build_for(
            e,
            response.map(|i| &later[i]),
            later,
            self.catalog,
            platform,
        );
        let Some(build) = found else {
            self.log.push(format!(
                "enforcement {id}: {os} needs an OS update first, and neither a bundle in {} nor a catalog names its build; pass `--catalog`, or update with `bsi update --version {os} --build BUILD`",
                opts.from.display()
            ));
            return Ok(None);
        };
        let first = platform.first_to_update_first();
        if base.version < first {
            self.log.push(format!(
                "enforcement {id}: {os} ({build}) is an OS update; devices before {} {first} install it on its own first (`bsi update --version {os} --build {build}`)",
                platform.name()
            ));
            return Ok(None);
        }
        Ok(Some(UpdatePlan { build, response }))
    }

    /// The two phases of a due later-minor target: the OS update, committed and finished on
    /// its own, then the response on the new base.
    fn run_update(
        &mut self,
        tx: &mut Tx<'_>,
        opts: &AutoOptions,
        progress: &dyn Progress,
        target: Enforced<'_>,
        plan: UpdatePlan,
    ) -> Result<()> {
        let Enforced {
            id,
            enforcement: e,
            deadline,
            ..
        } = target;
        let UpdatePlan { build, response } = plan;
        let os = e.target_os_version;
        let device = tx.device();
        let base = device.base()?;
        let platform = device.info().platform;
        // What is pending: the response when there is one, else the OS update.
        let pending = response.map_or_else(
            || (os.to_string(), build.to_string()),
            |i| {
                (
                    self.later[i].version.to_string(),
                    self.later[i].build.to_string(),
                )
            },
        );
        if let Err(err) = crate::gates::power::check(device.info(), device.power()?) {
            self.log.push(format!("could not update to {os}: {err}"));
            tx.begin()?;
            software_update::record_wanted(
                device,
                InstallTrigger::Declaration,
                Some(id),
                (&pending.0, &pending.1),
            )?;
            let failed = Some((pending.0.as_str(), pending.1.as_str()));
            software_update::record_failure(device, tx.clock(), failed, &err)?;
            return Err(err);
        }
        let published = self.catalog.map_or_else(Vec::new, |c| {
            c.responses_for_base(platform, &base.version, base.build.as_str())
        });
        self.log.push(format!(
            "enforcement {id}: the deadline {deadline} has passed; phase 1: updating to {os} ({build})"
        ));
        let updated = update::update(tx, BaseMove::Minor, os, &build, &published, false)?;
        self.log.push(updated.message.clone());
        tx.settle()?;
        self.outcome.updated = Some(updated.to);
        self.outcome.reason = Some(InstallTrigger::Declaration.name().to_owned());
        self.outcome.declaration = Some(id.to_owned());
        self.outcome.restarted = true;
        let Some(i) = response else {
            software_update::record_success(tx.device())?;
            return Ok(());
        };
        let candidate = self.later.swap_remove(i);
        self.log.push(format!(
            "enforcement {id}: phase 2: installing {} and restarting",
            candidate.version
        ));
        install(
            tx,
            progress,
            opts,
            candidate,
            Some(id),
            true,
            self.outcome,
            self.log,
        )
    }
}
