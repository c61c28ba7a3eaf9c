//! `bsi apply BUNDLE`: the checks of DESIGN section 4 in order (bundle manifest, signature and
//! paths; platform; base; order; management policy; power), then staging, then the switch.
//!
//! A response with OS content becomes `cryptex1/proposed` and waits for a restart; one with only
//! App content replaces `cryptex1/current` at once. Each refusal exits with its documented code
//! and leaves the device as it was, apart from the history (I4).

use std::path::PathBuf;

use crate::bundle::{Bundle, trust};
use crate::clock::Clock;
use crate::device::layout::SAFARI_RECORD;
use crate::device::{Device, GenName, Snapshot};
use crate::error::IoContext;
use crate::gates::power;
use crate::progress::Progress;
use crate::status::collect;
use crate::version::UpdateKind;
use crate::{Error, Result};

use super::{restart, stage};

/// How `apply` is asked to run.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// The bundle, either form.
    pub bundle: PathBuf,
    /// Restart at once when the response needs it.
    pub restart: bool,
    /// Report what would happen; change nothing.
    pub dry_run: bool,
    /// An enforcement declaration demands this install (bypasses `RapidSecurityResponse.Enable`).
    pub enforced_by: Option<String>,
}

/// What `apply` did (or, with `--dry-run`, would do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyAction {
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
    /// It was active with its removal staged; the removal was cancelled.
    RemovalCancelled,
}

impl ApplyAction {
    /// Did this put new content on the device (staged or active)?
    #[must_use]
    pub fn installs(self) -> bool {
        matches!(
            self,
            ApplyAction::Staged | ApplyAction::StagedAndRestarted | ApplyAction::Activated
        )
    }
}

/// The outcome of `apply`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ApplyOutcome {
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
    /// One sentence for people.
    pub message: String,
}

fn check_base(bundle: &Bundle, snapshot: &Snapshot) -> Result<()> {
    let m = &bundle.manifest;
    let base = &snapshot.base;
    if base.accepts(&m.version, &m.prerequisite) {
        return Ok(());
    }
    let wanted = format!("{} ({})", m.version, m.prerequisite);
    let message = format!("this bundle is for {wanted}; the device runs {base}");
    Err(match base.version.update_kind_from(&m.version) {
        UpdateKind::MinorUpdate => Error::not_applicable(
            format!("{message}, which already includes it"),
            "responses apply only to the latest minor version; nothing to do",
        ),
        UpdateKind::MajorUpgrade => Error::not_applicable(
            format!("{message}; responses for an earlier major version do not apply"),
            "look for a response for the device's version",
        ),
        UpdateKind::Downgrade => Error::not_applicable(
            format!("{message}, which is older"),
            format!(
                "update the device first: bsi update --version {} --build {}",
                m.version, m.prerequisite
            ),
        ),
        UpdateKind::Same => Error::not_applicable(
            format!("{message}: a different build of the same version"),
            "get the response made for the device's build",
        ),
    })
}

/// Where the order check leaves us.
enum Order {
    Proceed,
    Done(ApplyAction, String),
    CancelRemoval,
}

fn check_order(bundle: &Bundle, snapshot: &Snapshot) -> Result<Order> {
    let m = &bundle.manifest;
    let v = m.response_version();
    let older = |what: &str, other: &crate::version::ResponseVersion| {
        Error::not_applicable(
            format!(
                "{v} is older than the {what} {other}; responses are cumulative, nothing to do"
            ),
            format!("{other} already includes everything in {v}"),
        )
    };
    let other_build = |what: &str, build: &crate::version::Build| {
        Error::not_applicable(
            format!(
                "{v} ({}) is a different build than the {what} {v} ({build})",
                m.build
            ),
            "check where this bundle came from",
        )
    };
    if let Some(s) = snapshot.staged_install() {
        if s.version == v && s.build == m.build {
            return Ok(Order::Done(
                ApplyAction::AlreadyStaged,
                format!("{v} is already staged; restart to activate it"),
            ));
        }
        if v < s.version {
            return Err(older("staged", &s.version));
        }
        if v == s.version {
            return Err(other_build("staged", &s.build));
        }
    }
    if let Some(a) = &snapshot.active {
        if a.version == v && a.build == m.build {
            if snapshot.staged.is_some() {
                return Ok(Order::CancelRemoval);
            }
            return Ok(Order::Done(
                ApplyAction::AlreadyActive,
                format!("{v} is already active; nothing to do"),
            ));
        }
        if v < a.version {
            return Err(older("active", &a.version));
        }
        if v == a.version {
            return Err(other_build("active", &a.build));
        }
    }
    Ok(Order::Proceed)
}

/// Applies a bundle.
pub fn apply(
    device: &Device,
    opts: &ApplyOptions,
    clock: &Clock,
    progress: &dyn Progress,
) -> Result<ApplyOutcome> {
    let root = device.root();
    let mut bundle = Bundle::open(&opts.bundle)?;
    let trusted = trust::load(root)?;
    bundle.verify_signature(&trusted)?;
    bundle.check_structure()?;
    let m = &bundle.manifest;
    let info = device.info();
    if m.product != info.platform {
        return Err(Error::not_applicable(
            format!(
                "this bundle is for {}; the device runs {}",
                m.product, info.platform
            ),
            "use a bundle made for the device's platform",
        ));
    }
    let snapshot = device.snapshot()?;
    check_base(&bundle, &snapshot)?;
    let version = bundle.manifest.response_version().to_string();
    let build = bundle.manifest.build.to_string();
    let outcome = |action, restart_required, message: String| ApplyOutcome {
        action,
        version: version.clone(),
        build: build.clone(),
        restart_required,
        dry_run: opts.dry_run,
        message,
    };
    let order = check_order(&bundle, &snapshot)?;
    if let Order::Done(action, message) = order {
        return Ok(outcome(action, snapshot.staged.is_some(), message));
    }
    if opts.enforced_by.is_none() {
        let policy = collect::policy(device)?;
        if let Some(id) = policy.install_blocked_by {
            return Err(Error::policy(
                format!(
                    "installing responses is turned off by declaration {id} (RapidSecurityResponse.Enable = false)"
                ),
                "only an enforcement declaration from the MDM server can install responses on this device",
            ));
        }
    }
    power::check(info, &device.power()?)?;
    if matches!(order, Order::CancelRemoval) {
        if opts.dry_run {
            return Ok(outcome(
                ApplyAction::RemovalCancelled,
                false,
                format!("would cancel the staged removal of {version}"),
            ));
        }
        return super::journaled(device, clock, "apply", || {
            root.remove_durable(device.layout().proposed())
                .ctx("removing", root.show(device.layout().proposed()))?;
            root.remove_durable(SAFARI_RECORD)
                .ctx("removing", root.show(SAFARI_RECORD))?;
            Ok(outcome(
                ApplyAction::RemovalCancelled,
                false,
                format!("{version} stays active; its staged removal was cancelled"),
            ))
        });
    }
    let has_os = bundle.manifest.has_os();
    let total = bundle.manifest.cryptexes.total_size();
    if opts.dry_run {
        let message = if has_os {
            format!(
                "would stage {version} ({total} bytes); it needs a restart{}",
                if opts.restart {
                    ", which would follow"
                } else {
                    ""
                }
            )
        } else {
            format!(
                "would activate {version} at once (App content only; Safari uses it once relaunched)"
            )
        };
        let action = match (has_os, opts.restart) {
            (false, _) => ApplyAction::Activated,
            (true, true) => ApplyAction::StagedAndRestarted,
            (true, false) => ApplyAction::Staged,
        };
        return Ok(outcome(action, has_os && !opts.restart, message));
    }
    check_space(device, total)?;
    super::journaled(device, clock, "apply", || {
        let base = GenName::Base(snapshot.base.build.clone());
        let name = stage::stage(device, &mut bundle, &base, progress)?;
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
            outcome(
                ApplyAction::Activated,
                false,
                format!(
                    "{version} is active (App content only, no restart needed); Safari uses it once relaunched"
                ),
            )
        };
        crate::device::generation::collect_garbage(device, &snapshot.base.build)?;
        Ok(result)
    })
}

/// Refuses (exit 1) when the device's volume has less free space than the payload needs.
fn check_space(device: &Device, needed: u64) -> Result<()> {
    let root = device.root();
    let stat = rustix::fs::fstatvfs(root.dir())
        .map_err(|e| Error::io("checking free space on", root.path(), e.into()))?;
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    // Leave room for directory blocks and the manifest.
    let needed = needed + needed / 64 + (1 << 20);
    if available < needed {
        return Err(Error::NoSpace { needed, available });
    }
    Ok(())
}
