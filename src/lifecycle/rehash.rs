//! Re-hashing what a verify checks: each listed file opened beneath its cryptex directory's
//! handle, its size and mode compared with the manifest before a byte is hashed, and the files
//! shared between two readers (each with its own hasher) when there are many.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cap_std::fs::Dir;

use crate::Result;
use crate::bundle::dir_form::open_beneath;
use crate::bundle::manifest::FileEntry;
use crate::bundle::stream;
use crate::error::IoContext;

use super::read_ahead::SeenTree;

/// What one reading thread of `verify` found: the indexes of the jobs it fed, in feeding
/// order, and the problems it saw before hashing (with the index of the directory they belong
/// to).
pub(super) struct Share {
    pub(super) hashed: Vec<usize>,
    pub(super) problems: Vec<(usize, String)>,
}

/// One file to hash: the index of its cryptex directory handle and its manifest entry.
pub(super) struct Job<'a> {
    pub(super) dir: usize,
    pub(super) entry: &'a FileEntry,
}

/// Feeds the jobs whose index is `part` modulo `parts`. Labels (`prefixes[dir]` + path) are
/// built in one buffer, for messages only.
pub(super) fn hash_share(
    dirs: &[Option<Dir>],
    seen_in: &[Option<SeenTree>],
    prefixes: &[String],
    jobs: &[Job<'_>],
    part: usize,
    parts: usize,
    feeder: &mut stream::Feeder<'_>,
) -> Result<Share> {
    let mut share = Share {
        hashed: Vec::new(),
        problems: Vec::new(),
    };
    let mut label = String::new();
    for (index, Job { dir, entry }) in jobs.iter().enumerate().skip(part).step_by(parts) {
        let Some(handle) = &dirs[*dir] else { continue };
        label.clear();
        label.push_str(&prefixes[*dir]);
        label.push_str(&entry.path);
        let label = label.as_str();
        if let Some(seen) = seen_in[*dir].as_ref().and_then(|s| s.get(&entry.path)) {
            if let Some(problem) = size_problem(label, seen.size, entry) {
                share.problems.push((*dir, problem));
                continue;
            }
            share
                .problems
                .extend(mode_problem(label, seen.mode, entry).map(|p| (*dir, p)));
            feeder.digested(entry.size, seen.digest)?;
            share.hashed.push(index);
            continue;
        }
        let file = match open_beneath(handle, Path::new(&entry.path), false) {
            Ok(f) => f,
            Err(e) => {
                share.problems.push((
                    *dir,
                    format!(
                        "{label}: {}",
                        match e.kind() {
                            std::io::ErrorKind::NotFound => "missing".to_owned(),
                            _ if e.raw_os_error()
                                == Some(rustix::io::Errno::LOOP.raw_os_error()) =>
                                "a symlink where a file belongs".to_owned(),
                            _ => e.to_string(),
                        }
                    ),
                ));
                continue;
            }
        };
        let meta = file.metadata().ctx("reading", label)?;
        if !meta.is_file() {
            share
                .problems
                .push((*dir, format!("{label}: not a regular file")));
            continue;
        }
        if let Some(problem) = size_problem(label, meta.len(), entry) {
            share.problems.push((*dir, problem));
            continue;
        }
        share.problems.extend(
            mode_problem(label, meta.permissions().mode() & 0o777, entry).map(|p| (*dir, p)),
        );
        let mut reader = &file;
        feeder.file_of_checked_size(label, entry.size, &mut reader)?;
        share.hashed.push(index);
    }
    Ok(share)
}

/// A listed file's size, if it is not the manifest's (the file's other checks are then moot).
fn size_problem(label: &str, size: u64, entry: &FileEntry) -> Option<String> {
    (size != entry.size).then(|| {
        format!(
            "{label}: size {size} differs from the manifest's {}",
            entry.size
        )
    })
}

/// A listed file's permission bits, if they are not the manifest's.
fn mode_problem(label: &str, mode: u32, entry: &FileEntry) -> Option<String> {
    (mode != entry.mode).then(|| {
        format!(
            "{label}: mode {mode:o} differs from the manifest's {:o}",
            entry.mode
        )
    })
}
