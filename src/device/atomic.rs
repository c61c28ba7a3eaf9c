//! Atomic, durable changes beneath the device [`Root`]: write-fsync-rename for files, rename of a
//! freshly made symlink for switches, and directory syncs.
//!
//! Each helper leaves either the old or the new content at the target path at every instant
//! (invariant I3). A crash can leave a temporary named `.bsi-tmp.*` next to the target; recovery
//! sweeps those (see `lifecycle::recover`). Renames replace the target entry itself and never
//! follow a symlink found there, so a planted link is replaced, not written through.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use cap_std::fs::{OpenOptions, Permissions};
use cap_std::fs::{OpenOptionsExt, PermissionsExt};

use super::Root;
use crate::faults::fault_point;

/// Prefix of every temporary name bsi makes inside a device.
pub(crate) const TMP_PREFIX: &str = ".bsi-tmp.";

/// The temporary sibling used while replacing `rel`.
#[must_use]
pub(crate) fn tmp_sibling(rel: &Path) -> PathBuf {
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    rel.with_file_name(format!("{TMP_PREFIX}{name}"))
}

fn parent_of(rel: &Path) -> &Path {
    match rel.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl Root {
    /// Syncs the directory `rel` itself, so that entries created, renamed or removed in it are
    /// durable.
    pub(crate) fn sync_dir(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        fault_point!("atomic.sync_dir");
        // cap-std opens directory handles with O_PATH, which cannot be synced: open for reading.
        let dir = self.dir().open(rel)?;
        rustix::fs::fsync(&dir)?;
        Ok(())
    }

    /// Flushes every dirty page of the filesystem holding the device (`syncfs`): one call that
    /// makes a whole staged tree durable, instead of one fsync per file.
    pub(crate) fn sync_filesystem(&self) -> io::Result<()> {
        fault_point!("atomic.syncfs");
        let dir = self.dir().open(".")?;
        rustix::fs::syncfs(&dir)?;
        Ok(())
    }

    /// Replaces `rel` with `bytes`: write a temporary sibling, fsync it, rename it over `rel`,
    /// fsync the directory.
    pub(crate) fn write_atomic(
        &self,
        rel: impl AsRef<Path>,
        bytes: &[u8],
        mode: u32,
    ) -> io::Result<()> {
        let rel = rel.as_ref();
        let tmp = tmp_sibling(rel);
        self.remove_if_exists(&tmp)?;
        let written = self.write_tmp(&tmp, bytes, mode).and_then(|()| {
            fault_point!("atomic.rename");
            self.dir().rename(&tmp, self.dir(), rel)
        });
        if let Err(e) = written {
            // Leave nothing behind on failure; a crash instead leaves the temporary to recovery.
            let _ = self.remove_if_exists(&tmp);
            return Err(e);
        }
        self.sync_dir(parent_of(rel))
    }

    fn write_tmp(&self, tmp: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(mode);
        let mut file = self.dir().open_with(tmp, &options)?;
        fault_point!("atomic.write");
        file.write_all(bytes)?;
        file.set_permissions(Permissions::from_mode(mode))?;
        file.sync_all()
    }

    /// Replaces the regular file `rel` with a copy of itself (same content and mode, one link):
    /// a hard link planted as a record keeps its other name and content, and the record gets a
    /// name of its own. Copied through a temporary sibling, synced, renamed over `rel`.
    pub(crate) fn copy_atomic(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let rel = rel.as_ref();
        let source = match self.open_file(rel, super::Open::Read) {
            Ok(f) => f,
            // More than one link is what is being fixed; anything else is not a file to copy.
            Err(e)
                if e.kind() == io::ErrorKind::InvalidData
                    && self.kind(rel)? == Some(super::Kind::File) =>
            {
                self.open_hard_linked(rel)?
            }
            Err(e) => return Err(e),
        };
        let mode = source.metadata()?.permissions().mode() & 0o777;
        let tmp = tmp_sibling(rel);
        self.remove_if_exists(&tmp)?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(mode);
        let copied = (|| {
            let mut out = self.dir().open_with(&tmp, &options)?;
            io::copy(&mut &source, &mut out)?;
            out.sync_all()?;
            self.dir().rename(&tmp, self.dir(), rel)
        })();
        if let Err(e) = copied {
            let _ = self.remove_if_exists(&tmp);
            return Err(e);
        }
        self.sync_dir(parent_of(rel))
    }

    /// Opens a regular file that has more than one link, for reading only (no symlink followed,
    /// no FIFO blocked on).
    fn open_hard_linked(&self, rel: &Path) -> io::Result<std::fs::File> {
        use rustix::fs::{Mode, OFlags};
        let dir = self
            .open_dir_strict(parent_of(rel))?
            .ok_or(io::ErrorKind::NotFound)?;
        let name = rel.file_name().ok_or(io::ErrorKind::InvalidInput)?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = std::fs::File::from(rustix::fs::openat(&dir, name, flags, Mode::empty())?);
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "it is not a regular file",
            ));
        }
        Ok(file)
    }

    /// Points the symlink `rel` at `target`, atomically: make the new link under a temporary
    /// name, rename it over `rel`, fsync the directory. This is bsi's switch operation.
    ///
    /// If the directory cannot be synced after the rename, the previous link is put back, so
    /// that a failed switch leaves the old state rather than an undurable new one.
    pub(crate) fn swap_symlink(
        &self,
        rel: impl AsRef<Path>,
        target: impl AsRef<Path>,
    ) -> io::Result<()> {
        let rel = rel.as_ref();
        let previous = self.read_link_opt(rel)?;
        let tmp = tmp_sibling(rel);
        self.remove_if_exists(&tmp)?;
        self.dir().symlink(target.as_ref(), &tmp)?;
        if let Err(e) = self.rename_switch(&tmp, rel) {
            let _ = self.remove_if_exists(&tmp);
            return Err(e);
        }
        if let Err(e) = self.sync_dir(parent_of(rel)) {
            let _ = match previous {
                Some(old) => self
                    .dir()
                    .symlink(&old, &tmp)
                    .and_then(|()| self.dir().rename(&tmp, self.dir(), rel)),
                None => self.dir().remove_file(rel),
            };
            return Err(e);
        }
        Ok(())
    }

    /// The rename that makes a switch visible.
    fn rename_switch(&self, tmp: &Path, rel: &Path) -> io::Result<()> {
        fault_point!("atomic.swap");
        self.dir().rename(tmp, self.dir(), rel)
    }

    /// Puts the directory `staging` in place of the directory `target` (both names in the
    /// directory `parent`) in one step: a plain rename when nothing is at `target`, else a
    /// `renameat2(RENAME_EXCHANGE)` that swaps the two, after which the old tree (now under the
    /// `staging` name) is removed. Either way a reader sees the old tree or the new one at
    /// `target`, never neither; a crash leaves the old tree under a `.bsi-tmp.` name, which
    /// recovery sweeps. The parent is synced.
    pub(crate) fn replace_dir(&self, parent: &Path, staging: &str, target: &str) -> io::Result<()> {
        use rustix::fs::RenameFlags;
        fault_point!("atomic.replace_dir");
        let dir = self.dir().open_dir(parent)?;
        match rustix::fs::renameat_with(&dir, staging, &dir, target, RenameFlags::EXCHANGE) {
            Ok(()) => {
                // The switch is made; the old tree under the temporary name is garbage that
                // recovery sweeps if removing it now fails.
                let _ = remove_tree(&dir, std::ffi::OsStr::new(staging));
            }
            Err(rustix::io::Errno::NOENT) if dir.symlink_metadata(staging).is_ok() => {
                dir.rename(staging, &dir, target)?;
            }
            Err(e) => return Err(e.into()),
        }
        self.sync_dir(parent)
    }

    /// Removes the file or symlink `rel` if present and syncs its directory.
    pub(crate) fn remove_durable(&self, rel: impl AsRef<Path>) -> io::Result<bool> {
        let rel = rel.as_ref();
        let removed = self.remove_if_exists(rel)?;
        if removed {
            self.sync_dir(parent_of(rel))?;
        }
        Ok(removed)
    }

    /// Removes the file or symlink `rel` if present (not synced).
    pub(crate) fn remove_if_exists(&self, rel: impl AsRef<Path>) -> io::Result<bool> {
        match self.dir().remove_file(rel) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes the tree at `rel` (without following symlinks inside it) if present. However deep
    /// the tree, it holds at most three descriptors open ([`remove_tree`]), so neither a low
    /// open-file limit nor a planted 100,000-deep chain of directories stops it.
    pub(crate) fn remove_tree_if_exists(&self, rel: impl AsRef<Path>) -> io::Result<bool> {
        let rel = rel.as_ref();
        match self.dir().symlink_metadata(rel) {
            Ok(meta) if meta.is_dir() => {
                let parent = self.dir().open_dir(parent_of(rel))?;
                let name = rel
                    .file_name()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no name"))?;
                remove_tree(&parent, name)?;
                Ok(true)
            }
            Ok(_) => {
                self.dir().remove_file(rel)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Removes the directory `name` in `parent` and everything beneath it, depth first, with one
/// directory descriptor at a time: it descends into a subdirectory by `openat`, climbs back by
/// `..`, and keeps only the names of the way down in memory. Symlinks are removed, never
/// followed.
fn remove_tree(parent: &cap_std::fs::Dir, name: &std::ffi::OsStr) -> io::Result<()> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let open_dir = |at: &rustix::fd::OwnedFd, name: &std::ffi::CStr| {
        rustix::fs::openat(
            at,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let top = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(name))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a name"))?;
    let mut cur = rustix::fs::openat(
        parent,
        &top,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut way: Vec<std::ffi::CString> = Vec::new();
    loop {
        let mut sub = None;
        {
            let mut entries = rustix::fs::Dir::read_from(&cur)?;
            while let Some(entry) = entries.read() {
                let entry = entry?;
                let n = entry.file_name();
                if n == c"." || n == c".." {
                    continue;
                }
                let is_dir = match entry.file_type() {
                    FileType::Directory => true,
                    FileType::Unknown => rustix::fs::statat(&cur, n, AtFlags::SYMLINK_NOFOLLOW)
                        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)?,
                    _ => false,
                };
                if is_dir {
                    sub = Some(n.to_owned());
                    break;
                }
                rustix::fs::unlinkat(&cur, n, AtFlags::empty())?;
            }
        }
        if let Some(n) = sub {
            let down = open_dir(&cur, &n)?;
            way.push(n);
            cur = down;
            continue;
        }
        let Some(n) = way.pop() else {
            drop(cur);
            rustix::fs::unlinkat(parent, &top, AtFlags::REMOVEDIR)?;
            return Ok(());
        };
        let up = open_dir(&cur, c"..")?;
        rustix::fs::unlinkat(&up, &n, AtFlags::REMOVEDIR)?;
        cur = up;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_a_planted_symlink_instead_of_following_it() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::fs::write(&target, b"keep").unwrap();
        let root_dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&target, root_dir.path().join("record")).unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        root.write_atomic("record", b"new", 0o644).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert_eq!(
            std::fs::read(root_dir.path().join("record")).unwrap(),
            b"new"
        );
        assert!(!root_dir.path().join(".bsi-tmp.record").exists());
    }

    #[test]
    fn removes_deep_trees_with_few_descriptors() {
        let root_dir = tempfile::tempdir().unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        // Deeper than PATH_MAX allows a path to name: made level by level beneath handles.
        let mut dir =
            cap_std::fs::Dir::open_ambient_dir(root_dir.path(), cap_std::ambient_authority())
                .unwrap();
        dir.create_dir("deep").unwrap();
        dir = dir.open_dir("deep").unwrap();
        for i in 0..3000 {
            let name = format!("level-{i:05}");
            dir.create_dir(&name).unwrap();
            dir.write("f", b"x").unwrap();
            dir = dir.open_dir(&name).unwrap();
        }
        std::os::unix::fs::symlink("/etc", root_dir.path().join("deep/link")).unwrap();
        assert!(root.remove_tree_if_exists("deep").unwrap());
        assert!(!root_dir.path().join("deep").exists());
        assert!(std::path::Path::new("/etc").exists());
    }

    #[test]
    fn swap_symlink_switches_in_one_rename() {
        let root_dir = tempfile::tempdir().unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        std::fs::create_dir(root_dir.path().join("a")).unwrap();
        std::fs::create_dir(root_dir.path().join("b")).unwrap();
        root.swap_symlink("current", "a").unwrap();
        root.swap_symlink("current", "b").unwrap();
        assert_eq!(
            std::fs::read_link(root_dir.path().join("current")).unwrap(),
            Path::new("b")
        );
    }
}
