//! The single-pass payload pipeline: each payload file is read once, written to its destination
//! from the same buffer, and hashed on a second thread while the first thread reads on.
//!
//! The reading thread owns all I/O (open, read, write, close) but one: when it finds the hashing
//! thread about to run out of work, it hands it the chunk just read to write as well as hash (by
//! position, through its own handle), so that when writing into new pages is what holds the
//! pipeline back, the reading thread reads on while that chunk is written (writes to one file
//! still take turns on its inode lock). The hashing thread owns SHA-256. A
//! small fixed pool of buffers ([`BUFFERS`] x [`CHUNK`]) circulates between them, so memory stays
//! flat whatever the payload's size, and the two cores overlap: a large file costs about the time
//! of hashing it, not reading + hashing + writing. A file's digest is checked when its last
//! chunk has been hashed; a mismatch stops the pipeline and the caller discards what it wrote.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use sha2::{Digest as _, Sha256};

use super::BundleError;
use super::digest::{self, Digest};
use crate::error::IoContext;
use crate::progress::Progress;
use crate::{Error, Result};

/// Size of one buffer.
pub(crate) const CHUNK: usize = 1 << 17;
/// Buffers in flight: enough to keep both threads busy, few enough to keep memory flat.
pub(crate) const BUFFERS: usize = 4;

enum Msg {
    /// A chunk to hash and, when the reading thread handed it over, to write.
    Data(Vec<u8>, usize, Option<WriteAt>),
    End {
        label: String,
        expected: Option<Digest>,
    },
}

/// A chunk of a large file the hashing thread writes once it has hashed it: the reading thread
/// hands one over when the hashing thread has at most one chunk left, so that when writes into
/// new pages are what holds the pipeline back, one thread's write overlaps the other's read.
struct WriteAt {
    to: Arc<(File, PathBuf)>,
    offset: u64,
}

/// Feeds files into the pipeline; handed to the body of [`run`].
pub(crate) struct Feeder<'a> {
    tx: Option<SyncSender<Msg>>,
    pool: Receiver<Vec<u8>>,
    abort: &'a AtomicBool,
    /// Chunks sent to the hashing thread and not yet done with.
    in_flight: &'a AtomicUsize,
    progress: &'a dyn Progress,
    /// One slot per file fed, in order: the digest of a file hashed inline, or `None` for one
    /// the hashing thread hashes (its digest comes back from that thread, in order).
    slots: Vec<Option<Digest>>,
    /// The buffer small files are read into whole.
    small: Vec<u8>,
}

impl std::fmt::Debug for Feeder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeder").finish_non_exhaustive()
    }
}

/// Where one file's bytes go besides the hasher.
#[allow(missing_debug_implementations)]
pub(crate) struct Destination<'d> {
    /// The open file.
    pub file: Target<'d>,
    /// Its path, for messages.
    pub shown: &'d Path,
}

/// The kind of thing a [`Destination`] writes to.
#[allow(missing_debug_implementations)]
pub(crate) enum Target<'d> {
    /// A new file, written by position; either thread may write a large file's chunks.
    File(&'d File),
    /// Anything else, written in order by the reading thread.
    #[cfg_attr(not(test), allow(dead_code))]
    Stream(&'d mut dyn Write),
}

impl Target<'_> {
    /// Writes a whole small file.
    fn write_whole(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Target::File(f) => f.write_all_at(bytes, 0),
            Target::Stream(w) => w.write_all(bytes),
        }
    }
}

/// The placeholder a body returns when the hasher has already failed; [`run`] replaces it with
/// the hasher's error, so it never reaches a user.
fn stopped() -> Error {
    Error::damaged("payload pipeline stopped")
}

fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Feeder<'_> {
    /// Has the hasher found a mismatch?
    #[must_use]
    pub(crate) fn stopped(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// Streams one file of `size` bytes from `src`, writing to `dst` if given, and queues its
    /// digest check against `expected` (`None`: only compute it, for `bundle create`). `label` names it in errors (e.g. `OS/usr/lib/x`).
    /// `short_is_truncation` says a short read means a truncated tar rather than a short file.
    pub(crate) fn file(
        &mut self,
        label: &str,
        size: u64,
        expected: Option<Digest>,
        src: &mut dyn Read,
        mut dst: Option<Destination<'_>>,
        short_is_truncation: bool,
    ) -> Result<()> {
        if size <= INLINE_MAX {
            return self.small_file(label, size, expected, src, dst, short_is_truncation);
        }
        // A benchmark measures what the hashing thread earns with
        // `FAILPOINTS=stream.one-thread=return`.
        if crate::faults::armed!("stream.one-thread") {
            return self.on_this_thread(label, size, expected, src, dst, short_is_truncation);
        }
        self.slots.push(None);
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        let read_err = |e: io::Error| read_error(label, e);
        let mut remaining = size;
        let mut offset = 0u64;
        let mut shared: Option<Arc<(File, PathBuf)>> = None;
        loop {
            if self.stopped() {
                return Err(stopped());
            }
            crate::interrupt::check()?;
            let mut buf = self.pool.recv().map_err(|_| stopped())?;
            if remaining == 0 {
                // One more read must find the end of the file: a longer file is rejected.
                let extra = read_full(src, &mut buf[..1]).map_err(read_err)?;
                self.in_flight.fetch_add(1, Ordering::AcqRel);
                let _ = tx.send(Msg::Data(buf, 0, None));
                if extra > 0 {
                    return Err(size_error(label, size, size + 1, short_is_truncation));
                }
                break;
            }
            let want = usize::try_from(remaining.min(CHUNK as u64)).unwrap_or(CHUNK);
            let got = read_full(src, &mut buf[..want]).map_err(read_err)?;
            let mut handed = None;
            if let Some(d) = dst.as_mut() {
                match &mut d.file {
                    // The hashing thread has at most the chunk before this one left to do: it
                    // would wait for this one while this thread writes it, so it writes it.
                    Target::File(f) if self.in_flight.load(Ordering::Acquire) <= 1 => {
                        if shared.is_none() {
                            // Its own handle: the caller may close the file before the hashing
                            // thread is done with it.
                            let copy = f.try_clone().ctx("writing", d.shown)?;
                            shared = Some(Arc::new((copy, d.shown.to_owned())));
                        }
                        handed = shared.as_ref().map(|to| WriteAt {
                            to: Arc::clone(to),
                            offset,
                        });
                    }
                    Target::File(f) => f
                        .write_all_at(&buf[..got], offset)
                        .ctx("writing", d.shown)?,
                    Target::Stream(w) => w.write_all(&buf[..got]).ctx("writing", d.shown)?,
                }
            }
            offset += got as u64;
            self.progress.advance(got as u64);
            remaining -= got as u64;
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            let _ = tx.send(Msg::Data(buf, got, handed));
            if got < want {
                return Err(size_error(
                    label,
                    size,
                    size - remaining,
                    short_is_truncation,
                ));
            }
        }
        let _ = tx.send(Msg::End {
            label: label.to_owned(),
            expected,
        });
        Ok(())
    }
}

impl Feeder<'_> {
    /// [`Feeder::file`] for a file whose size the caller has just checked with `fstat` (and
    /// whose digest it compares itself): a small file is read in one `read` of exactly its
    /// size, without the extra `read` that proves its end (for `verify` of 20,000 small files,
    /// 20,000 system calls fewer). A file still growing after the check is not caught here;
    /// its digest is that of its checked size.
    pub(crate) fn file_of_checked_size(
        &mut self,
        label: &str,
        size: u64,
        src: &mut dyn Read,
    ) -> Result<()> {
        if size > INLINE_MAX {
            return self.file(label, size, None, src, None, false);
        }
        if self.stopped() {
            return Err(stopped());
        }
        crate::interrupt::check()?;
        let want = usize::try_from(size).unwrap_or(usize::MAX);
        if self.small.len() < want {
            self.small.resize(want, 0);
        }
        let got = read_full(src, &mut self.small[..want]).map_err(|e| read_error(label, e))?;
        if got != want {
            return Err(size_error(label, size, got as u64, false));
        }
        let actual = Digest::of(&self.small[..got]);
        self.progress.advance(size);
        self.slots.push(Some(actual));
        Ok(())
    }

    /// Counts, in feeding order, a file of `size` bytes whose digest was computed before the
    /// pipeline ran (by `verify`'s read-ahead): its digest comes back with the others.
    pub(crate) fn digested(&mut self, size: u64, digest: Digest) -> Result<()> {
        if self.stopped() {
            return Err(stopped());
        }
        crate::interrupt::check()?;
        self.progress.advance(size);
        self.slots.push(Some(digest));
        Ok(())
    }
}

/// Files up to this size are read whole and hashed on the reading thread: handing them to the
/// hashing thread would cost more in wake-ups than the hashing itself.
pub(crate) const INLINE_MAX: u64 = 64 * 1024;

fn read_error(label: &str, e: io::Error) -> Error {
    Error::Bundle(BundleError::Read {
        path: label.into(),
        source: e,
    })
}

fn mismatch(label: String, expected: Digest, actual: Digest) -> BundleError {
    BundleError::Digest {
        path: label,
        expected: expected.to_hex(),
        actual: actual.to_hex(),
    }
}

/// A file shorter or longer than declared (shorter in a tar: the archive is truncated).
fn size_error(label: &str, size: u64, actual: u64, short_is_truncation: bool) -> Error {
    if short_is_truncation && actual < size {
        BundleError::tar(format!(
            "truncated: {label} ends after {actual} of its {size} bytes"
        ))
    } else {
        BundleError::Size {
            path: label.to_owned(),
            declared: size,
            actual,
        }
    }
    .into()
}

impl Feeder<'_> {
    fn small_file(
        &mut self,
        label: &str,
        size: u64,
        expected: Option<Digest>,
        src: &mut dyn Read,
        dst: Option<Destination<'_>>,
        short_is_truncation: bool,
    ) -> Result<()> {
        if self.stopped() {
            return Err(stopped());
        }
        crate::interrupt::check()?;
        let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
        // One byte more than declared: a longer file shows itself.
        let want = size_usize + 1;
        if self.small.len() < want {
            self.small.resize(want, 0);
        }
        let got = read_full(src, &mut self.small[..want]).map_err(|e| read_error(label, e))?;
        if got != size_usize {
            return Err(size_error(label, size, got as u64, short_is_truncation));
        }
        let bytes = &self.small[..got];
        if let Some(mut d) = dst {
            d.file.write_whole(bytes).ctx("writing", d.shown)?;
        }
        let actual = Digest::of(bytes);
        self.progress.advance(size);
        self.hashed_here(label, expected, actual)
    }

    /// Checks a file hashed on this thread against `expected`, and counts its digest.
    fn hashed_here(&mut self, label: &str, expected: Option<Digest>, actual: Digest) -> Result<()> {
        match expected {
            Some(expected) if actual != expected => {
                Err(mismatch(label.to_owned(), expected, actual).into())
            }
            _ => {
                self.slots.push(Some(actual));
                Ok(())
            }
        }
    }
}

impl Feeder<'_> {
    /// [`Feeder::file`] without the hashing thread: each chunk read, written and hashed here.
    fn on_this_thread(
        &mut self,
        label: &str,
        size: u64,
        expected: Option<Digest>,
        src: &mut dyn Read,
        dst: Option<Destination<'_>>,
        short_is_truncation: bool,
    ) -> Result<()> {
        let mut buf = std::mem::take(&mut self.small);
        buf.resize(CHUNK, 0);
        let result = self.chunks_here(label, size, src, dst, short_is_truncation, &mut buf);
        self.small = buf;
        self.hashed_here(label, expected, result?)
    }

    /// The reads, writes and hashing of [`Feeder::on_this_thread`], through `buf`.
    fn chunks_here(
        &self,
        label: &str,
        size: u64,
        src: &mut dyn Read,
        mut dst: Option<Destination<'_>>,
        short_is_truncation: bool,
        buf: &mut [u8],
    ) -> Result<Digest> {
        let mut hasher = Sha256::new();
        let (mut offset, mut remaining) = (0u64, size);
        while remaining > 0 {
            crate::interrupt::check()?;
            let want = usize::try_from(remaining.min(CHUNK as u64)).unwrap_or(CHUNK);
            let got = read_full(src, &mut buf[..want]).map_err(|e| read_error(label, e))?;
            if let Some(d) = dst.as_mut() {
                match &mut d.file {
                    Target::File(f) => f.write_all_at(&buf[..got], offset),
                    Target::Stream(w) => w.write_all(&buf[..got]),
                }
                .ctx("writing", d.shown)?;
            }
            hasher.update(&buf[..got]);
            self.progress.advance(got as u64);
            (offset, remaining) = (offset + got as u64, remaining - got as u64);
            if got < want {
                return Err(size_error(label, size, offset, short_is_truncation));
            }
        }
        if read_full(src, &mut buf[..1]).map_err(|e| read_error(label, e))? > 0 {
            return Err(size_error(label, size, size + 1, short_is_truncation));
        }
        Ok(digest::finish(hasher))
    }
}

fn hash_loop(
    rx: &Receiver<Msg>,
    pool: &SyncSender<Vec<u8>>,
    abort: &AtomicBool,
    in_flight: &AtomicUsize,
) -> Result<Vec<Digest>> {
    let mut hasher = Sha256::new();
    let mut failure = None;
    let mut digests = Vec::new();
    for msg in rx {
        match msg {
            Msg::Data(buf, len, handed) => {
                if failure.is_none() {
                    hasher.update(&buf[..len]);
                    if let Some(WriteAt { to, offset }) = handed
                        && let Err(e) = to.0.write_all_at(&buf[..len], offset).ctx("writing", &to.1)
                    {
                        failure = Some(e);
                        abort.store(true, Ordering::Relaxed);
                    }
                }
                in_flight.fetch_sub(1, Ordering::AcqRel);
                let _ = pool.send(buf);
            }
            Msg::End { label, expected } => {
                let actual = digest::finish(std::mem::take(&mut hasher));
                digests.push(actual);
                if let Some(expected) = expected
                    && failure.is_none()
                    && actual != expected
                {
                    failure = Some(mismatch(label, expected, actual).into());
                    abort.store(true, Ordering::Relaxed);
                }
            }
        }
    }
    failure.map_or(Ok(digests), Err)
}

/// Runs `body` with a [`Feeder`], reporting `total` bytes of progress under `phase`. Returns the
/// body's result with every file's digest in feeding order, or the first digest mismatch the
/// hasher found.
pub(crate) fn run<T>(
    progress: &dyn Progress,
    phase: &str,
    total: u64,
    body: impl FnOnce(&mut Feeder<'_>) -> Result<T>,
) -> Result<(T, Vec<Digest>)> {
    progress.begin(phase, total);
    let result = pipeline(progress, body);
    progress.end();
    result
}

/// Files a payload needs before [`run_parts`] splits it: below this, one reading thread keeps up.
pub(crate) const PARALLEL_MIN_FILES: usize = 16;

/// Runs `parts` pipelines at once, `body(part, feeder)` in each. For many small files the
/// per-file system calls, not the hashing, are the cost; a reading thread per part spreads them
/// over the cores. Returns each part's result and digests, or the first error.
pub(crate) fn run_parts<T: Send>(
    progress: &dyn Progress,
    phase: &str,
    total: u64,
    parts: usize,
    body: impl Fn(usize, &mut Feeder<'_>) -> Result<T> + Sync,
) -> Result<Vec<(T, Vec<Digest>)>> {
    progress.begin(phase, total);
    let body = &body;
    let results: Vec<Result<(T, Vec<Digest>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..parts)
            .map(|part| scope.spawn(move || pipeline(progress, |feeder| body(part, feeder))))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(BundleError::tar("a reading thread panicked").into()))
            })
            .collect()
    });
    progress.end();
    results.into_iter().collect()
}

/// One reading thread and one hashing thread.
fn pipeline<T>(
    progress: &dyn Progress,
    body: impl FnOnce(&mut Feeder<'_>) -> Result<T>,
) -> Result<(T, Vec<Digest>)> {
    let abort = AtomicBool::new(false);
    let in_flight = AtomicUsize::new(0);
    let (tx, rx) = sync_channel::<Msg>(BUFFERS);
    let (pool_tx, pool_rx) = sync_channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        let _ = pool_tx.send(vec![0u8; CHUNK]);
    }
    std::thread::scope(|scope| {
        let abort = &abort;
        let in_flight = &in_flight;
        let hasher = scope.spawn(move || hash_loop(&rx, &pool_tx, abort, in_flight));
        let mut feeder = Feeder {
            tx: Some(tx),
            pool: pool_rx,
            abort,
            in_flight,
            progress,
            slots: Vec::new(),
            small: Vec::new(),
        };
        let body_result = body(&mut feeder);
        let slots = std::mem::take(&mut feeder.slots);
        feeder.tx = None;
        drop(feeder);
        let hash_result = hasher
            .join()
            .unwrap_or_else(|_| Err(BundleError::tar("the hashing thread panicked").into()));
        match (body_result, hash_result) {
            (_, Err(e)) => Err(e),
            (r, Ok(threaded)) => {
                // Put the inline digests and the hashing thread's back in feeding order.
                let mut threaded = threaded.into_iter();
                let digests = slots
                    .into_iter()
                    .filter_map(|slot| slot.or_else(|| threaded.next()))
                    .collect();
                r.map(|t| (t, digests))
            }
        }
    })
}

#[cfg(test)]
mod tests;
