//! `bsi relaunch-safari` (macOS only): records that Safari and its associated processes were
//! relaunched onto the staged content. `status` then shows the staged version under `safari`
//! while `restart_required` stays true, as the rest of the OS needs the restart.

use super::journal::Tx;
use crate::Result;
use crate::device::layout::SAFARI_RECORD;
use crate::device::records::SafariRecord;
use crate::device::{Device, Platform, Snapshot, Staged, records};
use crate::human::{Human, Text};
use crate::refusal::NotApplicable;

/// What `relaunch-safari` did.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct RelaunchOutcome {
    /// The version Safari now uses.
    pub safari_version: String,
    /// Whose App content (Safari and `WebKit`) Safari runs now: the staged response's own when it
    /// carries App content, else the response (or base) that content is inherited from.
    pub app_content: String,
    /// It already used it.
    pub nothing_to_do: bool,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
    /// One sentence for people.
    pub message: String,
}

/// What Safari and its associated processes use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SafariUses {
    /// The version whose content they use.
    pub version: String,
    /// They were relaunched onto staged content the rest of the OS gets at restart.
    pub relaunched: bool,
}

/// What Safari uses on `device` (macOS only): the staged response's content after a relaunch
/// onto it, otherwise the active content.
pub(crate) fn uses(device: &Device, snapshot: &Snapshot) -> Result<Option<SafariUses>> {
    if device.info().platform != Platform::MacOs {
        return Ok(None);
    }
    let record: Option<SafariRecord> = records::read_json_opt(device.root(), SAFARI_RECORD)?;
    let relaunched =
        matches!((&record, &snapshot.proposed), (Some(r), Some(p)) if r.generation == p.dir_name());
    let version = match (relaunched, &snapshot.staged) {
        (true, Some(Staged::Install(p))) => p.version.to_string(),
        (true, _) => snapshot.base.version.to_string(),
        (false, _) => snapshot.version_label(),
    };
    Ok(Some(SafariUses {
        version,
        relaunched,
    }))
}

/// Relaunches Safari onto staged content.
pub(crate) fn relaunch_safari(tx: &mut Tx<'_>, dry_run: bool) -> Result<RelaunchOutcome> {
    let device = tx.device();
    if device.info().platform != Platform::MacOs {
        return Err(NotApplicable::SafariNotMacOs {
            platform: device.info().platform,
        }
        .into());
    }
    let snapshot = device.snapshot()?;
    let current = uses(device, &snapshot)?
        .map(|s| s.version)
        .unwrap_or_default();
    let active_app = snapshot
        .sources
        .get(&crate::device::Cryptex::App)
        .map(|s| s.version.clone())
        .unwrap_or_default();
    let Some(proposed) = &snapshot.proposed else {
        return Ok(RelaunchOutcome {
            safari_version: current.clone(),
            app_content: active_app,
            nothing_to_do: true,
            dry_run,
            message: format!(
                "nothing is staged; Safari already uses the active content ({current})"
            ),
        });
    };
    let target = match &snapshot.staged {
        Some(Staged::Install(p)) => p.version.to_string(),
        _ => snapshot.base.version.to_string(),
    };
    let app_content = snapshot
        .staged_sources
        .as_ref()
        .and_then(|s| s.get(&crate::device::Cryptex::App))
        .map_or_else(|| target.clone(), |s| s.version.clone());
    // What the relaunch changes for Safari: the staged OS content always; its own App content
    // only when the staged response carries some.
    let app_note = if app_content == target {
        String::new()
    } else {
        format!(
            " ({target} carries no App content: Safari's own content stays that of {app_content}; what changes for it is the OS content)"
        )
    };
    let record: Option<SafariRecord> = records::read_json_opt(device.root(), SAFARI_RECORD)?;
    if record.is_some_and(|r| r.generation == proposed.dir_name()) {
        return Ok(RelaunchOutcome {
            safari_version: target.clone(),
            app_content,
            nothing_to_do: true,
            dry_run,
            message: format!("Safari already uses the staged content ({target}){app_note}"),
        });
    }
    if !dry_run {
        tx.begin()?;
        records::write_json(
            device.root(),
            SAFARI_RECORD,
            &SafariRecord {
                generation: proposed.dir_name(),
            },
        )?;
    }
    Ok(RelaunchOutcome {
        safari_version: target.clone(),
        app_content,
        nothing_to_do: false,
        dry_run,
        message: format!(
            "{} Safari and its associated processes onto {target}{app_note}; restart to make it available to the rest of the OS",
            if dry_run {
                "would relaunch"
            } else {
                "relaunched"
            }
        ),
    })
}

impl Human for RelaunchOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        out.line(&self.message);
    }
}
