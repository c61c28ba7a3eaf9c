//! The directory form of a bundle, read beneath its handle: opening a member without following
//! any symlink or blocking on a FIFO, and the walk that checks the directory holds nothing but
//! the manifest, the signature and the payload files the manifest lists, each of its size.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cap_std::fs::Dir;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::BundleError;
use super::limits::{MAX_DEPTH, MAX_FILES};
use super::manifest::{FileEntry, Manifest};
use super::paths::{MANIFEST, SIGNATURE};
use crate::error::kind_name;
use crate::platform::Cryptex;
use crate::untrusted::clip;

pub(super) fn read_err(path: &Path, e: std::io::Error) -> BundleError {
    BundleError::Read {
        path: PathBuf::from(clip(&path.display().to_string())),
        source: e,
    }
}

pub(super) fn is_loop(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error())
}

/// Opens `rel` beneath `dir` without following any symlink on the way (not even one in an
/// intermediate component) and without blocking on a FIFO. Kernels without `openat2` (before
/// 5.6) get cap-std's checked walk, which stays beneath the handle.
pub(crate) fn open_beneath(dir: &impl AsFd, rel: &Path, directory: bool) -> std::io::Result<File> {
    let mut flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    if directory {
        flags |= OFlags::DIRECTORY;
    }
    match rustix::fs::openat2(
        dir,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    ) {
        Ok(fd) => Ok(File::from(fd)),
        Err(rustix::io::Errno::NOSYS) => {
            let dir = Dir::reopen_dir(dir)?;
            if directory {
                Ok(dir.open_dir(rel)?.into_std_file())
            } else {
                use cap_std::fs::OpenOptionsExt;
                let mut options = cap_std::fs::OpenOptions::new();
                options.read(true).custom_flags(
                    i32::try_from((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits()).unwrap_or(0),
                );
                Ok(dir.open_with(rel, &options)?.into_std())
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens a payload file of a directory bundle beneath its handle, refusing anything but a
/// regular file of the declared size, and any symlink on the way.
pub(crate) fn open_regular(dir: &Dir, label: &str, size: u64) -> Result<File, BundleError> {
    let Some((file, meta)) = open_member(dir, label)? else {
        return Err(BundleError::Missing {
            path: label.to_owned(),
        });
    };
    if meta.len() != size {
        return Err(BundleError::Size {
            path: label.to_owned(),
            declared: size,
            actual: meta.len(),
        });
    }
    Ok(file)
}

/// Reads a small top-level file of a directory bundle (manifest or signature).
pub(super) fn read_member(
    dir: &Dir,
    name: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, BundleError> {
    open_member(dir, name)?
        .map(|(file, meta)| read_opened(&file, &meta, name, limit))
        .transpose()
}

/// Reads a member [`open_member`] opened, within `limit` bytes.
pub(super) fn read_opened(
    file: &File,
    meta: &std::fs::Metadata,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, BundleError> {
    if meta.len() > limit {
        return Err(BundleError::TooLarge {
            what: format!("{name} ({} bytes)", meta.len()),
            limit: format!("{limit} bytes"),
        });
    }
    // Sized from the file's length up front (one byte more, to see a file that grew).
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    file.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| read_err(Path::new(name), e))?;
    if out.len() as u64 > limit {
        return Err(BundleError::TooLarge {
            what: name.to_owned(),
            limit: format!("{limit} bytes"),
        });
    }
    Ok(out)
}

/// Opens a regular file of a directory bundle beneath its handle (`None` if it is not there),
/// refusing a symlink on the way or another kind of file.
pub(super) fn open_member(
    dir: &Dir,
    name: &str,
) -> Result<Option<(File, std::fs::Metadata)>, BundleError> {
    let file = match open_beneath(dir, Path::new(name), false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if is_loop(&e) => {
            return Err(BundleError::UnsafeEntry {
                path: name.to_owned(),
                kind: "symlink".to_owned(),
            });
        }
        Err(e) => return Err(read_err(Path::new(name), e)),
    };
    let meta = file.metadata().map_err(|e| read_err(Path::new(name), e))?;
    if !meta.is_file() {
        return Err(BundleError::UnsafeEntry {
            path: name.to_owned(),
            kind: kind_name(meta.mode()).to_owned(),
        });
    }
    Ok(Some((file, meta)))
}

/// Is the directory `rel` (`OS/usr/lib`) on the way to a listed file?
fn leads_to_listed(listings: &[(Cryptex, &[FileEntry])], rel: &str) -> bool {
    let (top, rest) = rel.split_once('/').unwrap_or((rel, ""));
    let Some((_, files)) = listings.iter().find(|(c, _)| c.as_str() == top) else {
        return false;
    };
    if rest.is_empty() {
        return !files.is_empty();
    }
    let prefix = format!("{rest}/");
    let at = files.partition_point(|f| f.path.as_bytes() < prefix.as_bytes());
    files.get(at).is_some_and(|f| f.path.starts_with(&prefix))
}

/// Walks a directory bundle beneath its handle without following symlinks: every regular file
/// must be the manifest, the signature or a listed payload file of the declared size; every
/// listed file must be there.
pub(super) fn walk_directory(root: &Dir, manifest: &Manifest) -> Result<(), BundleError> {
    // Each cryptex's listing is sorted by path: a file found is looked up by binary search and
    // marked in a bitmap, so the walk holds no copy of the listing's paths (at 100,000 files of
    // 150-byte paths, a map of them held 23 MB, and kept the staging that follows 14 MiB higher).
    let listings: Vec<(Cryptex, &[FileEntry])> = manifest
        .cryptexes
        .0
        .iter()
        .map(|(c, files)| (*c, files.as_slice()))
        .collect();
    let mut walk = Walk {
        seen: listings
            .iter()
            .map(|(_, files)| vec![false; files.len()])
            .collect(),
        listings,
        stack: vec![String::new()],
    };
    let mut visited = 0usize;
    while let Some(prefix) = walk.stack.pop() {
        let dir = if prefix.is_empty() {
            root.try_clone()
        } else {
            open_beneath(root, Path::new(prefix.trim_end_matches('/')), true)
                .map(Dir::from_std_file)
        }
        .map_err(|e| {
            if is_loop(&e) {
                BundleError::UnsafeEntry {
                    path: clip(prefix.trim_end_matches('/')),
                    kind: "symlink".to_owned(),
                }
            } else {
                read_err(Path::new(&prefix), e)
            }
        })?;
        let entries = dir.entries().map_err(|e| read_err(Path::new(&prefix), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| read_err(Path::new(&prefix), e))?;
            visited += 1;
            if visited > 2 * MAX_FILES {
                return Err(BundleError::TooLarge {
                    what: "the number of entries in the bundle directory".into(),
                    limit: format!("{} entries", 2 * MAX_FILES),
                });
            }
            walk.entry(&prefix, &entry)?;
        }
    }
    for ((cryptex, files), seen) in walk.listings.iter().zip(&walk.seen) {
        if let Some(at) = seen.iter().position(|s| !s) {
            return Err(BundleError::Missing {
                path: format!("{cryptex}/{}", files[at].path),
            });
        }
    }
    Ok(())
}

/// A walk of a directory bundle: the listings, which listed files were found, and the
/// directories still to list.
struct Walk<'m> {
    listings: Vec<(Cryptex, &'m [FileEntry])>,
    seen: Vec<Vec<bool>>,
    stack: Vec<String>,
}

impl Walk<'_> {
    /// The listed file at `rel` (`OS/usr/lib/x`): its cryptex's index and its index there.
    fn find(&self, rel: &str) -> Option<(usize, usize)> {
        let (top, rest) = rel.split_once('/')?;
        let which = self.listings.iter().position(|(c, _)| c.as_str() == top)?;
        let at = self.listings[which]
            .1
            .binary_search_by(|f| f.path.as_bytes().cmp(rest.as_bytes()))
            .ok()?;
        Some((which, at))
    }

    /// Checks one entry of the directory `prefix` (empty or ending in `/`).
    fn entry(&mut self, prefix: &str, entry: &cap_std::fs::DirEntry) -> Result<(), BundleError> {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(BundleError::unsafe_path(
                clip(&format!("{prefix}{}", name.to_string_lossy())),
                "the name is not valid UTF-8",
            ));
        };
        let rel = format!("{prefix}{name}");
        let ft = entry
            .file_type()
            .map_err(|e| read_err(Path::new(&rel), e))?;
        if ft.is_dir() {
            if rel.matches('/').count() >= MAX_DEPTH {
                return Err(BundleError::unsafe_path(
                    clip(&rel),
                    format!("deeper than {MAX_DEPTH} directories"),
                ));
            }
            // Every directory leads to a listed file, as in the tar form: an empty or unlisted
            // one is not part of the payload.
            if !leads_to_listed(&self.listings, &rel) {
                return Err(BundleError::Unlisted {
                    path: format!("{}/", clip(&rel)),
                });
            }
            self.stack.push(format!("{rel}/"));
            return Ok(());
        }
        if !ft.is_file() {
            // What it is, as `lstat` says (a symlink is not followed).
            let kind = entry.metadata().map_or("special file", |m| {
                kind_name(cap_std::fs::MetadataExt::mode(&m))
            });
            return Err(BundleError::UnsafeEntry {
                path: clip(&rel),
                kind: kind.to_owned(),
            });
        }
        if prefix.is_empty() && (name == MANIFEST || name == SIGNATURE) {
            return Ok(());
        }
        let Some((which, at)) = self.find(&rel) else {
            return Err(BundleError::Unlisted { path: clip(&rel) });
        };
        self.seen[which][at] = true;
        let size = self.listings[which].1[at].size;
        let meta = entry.metadata().map_err(|e| read_err(Path::new(&rel), e))?;
        // A payload file with another name elsewhere is refused before anything of it (not
        // even its size) is said: it could be any file on the system.
        if cap_std::fs::MetadataExt::nlink(&meta) > 1 {
            return Err(BundleError::UnsafeEntry {
                path: clip(&rel),
                kind: "hard link".to_owned(),
            });
        }
        let actual = meta.len();
        if actual != size {
            return Err(BundleError::Size {
                path: rel,
                declared: size,
                actual,
            });
        }
        Ok(())
    }
}
