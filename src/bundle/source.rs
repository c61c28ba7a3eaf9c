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
use std::path::{Path, PathBuf};

use cap_std::fs::Dir;
use rustix::fs::{Mode, OFlags};

use super::dir_form::{
    open_member, open_regular, read_err, read_member, read_opened, walk_directory,
};
use super::keys::PublicKey;
use super::limits::{MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES};
use super::manifest::{FileEntry, Manifest};
use super::paths::{MANIFEST, SIGNATURE};
use super::stream::{Destination, Feeder, Target};
use super::tar_form::{self, Section};
use super::{BundleError, signature};
use crate::Result;
use crate::platform::Cryptex;

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
                kind: crate::error::kind_name(std::os::unix::fs::MetadataExt::mode(&meta)),
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
            // A benchmark measures what streaming earns with
            // `FAILPOINTS=bundle.no-streamed-signature=return`.
            if !crate::faults::armed!("bundle.no-streamed-signature")
                && let Some(copy) = spool.and_then(spool_file)
            {
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
        super::manifest_xml::bounds(&self.manifest_bytes)?;
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
        super::manifest_xml::bounds_from(std::io::BufReader::with_capacity(1 << 16, &copy))?;
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
