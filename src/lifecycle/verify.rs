//! `bsi verify`: checks invariants I1 and I2 and re-hashes the active content. Each cryptex is
//! checked against the generation that supplies it (responses are cumulative per cryptex): a
//! response's own `Info.plist`, or the base generation's `Cryptexes.plist`. The links must point
//! where the layout says and resolve, inside the root, to the supplying trees; every file there
//! must be listed and match its size, mode and digest; `current/SystemVersion.plist` must agree
//! with the manifest.
//!
//! Every problem is listed once, with the kind of damage it is ([`Damage`]), which decides the
//! command that fixes it: `bsi repair` for what bsi made itself (links, records, the base
//! content), `bsi repair --from BUNDLE` for a response's content. Any problem exits 8.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cap_std::fs::Dir;

use crate::bundle::digest::Digest;
use crate::bundle::manifest::{Cryptexes, FileEntry, Manifest};
use crate::bundle::stream;
use crate::device::layout::{BASE_MANIFEST, GEN_MANIFEST};
use crate::device::{Cryptex, Device, GenName, Layout, origins};
use crate::error::{IoContext, Repair};
use crate::progress::Progress;
use crate::{Error, Result};

use super::recover::wrong_links;

/// What a problem damages, which decides the command that fixes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Damage {
    /// Links, records, leftovers: `bsi repair` puts them right.
    Structure,
    /// The base generation's content, which bsi made and can make again: `bsi repair`.
    Base,
    /// A response generation's content: only its bundle can restore it.
    Response {
        /// The response's supplemental build (the generation's name).
        build: String,
    },
}

/// One problem `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// What it damages.
    pub damage: Damage,
    /// What is wrong, naming the path.
    pub message: String,
}

/// What `verify` checked and found.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct VerifyOutcome {
    /// The version whose content was checked.
    pub version: String,
    /// Files hashed.
    pub files: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// Every problem found (empty when all holds).
    pub problems: Vec<String>,
    /// The command that fixes them, when there are any.
    pub fix: Option<String>,
    /// The problems with their kinds, for `repair`.
    #[serde(skip)]
    pub found: Vec<Problem>,
}

impl Damage {
    fn of(generation: &GenName) -> Self {
        match generation {
            GenName::Base(_) => Damage::Base,
            GenName::Response(build) => Damage::Response {
                build: build.to_string(),
            },
        }
    }
}

/// The repair that fixes `problems`: a response's damage needs its bundle (the first such
/// response, with the bundle it came from when the device recorded it); anything else needs
/// `bsi repair`.
#[must_use]
pub(crate) fn fix_for(device: &Device, problems: &[Problem]) -> Option<Repair> {
    let first = problems.iter().map(|p| &p.damage).min()?;
    let response = problems.iter().find_map(|p| match &p.damage {
        Damage::Response { build } => Some(build.clone()),
        _ => None,
    });
    Some(match (first, response) {
        (_, Some(build)) => {
            let origin = origins::of(device.root(), &build);
            Repair::From {
                version: origin.as_ref().map(|o| o.version.clone()),
                build,
                bundle: origin.map(|o| o.bundle),
            }
        }
        _ => Repair::Repair,
    })
}

fn parse_listing(
    device: &Device,
    generation: &GenName,
    cryptex: Cryptex,
) -> Result<Vec<FileEntry>> {
    let root = device.root();
    let dir = device.generation_path(generation);
    let rel = match generation {
        GenName::Base(_) => dir.join(BASE_MANIFEST),
        GenName::Response(_) => dir.join(GEN_MANIFEST),
    };
    let shown = root.show(&rel);
    let bytes = match root.read_manifest(&rel) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::damaged(format!("{} is missing", shown.display())));
        }
        Err(e) => return Err(Error::io("reading", shown, e)),
    };
    let listing = match generation {
        GenName::Response(_) => {
            Manifest::parse(&bytes)
                .map_err(|e| Error::damaged(format!("{}: {e}", shown.display())))?
                .cryptexes
        }
        GenName::Base(_) => Cryptexes::parse(&bytes)
            .map_err(|e| Error::damaged(format!("{}: {e}", shown.display())))?,
    };
    listing.0.get(&cryptex).cloned().ok_or_else(|| {
        Error::damaged(format!(
            "{} lists no {cryptex} content, yet the generation supplies it",
            shown.display()
        ))
    })
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

/// Per cryptex, the generation supplying it and that generation's listing of it.
type Listings = BTreeMap<Cryptex, (GenName, Vec<FileEntry>)>;

/// Checks the structure of the active state and returns, per cryptex, the supplying generation
/// and its listing; every problem found on the way is pushed to `problems`.
fn active_listings(device: &Device, problems: &mut Vec<Problem>) -> Option<(String, Listings)> {
    let structure = |message: String| Problem {
        damage: Damage::Structure,
        message,
    };
    let current = match device.current() {
        Ok(c) => c,
        Err(e) => {
            problems.push(structure(e.to_string()));
            return None;
        }
    };
    let base = match device.base() {
        Ok(b) => b,
        Err(e) => {
            problems.push(structure(e.to_string()));
            return None;
        }
    };
    let root = device.root();
    let missing = |g: &GenName, what: &str| Problem {
        damage: Damage::of(g),
        message: format!(
            "{} ({what}) is missing",
            root.show(device.generation_path(g)).display()
        ),
    };
    if !root
        .exists_nofollow(device.generation_path(&current))
        .unwrap_or(false)
    {
        problems.push(missing(&current, "the active generation"));
        return None;
    }
    if let GenName::Base(build) = &current
        && *build != base.build
    {
        problems.push(structure(format!(
            "cryptex1/current names the base generation of {build}, but the base OS is {}",
            base.build
        )));
        return None;
    }
    let label = match device.snapshot() {
        Ok(s) => s.version_label(),
        Err(_) => base.version.to_string(),
    };
    let sources = match device.generation_sources(&current) {
        Ok(s) => s,
        Err(e) => {
            problems.push(Problem {
                damage: Damage::of(&current),
                message: e.to_string(),
            });
            return None;
        }
    };
    if let GenName::Response(build) = &current {
        check_manifest_agrees(device, &current, build, problems);
    }
    let mut out = BTreeMap::new();
    for (cryptex, supplier) in sources {
        if !root
            .exists_nofollow(device.generation_path(&supplier))
            .unwrap_or(false)
        {
            problems.push(missing(
                &supplier,
                &format!("it supplies the {cryptex} cryptex"),
            ));
            continue;
        }
        if let GenName::Base(build) = &supplier
            && *build != base.build
        {
            problems.push(Problem {
                damage: Damage::of(&current),
                message: format!(
                    "the {cryptex} cryptex links to the base generation of {build}, but the base OS is {}",
                    base.build
                ),
            });
            continue;
        }
        match parse_listing(device, &supplier, cryptex) {
            Ok(files) => {
                out.insert(cryptex, (supplier, files));
            }
            Err(e) => problems.push(Problem {
                damage: Damage::of(&supplier),
                message: e.to_string(),
            }),
        }
    }
    Some((label, out))
}

/// `current/SystemVersion.plist` and the response's manifest must name the same response.
fn check_manifest_agrees(
    device: &Device,
    current: &GenName,
    build: &crate::version::Build,
    problems: &mut Vec<Problem>,
) {
    let root = device.root();
    let dir = device.generation_path(current);
    let damage = Damage::of(current);
    let sv = match device.generation_system_version(current) {
        Ok(sv) => sv,
        Err(e) => {
            problems.push(Problem {
                damage,
                message: e.to_string(),
            });
            return;
        }
    };
    let shown = root.show(dir.join(GEN_MANIFEST));
    let bytes = match root.read_manifest(dir.join(GEN_MANIFEST)) {
        Ok(bytes) => bytes,
        Err(e) => {
            let message = if e.kind() == std::io::ErrorKind::NotFound {
                format!("{} is missing", shown.display())
            } else {
                format!("reading {}: {e}", shown.display())
            };
            problems.push(Problem { damage, message });
            return;
        }
    };
    match Manifest::parse(&bytes) {
        Ok(m) if m.build == *build && Some(m.extra) == sv.extra && m.build == sv.build => {}
        Ok(m) => problems.push(Problem {
            damage,
            message: format!(
                "current/SystemVersion.plist says {} {} ({}), but the manifest says {} ({})",
                sv.version,
                sv.extra.map(|e| e.to_string()).unwrap_or_default(),
                sv.build,
                m.response_version(),
                m.build
            ),
        }),
        Err(e) => problems.push(Problem {
            damage,
            message: format!("{}: {e}", root.show(dir.join(GEN_MANIFEST)).display()),
        }),
    }
}

/// Verifies the active content. Returns what was found and, when anything is wrong, the error
/// to exit with (its hint names the command that fixes it).
pub(crate) fn verify(
    device: &Device,
    progress: &dyn Progress,
) -> Result<(VerifyOutcome, Option<Error>)> {
    let root = device.root();
    let mut found: Vec<Problem> = Vec::new();
    for (link, target) in wrong_links(device) {
        let actual = root.read_link_opt(&link).ok().flatten();
        found.push(Problem {
            damage: Damage::Structure,
            message: format!(
                "{} points at {}, not {}",
                link.display(),
                actual.map_or_else(
                    || "nothing (missing or not a symlink)".to_owned(),
                    |a| a.display().to_string()
                ),
                target.display()
            ),
        });
    }
    if device.operation().is_none()
        && let Some(j) = super::journal::read(device)?
    {
        found.push(Problem {
            damage: Damage::Structure,
            message: format!(
                "an interrupted {} (pid {}) is waiting to be recovered",
                j.op, j.pid
            ),
        });
    }
    found.extend(
        super::recover::record_problems(device)
            .into_iter()
            .map(|message| Problem {
                damage: Damage::Structure,
                message,
            }),
    );
    let (version, listings) = active_listings(device, &mut found).unwrap_or_default();
    // I1: each System/Cryptexes link resolves, inside the root, to the supplying tree.
    for (cryptex, (supplier, _)) in &listings {
        let link = Layout::system_link(*cryptex);
        let expected = device.generation_path(supplier).join(cryptex.as_str());
        match (
            root.dir().canonicalize(&link),
            root.dir().canonicalize(&expected),
        ) {
            (Ok(actual), Ok(want)) if actual == want => {}
            (Ok(actual), Ok(want)) => found.push(Problem {
                damage: Damage::Structure,
                message: format!(
                    "{} resolves to {}, not {}",
                    link.display(),
                    actual.display(),
                    want.display()
                ),
            }),
            (Err(e), _) => found.push(Problem {
                damage: Damage::Structure,
                message: format!("{} does not resolve inside the device: {e}", link.display()),
            }),
            (_, Err(e)) => found.push(Problem {
                damage: Damage::of(supplier),
                message: format!("{} is missing: {e}", expected.display()),
            }),
        }
    }
    // The trees to hash: the active ones, and the base generation's, which a removal returns
    // to (bsi keeps it whatever is active).
    let mut trees: Vec<(Cryptex, GenName, Vec<FileEntry>)> = listings
        .iter()
        .map(|(c, (g, files))| (*c, g.clone(), files.clone()))
        .collect();
    if let Ok(base) = device.base() {
        let base_gen = GenName::Base(base.build);
        if root
            .exists_nofollow(device.generation_path(&base_gen))
            .unwrap_or(false)
        {
            for cryptex in Cryptex::ALL {
                if trees
                    .iter()
                    .any(|(c, g, _)| *c == cryptex && *g == base_gen)
                {
                    continue;
                }
                match parse_listing(device, &base_gen, cryptex) {
                    Ok(files) => trees.push((cryptex, base_gen.clone(), files)),
                    Err(e) => found.push(Problem {
                        damage: Damage::Base,
                        message: e.to_string(),
                    }),
                }
            }
        } else {
            found.push(Problem {
                damage: Damage::Base,
                message: format!(
                    "{} (the base OS content) is missing",
                    root.show(device.generation_path(&base_gen)).display()
                ),
            });
        }
    }
    // Each cryptex directory is opened once; files are opened beneath its handle, which saves a
    // walk of the whole path from the root for every file.
    let mut dirs: Vec<Option<Dir>> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut damages: Vec<Damage> = Vec::new();
    for (cryptex, supplier, files) in &trees {
        let damage = Damage::of(supplier);
        let dir_rel = device.generation_path(supplier).join(cryptex.as_str());
        let mut seen = Vec::new();
        let mut odd = Vec::new();
        let dir = match root.dir().open_dir(&dir_rel) {
            Ok(dir) => {
                walk(&dir, cryptex.as_str(), &mut seen, &mut odd);
                Some(dir)
            }
            Err(e) => {
                odd.push(format!("{}: {e}", dir_rel.display()));
                None
            }
        };
        let listed: std::collections::HashSet<String> = files
            .iter()
            .map(|f| format!("{cryptex}/{}", f.path))
            .collect();
        let label = |rel: &str| match supplier {
            GenName::Base(_) if !listings.contains_key(cryptex) => format!("base {rel}"),
            _ => rel.to_owned(),
        };
        for extra in seen.iter().filter(|f| !listed.contains(*f)) {
            odd.push(format!("{extra}: not listed in the manifest"));
        }
        found.extend(odd.into_iter().map(|message| Problem {
            damage: damage.clone(),
            message: label(&message),
        }));
        if dir.is_some() {
            for f in files {
                jobs.push(Job {
                    label: label(&format!("{cryptex}/{}", f.path)),
                    dir: dirs.len(),
                    entry: f.clone(),
                });
            }
        }
        dirs.push(dir);
        damages.push(damage);
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
        found.extend(share.problems.into_iter().map(|(dir, message)| Problem {
            damage: damages[dir].clone(),
            message,
        }));
        for ((label, dir, expected, size), actual) in share.hashed.iter().zip(&digests) {
            files += 1;
            bytes += size;
            if expected != actual {
                found.push(Problem {
                    damage: damages[*dir].clone(),
                    message: format!(
                        "{label}: SHA-256 {actual} differs from the manifest's {expected}"
                    ),
                });
            }
        }
    }
    let fix = fix_for(device, &found);
    let outcome = VerifyOutcome {
        version,
        files,
        bytes,
        problems: found.iter().map(|p| p.message.clone()).collect(),
        fix: fix.as_ref().map(Repair::command),
        found,
    };
    let error = fix.map(|fix| Error::VerifyFailed {
        count: outcome.problems.len(),
        fix,
    });
    Ok((outcome, error))
}

/// What one reading thread of `verify` found: the files it fed (label, directory index,
/// expected digest, size), in feeding order, and the problems it saw before hashing (with the
/// index of the directory they belong to).
struct Share {
    hashed: Vec<(String, usize, Digest, u64)>,
    problems: Vec<(usize, String)>,
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
        let Some(handle) = &dirs[*dir] else { continue };
        let file = match open_listed(handle, Path::new(&entry.path)) {
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
        if meta.len() != entry.size {
            share.problems.push((
                *dir,
                format!(
                    "{label}: size {} differs from the manifest's {}",
                    meta.len(),
                    entry.size
                ),
            ));
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode != entry.mode {
            share.problems.push((
                *dir,
                format!(
                    "{label}: mode {mode:o} differs from the manifest's {:o}",
                    entry.mode
                ),
            ));
        }
        let mut reader = &file;
        feeder.file(label, entry.size, None, &mut reader, None, false)?;
        share
            .hashed
            .push((label.clone(), *dir, entry.sha256, entry.size));
    }
    Ok(share)
}

/// Opens a listed file beneath its cryptex directory without following any symlink on the way
/// (a planted link is damage, never a path to somewhere else), and without blocking on a FIFO.
fn open_listed(dir: &Dir, rel: &Path) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match rustix::fs::openat2(
        dir,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    ) {
        Ok(fd) => Ok(std::fs::File::from(fd)),
        // Kernels before 5.6 have no openat2: cap-std's checked walk stays beneath the handle.
        Err(rustix::io::Errno::NOSYS) => {
            use cap_std::fs::OpenOptionsExt;
            let mut options = cap_std::fs::OpenOptions::new();
            options.read(true).custom_flags(
                i32::try_from((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits()).unwrap_or(0),
            );
            Ok(dir.open_with(rel, &options)?.into_std())
        }
        Err(e) => Err(e.into()),
    }
}
