//! Opening a bundle in either form and reading it in the order the checks need: the raw manifest
//! and signature first, and the signature checked over those exact bytes before the manifest is
//! parsed ([`Opened::verify`]); then the structure (paths, entry types, order, sizes, truncation,
//! trailing data) without reading payload data; last the payload itself, streamed once through the
//! hashing pipeline into a [`Sink`].
//!
//! A bundle is opened once and only its handle is used afterwards (check what you use): the path
//! is opened with `O_NONBLOCK` and the handle's own `fstat` decides the form (a directory is the
//! directory form, a regular file the tar form, anything else, a FIFO among them, is refused
//! without blocking), and every file of a directory bundle is opened beneath its directory handle
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so a symlink swapped in anywhere on the
//! way, not only at the last component, is refused instead of followed.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use cap_std::fs::Dir;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::keys::PublicKey;
use super::limits::{MAX_DEPTH, MAX_FILES, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES};
use super::manifest::{FileEntry, Manifest};
use super::paths::{MANIFEST, SIGNATURE};
use super::stream::{Destination, Feeder, Target};
use super::tar_form::{self, Section};
use super::{BundleError, signature};
use crate::Result;
use crate::platform::Cryptex;
use crate::untrusted::clip;

/// Which form a bundle is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Form {
    /// A `NAME.bsi/` directory.
    Directory,
    /// The same packed as one uncompressed tar file.
    Tar,
}

/// Receives the payload files as they stream in.
pub(crate) trait Sink {
    /// Opens the destination for one file; `None` to only check it.
    fn open(&mut self, cryptex: Cryptex, entry: &FileEntry) -> Result<Option<(File, PathBuf)>>;
    /// The file is complete (all bytes written; its digest is checked asynchronously).
    fn close(&mut self, file: File, path: &Path, entry: &FileEntry) -> Result<()>;
}

/// A sink that writes nothing: checks only.
#[derive(Debug, Default)]
pub(crate) struct CheckOnly;

impl Sink for CheckOnly {
    fn open(&mut self, _: Cryptex, _: &FileEntry) -> Result<Option<(File, PathBuf)>> {
        Ok(None)
    }
    fn close(&mut self, _: File, _: &Path, _: &FileEntry) -> Result<()> {
        Ok(())
    }
}

/// The handle a bundle is read through.
#[derive(Debug)]
enum Handle {
    /// The directory form's directory.
    Dir(Dir),
    /// The tar form's file and where its payload starts.
    Tar(File, u64),
}

/// A bundle opened, its manifest and signature read as bytes, nothing parsed yet.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The path given.
    pub path: PathBuf,
    /// Its form.
    pub form: Form,
    /// The exact manifest bytes (what the signature covers).
    pub manifest_bytes: Vec<u8>,
    /// The signature bytes, if the bundle has one.
    pub signature: Option<Vec<u8>>,
    handle: Handle,
    /// Set, with `manifest_bytes` empty, when a large manifest was left unread to be streamed
    /// ([`Opened::open_for_install`]).
    deferred: Option<Deferred>,
}

/// The exact manifest bytes a bundle's signature covers: in memory, or (a large manifest
/// being installed) in a private unnamed file on the device, which nothing else can open.
#[derive(Debug)]
pub(crate) enum Signed {
    /// Held in memory.
    Memory(Vec<u8>),
    /// Copied to an `O_TMPFILE` beneath the device's generations after the signature verified.
    Spooled(File),
}

impl Signed {
    /// The bytes staging still has to write for the manifest: all of them when they are in
    /// memory, none when they were spooled (the copy is on the device's filesystem already, and
    /// staging links it).
    #[must_use]
    pub(crate) fn bytes_to_write(&self) -> u64 {
        match self {
            Signed::Memory(bytes) => bytes.len() as u64,
            Signed::Spooled(_) => 0,
        }
    }

    /// Gives a spooled copy the name `name` in `dir` (on the same filesystem as the spool) as
    /// an ordinary file of mode 0644, instead of writing its bytes a second time: `Ok(false)`
    /// when the bytes are in memory, or when the kernel will not link it (no `/proc`, another
    /// filesystem), and the caller writes them with [`Signed::write_to`].
    pub(crate) fn link_into(&self, dir: &Dir, name: &str) -> std::io::Result<bool> {
        let Signed::Spooled(file) = self else {
            return Ok(false);
        };
        rustix::fs::fchmod(file, Mode::from_raw_mode(0o644))?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(file);
        match rustix::fs::linkat(
            rustix::fs::CWD,
            format!("/proc/self/fd/{fd}"),
            dir,
            name,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        ) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST) => Err(std::io::ErrorKind::AlreadyExists.into()),
            Err(_) => Ok(false),
        }
    }

    /// Writes the bytes to `out` (from the start of the spooled copy).
    pub(crate) fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        match self {
            Signed::Memory(bytes) => out.write_all(bytes),
            Signed::Spooled(file) => {
                let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
                std::io::Seek::rewind(&mut reader)?;
                std::io::copy(&mut reader, out).map(|_| ())
            }
        }
    }
}

/// Manifests of this size or more are spooled while installing: 100,000 files make about 30 MB
/// of XML, which would otherwise stay in memory, on top of the parsed listing, until staging.
pub(crate) const SPOOL_MIN: usize = 1 << 20;

/// An opened bundle whose manifest has been parsed.
#[derive(Debug)]
pub(crate) struct Bundle {
    /// The path given.
    pub path: PathBuf,
    /// Its form.
    pub form: Form,
    /// The exact manifest bytes (what the signature covers).
    pub manifest_bytes: Signed,
    /// The signature bytes, if the bundle has one.
    pub signature: Option<Vec<u8>>,
    /// The parsed manifest.
    pub manifest: Manifest,
    handle: Handle,
    /// The tar form's payload data offsets, in manifest order, once the structure is checked.
    offsets: Option<Vec<u64>>,
}

fn read_err(path: &Path, e: std::io::Error) -> BundleError {
    BundleError::Read {
        path: PathBuf::from(clip(&path.display().to_string())),
        source: e,
    }
}

fn is_loop(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error())
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
    } else if ft.is_dir() {
        "directory"
    } else {
        "special file"
    }
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

/// Opens a path the user named for reading: the final symlink is followed (a user may name a
/// link to a bundle or a file), nothing blocks (a FIFO opens at once and is then refused by its
/// type), and only the handle is used afterwards.
pub(crate) fn open_named(path: &Path) -> std::io::Result<(File, std::fs::Metadata)> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let file = File::from(fd);
    let meta = file.metadata()?;
    Ok((file, meta))
}

/// Copies `bytes` to a new unnamed file beneath `dir`, or `None` where none can be made.
fn spool_copy(dir: &Dir, bytes: &[u8]) -> Option<File> {
    let mut file = spool_file(dir)?;
    std::io::Write::write_all(&mut file, bytes).ok()?;
    Some(file)
}

/// A new unnamed file beneath `dir` (`O_TMPFILE`, mode 0600), or `None` where none can be made.
fn spool_file(dir: &Dir) -> Option<File> {
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, ".", flags, Mode::from_raw_mode(0o600)).ok()?;
    Some(File::from(fd))
}

/// Reads a small top-level file of a directory bundle (manifest or signature).
fn read_member(dir: &Dir, name: &str, limit: u64) -> Result<Option<Vec<u8>>, BundleError> {
    open_member(dir, name)?
        .map(|(file, meta)| read_opened(&file, &meta, name, limit))
        .transpose()
}

/// Reads a member [`open_member`] opened, within `limit` bytes.
fn read_opened(
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

/// Opens a top-level regular file of a directory bundle, refusing a symlink or another kind.
fn open_member(dir: &Dir, name: &str) -> Result<Option<(File, std::fs::Metadata)>, BundleError> {
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
            kind: kind_name(meta.file_type()).to_owned(),
        });
    }
    Ok(Some((file, meta)))
}

/// A large manifest [`Opened::open_for_install`] left unread: where its bytes are (the
/// directory form's `Info.plist` from its start, or the tar form's entry).
#[derive(Debug)]
struct Deferred {
    file: File,
    offset: u64,
    len: u64,
    form: Form,
}

impl Deferred {
    /// Reads `buf.len()` bytes at `at` from the manifest's start, refusing a manifest that
    /// ends early (a tar cut inside it, a file shortened since it was opened).
    fn read_at(&self, buf: &mut [u8], at: u64) -> Result<(), BundleError> {
        let mut filled = 0;
        while filled < buf.len() {
            match std::os::unix::fs::FileExt::read_at(
                &self.file,
                &mut buf[filled..],
                self.offset + at + filled as u64,
            ) {
                Ok(0) => {
                    return Err(match self.form {
                        Form::Tar => BundleError::tar("truncated inside Info.plist"),
                        Form::Directory => BundleError::manifest(
                            "Info.plist became shorter while it was read; try again",
                        ),
                    });
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(Path::new(MANIFEST), e)),
            }
        }
        Ok(())
    }

    /// The whole manifest in memory, where it cannot be copied to a private file.
    fn read_all(&self) -> Result<Vec<u8>, BundleError> {
        let mut out = vec![0u8; usize::try_from(self.len).unwrap_or(0)];
        self.read_at(&mut out, 0)?;
        Ok(out)
    }
}

impl Opened {
    /// Opens the bundle at `path` and reads its manifest and signature as bytes (each within
    /// its size limit), parsing nothing.
    pub(crate) fn open(path: &Path) -> Result<Self, BundleError> {
        Self::open_with(path, false)
    }

    /// As [`Opened::open`], for a bundle being installed: a manifest of [`SPOOL_MIN`] bytes or
    /// more is not read yet; [`Opened::verify_spooled`] streams it through the signature check
    /// into a private copy, so it is never held whole in memory.
    fn open_for_install(path: &Path) -> Result<Self, BundleError> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, defer: bool) -> Result<Self, BundleError> {
        let (file, meta) = open_named(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BundleError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                read_err(path, e)
            }
        })?;
        let large = |len: u64| defer && len >= SPOOL_MIN as u64 && len <= MAX_MANIFEST_BYTES;
        let (form, manifest_bytes, signature, handle, deferred) = if meta.is_dir() {
            let dir = Dir::from_std_file(file);
            let (manifest, deferred) = match open_member(&dir, MANIFEST)? {
                Some((file, meta)) if large(meta.len()) => (
                    Vec::new(),
                    Some(Deferred {
                        file,
                        offset: 0,
                        len: meta.len(),
                        form: Form::Directory,
                    }),
                ),
                Some((file, meta)) => (
                    read_opened(&file, &meta, MANIFEST, MAX_MANIFEST_BYTES)?,
                    None,
                ),
                None => {
                    return Err(BundleError::manifest(
                        "missing: the bundle has no Info.plist",
                    ));
                }
            };
            let signature = read_member(&dir, SIGNATURE, MAX_SIGNATURE_BYTES)?;
            (
                Form::Directory,
                manifest,
                signature,
                Handle::Dir(dir),
                deferred,
            )
        } else if meta.is_file() {
            let head = tar_form::read_head(&file, &large)?;
            let deferred = match head.manifest_at {
                Some((offset, len)) => Some(Deferred {
                    file: file.try_clone().map_err(|e| read_err(path, e))?,
                    offset,
                    len,
                    form: Form::Tar,
                }),
                None => None,
            };
            (
                Form::Tar,
                head.manifest,
                head.signature,
                Handle::Tar(file, head.payload_offset),
                deferred,
            )
        } else {
            return Err(BundleError::NotABundle {
                path: path.to_path_buf(),
                kind: kind_name(meta.file_type()),
            });
        };
        Ok(Self {
            path: path.to_path_buf(),
            form,
            manifest_bytes,
            signature,
            handle,
            deferred,
        })
    }

    /// Checks the signature over the raw manifest bytes against `trusted` first, and only then
    /// parses the manifest: bytes no trusted key signed are never parsed here. Returns the
    /// bundle and the key that signed it.
    pub(crate) fn verify(self, trusted: &[PublicKey]) -> Result<(Bundle, PublicKey), BundleError> {
        self.verify_spooled(trusted, None)
    }

    /// As [`Opened::verify`], for a bundle being installed: once the signature has verified, a
    /// manifest of [`SPOOL_MIN`] bytes or more is scanned for its bounds, copied to a private
    /// unnamed file in `spool` (on the device's filesystem, inside its root; nameless until
    /// staging links it, so the device is unchanged if the bundle is refused) and its memory
    /// freed before parsing, which reads that copy once. The parser still sees only the signed
    /// bytes. Where no such file can be made (a read-only or
    /// full device, a filesystem without `O_TMPFILE`), the bytes stay in memory.
    pub(crate) fn verify_spooled(
        mut self,
        trusted: &[PublicKey],
        spool: Option<&Dir>,
    ) -> Result<(Bundle, PublicKey), BundleError> {
        if let Some(deferred) = self.deferred.take() {
            if let Some(copy) = spool.and_then(spool_file) {
                return self.verify_streamed(&deferred, copy, trusted);
            }
            self.manifest_bytes = deferred.read_all()?;
        }
        let key = signature::verify(&self.manifest_bytes, self.signature()?, trusted)?.clone();
        if self.manifest_bytes.len() < SPOOL_MIN {
            return Ok((self.parse()?, key));
        }
        // Its shape first, on the bytes in memory: a manifest past a bound is refused before it
        // is copied anywhere, and the copy is then read once.
        super::manifest::bounds(&self.manifest_bytes)?;
        let Some(mut file) = spool.and_then(|dir| spool_copy(dir, &self.manifest_bytes)) else {
            let manifest = Manifest::parse_scanned(self.manifest_bytes.as_slice())?;
            return Ok((self.into_bundle(manifest, None), key));
        };
        // The copy holds them now: free the bytes before parsing (30 MB at 100,000 files).
        self.manifest_bytes = Vec::new();
        std::io::Seek::rewind(&mut file).map_err(|e| read_err(Path::new(MANIFEST), e))?;
        let manifest = Manifest::parse_scanned(std::io::BufReader::with_capacity(1 << 16, &file))?;
        Ok((self.into_bundle(manifest, Some(file)), key))
    }

    /// The signature's bytes, or the refusal of an unsigned bundle.
    fn signature(&self) -> Result<&[u8], BundleError> {
        self.signature.as_deref().ok_or_else(BundleError::unsigned)
    }

    /// [`Opened::verify_spooled`] for a large manifest left unread: reads it once, in pieces,
    /// through the signature check and into `copy` (a private unnamed file on the device);
    /// only once a trusted key's signature verified is the copy scanned for its bounds and
    /// parsed. The bytes checked, stored and parsed are the copy's, so a bundle changed while
    /// it is read cannot slip unsigned bytes in. Where the copy cannot be written (a full
    /// device), the manifest is read into memory instead, as before.
    fn verify_streamed(
        mut self,
        deferred: &Deferred,
        mut copy: File,
        trusted: &[PublicKey],
    ) -> Result<(Bundle, PublicKey), BundleError> {
        let mut check = signature::Streaming::new(self.signature()?, trusted)?;
        let mut piece = vec![0u8; 1 << 16];
        let mut done = 0u64;
        while done < deferred.len {
            let n = usize::try_from((deferred.len - done).min(piece.len() as u64))
                .unwrap_or(piece.len());
            deferred.read_at(&mut piece[..n], done)?;
            check.update(&piece[..n]);
            if std::io::Write::write_all(&mut copy, &piece[..n]).is_err() {
                drop(copy);
                self.manifest_bytes = deferred.read_all()?;
                return self.verify_spooled(trusted, None);
            }
            done += n as u64;
        }
        drop(piece);
        let rewind = |file: &mut File| {
            std::io::Seek::rewind(file).map_err(|e| read_err(Path::new(MANIFEST), e))
        };
        let Some(key) = check.finish() else {
            // The refusal says whom the manifest names as its signer, from the bytes read.
            rewind(&mut copy)?;
            let mut bytes = Vec::new();
            copy.read_to_end(&mut bytes)
                .map_err(|e| read_err(Path::new(MANIFEST), e))?;
            return Err(signature::refusal(&bytes, trusted));
        };
        let key = key.clone();
        rewind(&mut copy)?;
        super::manifest::bounds_from(std::io::BufReader::with_capacity(1 << 16, &copy))?;
        rewind(&mut copy)?;
        let manifest = Manifest::parse_scanned(std::io::BufReader::with_capacity(1 << 16, &copy))?;
        Ok((self.into_bundle(manifest, Some(copy)), key))
    }

    /// Parses the manifest without checking the signature, with the bounded parser: for
    /// `inspect` of an unsigned bundle, `sign` and `pack`.
    pub(crate) fn parse(self) -> Result<Bundle, BundleError> {
        let manifest = Manifest::parse(&self.manifest_bytes)?;
        Ok(self.into_bundle(manifest, None))
    }

    /// The bundle with its parsed `manifest`; its signed bytes are the `spooled` copy if there
    /// is one, else the bytes read.
    fn into_bundle(self, manifest: Manifest, spooled: Option<File>) -> Bundle {
        Bundle {
            path: self.path,
            form: self.form,
            manifest_bytes: spooled.map_or(Signed::Memory(self.manifest_bytes), Signed::Spooled),
            signature: self.signature,
            manifest,
            handle: self.handle,
            offsets: None,
        }
    }
}

impl Bundle {
    /// Opens the bundle at `path` to install it: checks its signature against `trusted`, then
    /// parses it; a large manifest is spooled to `spool` (see [`Opened::verify_spooled`]).
    pub(crate) fn open_verified(
        path: &Path,
        trusted: &[PublicKey],
        spool: Option<&Dir>,
    ) -> Result<(Self, PublicKey), BundleError> {
        match spool {
            Some(_) => Opened::open_for_install(path)?.verify_spooled(trusted, spool),
            None => Opened::open(path)?.verify(trusted),
        }
    }

    /// Opens and parses the bundle at `path` without checking its signature.
    pub(crate) fn open_unverified(path: &Path) -> Result<Self, BundleError> {
        Opened::open(path)?.parse()
    }

    /// Checks the structure without reading payload data: every entry is a listed regular file
    /// (or a directory), paths are safe, sizes match, nothing is missing or extra; for the tar
    /// form also entry order, truncation and trailing data.
    pub(crate) fn check_structure(&mut self) -> Result<(), BundleError> {
        match &self.handle {
            Handle::Tar(file, offset) => {
                self.offsets = Some(tar_form::walk(file, *offset, &self.manifest)?);
                Ok(())
            }
            Handle::Dir(dir) => walk_directory(dir, &self.manifest),
        }
    }

    /// Streams every payload file once through `feeder` into `sink`, checking sizes as they
    /// stream and digests on the hashing thread.
    pub(crate) fn stream(&self, feeder: &mut Feeder<'_>, sink: &mut dyn Sink) -> Result<()> {
        self.stream_part(0, 1, feeder, sink)
    }

    /// Streams the payload files whose position in manifest order is `part` modulo `parts`, so
    /// that several threads can each stream a share (either form: the tar's files are read at
    /// the offsets the structure check found).
    pub(crate) fn stream_part(
        &self,
        part: usize,
        parts: usize,
        feeder: &mut Feeder<'_>,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        match &self.handle {
            Handle::Dir(dir) => {
                for (cryptex, entry) in self.manifest.cryptexes.files().skip(part).step_by(parts) {
                    let label = format!("{cryptex}/{}", entry.path);
                    let mut src = open_regular(dir, &label, entry.size)?;
                    feed(feeder, sink, cryptex, entry, &label, &mut src, false)?;
                }
            }
            Handle::Tar(file, _) => {
                let offsets = self.offsets.as_ref().ok_or_else(|| {
                    BundleError::tar("the structure was not checked before the payload was read")
                })?;
                for ((cryptex, entry), offset) in self
                    .manifest
                    .cryptexes
                    .files()
                    .zip(offsets)
                    .skip(part)
                    .step_by(parts)
                {
                    let label = format!("{cryptex}/{}", entry.path);
                    let mut src = Section::new(file, *offset, entry.size);
                    feed(feeder, sink, cryptex, entry, &label, &mut src, true)?;
                }
            }
        }
        Ok(())
    }
}

impl Bundle {
    /// A reader of one payload file (directory form: opened beneath the bundle's handle and
    /// checked to be a regular file of the declared size; tar form: its section of the tar).
    pub(crate) fn payload(&self, index: usize) -> Result<Box<dyn Read + '_>, BundleError> {
        let (cryptex, entry) = self
            .manifest
            .cryptexes
            .files()
            .nth(index)
            .ok_or_else(|| BundleError::tar("no such payload file"))?;
        let label = format!("{cryptex}/{}", entry.path);
        match &self.handle {
            Handle::Dir(dir) => Ok(Box::new(open_regular(dir, &label, entry.size)?)),
            Handle::Tar(file, _) => {
                let offset = self
                    .offsets
                    .as_ref()
                    .and_then(|o| o.get(index))
                    .ok_or_else(|| {
                        BundleError::tar(
                            "the structure was not checked before the payload was read",
                        )
                    })?;
                Ok(Box::new(Section::new(file, *offset, entry.size)))
            }
        }
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
        Some((file, shown)) => {
            feeder.file(
                label,
                entry.size,
                Some(entry.sha256),
                src,
                Some(Destination {
                    file: Target::File(&file),
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

/// Opens a payload file of a directory bundle beneath its handle, refusing anything but a
/// regular file of the declared size, and any symlink on the way.
pub(crate) fn open_regular(dir: &Dir, label: &str, size: u64) -> Result<File, BundleError> {
    let file = match open_beneath(dir, Path::new(label), false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BundleError::Missing {
                path: label.to_owned(),
            });
        }
        Err(e) if is_loop(&e) => {
            return Err(BundleError::UnsafeEntry {
                path: label.to_owned(),
                kind: "symlink".to_owned(),
            });
        }
        Err(e) => return Err(read_err(Path::new(label), e)),
    };
    let meta = file.metadata().map_err(|e| read_err(Path::new(label), e))?;
    if !meta.is_file() {
        return Err(BundleError::UnsafeEntry {
            path: label.to_owned(),
            kind: kind_name(meta.file_type()).to_owned(),
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
fn walk_directory(root: &Dir, manifest: &Manifest) -> Result<(), BundleError> {
    // Each cryptex's listing is sorted by path: a file found is looked up by binary search and
    // marked in a bitmap, so the walk holds no copy of the listing's paths (at 100,000 files of
    // 150-byte paths, a map of them held 23 MB, and kept the staging that follows 14 MiB higher).
    let listings: Vec<(Cryptex, &[FileEntry])> = manifest
        .cryptexes
        .0
        .iter()
        .map(|(c, files)| (*c, files.as_slice()))
        .collect();
    let mut seen: Vec<Vec<bool>> = listings
        .iter()
        .map(|(_, files)| vec![false; files.len()])
        .collect();
    let find = |rel: &str| -> Option<(usize, usize)> {
        let (top, rest) = rel.split_once('/')?;
        let which = listings.iter().position(|(c, _)| c.as_str() == top)?;
        let at = listings[which]
            .1
            .binary_search_by(|f| f.path.as_bytes().cmp(rest.as_bytes()))
            .ok()?;
        Some((which, at))
    };
    let mut stack = vec![String::new()];
    let mut visited = 0usize;
    while let Some(prefix) = stack.pop() {
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
                // Every directory leads to a listed file, as in the tar form: an empty or
                // unlisted one is not part of the payload.
                if !leads_to_listed(&listings, &rel) {
                    return Err(BundleError::Unlisted {
                        path: format!("{}/", clip(&rel)),
                    });
                }
                stack.push(format!("{rel}/"));
            } else if ft.is_file() {
                if prefix.is_empty() && (name == MANIFEST || name == SIGNATURE) {
                    continue;
                }
                let Some((which, at)) = find(&rel) else {
                    return Err(BundleError::Unlisted { path: clip(&rel) });
                };
                seen[which][at] = true;
                let size = listings[which].1[at].size;
                let meta = entry.metadata().map_err(|e| read_err(Path::new(&rel), e))?;
                // A payload file with another name elsewhere is refused before anything of it
                // (not even its size) is said: it could be any file on the system.
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
            } else {
                use cap_std::fs::FileTypeExt as _;
                return Err(BundleError::UnsafeEntry {
                    path: clip(&rel),
                    kind: if ft.is_symlink() {
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
                    .to_owned(),
                });
            }
        }
    }
    for ((cryptex, files), seen) in listings.iter().zip(&seen) {
        if let Some(at) = seen.iter().position(|s| !s) {
            return Err(BundleError::Missing {
                path: format!("{cryptex}/{}", files[at].path),
            });
        }
    }
    Ok(())
}
