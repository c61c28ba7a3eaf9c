//! `verify`'s read-ahead: while the main thread reads a generation's manifest (60 ms of XML for
//! 20,000 files, which no hashing could overlap while the listing was unknown), a second thread
//! walks the active trees and hashes the small regular files it finds, keeping each one's size,
//! mode and digest by path. When the main thread is ready to hash, it stops the read-ahead and
//! takes what it has: a listed file found there is checked against its entry without being read
//! again; anything else (large files, files the read-ahead did not reach, and everything that
//! was not a plain readable file) goes the ordinary way, which words every problem.
//!
//! It reads no more than `verify` itself would: files beneath the trees' directory handles,
//! opened as `verify` opens them (no symlink followed, no FIFO waited on), small ones only
//! ([`INLINE_MAX`]), and it stops as soon as it is told to.
//!
//! It keeps no paths: a file is kept under a 128-bit key of its path (two `SipHash` functions
//! whose keys are drawn at random for each run), so what it holds does not grow with path
//! length (at 100,000 files of 150-byte paths the paths alone were 20 MB). Two paths sharing a
//! key would take a collision of a keyed 128-bit function no file name can be chosen to aim at.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use cap_std::fs::Dir;

use crate::bundle::digest::Digest;
use crate::bundle::stream::INLINE_MAX;

use super::tree::{Entry, walk_tree};
use crate::bundle::dir_form::open_beneath;

/// What the read-ahead saw of one regular file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    pub(super) size: u64,
    /// The permission bits.
    pub(super) mode: u32,
    pub(super) digest: Digest,
}

/// Files seen, by tree (its path below the root, as `verify` opens it).
pub(super) type SeenFiles = HashMap<PathBuf, SeenTree>;

/// The files seen in one tree, found by their path below it ([`SeenTree::get`]).
#[derive(Debug)]
pub(super) struct SeenTree {
    key: PathKey,
    files: HashMap<u128, Seen>,
}

impl SeenTree {
    /// What was seen of the file at `path` (below the tree), if it was seen.
    pub(super) fn get(&self, path: &str) -> Option<&Seen> {
        self.files.get(&self.key.of(path))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.files.len()
    }
}

/// The key a path is kept under: two `SipHash`-1-3 functions with random keys, side by side.
#[derive(Debug, Clone)]
struct PathKey(RandomState, RandomState);

impl PathKey {
    fn new() -> Self {
        Self(RandomState::new(), RandomState::new())
    }

    fn of(&self, path: &str) -> u128 {
        (u128::from(self.0.hash_one(path)) << 64) | u128::from(self.1.hash_one(path))
    }
}

/// A running read-ahead; [`ReadAhead::finish`] stops it and returns what it saw. Dropped
/// unfinished, it is told to stop and left to end on its own (it only reads).
#[derive(Debug)]
pub(super) struct ReadAhead {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<SeenFiles>>,
}

impl ReadAhead {
    /// Starts reading `trees` (directories below `root`) ahead, on a machine with a second
    /// core to do it on; on one core it does nothing.
    pub(super) fn start(root: &Dir, trees: Vec<PathBuf>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let thread = match root.try_clone() {
            // A benchmark measures what it earns with `FAILPOINTS=verify.no-read-ahead=return`.
            Ok(root)
                if cores > 1
                    && !trees.is_empty()
                    && !crate::faults::armed!("verify.no-read-ahead") =>
            {
                let stop = Arc::clone(&stop);
                std::thread::Builder::new()
                    .name("verify-ahead".into())
                    .spawn(move || read_trees(&root, trees, &stop))
                    .ok()
            }
            _ => None,
        };
        Self { stop, thread }
    }

    /// Stops the read-ahead and returns the files it saw.
    pub(super) fn finish(mut self) -> SeenFiles {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_trees(root: &Dir, trees: Vec<PathBuf>, stop: &AtomicBool) -> SeenFiles {
    let mut out = SeenFiles::new();
    let mut buf = Vec::new();
    let key = PathKey::new();
    for rel in trees {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Ok(dir) = root.open_dir(&rel) else {
            continue;
        };
        let mut files = HashMap::new();
        walk_tree(&dir, &mut String::new(), &mut |path, entry| {
            if let Entry::File(dir, name) = entry
                && let Some(file) = hash_small(dir, name, &mut buf)
            {
                files.insert(key.of(path), file);
            }
            !stop.load(Ordering::Relaxed)
        });
        out.insert(
            rel,
            SeenTree {
                key: key.clone(),
                files,
            },
        );
    }
    out
}

/// Opens `name` in `dir` as `verify` opens a listed file and, if it is a regular file of at
/// most [`INLINE_MAX`] bytes that reads whole, returns what was seen of it.
fn hash_small(dir: &Dir, name: &std::ffi::OsStr, buf: &mut Vec<u8>) -> Option<Seen> {
    let file = open_beneath(dir, Path::new(name), false).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > INLINE_MAX {
        return None;
    }
    let size = usize::try_from(meta.len()).ok()?;
    buf.resize(size, 0);
    (&file).read_exact(buf).ok()?;
    Some(Seen {
        size: meta.len(),
        mode: meta.permissions().mode() & 0o777,
        digest: Digest::of(buf),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_small_regular_files_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        root.create_dir_all("tree/a/b").unwrap();
        root.write("tree/top", b"top").unwrap();
        root.write("tree/a/b/deep", b"deep").unwrap();
        let large = vec![7u8; usize::try_from(INLINE_MAX).unwrap() + 1];
        root.write("tree/a/large", &large).unwrap();
        std::os::unix::fs::symlink("top", tmp.path().join("tree/link")).unwrap();
        std::os::unix::fs::symlink("a", tmp.path().join("tree/dirlink")).unwrap();
        let ahead = ReadAhead::start(&root, vec![PathBuf::from("tree")]);
        // Let it finish before it is told to stop.
        while !ahead.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let seen = ahead.finish();
        let tree = &seen[Path::new("tree")];
        assert_eq!(tree.len(), 2);
        assert_eq!(tree.get("top").unwrap().digest, Digest::of(b"top"));
        assert_eq!(tree.get("a/b/deep").unwrap().size, 4);
        for not_seen in [
            "a/large",
            "link",
            "dirlink/b/deep",
            "a/b",
            "tops",
            "a/b/deep/",
        ] {
            assert!(tree.get(not_seen).is_none(), "{not_seen}");
        }
    }
}
