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
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

/// Records bsi reads whole are small; anything bigger than this is treated as damage.
pub(crate) const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// How [`Root::open_file`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Open {
    /// Reading.
    Read,
    /// Reading and writing, created if absent (the lock).
    ReadWrite,
    /// Appending, created if absent (the history).
    Append,
}

/// Refuses what a file bsi keeps can never be: anything but a regular file (a FIFO, a device, a
/// directory), or a file with more than one link (another name, perhaps outside the device,
/// would share every write).
pub(crate) fn plain_file(meta: &std::fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it is {}, not a regular file", crate::error::kind_of(meta)),
        ));
    }
    if meta.nlink() > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it has {} hard links; a file bsi keeps has one (another name would share its writes)",
                meta.nlink()
            ),
        ));
    }
    Ok(())
}

/// Is `e` what [`Root::open_file`] says of a file that is not what bsi keeps there (wrong type,
/// extra links, a symlink on the way, too large), or a path through something that is not a
/// directory? Such a file is damage (exit 8, `bsi repair`), not an I/O failure.
#[must_use]
pub(crate) fn is_damage(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
        || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
}

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

    /// The error for `e`, met while `action` on `rel`: damage (exit 8) when what is there is
    /// not what bsi keeps there ([`is_damage`]), else an I/O failure.
    #[must_use]
    pub(crate) fn failure(
        &self,
        action: &'static str,
        rel: impl AsRef<Path>,
        e: io::Error,
    ) -> crate::Error {
        if is_damage(&e) {
            crate::Error::damaged(format!("{}: {e}", self.show(rel).display()))
        } else {
            crate::Error::io(action, self.show(rel), e)
        }
    }

    /// The capability handle itself.
    #[must_use]
    pub(crate) fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Opens `rel` for reading, as a record is opened ([`Root::open_file`]).
    pub(crate) fn open_read(&self, rel: impl AsRef<Path>) -> io::Result<std::fs::File> {
        self.open_file(rel, Open::Read)
    }

    /// Opens the file `rel` the way every file bsi keeps is opened: beneath the root without
    /// following a symlink anywhere on the path (bsi makes none there), without blocking (a
    /// FIFO opens at once), and only if what is there is a regular file with one link; anything
    /// else is an [`io::ErrorKind::InvalidData`] error saying what was found, which callers
    /// report as damage. Nothing is truncated on opening, so a planted hard link's other name is
    /// never written through.
    pub(crate) fn open_file(&self, rel: impl AsRef<Path>, how: Open) -> io::Result<std::fs::File> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let rel = rel.as_ref();
        let flags = OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC
            | match how {
                Open::Read => OFlags::RDONLY,
                Open::ReadWrite => OFlags::RDWR | OFlags::CREATE,
                Open::Append => OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE,
            };
        let opened = rustix::fs::openat2(
            &self.dir,
            rel,
            flags,
            // openat2 takes a mode only with O_CREAT.
            if how == Open::Read {
                Mode::empty()
            } else {
                Mode::from_raw_mode(0o644)
            },
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        );
        let file = match opened {
            Ok(fd) => std::fs::File::from(fd),
            // Kernels before 5.6 have no openat2: cap-std's checked walk stays beneath the root.
            Err(rustix::io::Errno::NOSYS) => {
                use cap_std::fs::{OpenOptions, OpenOptionsExt};
                let mut options = OpenOptions::new();
                match how {
                    Open::Read => options.read(true),
                    Open::ReadWrite => options.read(true).write(true).create(true),
                    Open::Append => options.append(true).create(true),
                };
                options.custom_flags(
                    i32::try_from((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits()).unwrap_or(0),
                );
                self.dir.open_with(rel, &options)?.into_std()
            }
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::XDEV) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a symlink stands on its path, where bsi makes none",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        plain_file(&file.metadata()?)?;
        Ok(file)
    }

    /// Opens the directory `rel` as every directory bsi keeps is opened: beneath the root, no
    /// symlink followed on the way or at the end. Something else there (a symlink, a FIFO, a
    /// file) is an [`io::ErrorKind::InvalidData`] error saying so; `None` when nothing is there.
    pub(crate) fn open_dir_strict(&self, rel: impl AsRef<Path>) -> io::Result<Option<Dir>> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        match rustix::fs::openat2(&self.dir, rel.as_ref(), flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(Some(Dir::from_std_file(std::fs::File::from(fd)))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(rustix::io::Errno::NOSYS) => match self.dir.symlink_metadata(rel.as_ref()) {
                Ok(m) if m.is_dir() => self.dir.open_dir(rel.as_ref()).map(Some),
                Ok(_) => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "it is not a directory",
                )),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::XDEV) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a symlink stands on its path, where bsi makes none",
            )),
            Err(rustix::io::Errno::NOTDIR) => {
                // What stands there (or on the way): a symlink, a file, a FIFO.
                let what = match self.kind(rel.as_ref()) {
                    Ok(Some(kind)) => format!("it is {}, not a directory", kind.noun()),
                    _ => "something on its path is not a directory".to_owned(),
                };
                Err(io::Error::new(io::ErrorKind::InvalidData, what))
            }
            Err(e) => Err(e.into()),
        }
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

    /// Opens a generation's manifest to be read as a stream, refusing one larger than a bundle's
    /// manifest may be; what is read is bounded by that size too, even if the file grows.
    pub(crate) fn open_manifest(
        &self,
        rel: impl AsRef<Path>,
    ) -> io::Result<io::Take<std::fs::File>> {
        use crate::bundle::limits::MAX_MANIFEST_BYTES;
        let file = self.open_file(rel, Open::Read)?;
        if file.metadata()?.len() > MAX_MANIFEST_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "it is larger than any manifest bsi accepts",
            ));
        }
        Ok(file.take(MAX_MANIFEST_BYTES))
    }

    fn read_limited(&self, rel: impl AsRef<Path>, limit: u64, what: &str) -> io::Result<Vec<u8>> {
        let file = self.open_file(rel, Open::Read)?;
        // Sized once from the file's length (bounded by the limit): no regrowing copies.
        let hint = file.metadata().map_or(0, |m| m.len().min(limit) + 1);
        let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
        file.take(limit + 1).read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("it is larger than {what}"),
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

    /// Reads the symlink `rel`, reached without following any symlink on the way (a link is
    /// read where bsi made it, never through a planted one); `None` when nothing is there. What
    /// is there but is no symlink is an [`io::ErrorKind::InvalidData`] error.
    pub(crate) fn read_link_opt(&self, rel: impl AsRef<Path>) -> io::Result<Option<PathBuf>> {
        let rel = rel.as_ref();
        let Some((dir, name)) = self.parent_of(rel)? else {
            return Ok(None);
        };
        match rustix::fs::readlinkat(&dir, name, Vec::new()) {
            Ok(target) => Ok(Some(PathBuf::from(std::ffi::OsString::from_vec(
                target.into_bytes(),
            )))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(rustix::io::Errno::INVAL) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "it is {}, not a symlink",
                    self.kind(rel)?.map_or("nothing", Kind::noun)
                ),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// What is at `rel` itself (a symlink is not followed), reached without following any
    /// symlink on the way; `None` when nothing is there (or the way to it is not a directory).
    pub(crate) fn kind(&self, rel: impl AsRef<Path>) -> io::Result<Option<Kind>> {
        use rustix::fs::{AtFlags, FileType};
        let Some((dir, name)) = self.parent_of(rel.as_ref())? else {
            return Ok(None);
        };
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => Kind::Dir,
                FileType::RegularFile => Kind::File,
                FileType::Symlink => Kind::Symlink,
                _ => Kind::Special,
            })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Does anything (file, directory or symlink, not followed) exist at `rel`?
    pub(crate) fn exists_nofollow(&self, rel: impl AsRef<Path>) -> io::Result<bool> {
        self.kind(rel).map(|k| k.is_some())
    }

    /// The directory holding `rel` (opened strictly) and `rel`'s last component; `None` when
    /// the directory is not there.
    fn parent_of<'a>(&self, rel: &'a Path) -> io::Result<Option<(Dir, &'a std::ffi::OsStr)>> {
        let Some(name) = rel.file_name() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file name"));
        };
        let parent = match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        match self.open_dir_strict(parent) {
            Ok(Some(dir)) => Ok(Some((dir, name))),
            Ok(None) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("its directory {}: {e}", parent.display()),
            )),
            Err(e) => Err(e),
        }
    }
}

/// What is at a path ([`Root::kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symlink.
    Symlink,
    /// A FIFO, a socket or a device.
    Special,
}

impl Kind {
    /// The kind as a noun phrase, for messages.
    #[must_use]
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::Dir => "a directory",
            Kind::File => "a file",
            Kind::Symlink => "a symlink",
            Kind::Special => "a special file",
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
        // A file bsi keeps is never reached through a symlink, inside or out.
        let err = root.read_small("link/secret").unwrap_err();
        assert!(is_damage(&err), "{err}");
        let err = root.dir().write("link/new", b"y").unwrap_err();
        assert!(is_escape(&err), "{err}");
        assert!(!outside.path().join("new").exists());
    }
}
