//! The declarations a device holds, under `private/var/db/bsi/declarations/`, one file per
//! `Identifier`, holding the bytes exactly as the server sent them. A declaration with a known
//! `Identifier` replaces the stored one when its `ServerToken` differs, and is nothing to do when
//! it is the same, as DDM's synchronisation works.

use std::path::{Path, PathBuf};

use super::declaration::Declaration;
use crate::bundle::digest::Digest;
use crate::device::layout::DECLARATIONS;
use crate::device::{Root, records};
use crate::error::IoContext;
use crate::refusal::NotApplicable;
use crate::{Error, Result};

/// Largest declaration `policy set` accepts: real ones are a few hundred bytes. Refused before
/// anything is stored, so the device never holds a declaration it cannot read back.
pub(crate) const MAX_DECLARATION_BYTES: u64 = 1024 * 1024;

/// What `policy set` did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "change")]
pub(crate) enum SetOutcome {
    /// A new identifier.
    Added,
    /// Replaced the declaration with the same identifier and another server token.
    Replaced {
        /// The old server token.
        previous_token: String,
    },
    /// Same identifier and server token: nothing to do.
    Unchanged,
}

fn file_for(identifier: &str) -> PathBuf {
    // Identifiers are free text; the file name is derived from them so that none can name a path.
    let digest = Digest::of(identifier.as_bytes()).to_hex();
    Path::new(DECLARATIONS).join(format!("{}.json", &digest[..32]))
}

/// Every stored declaration, sorted by identifier.
pub(crate) fn list(root: &Root) -> Result<Vec<Declaration>> {
    let mut out = Vec::new();
    let dir = match root.open_dir_strict(DECLARATIONS) {
        Ok(Some(dir)) => dir,
        Ok(None) => return Ok(out),
        Err(e) => return Err(records::read_error(root, DECLARATIONS, e)),
    };
    for entry in dir.entries().ctx("listing", root.show(DECLARATIONS))? {
        let name = entry.ctx("listing", root.show(DECLARATIONS))?.file_name();
        let name = name.to_string_lossy();
        if !name.ends_with(".json") || name.starts_with('.') {
            continue;
        }
        let rel = Path::new(DECLARATIONS).join(name.as_ref());
        let raw = root
            .read_small(&rel)
            .map_err(|e| records::read_error(root, &rel, e))?;
        let declaration = Declaration::parse(&raw, &root.show(&rel).display().to_string())
            .map_err(|e| Error::damaged(format!("stored declaration: {e}")))?;
        out.push(declaration);
    }
    out.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    Ok(out)
}

/// What storing `declaration` would do on a device that holds `held`.
#[must_use]
pub(crate) fn plan(held: &[Declaration], declaration: &Declaration) -> SetOutcome {
    match held.iter().find(|d| d.identifier == declaration.identifier) {
        None => SetOutcome::Added,
        Some(old) if old.server_token == declaration.server_token => SetOutcome::Unchanged,
        Some(old) => SetOutcome::Replaced {
            previous_token: old.server_token.clone(),
        },
    }
}

/// Stores `declaration` (atomically replacing one with the same identifier).
pub(crate) fn store(root: &Root, declaration: &Declaration) -> Result<()> {
    root.dir()
        .create_dir_all(DECLARATIONS)
        .ctx("creating", root.show(DECLARATIONS))?;
    let rel = file_for(&declaration.identifier);
    root.write_atomic(&rel, &declaration.raw, 0o644)
        .ctx("writing", root.show(&rel))
}

/// Stores several declarations (a sync's): each replaced atomically, the directory synced once.
pub(crate) fn store_all(root: &Root, declarations: &[Declaration]) -> Result<()> {
    if declarations.is_empty() {
        return Ok(());
    }
    root.dir()
        .create_dir_all(DECLARATIONS)
        .ctx("creating", root.show(DECLARATIONS))?;
    let files: Vec<(PathBuf, Vec<u8>)> = declarations
        .iter()
        .map(|d| (file_for(&d.identifier), d.raw.clone()))
        .collect();
    root.write_atomic_all(&files, 0o644)
        .ctx("writing", root.show(DECLARATIONS))
}

/// Removes the declaration with `identifier`.
pub(crate) fn remove(root: &Root, identifier: &str) -> Result<()> {
    let rel = file_for(identifier);
    if !root.exists_nofollow(&rel).ctx("reading", root.show(&rel))? {
        return Err(NotApplicable::NoSuchDeclaration {
            identifier: identifier.to_owned(),
        }
        .into());
    }
    root.remove_durable(&rel).ctx("removing", root.show(&rel))?;
    Ok(())
}
