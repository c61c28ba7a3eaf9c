//! The declarations a device holds, under `private/var/db/bsi/declarations/`, one file per
//! `Identifier`, holding the bytes exactly as the server sent them. A declaration with a known
//! `Identifier` replaces the stored one when its `ServerToken` differs, and is nothing to do when
//! it is the same, as DDM's synchronisation works.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::declaration::Declaration;
use crate::bundle::digest::Digest;
use crate::device::layout::{DECLARATIONS, RECEIVED_RECORD};
use crate::device::{Root, records};
use crate::error::IoContext;
use crate::refusal::NotFound;
use crate::{Error, Result};

/// Largest declaration `policy set` accepts: real ones are a few hundred bytes. Refused before
/// anything is stored, so the device never holds a declaration it cannot read back.
pub(crate) const MAX_DECLARATION_BYTES: u64 = 1024 * 1024;

/// The most declarations a device holds. Apple publishes no limit; deployments assign tens, and
/// every reader (`status`, `report`, a background pass) evaluates all of them, so what a
/// server can make a device hold bounds what every later command costs.
pub(crate) const MAX_DECLARATIONS: usize = 1000;

/// The most bytes all held declarations may take together, for the same reason: 4 MiB is a
/// thousand declarations of 4 KiB, ten times the size of a real one.
pub(crate) const MAX_TOTAL_BYTES: u64 = 4 << 20;

/// Would holding `count` declarations of `bytes` in all go past what a device holds? The
/// refusal says which bound.
pub(crate) fn over_bounds(count: usize, bytes: u64) -> Option<String> {
    if count > MAX_DECLARATIONS {
        Some(format!(
            "{count} declarations, more than the {MAX_DECLARATIONS} a device holds"
        ))
    } else if bytes > MAX_TOTAL_BYTES {
        Some(format!(
            "{bytes} bytes of declarations, more than the {MAX_TOTAL_BYTES} a device holds"
        ))
    } else {
        None
    }
}

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

/// Declarations a sync fetches, written to a staging directory as they come (none is held in
/// memory after it is checked), then moved into place together by [`Staging::commit`].
/// Dropped without a commit (a failed fetch), it removes what it wrote: the device holds what it
/// held. A crash leaves the staging directory to recovery (it is a `.bsi-tmp.` entry).
#[derive(Debug)]
pub(crate) struct Staging<'r> {
    root: &'r Root,
    dir: PathBuf,
    names: Vec<PathBuf>,
    committed: bool,
}

impl<'r> Staging<'r> {
    /// An empty staging directory under `declarations/`.
    pub(crate) fn new(root: &'r Root) -> Result<Self> {
        let dir = Path::new(DECLARATIONS).join(format!(
            "{}sync-{}",
            crate::device::TMP_PREFIX,
            std::process::id()
        ));
        root.remove_tree_if_exists(&dir)
            .ctx("removing", root.show(&dir))?;
        root.dir()
            .create_dir_all(&dir)
            .ctx("creating", root.show(&dir))?;
        Ok(Self {
            root,
            dir,
            names: Vec::new(),
            committed: false,
        })
    }

    /// Writes `declaration` to the staging directory.
    pub(crate) fn put(&mut self, declaration: &Declaration) -> Result<()> {
        let file = file_for(&declaration.identifier);
        let name = file.file_name().map(PathBuf::from).unwrap_or_default();
        let rel = self.dir.join(&name);
        self.root
            .write_atomic(&rel, &declaration.raw, 0o644)
            .ctx("writing", self.root.show(&rel))?;
        self.names.push(name);
        Ok(())
    }

    /// Moves every staged declaration into place (each rename atomic), removes the declarations
    /// `removed` names, and syncs the directory.
    pub(crate) fn commit(mut self, removed: &[String]) -> Result<()> {
        let root = self.root;
        for name in &self.names {
            let from = self.dir.join(name);
            let to = Path::new(DECLARATIONS).join(name);
            root.dir()
                .rename(&from, root.dir(), &to)
                .ctx("renaming", root.show(&to))?;
        }
        for identifier in removed {
            let rel = file_for(identifier);
            root.remove_if_exists(&rel)
                .ctx("removing", root.show(&rel))?;
        }
        root.sync_dir(DECLARATIONS)
            .ctx("syncing", root.show(DECLARATIONS))?;
        self.committed = true;
        root.remove_tree_if_exists(&self.dir)
            .ctx("removing", root.show(&self.dir))?;
        Ok(())
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.root.remove_tree_if_exists(&self.dir);
        }
    }
}

/// Removes the declaration with `identifier`.
pub(crate) fn remove(root: &Root, identifier: &str) -> Result<()> {
    let rel = file_for(identifier);
    if !root.exists_nofollow(&rel).ctx("reading", root.show(&rel))? {
        return Err(NotFound::NoSuchDeclaration {
            identifier: identifier.to_owned(),
        }
        .into());
    }
    root.remove_durable(&rel).ctx("removing", root.show(&rel))?;
    Ok(())
}
/// The base a device ran when it took an enforcement: real devices judge a declaration when they
/// process it (a target the same as or older than what they run is an error), and its status
/// stays until the declaration changes; it does not turn into an error once the device meets it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Received {
    /// The declaration's `ServerToken` when it arrived.
    pub token: String,
    /// The base OS version then.
    pub version: String,
    /// The base build then.
    pub build: String,
}

/// The recorded arrivals, by identifier. A missing or unreadable record is an empty one: every
/// enforcement is then judged against the base the device runs now.
#[must_use]
pub(crate) fn received(root: &Root) -> BTreeMap<String, Received> {
    records::read_json_lenient(root, RECEIVED_RECORD).unwrap_or_default()
}

/// Records the arrival on `base` of every held enforcement that is new or has a new token, and
/// forgets those no longer held; writes only when something changed.
pub(crate) fn note_received(
    root: &Root,
    held: &[Declaration],
    base: &crate::version::Base,
) -> Result<()> {
    let old = received(root);
    let now: BTreeMap<String, Received> = held
        .iter()
        .filter(|d| d.kind == super::declaration::ENFORCEMENT_TYPE)
        .map(|d| {
            let kept = old
                .get(&d.identifier)
                .filter(|r| r.token == d.server_token)
                .cloned();
            let r = kept.unwrap_or_else(|| Received {
                token: d.server_token.clone(),
                version: base.version.to_string(),
                build: base.build.to_string(),
            });
            (d.identifier.clone(), r)
        })
        .collect();
    if now == old {
        return Ok(());
    }
    records::write_json(root, RECEIVED_RECORD, &now)
}
