//! `bsi verify`: re-hashes the active content against its manifest (the response's `Info.plist`,
//! and the base generation's `Cryptexes.plist` for cryptexes the response does not carry) and
//! checks invariants I1 and I2: the `System/Cryptexes` and `Preboot/Cryptexes` links point where
//! the layout says and resolve to the current generation's trees, every file there is listed and
//! matches its size, mode and digest, and `current/SystemVersion.plist` agrees with the manifest.
//! Every problem is listed; any problem exits 8.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cap_std::fs::Dir;

use crate::bundle::digest::Digest;
use crate::bundle::manifest::{Cryptexes, FileEntry, Manifest};
use crate::bundle::stream;
use crate::device::layout::{BASE_MANIFEST, GEN_MANIFEST};
use crate::device::{Cryptex, Device, GenName, Layout};
use crate::error::IoContext;
use crate::progress::Progress;
use crate::{Error, Result};

use super::recover::wrong_links;

/// What `verify` checked and found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyOutcome {
    /// The version whose content was checked.
    pub version: String,
    /// Files hashed.
    pub files: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// Every problem found (empty when all holds).
    pub problems: Vec<String>,
}

fn parse_listing(
    device: &Device,
    rel: &Path,
    response: bool,
) -> Result<(Cryptexes, Option<Manifest>)> {
    let root = device.root();
    let bytes = root.read_small(rel).ctx("reading", root.show(rel))?;
    let shown = root.show(rel);
    if response {
        let m = Manifest::parse(&bytes)
            .map_err(|e| Error::damaged(format!("{}: {e}", shown.display())))?;
        Ok((m.cryptexes.clone(), Some(m)))
    } else {
        let value = plist::Value::from_reader(std::io::Cursor::new(bytes))
            .map_err(|e| Error::damaged(format!("{}: {e}", shown.display())))?;
        let c = Cryptexes::from_value(&value, "Cryptexes")
            .map_err(|e| Error::damaged(format!("{}: {e}", shown.display())))?;
        Ok((c, None))
    }
}

/// Walks `dir` (no symlinks followed) and returns every regular file's path; other entries are
/// problems.
fn walk(dir: &Dir, prefix: &str, out: &mut Vec<String>, problems: &mut Vec<String>) {
    let Ok(entries) = dir.entries() else {
        problems.push(format!("{prefix}: cannot be listed"));
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{prefix}/{name}");
        match entry.file_type() {
            Ok(ft) if ft.is_dir() => match entry.open_dir() {
                Ok(sub) => walk(&sub, &rel, out, problems),
                Err(e) => problems.push(format!("{rel}: {e}")),
            },
            Ok(ft) if ft.is_file() => out.push(rel),
            Ok(ft) if ft.is_symlink() => problems.push(format!("{rel}: unexpected symlink")),
            _ => problems.push(format!("{rel}: unexpected special file")),
        }
    }
}

/// Verifies the active content.
pub fn verify(device: &Device, progress: &dyn Progress) -> Result<(VerifyOutcome, Option<Error>)> {
    let root = device.root();
    let mut problems = Vec::new();
    for (link, target) in wrong_links(device) {
        let actual = root.read_link_opt(&link).ok().flatten();
        problems.push(format!(
            "{} points at {}, not {}",
            link.display(),
            actual.map_or_else(
                || "nothing (missing or not a symlink)".to_owned(),
                |a| a.display().to_string()
            ),
            target.display()
        ));
    }
    let snapshot = device.snapshot()?;
    let base_gen = GenName::Base(snapshot.base.build.clone());
    let (base_listing, _) = parse_listing(
        device,
        &device.generation_path(&base_gen).join(BASE_MANIFEST),
        false,
    )?;
    let current = snapshot.current.clone();
    let mut listings: BTreeMap<Cryptex, (PathBuf, Vec<FileEntry>)> = BTreeMap::new();
    let response = if let Some(active) = &snapshot.active {
        let (listing, manifest) = parse_listing(
            device,
            &device.generation_path(&current).join(GEN_MANIFEST),
            true,
        )?;
        if let Some(m) = manifest
            && (m.build != active.build || m.response_version() != active.version)
        {
            problems.push(format!(
                "current/SystemVersion.plist says {} ({}), but the manifest says {} ({})",
                active.version,
                active.build,
                m.response_version(),
                m.build
            ));
        }
        Some(listing)
    } else {
        None
    };
    for cryptex in Cryptex::ALL {
        let (generation, files) = match response.as_ref().and_then(|r| r.0.get(&cryptex)) {
            Some(files) => (&current, files.clone()),
            None => (
                &base_gen,
                base_listing.0.get(&cryptex).cloned().unwrap_or_default(),
            ),
        };
        listings.insert(
            cryptex,
            (
                device.generation_path(generation).join(cryptex.as_str()),
                files,
            ),
        );
    }
    // I1: each System/Cryptexes link resolves, inside the root, to the tree it should.
    for (cryptex, (expected, _)) in &listings {
        let link = Layout::system_link(*cryptex);
        match (
            root.dir().canonicalize(&link),
            root.dir().canonicalize(expected),
        ) {
            (Ok(actual), Ok(want)) if actual == want => {}
            (Ok(actual), Ok(want)) => problems.push(format!(
                "{} resolves to {}, not {}",
                link.display(),
                actual.display(),
                want.display()
            )),
            (Err(e), _) => problems.push(format!(
                "{} does not resolve inside the device: {e}",
                link.display()
            )),
            (_, Err(e)) => problems.push(format!("{} is missing: {e}", expected.display())),
        }
    }
    // Each cryptex directory is opened once; files are opened beneath its handle, which saves a
    // walk of the whole path from the root for every file.
    let mut dirs: Vec<Option<Dir>> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    for (cryptex, (dir_rel, files)) in &listings {
        let mut found = Vec::new();
        let dir = match root.dir().open_dir(dir_rel) {
            Ok(dir) => {
                walk(&dir, cryptex.as_str(), &mut found, &mut problems);
                Some(dir)
            }
            Err(e) => {
                problems.push(format!("{}: {e}", dir_rel.display()));
                None
            }
        };
        let listed: std::collections::HashSet<String> = files
            .iter()
            .map(|f| format!("{cryptex}/{}", f.path))
            .collect();
        for extra in found.iter().filter(|f| !listed.contains(*f)) {
            problems.push(format!("{extra}: not listed in the manifest"));
        }
        if dir.is_some() {
            for f in files {
                jobs.push(Job {
                    label: format!("{cryptex}/{}", f.path),
                    dir: dirs.len(),
                    entry: f.clone(),
                });
            }
        }
        dirs.push(dir);
    }
    let total: u64 = jobs.iter().map(|j| j.entry.size).sum();
    // Many files: two readers (each with its own hasher) share them, as staging does.
    let parts = if jobs.len() >= stream::PARALLEL_MIN_FILES {
        2
    } else {
        1
    };
    let results = stream::run_parts(progress, "verifying", total, parts, |part, feeder| {
        hash_share(&dirs, &jobs, part, parts, feeder)
    })?;
    let mut files = 0;
    let mut bytes = 0;
    for (share, digests) in results {
        problems.extend(share.problems);
        for ((label, expected, size), actual) in share.hashed.iter().zip(&digests) {
            files += 1;
            bytes += size;
            if expected != actual {
                problems.push(format!(
                    "{label}: SHA-256 {actual} differs from the manifest's {expected}"
                ));
            }
        }
    }
    let outcome = VerifyOutcome {
        version: snapshot.version_label(),
        files,
        bytes,
        problems,
    };
    let error = (!outcome.problems.is_empty()).then(|| {
        Error::damaged(format!(
            "verify found {} problem{} in the active content: {}",
            outcome.problems.len(),
            if outcome.problems.len() == 1 { "" } else { "s" },
            outcome.problems.join("; ")
        ))
    });
    Ok((outcome, error))
}

/// What one reading thread of `verify` found: the files it fed (label, expected digest, size),
/// in feeding order, and the problems it saw before hashing.
struct Share {
    hashed: Vec<(String, Digest, u64)>,
    problems: Vec<String>,
}

/// One file to hash: its label, the index of its cryptex directory handle, its manifest entry.
struct Job {
    label: String,
    dir: usize,
    entry: FileEntry,
}

/// Feeds the jobs whose index is `part` modulo `parts`.
fn hash_share(
    dirs: &[Option<Dir>],
    jobs: &[Job],
    part: usize,
    parts: usize,
    feeder: &mut stream::Feeder<'_>,
) -> Result<Share> {
    let mut share = Share {
        hashed: Vec::new(),
        problems: Vec::new(),
    };
    for Job { label, dir, entry } in jobs.iter().skip(part).step_by(parts) {
        let Some(dir) = &dirs[*dir] else { continue };
        let file = match dir.open(&entry.path) {
            Ok(f) => f.into_std(),
            Err(e) => {
                share.problems.push(format!(
                    "{label}: {}",
                    if e.kind() == std::io::ErrorKind::NotFound {
                        "missing".to_owned()
                    } else {
                        e.to_string()
                    }
                ));
                continue;
            }
        };
        let meta = file.metadata().ctx("reading", label)?;
        if !meta.is_file() {
            share.problems.push(format!("{label}: not a regular file"));
            continue;
        }
        if meta.len() != entry.size {
            share.problems.push(format!(
                "{label}: size {} differs from the manifest's {}",
                meta.len(),
                entry.size
            ));
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode != entry.mode {
            share.problems.push(format!(
                "{label}: mode {mode:o} differs from the manifest's {:o}",
                entry.mode
            ));
        }
        let mut reader = &file;
        feeder.file(label, entry.size, None, &mut reader, None, false)?;
        share.hashed.push((label.clone(), entry.sha256, entry.size));
    }
    Ok(share)
}
