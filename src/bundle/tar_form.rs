//! The tar form of a bundle: `Info.plist`, then `Info.plist.sig`, then the payload files in
//! manifest order (cryptexes `App` then `OS`, paths in byte order), then the end-of-archive
//! marker, as `bsi bundle pack` writes it.
//!
//! The reader is strict: only regular files (and directory entries, which carry nothing) are
//! accepted; each payload entry must be the next one the manifest lists; header checksums must
//! hold; a file cut short, a missing end-of-archive marker, or anything but zeros after it is a
//! rejection. The same [`walk`] runs twice for an apply: first seeking over the data to check the
//! structure before anything is written, then reading the data once into the pipeline.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::BundleError;
use super::limits::{MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES};
use super::manifest::Manifest;
use super::paths::unsafe_reason;
use super::source::{MANIFEST, SIGNATURE, Sink, feed};
use super::stream::Feeder;
use crate::Result;

/// Zeros accepted after the end-of-archive marker (GNU tar pads to 10 KiB records).
const MAX_ZERO_TAIL: u64 = 64 * 1024;
const BLOCK: u64 = 512;

/// A `&File` reader that starts at `base`, presents positions relative to it (the tar crate
/// counts from where it started reading), and notes when it hits the end of the file.
struct Counting<'f> {
    file: &'f File,
    base: u64,
    eof: bool,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        Ok(n)
    }
}

impl Seek for Counting<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let pos = match pos {
            SeekFrom::Start(n) => SeekFrom::Start(self.base + n),
            other => other,
        };
        let absolute = self.file.seek(pos)?;
        absolute
            .checked_sub(self.base)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the payload"))
    }
}

/// What the head of a tar bundle holds.
#[derive(Debug)]
pub(crate) struct Head {
    pub manifest: Vec<u8>,
    pub signature: Option<Vec<u8>>,
    pub payload_offset: u64,
}

fn tar_error(e: &io::Error) -> BundleError {
    if e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("EOF") {
        BundleError::tar(format!("truncated: {e}"))
    } else if e.to_string().contains("checksum") {
        BundleError::tar(format!("not a valid tar archive: {e}"))
    } else {
        BundleError::tar(e.to_string())
    }
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

fn entry_kind(t: tar::EntryType) -> Option<&'static str> {
    Some(if t.is_symlink() {
        "symlink"
    } else if t.is_hard_link() {
        "hard link"
    } else if t.is_character_special() {
        "character device"
    } else if t.is_block_special() {
        "block device"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_gnu_sparse() {
        "GNU sparse file"
    } else if t.is_pax_global_extensions() {
        "pax global header"
    } else if t.is_contiguous() {
        "contiguous file"
    } else if t.is_file() || t.is_dir() {
        return None;
    } else {
        "tar entry of an unknown type"
    })
}

fn read_small<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, BundleError> {
    let kind = entry.header().entry_type();
    if let Some(kind) = entry_kind(kind) {
        return Err(BundleError::UnsafeEntry {
            path: name.to_owned(),
            kind: kind.to_owned(),
        });
    }
    if kind.is_dir() {
        return Err(BundleError::UnsafeEntry {
            path: name.to_owned(),
            kind: "directory".to_owned(),
        });
    }
    if entry.size() > limit {
        return Err(BundleError::TooLarge {
            what: format!("{name} ({} bytes)", entry.size()),
            limit: format!("{limit} bytes"),
        });
    }
    let mut out = Vec::new();
    entry.read_to_end(&mut out).map_err(|e| tar_error(&e))?;
    if out.len() as u64 != entry.size() {
        return Err(BundleError::tar(format!("truncated inside {name}")));
    }
    Ok(out)
}

/// Reads the manifest and signature entries at the start of the tar.
pub(crate) fn read_head(file: &File) -> Result<Head, BundleError> {
    let mut reader = file;
    reader.seek(SeekFrom::Start(0)).map_err(|e| tar_error(&e))?;
    let mut archive = tar::Archive::new(Counting {
        file,
        base: 0,
        eof: false,
    });
    let mut entries = archive.entries().map_err(|e| tar_error(&e))?;
    let mut first = match entries.next() {
        Some(entry) => entry.map_err(|e| tar_error(&e))?,
        None => return Err(BundleError::tar("empty: no entries, so no Info.plist")),
    };
    let first_path = String::from_utf8_lossy(&first.path_bytes()).into_owned();
    if first_path != MANIFEST {
        return Err(BundleError::tar(format!(
            "the first entry is `{first_path}`; a bsi tar bundle starts with Info.plist, then Info.plist.sig, then the payload"
        )));
    }
    let manifest = read_small(&mut first, MANIFEST, MAX_MANIFEST_BYTES)?;
    let after_manifest = first.raw_file_position() + round_up(first.size());
    drop(first);
    let (signature, payload_offset) = match entries.next() {
        None => (None, after_manifest),
        Some(entry) => {
            let mut entry = entry.map_err(|e| tar_error(&e))?;
            if entry.path_bytes().as_ref() == SIGNATURE.as_bytes() {
                let sig = read_small(&mut entry, SIGNATURE, MAX_SIGNATURE_BYTES)?;
                (
                    Some(sig),
                    entry.raw_file_position() + round_up(entry.size()),
                )
            } else {
                (None, after_manifest)
            }
        }
    };
    Ok(Head {
        manifest,
        signature,
        payload_offset,
    })
}

/// Walks the payload part of the tar starting at `offset`. Without `stream`, seeks over file
/// data (structure check only); with it, streams each file through the feeder into the sink.
pub(crate) fn walk(
    file: &File,
    offset: u64,
    manifest: &Manifest,
    mut stream: Option<(&mut Feeder<'_>, &mut dyn Sink)>,
) -> Result<()> {
    let file_len = file.metadata().map_err(|e| tar_error(&e))?.len();
    let mut reader = file;
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(|e| tar_error(&e))?;
    let expected: Vec<_> = manifest.cryptexes.files().collect();
    let index: HashMap<String, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, (c, e))| (format!("{c}/{}", e.path), i))
        .collect();
    let mut dirs = std::collections::HashSet::new();
    for (c, e) in &expected {
        let full = format!("{c}/{}", e.path);
        let mut end = 0;
        while let Some(pos) = full[end..].find('/') {
            end += pos;
            dirs.insert(full[..end].to_owned());
            end += 1;
        }
    }
    let mut next = 0usize;
    let mut archive = tar::Archive::new(Counting {
        file,
        base: offset,
        eof: false,
    });
    {
        let entries = if stream.is_some() {
            archive.entries()
        } else {
            archive.entries_with_seek()
        }
        .map_err(|e| tar_error(&e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| tar_error(&e))?;
            let raw = entry.path_bytes().into_owned();
            let Ok(path) = std::str::from_utf8(&raw) else {
                return Err(BundleError::unsafe_path(
                    String::from_utf8_lossy(&raw),
                    "the name is not valid UTF-8",
                )
                .into());
            };
            let kind = entry.header().entry_type();
            let path = if kind.is_dir() {
                path.strip_suffix('/').unwrap_or(path)
            } else {
                path
            };
            if let Some(reason) = unsafe_reason(path) {
                return Err(BundleError::unsafe_path(path, reason).into());
            }
            if let Some(kind) = entry_kind(kind) {
                return Err(BundleError::UnsafeEntry {
                    path: path.to_owned(),
                    kind: kind.to_owned(),
                }
                .into());
            }
            if offset + entry.raw_file_position() + entry.size() > file_len {
                return Err(BundleError::tar(format!(
                    "truncated: {path} runs past the end of the file"
                ))
                .into());
            }
            if kind.is_dir() {
                if entry.size() != 0 {
                    return Err(
                        BundleError::tar(format!("directory entry {path} carries data")).into(),
                    );
                }
                if !dirs.contains(path) {
                    return Err(BundleError::Unlisted {
                        path: format!("{path}/"),
                    }
                    .into());
                }
                continue;
            }
            if path == MANIFEST || path == SIGNATURE {
                return Err(BundleError::tar(format!(
                    "{path} appears again after the payload started"
                ))
                .into());
            }
            let Some(&i) = index.get(path) else {
                return Err(BundleError::Unlisted {
                    path: path.to_owned(),
                }
                .into());
            };
            if i < next {
                return Err(BundleError::unsafe_path(path, "appears twice in the tar").into());
            }
            if i > next {
                let (c, e) = expected[next];
                return Err(BundleError::tar(format!(
                    "entries out of order: {path} comes where {c}/{} belongs (the payload must follow the manifest's order, or a file is missing)",
                    e.path
                ))
                .into());
            }
            let (cryptex, fe) = expected[i];
            if entry.size() != fe.size {
                return Err(BundleError::Size {
                    path: path.to_owned(),
                    declared: fe.size,
                    actual: entry.size(),
                }
                .into());
            }
            if let Some((feeder, sink)) = stream.as_mut() {
                feed(feeder, *sink, cryptex, fe, path, &mut entry, true)?;
            }
            next += 1;
        }
    }
    let mut rest = archive.into_inner();
    if rest.eof {
        return Err(BundleError::tar("truncated: the end-of-archive marker is missing").into());
    }
    if let Some((c, e)) = expected.get(next) {
        return Err(BundleError::Missing {
            path: format!("{c}/{}", e.path),
        }
        .into());
    }
    let mut tail = Vec::new();
    (&mut rest)
        .take(MAX_ZERO_TAIL + 1)
        .read_to_end(&mut tail)
        .map_err(|e| tar_error(&e))?;
    if tail.iter().any(|&b| b != 0) || tail.len() as u64 > MAX_ZERO_TAIL {
        return Err(BundleError::tar("trailing data after the end-of-archive marker").into());
    }
    if (tail.len() as u64) < BLOCK {
        return Err(BundleError::tar("truncated: the end-of-archive marker is incomplete").into());
    }
    Ok(())
}
