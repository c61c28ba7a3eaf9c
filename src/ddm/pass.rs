//! What a background pass shares between its steps (`auto` and `enforce`): how it is asked to
//! run and what it did, the bundles it found, and installing one or restarting into it.

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
    /// The OS update an enforcement made first, to reach a response for a later minor version
    /// (`26.4 (23E224)`), if any.
    pub updated: Option<String>,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
    /// What it did and why, line by line.
    pub log: Vec<String>,
}

/// A bundle the scan opened and checked (signature, structure): it is the one applied, never
/// reopened by path.
pub(crate) struct Candidate {
    pub(crate) bundle: Bundle,
    /// The response's version.
    pub(crate) version: ResponseVersion,
    /// Its supplemental build.
    pub(crate) build: Build,
}

pub(crate) fn scan(
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
    let first = platform.first_with_responses();
    if base.version < first {
        log.push(format!(
            "{} {} takes no responses: Apple shipped them from {} {first}",
            platform.name(),
            base.version,
            platform.name()
        ));
        return Ok((applicable, later));
    }
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

/// A due enforcement whose response is staged: restart into it, through the power gate.
pub(super) fn restart_into(
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
pub(super) fn install(
    tx: &mut Tx<'_>,
    progress: &dyn Progress,
    opts: &AutoOptions,
    c: Candidate,
    declaration: Option<&str>,
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
        enforced_by: declaration.map(str::to_owned),
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
            outcome.declaration = declaration.map(str::to_owned);
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
