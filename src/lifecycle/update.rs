//! `bsi update` (a minor OS update) and `bsi upgrade` (a major one). Either changes the base:
//! the base `SystemVersion.plist`, a new base generation, and `current` pointing at it; staged and
//! active responses are cleared. A minor update includes every response of the old base's line,
//! which bsi records (`included.json`) and `status` lists; a major upgrade records no inclusion.
//!
//! Several files change, so the operation is committed in the journal (with everything needed to
//! finish it) before the first of them changes; recovery completes a committed update.

use crate::Result;
use crate::device::base_content::lay_down_base;
use crate::device::layout::{INCLUDED_RECORD, SAFARI_RECORD, SYSTEM_VERSION};
use crate::device::records::Included;
use crate::device::{Device, GenName, Snapshot, SystemVersion, records};
use crate::error::IoContext;
use crate::history;
use crate::refusal::NotApplicable;
use crate::version::{Base, BaseMove, Build, OsVersion, ResponseVersion, UpdateKind};

use super::journal::{BaseChange, Tx};
use crate::human::{Human, Text};

/// What `update`/`upgrade` did.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct UpdateOutcome {
    /// The version before, with any active response.
    pub from: String,
    /// The new base.
    pub to: String,
    /// Responses the new base includes.
    pub included: Vec<String>,
    /// Already on that version and build.
    pub nothing_to_do: bool,
    /// What the update discarded: the staged change, and the active response (its content is in
    /// the new base only for a minor update), in words; empty when there was none.
    pub discarded: Vec<String>,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
    /// One sentence for people.
    pub message: String,
}

/// The newest response of the current base's line the device has known: active, staged, or
/// installed earlier (the history's summary keeps that, so the history is never read whole).
fn newest_of_line(device: &Device, snapshot: &Snapshot) -> Option<ResponseVersion> {
    let base = snapshot.base.version;
    let mut newest = snapshot.active.as_ref().map(|a| a.version);
    if let Some(s) = snapshot.staged_install() {
        newest = newest.max(Some(s.version));
    }
    let installed = history::summary(device.root())
        .newest_installed
        .get(&base.to_string())
        .and_then(|v| v.parse::<ResponseVersion>().ok())
        .filter(|v| v.os == base);
    newest.max(installed)
}

/// A sentence naming the included line, e.g. "26.4 includes 26.3.1 (a) ... (c)".
#[must_use]
pub(crate) fn inclusion_sentence(to: &OsVersion, included: &[String]) -> String {
    match included {
        [] => format!("{to} includes no response this device knew of"),
        [one] => format!("{to} includes {one}"),
        [first, .., last] => format!(
            "{to} includes {first} ... {}",
            last.rsplit(' ').next().unwrap_or(last)
        ),
    }
}

/// Refuses (exit 5) a move the command does not make: a downgrade, the same version with
/// another build, or a minor update asked of `upgrade` (and the reverse).
fn check_move(kind: BaseMove, from: &Base, version: OsVersion, build: &Build) -> Result<()> {
    let relation = version.update_kind_from(&from.version);
    let refusal = match (kind, relation) {
        (BaseMove::Minor, UpdateKind::MinorUpdate)
        | (BaseMove::Major, UpdateKind::MajorUpgrade) => None,
        (_, UpdateKind::Downgrade) => Some(NotApplicable::Downgrade {
            change: kind,
            to: version,
            from: from.version,
        }),
        (_, UpdateKind::Same) => Some(NotApplicable::SameVersionOtherBuild {
            version,
            installed: from.build.clone(),
            build: build.clone(),
        }),
        (_, UpdateKind::MajorUpgrade | UpdateKind::MinorUpdate) => {
            Some(NotApplicable::WrongCommand {
                change: kind,
                from: from.version,
                to: version,
                build: build.clone(),
            })
        }
    };
    refusal.map_or(Ok(()), |r| Err(r.into()))
}

/// What the new base replaces: a staged change never happens, an active response stops being
/// active (a minor update includes it; a major upgrade does not).
fn discarded_words(snapshot: &Snapshot, kind: BaseMove, from: &Base) -> Vec<String> {
    let mut discarded: Vec<String> = super::apply::staged_words(snapshot)
        .into_iter()
        .map(|w| format!("{w} (discarded: it was for {})", from.version))
        .collect();
    if let Some(a) = &snapshot.active {
        discarded.push(match kind {
            BaseMove::Minor => format!("the active {} (the new base includes it)", a.version),
            BaseMove::Major => format!(
                "the active {} (a major upgrade does not include it; its line ends here)",
                a.version
            ),
        });
    }
    discarded
}

/// Updates or upgrades the base.
///
/// `published` are responses a catalog lists for the current base (`update --catalog`): a minor
/// update includes them too, whether this device saw them or not.
pub(crate) fn update(
    tx: &mut Tx<'_>,
    kind: BaseMove,
    version: OsVersion,
    build: &Build,
    published: &[ResponseVersion],
    dry_run: bool,
) -> Result<UpdateOutcome> {
    let device = tx.device();
    let snapshot = device.snapshot()?;
    let from = snapshot.base.clone();
    let from_label = snapshot.version_label();
    if from.version == version && from.build == *build {
        return Ok(UpdateOutcome {
            from: from_label.clone(),
            to: format!("{version} ({build})"),
            included: Vec::new(),
            nothing_to_do: true,
            discarded: Vec::new(),
            dry_run,
            message: format!("the device already runs {version} ({build})"),
        });
    }
    check_move(kind, &from, version, build)?;
    // The build must be a base build that can follow the current one (DESIGN section 1): a
    // reused or older build would leave a base whose content does not match its version.
    Build::parse_base(build.as_str())?;
    build.check_follows(&from.build, kind)?;
    let included: Vec<String> = match kind {
        BaseMove::Minor => {
            let published = published
                .iter()
                .filter(|v| v.os == from.version)
                .max()
                .copied();
            newest_of_line(device, &snapshot)
                .max(published)
                .map(|n| n.line_up_to().map(|v| v.to_string()).collect())
                .unwrap_or_default()
        }
        BaseMove::Major => Vec::new(),
    };
    let message = match kind {
        BaseMove::Minor => inclusion_sentence(&version, &included),
        BaseMove::Major => format!(
            "{version} is a major upgrade from {}; it records no inclusion of responses",
            from.version
        ),
    };
    let discarded = discarded_words(&snapshot, kind, &from);
    let message = if discarded.is_empty() {
        message
    } else {
        format!("{message}; it replaces {}", discarded.join(" and "))
    };
    let outcome = UpdateOutcome {
        from: from_label,
        to: format!("{version} ({build})"),
        included: included.clone(),
        nothing_to_do: false,
        discarded,
        dry_run,
        message,
    };
    if dry_run {
        return Ok(outcome);
    }
    tx.begin()?;
    tx.phase("laying down the new base");
    let info = device.info();
    lay_down_base(
        device.root(),
        device.layout(),
        info.platform,
        info.chip,
        &version,
        build,
    )?;
    let change = BaseChange {
        product_name: snapshot.base_system_version.product_name.clone(),
        version: version.to_string(),
        build: build.to_string(),
        included,
    };
    // From here on the update is committed: if completing it fails, the journal stays and the
    // next command (or `bsi repair`) completes it.
    tx.commit(change.clone())?;
    complete(device, &change)?;
    Ok(outcome)
}

/// Completes a committed base change; every step may be repeated (recovery calls it again).
pub(crate) fn complete(device: &Device, change: &BaseChange) -> Result<()> {
    let root = device.root();
    let layout = device.layout();
    let version: OsVersion = change.version.parse()?;
    let build: Build = change.build.parse()?;
    let info = device.info();
    lay_down_base(root, layout, info.platform, info.chip, &version, &build)?;
    let sv = SystemVersion {
        product_name: change.product_name.clone(),
        version,
        build: build.clone(),
        extra: None,
    };
    root.write_atomic(SYSTEM_VERSION, &sv.to_xml(), 0o644)
        .ctx("writing", root.show(SYSTEM_VERSION))?;
    records::write_json(
        root,
        INCLUDED_RECORD,
        &Included {
            base: format!("{version} ({build})"),
            versions: change.included.clone(),
        },
    )?;
    let base = GenName::Base(build.clone());
    root.swap_symlink(layout.current(), base.link_target())
        .ctx("switching", root.show(layout.current()))?;
    root.remove_durable(layout.proposed())
        .ctx("removing", root.show(layout.proposed()))?;
    root.remove_durable(SAFARI_RECORD)
        .ctx("removing", root.show(SAFARI_RECORD))?;
    // Removing the old base's generations is best effort: recovery and `bsi repair` finish it.
    let _ = crate::device::generation::collect_garbage(device, &build);
    Ok(())
}

impl Human for UpdateOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        if !self.nothing_to_do {
            let verb = if self.dry_run { "would move" } else { "moved" };
            out.line(format!("{verb} from {} to {}", self.from, self.to));
        }
        out.line(&self.message);
    }
}
