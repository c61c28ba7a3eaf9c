//! The tar form of a bundle: `Info.plist`, then `Info.plist.sig`, then the payload files in
//! manifest order (cryptexes `App` then `OS`, paths in byte order), then the end-of-archive
//! marker, as `bsi bundle pack` writes it.
//!
//! bsi reads the form with its own strict reader rather than a general tar library, because the
//! bytes are untrusted until the manifest's signature verifies and a general reader cannot bound
//! what they cost: a GNU long name or a pax header is read whole, whatever size its header claims.
//! Here every header is one 512-byte block whose checksum must hold; `Info.plist` and
//! `Info.plist.sig` must be the first two entries, plain ustar headers naming themselves, within
//! their size limits; a long name (`L`) or a pax header (`x`) may only precede a payload entry and
//! is refused beyond a few kilobytes; only regular files and directory entries are accepted;
//! anything but zeros after the end-of-archive marker is a rejection.
//!
//! [`walk`] checks the payload's structure without reading file data (it reads only headers,
//! at the offsets they give) and returns where each payload file's data starts, so the payload
//! can then be read with positioned reads, by one thread or several.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::BundleError;
use super::limits::{MAX_MANIFEST_BYTES, MAX_PATH_BYTES, MAX_SIGNATURE_BYTES};
use super::manifest::{FileEntry, Manifest};
use super::paths::unsafe_reason;
use super::paths::{MANIFEST, SIGNATURE};
use crate::platform::Cryptex;
use crate::untrusted::clip;

/// Zeros accepted after the end-of-archive marker (GNU tar pads to 10 KiB records).
const MAX_ZERO_TAIL: u64 = 64 * 1024;
/// One tar block.
const BLOCK: u64 = 512;
/// Largest GNU long name bsi reads: a payload path and its cryptex prefix, with room to spare.
const MAX_LONG_NAME: u64 = MAX_PATH_BYTES as u64 + 64;
/// Largest pax extended header bsi reads.
const MAX_PAX: u64 = 64 * 1024;

/// What the head of a tar bundle holds.
#[derive(Debug)]
pub(crate) struct Head {
    /// The manifest's bytes, or nothing when it was left unread (`manifest_at`).
    pub manifest: Vec<u8>,
    /// Where the manifest's bytes are (offset, length), when the caller asked to leave it unread.
    pub manifest_at: Option<(u64, u64)>,
    pub signature: Option<Vec<u8>>,
    pub payload_offset: u64,
}

/// One parsed header.
struct Header {
    name: Vec<u8>,
    kind: u8,
    size: u64,
    /// Where the entry's data starts.
    data: u64,
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

fn io_error(e: &io::Error) -> BundleError {
    BundleError::tar(format!("cannot be read: {e}"))
}

/// Reads exactly `buf.len()` bytes at `offset`; `Ok(false)` when the file ends first.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> Result<bool, BundleError> {
    match FileExt::read_exact_at(file, buf, offset) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io_error(&e)),
    }
}

/// A NUL- or space-terminated octal field, or GNU base-256 for large numbers.
fn number(field: &[u8], what: &str) -> Result<u64, BundleError> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n
                .checked_mul(256)
                .and_then(|n| n.checked_add(u64::from(b)))
                .ok_or_else(|| BundleError::tar(format!("the {what} field is out of range")))?;
        }
        return Ok(n);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| *b != 0 && *b != b' ')
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let mut n: u64 = 0;
    for b in text {
        if !(b'0'..=b'7').contains(&b) {
            return Err(BundleError::tar(format!(
                "not a valid tar archive: the {what} field is not an octal number"
            )));
        }
        n = n
            .checked_mul(8)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| BundleError::tar(format!("the {what} field is out of range")))?;
    }
    Ok(n)
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// Parses the header block at `offset`; `None` for a zero block (the end-of-archive marker).
fn header_at(file: &File, offset: u64) -> Result<Option<Header>, BundleError> {
    let mut block = [0u8; BLOCK as usize];
    if !read_exact_at(file, &mut block, offset)? {
        return Err(BundleError::tar(
            "truncated: the end-of-archive marker is missing",
        ));
    }
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let stored = number(&block[148..156], "checksum")?;
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if stored != sum {
        return Err(BundleError::tar(
            "not a valid tar archive: a header's checksum does not hold",
        ));
    }
    let mut name = cstr(&block[0..100]).to_vec();
    let prefix = cstr(&block[345..500]);
    if &block[257..263] == b"ustar\0" && !prefix.is_empty() {
        let mut full = prefix.to_vec();
        full.push(b'/');
        full.extend_from_slice(&name);
        name = full;
    }
    Ok(Some(Header {
        name,
        kind: block[156],
        size: number(&block[124..136], "size")?,
        data: offset + BLOCK,
    }))
}

/// What an entry type is, in words, for a rejection; `None` for the accepted kinds.
fn unsafe_kind(kind: u8) -> Option<&'static str> {
    Some(match kind {
        b'0' | 0 | b'5' => return None,
        b'1' => "hard link",
        b'2' => "symlink",
        b'3' => "character device",
        b'4' => "block device",
        b'6' => "FIFO",
        b'7' => "contiguous file",
        b'g' => "pax global header",
        b'S' => "GNU sparse file",
        b'L' | b'K' | b'x' => "misplaced extension header",
        _ => "tar entry of an unknown type",
    })
}

/// Reads a small entry's data (the manifest, the signature, an extension header).
fn data(file: &File, h: &Header, limit: u64, what: &str) -> Result<Vec<u8>, BundleError> {
    if h.size > limit {
        return Err(BundleError::TooLarge {
            what: format!("{what} ({} bytes)", h.size),
            limit: format!("{limit} bytes"),
        });
    }
    let mut out = vec![0u8; usize::try_from(h.size).unwrap_or(0)];
    if !read_exact_at(file, &mut out, h.data)? {
        return Err(BundleError::tar(format!("truncated inside {what}")));
    }
    Ok(out)
}

/// Reads the manifest and signature entries at the start of the tar; a manifest whose length
/// `defer` accepts is left unread, its place returned.
pub(crate) fn read_head(file: &File, defer: &dyn Fn(u64) -> bool) -> Result<Head, BundleError> {
    let first = header_at(file, 0).map_err(|e| match e {
        BundleError::Tar { message } if message.contains("end-of-archive") => {
            BundleError::tar("empty or truncated: no Info.plist")
        }
        other => other,
    })?;
    let Some(first) = first else {
        return Err(BundleError::tar("empty: no entries, so no Info.plist"));
    };
    if first.name != MANIFEST.as_bytes() || !matches!(first.kind, b'0' | 0) {
        return Err(BundleError::tar(format!(
            "the first entry is `{}`; a bsi tar bundle starts with Info.plist, then Info.plist.sig, then the payload",
            clip(&String::from_utf8_lossy(&first.name))
        )));
    }
    let (manifest, manifest_at) = if defer(first.size) {
        let end = first.data.saturating_add(first.size);
        if file.metadata().map_err(|e| io_error(&e))?.len() < end {
            return Err(BundleError::tar(format!("truncated inside {MANIFEST}")));
        }
        (Vec::new(), Some((first.data, first.size)))
    } else {
        (data(file, &first, MAX_MANIFEST_BYTES, MANIFEST)?, None)
    };
    let after_manifest = first.data + round_up(first.size);
    let (signature, payload_offset) = match header_at(file, after_manifest)? {
        Some(h) if h.name == SIGNATURE.as_bytes() && matches!(h.kind, b'0' | 0) => {
            let sig = data(file, &h, MAX_SIGNATURE_BYTES, SIGNATURE)?;
            (Some(sig), h.data + round_up(h.size))
        }
        _ => (None, after_manifest),
    };
    Ok(Head {
        manifest,
        manifest_at,
        signature,
        payload_offset,
    })
}

/// Parses pax extended header records (`LEN KEY=VALUE\n`): the `path` and `size` bsi uses.
fn pax(records: &[u8]) -> Result<(Option<Vec<u8>>, Option<u64>), BundleError> {
    let bad = || BundleError::tar("not a valid tar archive: a pax header is malformed");
    let (mut path, mut size) = (None, None);
    let mut rest = records;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &rest[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => path = Some(value.to_vec()),
            b"size" => {
                size = Some(
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(bad)?,
                );
            }
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok((path, size))
}

/// The path of a payload entry (a directory's without its `/`) and whether it is a directory,
/// once its name, its kind and its extent are known to be safe.
fn entry_path(h: &Header, file_len: u64) -> Result<(&str, bool), BundleError> {
    let Ok(path) = std::str::from_utf8(&h.name) else {
        return Err(BundleError::unsafe_path(
            clip(&String::from_utf8_lossy(&h.name)),
            "the name is not valid UTF-8",
        ));
    };
    let is_dir = h.kind == b'5';
    let path = if is_dir {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    if let Some(reason) = unsafe_reason(path) {
        return Err(BundleError::unsafe_path(clip(path), reason));
    }
    if let Some(kind) = unsafe_kind(h.kind) {
        return Err(BundleError::UnsafeEntry {
            path: clip(path),
            kind: kind.to_owned(),
        });
    }
    if h.data.saturating_add(h.size) > file_len {
        return Err(BundleError::tar(format!(
            "truncated: {} runs past the end of the file",
            clip(path)
        )));
    }
    Ok((path, is_dir))
}

/// Walks the payload part of the tar starting at `offset`, reading only headers: every entry
/// must be the next file the manifest lists (or a directory it implies), of the declared size;
/// the archive must end properly. Returns the offset of each payload file's data, in manifest
/// order.
pub(crate) fn walk(file: &File, offset: u64, manifest: &Manifest) -> Result<Vec<u64>, BundleError> {
    let file_len = file.metadata().map_err(|e| io_error(&e))?.len();
    let expected: Vec<_> = manifest.cryptexes.files().collect();
    let dirs = implied_dirs(&expected);
    let mut offsets = Vec::with_capacity(expected.len());
    let mut pos = offset;
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_size: Option<u64> = None;
    loop {
        let Some(mut h) = header_at(file, pos)? else {
            pos += BLOCK;
            break;
        };
        match h.kind {
            b'L' => {
                long_name = Some(cstr(&data(file, &h, MAX_LONG_NAME, "a GNU long name")?).to_vec());
                pos = h.data + round_up(h.size);
                continue;
            }
            b'x' => {
                let (path, size) = pax(&data(file, &h, MAX_PAX, "a pax header")?)?;
                if path.is_some() {
                    long_name = path;
                }
                pax_size = size;
                pos = h.data + round_up(h.size);
                continue;
            }
            _ => {}
        }
        if let Some(name) = long_name.take() {
            h.name = name;
        }
        if let Some(size) = pax_size.take() {
            h.size = size;
        }
        let (path, is_dir) = entry_path(&h, file_len)?;
        if is_dir {
            if h.size != 0 {
                return Err(BundleError::tar(format!(
                    "directory entry {} carries data",
                    clip(path)
                )));
            }
            if !dirs.contains(path) {
                return Err(BundleError::Unlisted {
                    path: format!("{}/", clip(path)),
                });
            }
            pos = h.data;
            continue;
        }
        if path == MANIFEST || path == SIGNATURE {
            return Err(BundleError::tar(format!(
                "{path} appears again after the payload started"
            )));
        }
        let next = offsets.len();
        let Some((c, e)) = expected.get(next) else {
            return Err(out_of_place(&expected, next, path, None));
        };
        let want = format!("{c}/{}", e.path);
        if path != want {
            return Err(out_of_place(&expected, next, path, Some(&want)));
        }
        if h.size != e.size {
            return Err(BundleError::Size {
                path: want,
                declared: e.size,
                actual: h.size,
            });
        }
        offsets.push(h.data);
        pos = h.data + round_up(h.size);
    }
    if long_name.is_some() || pax_size.is_some() {
        return Err(BundleError::tar(
            "not a valid tar archive: an extension header is followed by no entry",
        ));
    }
    if let Some((c, e)) = expected.get(offsets.len()) {
        return Err(BundleError::Missing {
            path: format!("{c}/{}", e.path),
        });
    }
    check_end(file, pos, file_len)?;
    Ok(offsets)
}

/// The directories the listed files imply (`OS/usr` for `OS/usr/lib/x`), as a tar may hold.
fn implied_dirs(expected: &[(Cryptex, &FileEntry)]) -> HashSet<String> {
    let mut dirs = HashSet::new();
    for (c, e) in expected {
        let full = format!("{c}/{}", e.path);
        let mut end = 0;
        while let Some(pos) = full[end..].find('/') {
            end += pos;
            dirs.insert(full[..end].to_owned());
            end += 1;
        }
    }
    dirs
}

/// Why the payload entry `path` is not `want`, the next listed file (`None` past the last).
fn out_of_place(
    expected: &[(Cryptex, &FileEntry)],
    next: usize,
    path: &str,
    want: Option<&str>,
) -> BundleError {
    let listed = expected
        .iter()
        .position(|(c, e)| format!("{c}/{}", e.path) == path);
    match (listed, want) {
        (None, _) => BundleError::Unlisted { path: clip(path) },
        (Some(i), _) if i < next => {
            BundleError::unsafe_path(clip(path), "appears twice in the tar")
        }
        (Some(_), Some(want)) => BundleError::tar(format!(
            "entries out of order: {} comes where {want} belongs (the payload must follow the manifest's order, or a file is missing)",
            clip(path)
        )),
        (Some(_), None) => BundleError::unsafe_path(clip(path), "appears twice in the tar"),
    }
}

/// Checks the end of the archive from `pos`, just after its first zero block.
fn check_end(file: &File, pos: u64, file_len: u64) -> Result<(), BundleError> {
    // After the first zero block: only zeros, at least one more block, at most a few records.
    let tail = file_len.saturating_sub(pos);
    if tail > MAX_ZERO_TAIL {
        return Err(BundleError::tar(
            "trailing data after the end-of-archive marker",
        ));
    }
    let mut rest = vec![0u8; usize::try_from(tail).unwrap_or(0)];
    if !read_exact_at(file, &mut rest, pos)? {
        return Err(BundleError::tar(
            "truncated while reading the end of the archive",
        ));
    }
    if rest.iter().any(|&b| b != 0) {
        return Err(BundleError::tar(
            "trailing data after the end-of-archive marker",
        ));
    }
    if tail < BLOCK {
        return Err(BundleError::tar(
            "truncated: the end-of-archive marker is incomplete",
        ));
    }
    Ok(())
}

/// Reads `len` bytes of `file` from `offset` on, with positioned reads (several threads can
/// each read their share of one tar).
#[derive(Debug)]
pub(crate) struct Section<'f> {
    file: &'f File,
    offset: u64,
    left: u64,
}

impl<'f> Section<'f> {
    pub(crate) fn new(file: &'f File, offset: u64, len: u64) -> Self {
        Self {
            file,
            offset,
            left: len,
        }
    }
}

impl io::Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte past the end is read too (the pipeline checks that a file is no longer than
        // declared); inside a tar that byte belongs to the padding or the next header, so the
        // section simply ends there.
        let want = usize::try_from(self.left.min(buf.len() as u64)).unwrap_or(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        self.offset += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_base256_numbers() {
        assert_eq!(number(b"00000001750\0", "size").unwrap(), 1000);
        assert_eq!(number(b"     1750 \0\0", "size").unwrap(), 1000);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4..].copy_from_slice(&(9u64 << 30).to_be_bytes()[..]);
        assert_eq!(number(&big, "size").unwrap(), 9 << 30);
        assert!(number(b"0000009\0", "size").is_err());
    }

    #[test]
    fn pax_records() {
        let (path, size) = pax(b"15 path=OS/x/y\n13 size=4096\n20 mtime=1700000000\n").unwrap();
        assert_eq!(path.as_deref(), Some(&b"OS/x/y"[..]));
        assert_eq!(size, Some(4096));
        assert!(pax(b"99 path=x\n").is_err());
        assert!(pax(b"x").is_err());
    }
}
