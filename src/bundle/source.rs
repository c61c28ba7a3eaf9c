//! Opening a bundle in either form and reading it in the order the checks need: the manifest and
//! signature first (so every check runs before any payload byte is read), then the structure
//! (paths, entry types, order, sizes, truncation, trailing data) without reading payload data, and
//! last the payload itself, streamed once through the hashing pipeline into a [`Sink`].
//!
//! bsi tells the forms apart by file type, not name: a directory is the directory form, a regular
//! file the tar form (`tar_form.rs`); anything else is refused.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::keys::PublicKey;
use super::limits::{MAX_FILES, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES};
use super::manifest::{FileEntry, Manifest};
use super::stream::{Destination, Feeder};
use super::{BundleError, signature, tar_form};
use crate::Result;
use crate::device::Cryptex;

/// The manifest's name in a bundle.
pub const MANIFEST: &str = "Info.plist";
/// The signature's name in a bundle.
pub const SIGNATURE: &str = "Info.plist.sig";

/// Which form a bundle is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// A `NAME.bsi/` directory.
    Directory,
    /// The same packed as one uncompressed tar file.
    Tar,
}

/// Receives the payload files as they stream in.
pub trait Sink {
    /// Opens the destination for one file; `None` to only check it.
    fn open(&mut self, cryptex: Cryptex, entry: &FileEntry) -> Result<Option<(File, PathBuf)>>;
    /// The file is complete (all bytes written; its digest is checked asynchronously).
    fn close(&mut self, file: File, path: &Path, entry: &FileEntry) -> Result<()>;
}

/// A sink that writes nothing: checks only.
#[derive(Debug, Default)]
pub struct CheckOnly;

impl Sink for CheckOnly {
    fn open(&mut self, _: Cryptex, _: &FileEntry) -> Result<Option<(File, PathBuf)>> {
        Ok(None)
    }
    fn close(&mut self, _: File, _: &Path, _: &FileEntry) -> Result<()> {
        Ok(())
    }
}

/// An opened bundle whose manifest has been read and parsed.
#[derive(Debug)]
pub struct Bundle {
    /// The path given.
    pub path: PathBuf,
    /// Its form.
    pub form: Form,
    /// The exact manifest bytes (what the signature covers).
    pub manifest_bytes: Vec<u8>,
    /// The signature bytes, if the bundle has one.
    pub signature: Option<Vec<u8>>,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The tar file and where its payload starts.
    tar: Option<(File, u64)>,
}

fn read_err(path: &Path, e: &std::io::Error) -> BundleError {
    BundleError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Opens a regular file without following a final symlink and without blocking on a FIFO.
pub(crate) fn open_nofollow(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags(
            rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK,
        ))
        .open(path)
}

/// Open flags as `OpenOptionsExt::custom_flags` takes them (the bits fit an `i32`).
fn libc_flags(flags: rustix::fs::OFlags) -> i32 {
    i32::try_from(flags.bits()).unwrap_or(0)
}

fn kind_name(ft: std::fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// Reads a small top-level file of a directory bundle (manifest or signature).
fn read_member(dir: &Path, name: &str, limit: u64) -> Result<Option<Vec<u8>>, BundleError> {
    let path = dir.join(name);
    let file = match open_nofollow(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(BundleError::UnsafeEntry {
                path: name.to_owned(),
                kind: "symlink".to_owned(),
            });
        }
        Err(e) => return Err(read_err(&path, &e)),
    };
    let meta = file.metadata().map_err(|e| read_err(&path, &e))?;
    if !meta.is_file() {
        return Err(BundleError::UnsafeEntry {
            path: name.to_owned(),
            kind: if meta.is_dir() {
                "directory".to_owned()
            } else {
                kind_name(meta.file_type()).to_owned()
            },
        });
    }
    if meta.len() > limit {
        return Err(BundleError::TooLarge {
            what: format!("{name} ({} bytes)", meta.len()),
            limit: format!("{limit} bytes"),
        });
    }
    let mut out = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| read_err(&path, &e))?;
    Ok(Some(out))
}

impl Bundle {
    /// Opens the bundle at `path` and parses its manifest.
    pub fn open(path: &Path) -> Result<Self, BundleError> {
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BundleError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                read_err(path, &e)
            }
        })?;
        let (form, manifest_bytes, signature, tar) = if meta.is_dir() {
            let manifest = read_member(path, MANIFEST, MAX_MANIFEST_BYTES)?
                .ok_or_else(|| BundleError::manifest("missing: the bundle has no Info.plist"))?;
            let signature = read_member(path, SIGNATURE, MAX_SIGNATURE_BYTES)?;
            (Form::Directory, manifest, signature, None)
        } else if meta.is_file() {
            let file = File::open(path).map_err(|e| read_err(path, &e))?;
            let head = tar_form::read_head(&file)?;
            (
                Form::Tar,
                head.manifest,
                head.signature,
                Some((file, head.payload_offset)),
            )
        } else {
            return Err(BundleError::NotABundle {
                path: path.to_path_buf(),
            });
        };
        let manifest = Manifest::parse(&manifest_bytes)?;
        Ok(Self {
            path: path.to_path_buf(),
            form,
            manifest_bytes,
            signature,
            manifest,
            tar,
        })
    }

    /// Checks the signature against `trusted`; returns the signing key.
    pub fn verify_signature<'k>(
        &self,
        trusted: &'k [PublicKey],
    ) -> Result<&'k PublicKey, BundleError> {
        let signature = self
            .signature
            .as_deref()
            .ok_or_else(|| BundleError::Signature {
                message: "missing: the bundle is unsigned".to_owned(),
            })?;
        signature::verify(&self.manifest_bytes, signature, trusted)
    }

    /// Checks the structure without reading payload data: every entry is a listed regular file
    /// (or a directory), paths are safe, sizes match, nothing is missing or extra; for the tar
    /// form also entry order, truncation and trailing data.
    pub fn check_structure(&mut self) -> Result<(), BundleError> {
        match &mut self.tar {
            Some((file, offset)) => {
                tar_form::walk(file, *offset, &self.manifest, None).map_err(|e| match e {
                    crate::Error::Bundle(b) => b,
                    other => BundleError::tar(other.to_string()),
                })
            }
            None => walk_directory(&self.path, &self.manifest),
        }
    }

    /// Streams every payload file once through `feeder` into `sink`, checking sizes as they
    /// stream and digests on the hashing thread.
    pub fn stream(&mut self, feeder: &mut Feeder<'_>, sink: &mut dyn Sink) -> Result<()> {
        if let Some((file, offset)) = &mut self.tar {
            tar_form::walk(file, *offset, &self.manifest, Some((feeder, sink)))
        } else {
            self.stream_part(0, 1, feeder, sink)
        }
    }

    /// Directory form only: streams the payload files whose position in manifest order is
    /// `part` modulo `parts`, so that several threads can each stream a share.
    pub fn stream_part(
        &self,
        part: usize,
        parts: usize,
        feeder: &mut Feeder<'_>,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        for (cryptex, entry) in self.manifest.cryptexes.files().skip(part).step_by(parts) {
            let label = format!("{cryptex}/{}", entry.path);
            let path = self.path.join(cryptex.as_str()).join(&entry.path);
            let mut src = open_regular(&path, &label, entry.size)?;
            feed(feeder, sink, cryptex, entry, &label, &mut src, false)?;
        }
        Ok(())
    }
}

/// Streams one entry through the feeder into the sink.
pub(crate) fn feed(
    feeder: &mut Feeder<'_>,
    sink: &mut dyn Sink,
    cryptex: Cryptex,
    entry: &FileEntry,
    label: &str,
    src: &mut dyn Read,
    short_is_truncation: bool,
) -> Result<()> {
    match sink.open(cryptex, entry)? {
        Some((mut file, shown)) => {
            feeder.file(
                label,
                entry.size,
                Some(entry.sha256),
                src,
                Some(Destination {
                    file: &mut file,
                    shown: &shown,
                }),
                short_is_truncation,
            )?;
            sink.close(file, &shown, entry)
        }
        None => feeder.file(
            label,
            entry.size,
            Some(entry.sha256),
            src,
            None,
            short_is_truncation,
        ),
    }
}

/// Opens a payload file of a directory bundle, refusing anything but a regular file of the
/// declared size.
pub(crate) fn open_regular(path: &Path, label: &str, size: u64) -> Result<File, BundleError> {
    let file = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BundleError::Missing {
                path: label.to_owned(),
            });
        }
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(BundleError::UnsafeEntry {
                path: label.to_owned(),
                kind: "symlink".to_owned(),
            });
        }
        Err(e) => return Err(read_err(path, &e)),
    };
    let meta = file.metadata().map_err(|e| read_err(path, &e))?;
    if !meta.is_file() {
        return Err(BundleError::UnsafeEntry {
            path: label.to_owned(),
            kind: if meta.is_dir() {
                "directory".to_owned()
            } else {
                kind_name(meta.file_type()).to_owned()
            },
        });
    }
    if meta.len() != size {
        return Err(BundleError::Size {
            path: label.to_owned(),
            declared: size,
            actual: meta.len(),
        });
    }
    Ok(file)
}

/// Walks a directory bundle without following symlinks: every regular file must be the manifest,
/// the signature or a listed payload file of the declared size; every listed file must be there.
fn walk_directory(root: &Path, manifest: &Manifest) -> Result<(), BundleError> {
    use std::collections::HashMap;

    let mut listed: HashMap<String, (u64, bool)> = manifest
        .cryptexes
        .files()
        .map(|(c, e)| (format!("{c}/{}", e.path), (e.size, false)))
        .collect();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    let mut visited = 0usize;
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| read_err(&dir, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| read_err(&dir, &e))?;
            visited += 1;
            if visited > 2 * MAX_FILES {
                return Err(BundleError::TooLarge {
                    what: "the number of entries in the bundle directory".into(),
                    limit: format!("{} entries", 2 * MAX_FILES),
                });
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(BundleError::unsafe_path(
                    format!("{prefix}{}", name.to_string_lossy()),
                    "the name is not valid UTF-8",
                ));
            };
            let rel = format!("{prefix}{name}");
            let ft = entry.file_type().map_err(|e| read_err(&entry.path(), &e))?;
            if ft.is_dir() {
                stack.push((entry.path(), format!("{rel}/")));
            } else if ft.is_file() {
                if prefix.is_empty() && (name == MANIFEST || name == SIGNATURE) {
                    continue;
                }
                let Some((size, seen)) = listed.get_mut(&rel) else {
                    return Err(BundleError::Unlisted { path: rel });
                };
                *seen = true;
                let actual = entry
                    .metadata()
                    .map_err(|e| read_err(&entry.path(), &e))?
                    .len();
                if actual != *size {
                    return Err(BundleError::Size {
                        path: rel,
                        declared: *size,
                        actual,
                    });
                }
            } else {
                return Err(BundleError::UnsafeEntry {
                    path: rel,
                    kind: kind_name(ft).to_owned(),
                });
            }
        }
    }
    if let Some((cryptex, entry)) = manifest
        .cryptexes
        .files()
        .find(|(c, e)| !listed[&format!("{c}/{}", e.path)].1)
    {
        return Err(BundleError::Missing {
            path: format!("{cryptex}/{}", entry.path),
        });
    }
    Ok(())
}
