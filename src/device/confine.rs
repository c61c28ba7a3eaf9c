//! Confinement: every file operation on a device goes through [`Root`], a directory handle
//! opened once on the device root. Paths are resolved *beneath* that handle (`cap-std`, which uses
//! `openat2(RESOLVE_BENEATH)` where the kernel has it and a checked component walk where it does
//! not), so a symlink planted inside the device that points outside it makes the operation fail
//! instead of writing, renaming or deleting anything elsewhere (DESIGN section 2; invariant I4's
//! "nothing outside the root").
//!
//! This module owns that mechanism and the read helpers; `atomic.rs` adds the durable write and
//! switch operations on top of it. Nothing else in bsi opens device paths by name.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File};

/// Records bsi reads whole are small; anything bigger than this is treated as damage.
pub(crate) const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// A handle on the device root beneath which every path is resolved.
#[derive(Debug)]
pub(crate) struct Root {
    path: PathBuf,
    dir: Dir,
}

impl Root {
    /// Opens the directory at `path` (an ordinary, ambient path given by the user).
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let dir = Dir::open_ambient_dir(path, ambient_authority())?;
        Ok(Self {
            path: path.to_path_buf(),
            dir,
        })
    }

    /// The root's path as the user gave it (for messages).
    #[must_use]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` joined to the root path, for messages.
    #[must_use]
    pub(crate) fn show(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// The capability handle itself.
    #[must_use]
    pub(crate) fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Opens `rel` for reading.
    pub(crate) fn open_read(&self, rel: impl AsRef<Path>) -> io::Result<File> {
        self.dir.open(rel)
    }

    /// Opens a generation's manifest to be read as a stream, refusing one larger than a bundle's
    /// manifest may be; what is read is bounded by that size too, even if the file grows.
    pub(crate) fn open_manifest(&self, rel: impl AsRef<Path>) -> io::Result<io::Take<File>> {
        use crate::bundle::limits::MAX_MANIFEST_BYTES;
        let file = self.dir.open(rel)?;
        if file.metadata()?.len() > MAX_MANIFEST_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "file is larger than any manifest bsi accepts",
            ));
        }
        Ok(file.take(MAX_MANIFEST_BYTES))
    }

    /// Reads a small file whole, refusing anything over [`MAX_RECORD_BYTES`].
    pub(crate) fn read_small(&self, rel: impl AsRef<Path>) -> io::Result<Vec<u8>> {
        self.read_limited(rel, MAX_RECORD_BYTES, "any record bsi writes")
    }

    /// Reads a generation's manifest whole, refusing anything larger than a bundle's manifest
    /// may be (a response of 100,000 files has a manifest of about 30 MB, more than a record).
    pub(crate) fn read_manifest(&self, rel: impl AsRef<Path>) -> io::Result<Vec<u8>> {
        use crate::bundle::limits::MAX_MANIFEST_BYTES;
        self.read_limited(rel, MAX_MANIFEST_BYTES, "any manifest bsi accepts")
    }

    fn read_limited(&self, rel: impl AsRef<Path>, limit: u64, what: &str) -> io::Result<Vec<u8>> {
        let file = self.dir.open(rel)?;
        // Sized once from the file's length (bounded by the limit): no regrowing copies.
        let hint = file.metadata().map_or(0, |m| m.len().min(limit) + 1);
        let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
        file.take(limit + 1).read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file is larger than {what}"),
            ));
        }
        Ok(out)
    }

    /// Reads a small file if it exists.
    pub(crate) fn read_small_opt(&self, rel: impl AsRef<Path>) -> io::Result<Option<Vec<u8>>> {
        match self.read_small(rel) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a symlink's target if `rel` is a symlink; `None` if nothing is there.
    pub(crate) fn read_link_opt(&self, rel: impl AsRef<Path>) -> io::Result<Option<PathBuf>> {
        match self.dir.read_link_contents(rel) {
            Ok(target) => Ok(Some(target)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Does anything (file, directory or symlink, followed or not) exist at `rel`?
    pub(crate) fn exists_nofollow(&self, rel: impl AsRef<Path>) -> io::Result<bool> {
        match self.dir.symlink_metadata(rel) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::is_escape;

    #[test]
    fn a_planted_symlink_cannot_lead_outside() {
        let outside = tempfile::tempdir().unwrap();
        let root_dir = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root_dir.path().join("link")).unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        let err = root.read_small("link/secret").unwrap_err();
        assert!(is_escape(&err), "{err}");
        let err = root.dir().write("link/new", b"y").unwrap_err();
        assert!(is_escape(&err), "{err}");
        assert!(!outside.path().join("new").exists());
    }
}
