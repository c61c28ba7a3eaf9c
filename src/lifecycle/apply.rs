//! `bsi apply BUNDLE`: the checks of DESIGN section 4 in order (bundle manifest, signature and
//! paths; platform; base; order; management policy; power), then staging, then the switch.
//!
//! A response with OS content becomes `cryptex1/proposed` and waits for a restart; one with only
//! App content replaces `cryptex1/current` at once. Each refusal exits with its documented code
//! and leaves the device as it was, apart from the history (I4).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::journal::Tx;
use crate::bundle::{Bundle, BundleError};
use crate::device::layout::{INSTALL_REASON_RECORD, SAFARI_RECORD};
use crate::device::records::{self, InstallReason};
use crate::device::trust;
use crate::device::{Cryptex, Device, GenName, Snapshot, Staged, origins};
use crate::error::IoContext;
use crate::gates::power;
use crate::progress::Progress;
use crate::refusal::NotApplicable;
use crate::version::{Build, ResponseVersion, UpdateKind};
use crate::{Error, Result};

use super::{restart, stage};
use crate::human::{Human, Text};

pub(crate) use crate::device::records::InstallTrigger;

/// How `apply` is asked to run.
#[derive(Clone, Debug)]
pub(crate) struct ApplyOptions {
    /// The bundle, either form.
    pub bundle: PathBuf,
    /// Restart at once when the response needs it.
    pub restart: bool,
    /// Report what would happen; change nothing.
    pub dry_run: bool,
    /// An enforcement declaration demands this install (bypasses `RapidSecurityResponse.Enable`).
    pub enforced_by: Option<String>,
    /// What started it, for `softwareupdate.install-reason`.
    pub trigger: InstallTrigger,
}

/// What `apply` did (or, with `--dry-run`, would do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ApplyAction {
    /// Staged; active after the next restart.
    Staged,
    /// Staged and activated by a restart.
    StagedAndRestarted,
    /// App-only: active at once.
    Activated,
    /// Already active; nothing done.
    AlreadyActive,
    /// Already staged; nothing done.
    AlreadyStaged,
    /// What the device runs or has staged already includes it (an older response of the same
    /// line, or a response the base's minor update includes); nothing done.
    AlreadyIncluded,
}

impl ApplyAction {
    /// Did this put new content on the device (staged or active)?
    #[must_use]
    pub(crate) fn installs(self) -> bool {
        matches!(
            self,
            ApplyAction::Staged | ApplyAction::StagedAndRestarted | ApplyAction::Activated
        )
    }
}

/// The outcome of `apply`.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ApplyOutcome {
    /// What happened.
    pub action: ApplyAction,
    /// The response, e.g. `26.3.1 (b)`.
    pub version: String,
    /// Its supplemental build.
    pub build: String,
    /// A restart is still needed to activate it.
    pub restart_required: bool,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
    /// What was staged and is no more, because this App-only response, active at once,
    /// replaced the active state: e.g. `the staged removal of 26.3.1 (c)`. Null when nothing was.
    pub cancelled: Option<String>,
    /// One sentence for people.
    pub message: String,
}

/// What a staged change is, in words: `the staged install of 26.3.1 (c)`, `the staged removal of
/// 26.3.1 (c)`.
#[must_use]
pub(crate) fn staged_words(snapshot: &Snapshot) -> Option<String> {
    match &snapshot.staged {
        Some(Staged::Install(p)) => Some(format!("the staged install of {}", p.version)),
        Some(Staged::Remove) => Some(format!(
            "the staged removal of {}",
            snapshot.version_label()
        )),
        None => None,
    }
}

/// Where the base check leaves an apply.
enum BaseFit {
    /// The bundle is for the device's base.
    Fits,
    /// The device's base is a later minor version, which includes the bundle's whole line.
    Included(String),
}

fn check_base(bundle: &Bundle, snapshot: &Snapshot) -> Result<BaseFit> {
    let m = &bundle.manifest;
    let base = &snapshot.base;
    if base.accepts(&m.version, &m.prerequisite) {
        return Ok(BaseFit::Fits);
    }
    let v = m.response_version();
    let (response, prerequisite, base) = (v, m.prerequisite.clone(), base.clone());
    match base.version.update_kind_from(&m.version) {
        UpdateKind::MinorUpdate => Ok(BaseFit::Included(format!(
            "{v} is for {} ({}); the device runs {base}, a later minor version that includes every response of {}; nothing to do",
            m.version, m.prerequisite, m.version
        ))),
        UpdateKind::MajorUpgrade => Err(NotApplicable::LineLeftBehind {
            response,
            prerequisite,
            base,
        }
        .into()),
        UpdateKind::Downgrade => Err(NotApplicable::BaseNotReached {
            response,
            prerequisite,
            base,
        }
        .into()),
        UpdateKind::Same => Err(NotApplicable::OtherBaseBuild {
            response,
            prerequisite,
            base,
        }
        .into()),
    }
}

/// The responses the device holds (active, staged, and those supplying a cryptex), as
/// (version, build).
fn held(snapshot: &Snapshot) -> Result<Vec<(ResponseVersion, Build)>> {
    let mut out: Vec<(ResponseVersion, Build)> = Vec::new();
    let mut add = |v: ResponseVersion, b: &Build| {
        if !out.iter().any(|(_, ob)| ob == b) {
            out.push((v, b.clone()));
        }
    };
    for present in [snapshot.active.as_ref(), snapshot.staged_install()]
        .into_iter()
        .flatten()
    {
        add(present.version, &present.build);
    }
    let all_sources = std::iter::once(&snapshot.sources).chain(snapshot.staged_sources.as_ref());
    for sources in all_sources {
        for source in sources.values() {
            if let GenName::Response(build) = &source.generation {
                let version: ResponseVersion = source.version.parse()?;
                add(version, build);
            }
        }
    }
    Ok(out)
}

/// Refuses (exit 6) a bundle whose build contradicts a response the device holds: the same
/// public version with another build, the same build for another version, or a later letter with
/// an earlier build letter (Apple's builds never go backwards within a line).
fn check_builds(bundle: &Bundle, snapshot: &Snapshot) -> Result<()> {
    let m = &bundle.manifest;
    let v = m.response_version();
    for (other, build) in held(snapshot)? {
        let contradiction = if other == v {
            (build != m.build).then(|| format!("the device holds {other} as build {build}"))
        } else if build == m.build {
            Some(format!("the device holds build {build} as {other}"))
        } else if (other < v) != (build < m.build) {
            Some(format!(
                "the device holds {other} as build {build}, and within one line a later letter never has an earlier build"
            ))
        } else {
            None
        };
        if let Some(why) = contradiction {
            return Err(BundleError::Contradiction {
                message: format!("{v} ({}) contradicts what the device holds: {why}", m.build),
            }
            .into());
        }
    }
    Ok(())
}

/// Where the order check leaves us.
enum Order {
    Proceed,
    Done(ApplyAction, String),
}

fn check_order(bundle: &Bundle, snapshot: &Snapshot) -> Order {
    let m = &bundle.manifest;
    let v = m.response_version();
    if let Some(s) = snapshot.staged_install() {
        if s.version == v {
            return Order::Done(
                ApplyAction::AlreadyStaged,
                format!("{v} is already staged; restart to activate it (`bsi restart`)"),
            );
        }
        if v < s.version {
            return Order::Done(
                ApplyAction::AlreadyIncluded,
                format!(
                    "the staged {} includes {v} (responses are cumulative); nothing to do",
                    s.version
                ),
            );
        }
    }
    if let Some(a) = &snapshot.active {
        if a.version == v {
            let removal = if matches!(snapshot.staged, Some(Staged::Remove)) {
                "; its removal stays staged for the next restart"
            } else {
                ""
            };
            return Order::Done(
                ApplyAction::AlreadyActive,
                format!("{v} is already active; nothing to do{removal}"),
            );
        }
        if v < a.version {
            return Order::Done(
                ApplyAction::AlreadyIncluded,
                format!(
                    "the active {} includes {v} (responses are cumulative); nothing to do",
                    a.version
                ),
            );
        }
    }
    Order::Proceed
}

/// Which generation supplies each cryptex `bundle` does not carry: the one the response it
/// replaces uses. A response with OS content replaces the staged install if there is one (it is
/// newer than it), else the active state; an App-only response is active at once and replaces
/// the active state.
fn suppliers(bundle: &Bundle, snapshot: &Snapshot) -> BTreeMap<Cryptex, GenName> {
    let replaced = match (bundle.manifest.has_os(), &snapshot.staged_sources) {
        (true, Some(staged)) if snapshot.staged_install().is_some() => staged,
        _ => &snapshot.sources,
    };
    replaced
        .iter()
        .filter(|(c, _)| !bundle.manifest.cryptexes.0.contains_key(c))
        .map(|(c, s)| (*c, s.generation.clone()))
        .collect()
}

/// Applies the bundle at `opts.bundle`: opened once, its signature checked over the raw manifest
/// against the device's trusted keys before the manifest is parsed.
pub(crate) fn apply(
    tx: &mut Tx<'_>,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyOutcome> {
    let trusted = trust::load(tx.device().root())?;
    let spool = tx.device().spool_dir();
    let (bundle, _) = Bundle::open_verified(&opts.bundle, &trusted, spool.as_ref())?;
    apply_verified(tx, bundle, opts, progress)
}

/// Points the device at the staged generation: `proposed` for a response with OS content
/// (the restart activates it), `current` for an App-only one, which is active at once.
fn switch_to(device: &Device, name: &GenName, has_os: bool) -> Result<()> {
    let root = device.root();
    let layout = device.layout();
    let switch = if has_os {
        layout.proposed()
    } else {
        layout.current()
    };
    root.swap_symlink(&switch, name.link_target())
        .ctx("switching", root.show(&switch))?;
    root.remove_durable(SAFARI_RECORD)
        .ctx("removing", root.show(SAFARI_RECORD))?;
    if !has_os {
        root.remove_durable(layout.proposed())
            .ctx("removing", root.show(layout.proposed()))?;
    }
    Ok(())
}

/// An App-only response is active at once over the active state: whatever was staged is
/// dropped, and the outcome says so.
fn cancelling(mut o: ApplyOutcome, snapshot: &Snapshot, dry_run: bool) -> ApplyOutcome {
    if o.action == ApplyAction::Activated
        && let Some(what) = staged_words(snapshot)
    {
        o.message = format!(
            "{}; {what} {} cancelled (the App-only response replaced the active state)",
            o.message,
            if dry_run { "would be" } else { "is" }
        );
        o.cancelled = Some(what);
    }
    o
}

/// Refuses (exit 5) a bundle for another platform, or for a device before responses existed.
fn check_platform(bundle: &Bundle, device: &Device, snapshot: &Snapshot) -> Result<()> {
    let m = &bundle.manifest;
    let info = device.info();
    if !info.platform.takes_bundles_for(m.product) {
        return Err(NotApplicable::OtherPlatform {
            product: m.product,
            platform: info.platform,
        }
        .into());
    }
    let first = info.platform.first_with_responses();
    if snapshot.base.version < first {
        return Err(NotApplicable::BeforeResponses {
            platform: info.platform,
            version: snapshot.base.version,
            first,
        }
        .into());
    }
    Ok(())
}

/// What a dry run of an apply would do, in words.
fn dry_run_plan(version: &str, total: u64, has_os: bool, restart: bool) -> (ApplyAction, String) {
    let message = if has_os {
        format!(
            "would stage {version} ({total} bytes); it needs a restart{}",
            if restart { ", which would follow" } else { "" }
        )
    } else {
        format!(
            "would activate {version} at once (App content only; Safari uses it once relaunched)"
        )
    };
    let action = match (has_os, restart) {
        (false, _) => ApplyAction::Activated,
        (true, true) => ApplyAction::StagedAndRestarted,
        (true, false) => ApplyAction::Staged,
    };
    (action, message)
}

/// The records of an install that is done, each best effort: what it carried (for `status
/// --require` once its generation is gone), why the device installed it, and where it came from.
fn record_installed(
    tx: &mut Tx<'_>,
    bundle: &Bundle,
    opts: &ApplyOptions,
    version: &str,
    build: &str,
) {
    let device = tx.device();
    let root = device.root();
    // What it carried, for `status --require` once its generation is gone (best effort).
    let carried: Vec<Cryptex> = bundle.manifest.cryptexes.0.keys().copied().collect();
    let _ = crate::history::note_carried(root, bundle.manifest.response_version(), &carried);
    // Why the device installed it (`softwareupdate.install-reason` while it is pending). The
    // install is done: failing to record why must not report it as failed.
    if let Err(e) = records::write_json(
        root,
        INSTALL_REASON_RECORD,
        &InstallReason {
            reason: opts.trigger.name().to_owned(),
            declaration_id: opts.enforced_by.clone(),
            target: Some(version.to_owned()),
            build: Some(build.to_owned()),
            wanted: false,
        },
    ) {
        tx.warn(format!(
            "{} succeeded, but recording why it installed {version} failed ({e}); `bsi report` shows its install reason as command-line",
            tx.op()
        ));
    }
    // Only hints read the origins record: failing to write it must not fail the apply.
    let _ = origins::record(root, device.layout(), bundle);
}

/// Applies a bundle that is already open and whose signature the caller checked against the
/// device's trusted keys (`auto` passes the bundle it scanned and checked: the path is never
/// opened twice). `opts.bundle` is not used.
pub(crate) fn apply_verified(
    tx: &mut Tx<'_>,
    mut bundle: Bundle,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyOutcome> {
    let device = tx.device();
    let root = device.root();
    bundle.check_structure()?;
    let info = device.info();
    let snapshot = device.snapshot()?;
    check_platform(&bundle, device, &snapshot)?;
    let version = bundle.manifest.response_version().to_string();
    let build = bundle.manifest.build.to_string();
    let outcome = |action, restart_required, message: String| ApplyOutcome {
        action,
        version: version.clone(),
        build: build.clone(),
        restart_required,
        dry_run: opts.dry_run,
        cancelled: None,
        message,
    };
    let cancels = |o: ApplyOutcome| cancelling(o, &snapshot, opts.dry_run);
    if let BaseFit::Included(message) = check_base(&bundle, &snapshot)? {
        return Ok(outcome(
            ApplyAction::AlreadyIncluded,
            snapshot.staged.is_some(),
            message,
        ));
    }
    check_builds(&bundle, &snapshot)?;
    if let Order::Done(action, message) = check_order(&bundle, &snapshot) {
        return Ok(outcome(action, snapshot.staged.is_some(), message));
    }
    // `RapidSecurityResponse.Enable = false` stops the user's manual installs only (Apple:
    // "prevent users from manually installing"): automatic installs and enforcement go on.
    if opts.trigger == InstallTrigger::CommandLine {
        crate::gates::policy::check_install(&crate::gates::policy::of_with(device, &snapshot)?)?;
    }
    power::check(info, device.power()?)?;
    let has_os = bundle.manifest.has_os();
    let total = bundle.manifest.cryptexes.total_size();
    if opts.dry_run {
        let (action, message) = dry_run_plan(&version, total, has_os, opts.restart);
        return Ok(cancels(outcome(action, has_os && !opts.restart, message)));
    }
    check_space(device, &bundle)?;
    crate::faults::pause_point!("apply.checked");
    let suppliers = suppliers(&bundle, &snapshot);
    tx.begin()?;
    {
        // Readers see which response this installs (`downloading`, then `installing`).
        device.set_target(
            &version,
            &build,
            opts.trigger.name(),
            opts.enforced_by.as_deref(),
        );
        tx.phase("staging");
        let name = match stage::stage(device, &mut bundle, &suppliers, progress) {
            Ok(name) => name,
            Err(e) => return Err(out_of_space(device, &bundle, e)),
        };
        tx.phase("switching");
        crate::faults::pause_point!("apply.switching");
        switch_to(device, &name, has_os)?;
        let layout = device.layout();
        let result = if has_os && opts.restart {
            if let Err(e) = restart::activate(device) {
                // `apply --restart` is one operation: if the restart fails, so does the apply.
                let _ = root.remove_durable(layout.proposed());
                return Err(e);
            }
            outcome(
                ApplyAction::StagedAndRestarted,
                false,
                format!("{version} is active (staged, then restarted)"),
            )
        } else if has_os {
            let safari = if info.platform == crate::device::Platform::MacOs {
                ", or relaunch Safari (`bsi relaunch-safari`) to use its Safari content now"
            } else {
                ""
            };
            outcome(
                ApplyAction::Staged,
                true,
                format!("{version} is staged; restart to activate it (`bsi restart`){safari}"),
            )
        } else {
            cancels(outcome(
                ApplyAction::Activated,
                false,
                format!(
                    "{version} is active (App content only, no restart needed); Safari uses it once relaunched"
                ),
            ))
        };
        record_installed(tx, &bundle, opts, &version, &build);
        tx.clean_up(&snapshot.base.build);
        Ok(result)
    }
}

/// Refuses (exit 1) when the device's volume has less free space than the payload needs.
/// The space staging `bundle` takes on the device's filesystem: each file rounded up to whole
/// blocks, a block per directory, the manifest where it is not on the device already, and
/// room for the records.
fn space_needed(bundle: &Bundle, block: u64) -> u64 {
    let block = block.max(512);
    let files: u64 = bundle
        .manifest
        .cryptexes
        .files()
        .map(|(_, f)| f.size.div_ceil(block) * block)
        .sum();
    let dirs = bundle.manifest.cryptexes.count() as u64 / 8 + 16;
    let manifest = bundle.manifest_bytes.bytes_to_write().div_ceil(block) * block;
    files + dirs * block + manifest + (1 << 20)
}

fn free_space(device: &Device) -> Result<(u64, u64, u64)> {
    let stat = device.volume()?;
    Ok((
        stat.f_bavail.saturating_mul(stat.f_frsize),
        stat.f_favail,
        stat.f_frsize,
    ))
}

/// Refuses (exit 1) when the device's volume has too little free space, or too few free inodes,
/// for `bundle`'s payload.
fn check_space(device: &Device, bundle: &Bundle) -> Result<()> {
    let (available, inodes, block) = free_space(device)?;
    let needed = space_needed(bundle, block);
    let files = bundle.manifest.cryptexes.count() as u64;
    if available < needed || inodes < files + files / 8 + 16 {
        return Err(Error::NoSpace { needed, available });
    }
    Ok(())
}

/// An error that is the filesystem running full while staging becomes the space error, with
/// what the payload needs; any other error is returned as it is.
fn out_of_space(device: &Device, bundle: &Bundle, error: Error) -> Error {
    let full = match &error {
        Error::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
        _ => false,
    };
    if !full {
        return error;
    }
    match free_space(device) {
        Ok((available, _, block)) => Error::NoSpace {
            needed: space_needed(bundle, block),
            available,
        },
        Err(_) => error,
    }
}

impl Human for ApplyOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        out.line(&self.message);
    }
}
