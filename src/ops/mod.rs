//! Operations: every command as one library function that owns the protocol around the rules, so
//! that no caller (the command line, `auto`, a test, another program) can skip it.
//!
//! A changing operation ([`change`]) opens the device, takes the exclusive lock, recovers an
//! interrupted operation, sweeps leftover temporaries, and hands the rules (in `lifecycle`,
//! `ddm` and [`manage`]) a [`Tx`]: they run every check first and open the journal right before
//! their first change. Then the operation appends the history entry (refused or not, while the
//! journal is still open) and closes the journal; on an error the `Tx` is dropped, which tidies
//! the device back to a consistent state. A reading operation opens the device for reading.
//! Operations return typed outcomes, never text for people: the command line renders them.

pub(crate) mod manage;
pub(crate) mod mdm;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bundle::inspect;
use crate::clock::Clock;
use crate::ddm::{auto, report, software_update, sync};
use crate::device::generation::sweep_temporaries;
use crate::device::layout;
use crate::device::{Access, Device};
use crate::history::{self, Entry, OpResult};
use crate::lifecycle::apply::{ApplyAction, ApplyOptions, ApplyOutcome};
use crate::lifecycle::journal::Tx;
use crate::lifecycle::repair::{RepairOptions, RepairOutcome};
use crate::lifecycle::restart::RestartOutcome;
use crate::lifecycle::rollback::RollbackOutcome;
use crate::lifecycle::safari::RelaunchOutcome;
use crate::lifecycle::update::UpdateOutcome;
use crate::lifecycle::verify::VerifyOutcome;
use crate::lifecycle::{
    self, apply, repair as repairing, restart, rollback, safari, update, verify,
};
use crate::progress::Progress;
use crate::status::{self, Status, require};
use crate::version::{BaseMove, Build, OsVersion};
use crate::{Error, Result};

/// Where and how operations run: the device root, the clock, and how long to wait for the lock.
#[derive(Clone, Debug)]
pub(crate) struct Env {
    /// The device root.
    pub root: PathBuf,
    /// The clock.
    pub clock: Clock,
    /// How long to wait for another bsi to release the device.
    pub wait: Duration,
}

/// A completed operation and what went wrong after its change was made (a record that could not
/// be written): the change stands, and the caller shows the warnings.
#[derive(Debug)]
pub(crate) struct Done<T> {
    /// The outcome.
    pub value: T,
    /// Secondary failures after the change.
    pub warnings: Vec<String>,
}

/// What the history says about an outcome.
pub(crate) trait Recorded {
    /// One sentence.
    fn summary(&self) -> String;
    /// The target version or thing, if any.
    fn target(&self) -> Option<String> {
        None
    }
    /// The device was already in the requested state.
    fn nothing_to_do(&self) -> bool {
        false
    }
}

/// Opens the device for reading: no lock, no recovery, nothing written.
pub(crate) fn open_read(env: &Env) -> Result<Device> {
    lifecycle::open_to_read(&env.root)
}

/// Directories where a write cut short can leave a `.bsi-tmp.*` record temporary.
const RECORD_DIRS: [&str; 3] = [layout::DB, layout::TRUST, layout::DECLARATIONS];

/// Runs a changing operation: exclusive lock, recovery, then `body` with a journal it opens
/// before its first change, then a history entry for the outcome (except with `--dry-run`, which
/// changes nothing, not even the history), then the journal is closed.
pub(crate) fn change<T: Recorded>(
    env: &Env,
    action: &'static str,
    dry_run: bool,
    target: Option<String>,
    body: impl FnOnce(&mut Tx<'_>) -> Result<T>,
) -> Result<Done<T>> {
    if dry_run {
        // A dry run changes nothing, ever: no lock record, no recovery, no history. It sees the
        // committed state as a reader does, and says so when a recovery is pending.
        let device = open_read(env)?;
        lifecycle::check_before_change(&device)?;
        let mut tx = Tx::new(&device, &env.clock, action);
        let value = body(&mut tx)?;
        let warnings = match crate::lifecycle::journal::read(&device)? {
            Some(j) if device.operation().is_none() => vec![format!(
                "{} is waiting to be recovered; the real command recovers it first",
                crate::lifecycle::journal::interrupted(&j.op, None, None)
            )],
            _ => Vec::new(),
        };
        return Ok(Done { value, warnings });
    }
    let device = lifecycle::open_to_change(&env.root, env.wait, action, &env.clock)?;
    let mut tx = Tx::new(&device, &env.clock, action);
    // A record write cut short by a crash outside any journal leaves a temporary: sweep them
    // while this command holds the lock.
    for dir in RECORD_DIRS {
        let _ = sweep_temporaries(device.root(), Path::new(dir));
    }
    let before = device.snapshot().ok().map(|s| s.version_label());
    let result = body(&mut tx);
    device.set_phase("recording");
    let after = device.snapshot().ok().map(|s| s.version_label());
    let mut entry = Entry::new(&env.clock, action);
    entry.before = before;
    entry.after = after;
    let mut warnings = tx.take_warnings();
    match &result {
        Ok(outcome) => {
            entry.target = outcome.target().or(target);
            entry.detail = Some(if warnings.is_empty() {
                outcome.summary()
            } else {
                format!("{} (warning: {})", outcome.summary(), warnings.join("; "))
            });
            if outcome.nothing_to_do() {
                entry.result = OpResult::NothingToDo;
            }
            // The change is made; failing to record it must not report the change as failed.
            if let Err(e) = history::append(device.root(), &entry) {
                warnings.push(format!(
                    "{action} succeeded, but recording it in the history failed: {e}"
                ));
            }
        }
        Err(e) => {
            let mut entry = entry.failed(e);
            entry.target = target;
            // The command failed already; failing to record that must not hide why.
            let _ = history::append(device.root(), &entry);
        }
    }
    match result {
        Ok(value) => {
            if let Err(e) = tx.finish() {
                warnings.push(format!(
                    "{action} succeeded, but closing its journal failed ({e}); the next command tidies up"
                ));
            }
            Ok(Done { value, warnings })
        }
        Err(e) => {
            drop(tx);
            Err(e)
        }
    }
}

/// `bsi apply`.
pub(crate) fn apply(
    env: &Env,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<Done<ApplyOutcome>> {
    // On success the outcome names the response; a refusal records the bundle's path.
    let target = Some(crate::untrusted::clip(&opts.bundle.display().to_string()));
    let mut warnings = Vec::new();
    let mut done = change(env, "apply", opts.dry_run, target, |tx| {
        let result = apply::apply(tx, opts, progress).map_err(|e| {
            crate::interrupt::saying(e, "nothing was applied; the device is as it was")
        });
        if !opts.dry_run
            && let Err(e) = software_update::record_apply(tx.device(), tx.clock(), &result)
        {
            warnings.push(format!(
                "apply: recording the software-update status failed: {e}"
            ));
        }
        result
    })?;
    done.warnings.extend(warnings);
    Ok(done)
}

/// `bsi restart`.
pub(crate) fn restart(env: &Env, dry_run: bool) -> Result<Done<RestartOutcome>> {
    change(env, "restart", dry_run, None, |tx| {
        restart::restart(tx, dry_run)
    })
}

/// `bsi relaunch-safari`.
pub(crate) fn relaunch_safari(env: &Env, dry_run: bool) -> Result<Done<RelaunchOutcome>> {
    change(env, "relaunch-safari", dry_run, None, |tx| {
        safari::relaunch_safari(tx, dry_run)
    })
}

/// `bsi rollback`.
pub(crate) fn rollback(
    env: &Env,
    restart_now: bool,
    dry_run: bool,
) -> Result<Done<RollbackOutcome>> {
    change(env, "rollback", dry_run, None, |tx| {
        rollback::rollback(tx, restart_now, dry_run)
    })
}

/// `bsi update` and `bsi upgrade`.
pub(crate) fn update(
    env: &Env,
    kind: BaseMove,
    version: OsVersion,
    build: &Build,
    catalog: Option<&Path>,
    dry_run: bool,
) -> Result<Done<UpdateOutcome>> {
    let action = kind.command();
    let target = Some(format!("{version} ({build})"));
    let catalog = catalog
        .map(|p| crate::ddm::catalog::Catalog::load(p, &env.clock))
        .transpose()?;
    change(env, action, dry_run, target, |tx| {
        let published = match &catalog {
            Some(c) => {
                let base = tx.device().base()?;
                c.responses_for_base(
                    tx.device().info().platform,
                    &base.version,
                    base.build.as_str(),
                )
            }
            None => Vec::new(),
        };
        update::update(tx, kind, version, build, &published, dry_run)
    })
}

/// `bsi auto`.
pub(crate) fn auto(
    env: &Env,
    opts: &auto::AutoOptions,
    progress: &dyn Progress,
) -> Result<Done<auto::AutoOutcome>> {
    change(env, "auto", opts.dry_run, None, |tx| {
        auto::run(tx, opts, progress)
    })
}

/// What `bsi sync` did, and the error of its background pass (reported to the server, then
/// returned: e.g. the battery blocking a due install exits 3).
#[derive(Debug)]
pub(crate) struct Synced {
    /// The outcome.
    pub outcome: sync::SyncOutcome,
    /// The background pass's error, if it failed.
    pub deferred: Option<Error>,
}

/// `bsi sync`.
pub(crate) fn sync(
    env: &Env,
    opts: &sync::SyncOptions,
    progress: &dyn Progress,
) -> Result<Done<Synced>> {
    change(env, "sync", opts.dry_run, None, |tx| {
        let through;
        let opts = if opts.server.is_some() {
            opts
        } else {
            through = crate::mdm::through(tx.device(), opts)?;
            &through
        };
        sync::run(tx, opts, progress).map(|(outcome, deferred)| Synced { outcome, deferred })
    })
}

/// `bsi repair`: first what keeps the device from being opened (the directories of its records,
/// the lock, a damaged device record), then repairs under the exclusive lock. With `--dry-run`
/// it opens the device for reading and writes nothing, not even to recover.
pub(crate) fn repair(
    env: &Env,
    opts: &RepairOptions,
    progress: &dyn Progress,
) -> Result<RepairOutcome> {
    let mut first = repairing::prepare(&env.root, opts.dry_run)?;
    if !opts.dry_run {
        first.extend(crate::device::rebuild_record(
            &env.root,
            &env.clock.stamp(),
        )?);
    }
    let access = if opts.dry_run {
        Access::Read
    } else {
        Access::Change
    };
    let device = Device::open(
        &env.root,
        access,
        env.wait,
        crate::device::Holder::this("repair", &env.clock.stamp()),
    )?;
    let mut outcome = repairing::repair(&device, &env.clock, opts, progress)?;
    outcome.actions.splice(0..0, first);
    Ok(outcome)
}

/// `bsi status`, and the error `--require` exits with when it is not met.
pub(crate) fn status(env: &Env, requirement: Option<&str>) -> Result<(Status, Option<Error>)> {
    let requirement = requirement.map(require::Requirement::parse).transpose()?;
    let device = open_read(env)?;
    let (s, snapshot) = status::collect::collect_with_snapshot(&device)?;
    let active = snapshot.active.as_ref().map(|a| a.version);
    let suppliers: Vec<require::Supplier> = snapshot
        .sources
        .iter()
        .map(|(c, s)| (*c, s.version.parse().ok()))
        .collect();
    // What the device knows each response carried: the ones on it, then what it installed.
    let summary = history::summary(device.root());
    let on_device: Vec<&crate::device::Present> = snapshot
        .active
        .iter()
        .chain(snapshot.staged_install())
        .collect();
    let known = |v: crate::version::ResponseVersion| {
        on_device
            .iter()
            .find(|p| p.version == v)
            .map(|p| p.cryptexes.clone())
            .or_else(|| summary.carried.get(&v.to_string()).cloned())
    };
    let unmet = requirement
        .and_then(|r| require::check(snapshot.base.version, active, &suppliers, &known, r).err());
    Ok((s, unmet))
}

/// `bsi verify`, and the error it exits with when something is wrong. A change that another
/// bsi makes meanwhile (a switch, old content removed) can look like damage to a reader that
/// holds no lock: then it verifies again once the change is done.
pub(crate) fn verify(env: &Env, progress: &dyn Progress) -> Result<(VerifyOutcome, Option<Error>)> {
    let device = open_read(env)?;
    for _ in 0..200 {
        let busy = device.operation().is_some();
        let result = verify::verify(&device, progress);
        let clean = matches!(&result, Ok((_, None)));
        if clean || !(busy || device.operation().is_some()) {
            return result;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    verify::verify(&device, progress)
}

/// `bsi history`: the last `limit` entries, or all.
pub(crate) fn history(env: &Env, limit: Option<usize>) -> Result<Vec<Entry>> {
    let device = open_read(env)?;
    match limit {
        Some(n) => history::read_last(device.root(), n),
        None => history::read_all(device.root()),
    }
}

/// `bsi report`: the full report; with `changes`, only the items that changed since the report
/// last marked delivered; with `delivered`, the report printed is recorded as delivered (the
/// one write `report` makes, under the device lock; no history entry, as it changes nothing a
/// person reads back).
pub(crate) fn report(
    env: &Env,
    changes: bool,
    delivered: bool,
    all: bool,
) -> Result<serde_json::Value> {
    let device = if delivered {
        lifecycle::open_to_change(&env.root, env.wait, "report", &env.clock)?
    } else {
        open_read(env)?
    };
    let scope = if all {
        report::Scope::All
    } else {
        report::Scope::Subscribed
    };
    let full = report::build(&device, scope)?;
    let out = if changes {
        report::changes(&full, report::delivered(&device).map(|d| d.items).as_ref())
    } else {
        full.clone()
    };
    if delivered {
        report::mark_delivered(&device, &full, env.clock.stamp())?;
    }
    Ok(out.to_json())
}

/// `bsi bundle inspect` against the device's trusted keys.
pub(crate) fn inspect_with_device_trust(
    env: &Env,
    bundle: &Path,
    progress: &dyn Progress,
) -> Result<(inspect::Report, Option<Error>)> {
    let device = match open_read(env) {
        Ok(device) => device,
        // No device and no key: the bundle is shown, its signature not checked.
        Err(Error::NoDevice { .. }) => return inspect::inspect(bundle, None, progress),
        Err(e) => return Err(e),
    };
    let trusted = crate::device::trust::load(device.root())?;
    inspect::inspect(
        bundle,
        Some((
            &trusted,
            &format!("the trusted keys of the device at {}", env.root.display()),
        )),
        progress,
    )
}

impl Recorded for ApplyOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn target(&self) -> Option<String> {
        Some(self.version.clone())
    }
    fn nothing_to_do(&self) -> bool {
        matches!(
            self.action,
            ApplyAction::AlreadyActive | ApplyAction::AlreadyStaged | ApplyAction::AlreadyIncluded
        )
    }
}

impl Recorded for RestartOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn target(&self) -> Option<String> {
        self.activated.clone().or_else(|| self.removed.clone())
    }
    fn nothing_to_do(&self) -> bool {
        self.nothing_staged
    }
}

impl Recorded for RelaunchOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn nothing_to_do(&self) -> bool {
        self.nothing_to_do
    }
}

impl Recorded for RollbackOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn target(&self) -> Option<String> {
        Some(self.version.clone())
    }
    fn nothing_to_do(&self) -> bool {
        self.action == rollback::RollbackAction::NothingToRemove
    }
}

impl Recorded for UpdateOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn nothing_to_do(&self) -> bool {
        self.nothing_to_do
    }
}

impl Recorded for auto::AutoOutcome {
    fn summary(&self) -> String {
        self.log.join("; ")
    }
    fn target(&self) -> Option<String> {
        self.installed.clone().or_else(|| self.staged.clone())
    }
    fn nothing_to_do(&self) -> bool {
        self.installed.is_none() && self.staged.is_none()
    }
}

impl Recorded for Synced {
    fn summary(&self) -> String {
        let o = &self.outcome;
        let mut parts = vec![format!("{} as {}", o.server, o.enrollment_id)];
        if !o.changes.is_empty() {
            parts.push(format!("{} declaration change(s)", o.changes.len()));
        }
        if let Some(a) = &o.auto {
            parts.extend(a.log.iter().cloned());
        }
        if let Some(e) = &self.deferred {
            parts.push(format!("background pass failed: {e}"));
        }
        if let Some(e) = &o.report.error {
            parts.push(format!(
                "status report not delivered ({e}); it stays pending for the next sync"
            ));
        }
        parts.push(if o.report.sent {
            format!(
                "{} report sent ({} item(s))",
                if o.report.full { "full" } else { "incremental" },
                o.report.items.len()
            )
        } else {
            "no report sent (nothing changed)".to_owned()
        });
        parts.join("; ")
    }
    fn target(&self) -> Option<String> {
        self.outcome
            .auto
            .as_ref()
            .and_then(|a| a.installed.clone().or_else(|| a.staged.clone()))
    }
    fn nothing_to_do(&self) -> bool {
        self.outcome.changes.is_empty() && !self.outcome.report.sent && self.target().is_none()
    }
}
