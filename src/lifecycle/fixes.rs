//! Applying the fixes `checks` pairs with its findings: each one atomic and durable, under the
//! device lock `repair` holds. The only part of the checks that writes.

use std::path::Path;

use crate::device::{Device, Kind, Root};
use crate::error::IoContext;
use crate::{Error, Result};

use super::finding::{Finding, Fix};

/// Removes whatever is at `rel` (a tree, a file, a link), if anything.
fn clear(root: &Root, rel: &Path) -> Result<()> {
    match root
        .kind(rel)
        .map_err(|e| root.failure("reading", rel, e))?
    {
        Some(Kind::Dir) => root
            .remove_tree_if_exists(rel)
            .ctx("removing", root.show(rel))
            .map(drop),
        Some(_) => root
            .remove_durable(rel)
            .ctx("removing", root.show(rel))
            .map(drop),
        None => Ok(()),
    }
}

/// Applies `fix` (under the device lock); returns what was done, or `None` for a fix that
/// `repair` cannot make itself ([`Fix::Bundle`], [`Fix::Reinit`]).
pub(crate) fn apply(device: &Device, fix: &Fix) -> Result<Option<String>> {
    let root = device.root();
    let clear = |rel: &Path| clear(root, rel);
    let done = match fix {
        Fix::Directory(rel) => {
            let was = root.kind(rel).ok().flatten();
            clear(rel)?;
            root.dir()
                .create_dir_all(rel)
                .ctx("creating", root.show(rel))?;
            if let Some(parent) = rel.parent() {
                root.sync_dir(parent).ctx("syncing", root.show(parent))?;
            }
            format!(
                "made {} a directory again (it was {})",
                rel.display(),
                was.map_or("missing", Kind::noun)
            )
        }
        Fix::Remove(rel) => {
            clear(rel)?;
            format!("removed {}", rel.display())
        }
        Fix::Write(rel, bytes) => {
            if root.kind(rel).ok().flatten() == Some(Kind::Dir) {
                clear(rel)?;
            }
            root.write_atomic(rel, bytes, 0o644)
                .ctx("writing", root.show(rel))?;
            format!("rewrote {}", rel.display())
        }
        Fix::Unshare(rel) => {
            root.copy_atomic(rel).ctx("copying", root.show(rel))?;
            format!(
                "gave {} a name of its own (it was hard-linked)",
                rel.display()
            )
        }
        Fix::Link(link, target) => {
            if let Some(parent) = link.parent() {
                root.dir()
                    .create_dir_all(parent)
                    .ctx("creating", root.show(parent))?;
            }
            if !matches!(root.kind(link).ok().flatten(), Some(Kind::Symlink) | None) {
                clear(link)?;
            }
            root.swap_symlink(link, target)
                .ctx("linking", root.show(link))?;
            format!("pointed {} at {}", link.display(), target.display())
        }
        Fix::RemakeBase => {
            let base = device.base()?;
            let info = device.info();
            crate::device::base_content::remake_base(
                root,
                device.layout(),
                info.platform,
                info.chip,
                &base.version,
                &base.build,
            )?;
            format!("made the base content of {base} again (it was damaged or missing)")
        }
        Fix::CurrentToBase => {
            let base = device.base()?;
            let info = device.info();
            let name = crate::device::base_content::lay_down_base(
                root,
                device.layout(),
                info.platform,
                info.chip,
                &base.version,
                &base.build,
            )?;
            let current = device.layout().current();
            clear(&current)?;
            root.swap_symlink(&current, name.link_target())
                .ctx("switching", root.show(&current))?;
            format!(
                "pointed cryptex1/current at {} (the active generation was gone; the device runs its base)",
                name.dir_name()
            )
        }
        Fix::Bundle | Fix::Reinit => return Ok(None),
    };
    Ok(Some(done))
}

/// The error for findings `repair` cannot fix itself: damage that only `init --force` undoes.
#[must_use]
pub(crate) fn reinit_error(device: &Device, findings: &[Finding]) -> Option<Error> {
    let f = findings.iter().find(|f| f.fix == Fix::Reinit)?;
    Some(Error::CannotRepair {
        message: f.message.clone(),
        root: device.root().path().to_path_buf(),
    })
}
