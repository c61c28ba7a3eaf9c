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

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use cap_std::fs::Dir;

use crate::bundle::manifest::{Cryptexes, FileEntry, Manifest};
use crate::bundle::stream;
use crate::device::layout::{BASE_MANIFEST, GEN_MANIFEST};
use crate::device::{Cryptex, Device, GenName, Layout, origins};
use crate::error::Repair;
use crate::progress::Progress;
use crate::{Error, Result};

use super::checks::{self, Damage};
use super::journal::BaseChange;
use super::read_ahead::{ReadAhead, SeenTree};
use super::rehash::{Job, hash_share};
use super::tree::{Entry, walk_tree};
use crate::human::{Human, Text};

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
    /// An interrupted operation the next changing command (or `bsi repair`) recovers: not
    /// damage. Its leftovers are not checked; the committed state is.
    pub recovery_pending: Option<String>,
    /// The command that fixes them, when there are any.
    pub fix: Option<String>,
    /// The problems with their kinds, for `repair`.
    #[serde(skip)]
    pub found: Vec<Problem>,
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
        _ => Repair::Plain,
    })
}

/// A generation's manifest as parsed, or why it could not be.
enum Parsed {
    Response(Box<Manifest>),
    Base(Cryptexes),
}

/// The manifests of the generations `verify` looks at, each read and parsed once (a response
/// supplying both cryptexes, and the check that its manifest names it, share one parse); each
/// cryptex's listing is taken out of it, not copied. Why a manifest cannot be used is reported
/// once: the first listing asked of it takes the message.
#[derive(Default)]
struct Manifests(Vec<(GenName, Result<Parsed, Option<String>>)>);

impl Manifests {
    fn get(
        &mut self,
        device: &Device,
        generation: &GenName,
    ) -> &mut Result<Parsed, Option<String>> {
        let at = self
            .0
            .iter()
            .position(|(g, _)| g == generation)
            .unwrap_or_else(|| {
                let parsed = read_parsed(device, generation).map_err(Some);
                self.0.push((generation.clone(), parsed));
                self.0.len() - 1
            });
        &mut self.0[at].1
    }

    /// Which response `generation`'s manifest is for, if it has been parsed whole.
    fn identity(&self, generation: &GenName) -> Option<crate::bundle::manifest::Identity> {
        self.0.iter().find_map(|(g, parsed)| match parsed {
            Ok(Parsed::Response(m)) if g == generation => Some(m.identity()),
            _ => None,
        })
    }

    /// The listing of `cryptex` in `generation`'s manifest, or the problem to report (`None`:
    /// already reported).
    fn take_listing(
        &mut self,
        device: &Device,
        generation: &GenName,
        cryptex: Cryptex,
    ) -> std::result::Result<Vec<FileEntry>, Option<String>> {
        let shown = device.root().show(manifest_rel(device, generation));
        let listing = match self.get(device, generation) {
            Ok(Parsed::Response(m)) => &mut m.cryptexes,
            Ok(Parsed::Base(c)) => c,
            Err(e) => return Err(e.take()),
        };
        listing.0.remove(&cryptex).ok_or_else(|| {
            Some(format!(
                "{} lists no {cryptex} content, yet the generation supplies it",
                shown.display()
            ))
        })
    }
}

fn manifest_rel(device: &Device, generation: &GenName) -> std::path::PathBuf {
    let dir = device.generation_path(generation);
    match generation {
        GenName::Base(_) => dir.join(BASE_MANIFEST),
        GenName::Response(_) => dir.join(GEN_MANIFEST),
    }
}

fn read_parsed(device: &Device, generation: &GenName) -> std::result::Result<Parsed, String> {
    let root = device.root();
    let rel = manifest_rel(device, generation);
    let shown = root.show(&rel);
    let unreadable = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{} is missing", shown.display())
        } else {
            format!("reading {}: {e}", shown.display())
        }
    };
    let parsed = match generation {
        // A response's manifest is read as a stream: 100,000 files make 30 MB of XML, which a
        // reader need not hold.
        GenName::Response(_) => {
            let file = root.open_manifest(&rel).map_err(unreadable)?;
            Manifest::parse_in_one_pass(std::io::BufReader::with_capacity(1 << 18, file))
                .map(|m| Parsed::Response(Box::new(m)))
        }
        GenName::Base(_) => {
            let bytes = root.read_manifest(&rel).map_err(unreadable)?;
            Cryptexes::parse(&bytes).map(Parsed::Base)
        }
    };
    parsed.map_err(|e| format!("{}: {e}", shown.display()))
}

fn joined(cryptex: Cryptex, rel: &str) -> String {
    if rel.is_empty() {
        cryptex.as_str().to_owned()
    } else {
        format!("{cryptex}/{rel}")
    }
}

/// Per cryptex, the generation supplying it and that generation's listing of it.
type Listings = BTreeMap<Cryptex, (GenName, Vec<FileEntry>)>;

/// Per cryptex, the generation supplying `current` and its listing; what keeps a listing from
/// being read is pushed to `problems` (the structure itself, `checks` reports).
fn active_listings(
    device: &Device,
    current: &GenName,
    base: &crate::version::Base,
    manifests: &mut Manifests,
    problems: &mut Vec<Problem>,
) -> Listings {
    let root = device.root();
    let mut out = BTreeMap::new();
    if !root
        .exists_nofollow(device.generation_path(current))
        .unwrap_or(false)
    {
        return out;
    }
    let Ok(sources) = device.generation_sources(current) else {
        return out;
    };
    for (cryptex, supplier) in sources {
        if !root
            .exists_nofollow(device.generation_path(&supplier))
            .unwrap_or(false)
        {
            problems.push(Problem {
                damage: Damage::of(&supplier),
                message: format!(
                    "{} (it supplies the {cryptex} cryptex) is missing",
                    root.show(device.generation_path(&supplier)).display()
                ),
            });
            continue;
        }
        if let GenName::Base(build) = &supplier
            && *build != base.build
        {
            problems.push(Problem {
                damage: Damage::of(current),
                message: format!(
                    "the {cryptex} cryptex links to the base generation of {build}, but the base OS is {}",
                    base.build
                ),
            });
            continue;
        }
        match manifests.take_listing(device, &supplier, cryptex) {
            Ok(files) => {
                out.insert(cryptex, (supplier, files));
            }
            Err(Some(message)) => problems.push(Problem {
                damage: Damage::of(&supplier),
                message,
            }),
            Err(None) => {}
        }
    }
    out
}

/// Verifies the active content. Returns what was found and, when anything is wrong, the error
/// to exit with (its hint names the command that fixes it).
pub(crate) fn verify(
    device: &Device,
    progress: &dyn Progress,
) -> Result<(VerifyOutcome, Option<Error>)> {
    let root = device.root();
    let (committed, recovery_pending) = pending_recovery(device)?;
    // The manifest is read on this thread while another reads the active trees ahead.
    let ahead = ReadAhead::start(root.dir(), active_trees(device));
    let mut manifests = Manifests::default();
    let (state, version) = checked_state(device, committed.as_ref());
    let mut unlisted = Vec::new();
    let listings = match &state {
        Some((current, base)) => {
            active_listings(device, current, base, &mut manifests, &mut unlisted)
        }
        None => Listings::new(),
    };
    // The structure checks compare the active response's manifest, parsed just now, with its
    // SystemVersion.plist: they are handed what it says rather than scanning it again.
    let known = |g: &GenName| manifests.identity(g);
    let mut found: Vec<Problem> = checks::findings_knowing(device, committed.is_some(), &known)
        .into_iter()
        .map(|f| Problem {
            damage: f.damage,
            message: f.message,
        })
        .chain(unlisted)
        .collect();
    check_links(device, &listings, &mut found);
    let active: Vec<Cryptex> = listings.keys().copied().collect();
    let trees = trees_to_hash(device, listings, state.as_ref(), &mut manifests, &mut found);
    crate::faults::pause_point!("verify.read_ahead");
    let mut seen = ahead.finish();
    let mut seen_in: Vec<Option<SeenTree>> = Vec::new();
    // Each cryptex directory is opened once; files are opened beneath its handle, which saves a
    // walk of the whole path from the root for every file.
    let mut dirs: Vec<Option<Dir>> = Vec::new();
    let mut jobs: Vec<Job<'_>> = Vec::new();
    let mut damages: Vec<Damage> = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    for (cryptex, supplier, files) in &trees {
        let damage = Damage::of(supplier);
        // The base content a removal returns to, where it is not what is active, is named so.
        let base = if matches!(supplier, GenName::Base(_)) && !active.contains(cryptex) {
            "base "
        } else {
            ""
        };
        let dir_rel = device.generation_path(supplier).join(cryptex.as_str());
        let (dir, odd) = open_tree(device, &dir_rel, *cryptex, files);
        found.extend(odd.into_iter().map(|message| Problem {
            damage: damage.clone(),
            message: format!("{base}{message}"),
        }));
        if dir.is_some() {
            let index = dirs.len();
            jobs.extend(files.iter().map(|entry| Job { dir: index, entry }));
        }
        seen_in.push(seen.remove(&dir_rel));
        dirs.push(dir);
        damages.push(damage);
        prefixes.push(format!("{base}{cryptex}/"));
    }
    let total: u64 = jobs.iter().map(|j| j.entry.size).sum();
    // Many files: two readers (each with its own hasher) share them, as staging does.
    let parts = if jobs.len() >= stream::PARALLEL_MIN_FILES {
        2
    } else {
        1
    };
    let results = stream::run_parts(progress, "verifying", total, parts, |part, feeder| {
        hash_share(&dirs, &seen_in, &prefixes, &jobs, part, parts, feeder)
    })?;
    let mut files = 0;
    let mut bytes = 0;
    for (share, digests) in results {
        found.extend(share.problems.into_iter().map(|(dir, message)| Problem {
            damage: damages[dir].clone(),
            message,
        }));
        for (&index, actual) in share.hashed.iter().zip(&digests) {
            let Job { dir, entry } = &jobs[index];
            files += 1;
            bytes += entry.size;
            if entry.sha256 != *actual {
                found.push(Problem {
                    damage: damages[*dir].clone(),
                    message: format!(
                        "{}{}: SHA-256 {actual} differs from the manifest's {}",
                        prefixes[*dir], entry.path, entry.sha256
                    ),
                });
            }
        }
    }
    Ok(outcome(
        device,
        version,
        files,
        bytes,
        recovery_pending,
        found,
    ))
}

/// The outcome of a verify from what it found, and the error (exit 8) with its fix if it found
/// anything. A problem both the structure checks and the content checks meet is listed once.
fn outcome(
    device: &Device,
    version: String,
    files: usize,
    bytes: u64,
    recovery_pending: Option<String>,
    mut found: Vec<Problem>,
) -> (VerifyOutcome, Option<Error>) {
    let mut seen = HashSet::new();
    found.retain(|p| seen.insert(p.message.clone()));
    let fix = fix_for(device, &found);
    let outcome = VerifyOutcome {
        version,
        files,
        bytes,
        problems: found.iter().map(|p| p.message.clone()).collect(),
        recovery_pending,
        fix: fix.as_ref().map(Repair::command),
        found,
    };
    let error = fix.map(|fix| Error::VerifyFailed {
        count: outcome.problems.len(),
        fix,
    });
    (outcome, error)
}

/// An operation cut short, waiting for recovery: the base change it committed, if any, and what
/// recovery will do, in words. (A changer at work holds the lock and keeps its journal; only
/// one cut short is pending.)
fn pending_recovery(device: &Device) -> Result<(Option<BaseChange>, Option<String>)> {
    let journal = match device.operation() {
        None => super::journal::read(device)?,
        Some(_) => None,
    };
    let committed = journal.as_ref().and_then(|j| j.commit.clone());
    let note = journal.map(|j| {
        format!(
            "{} is waiting to be recovered by the next changing command or `bsi repair`: {}",
            super::journal::interrupted(&j.op, Some(j.pid), None),
            if j.commit.is_some() {
                "it will complete the committed update; the new base's content is checked"
            } else {
                "it will remove what the operation left; the committed state is checked"
            }
        )
    });
    Ok((committed, note))
}

/// What is checked: the committed state (after an update cut short past its commit, the new
/// base, which recovery only has to switch to), as its current generation and base, and its
/// version in words.
fn checked_state(
    device: &Device,
    committed: Option<&BaseChange>,
) -> (Option<(GenName, crate::version::Base)>, String) {
    let state = match committed {
        Some(c) => c.version.parse().ok().zip(c.build.parse().ok()).map(
            |(version, build): (crate::version::OsVersion, crate::version::Build)| {
                (
                    GenName::Base(build.clone()),
                    crate::version::Base { version, build },
                )
            },
        ),
        None => device.current().ok().zip(device.base().ok()),
    };
    let version = match (committed, device.snapshot()) {
        (Some(c), _) => c.version.clone(),
        (None, Ok(s)) => s.version_label(),
        (None, Err(_)) => state
            .as_ref()
            .map(|(_, b)| b.version.to_string())
            .unwrap_or_default(),
    };
    (state, version)
}

/// I1: each System/Cryptexes link resolves, inside the root, to the supplying tree.
fn check_links(device: &Device, listings: &Listings, found: &mut Vec<Problem>) {
    let root = device.root();
    for (cryptex, (supplier, _)) in listings {
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
}

/// The trees to hash: the active ones, and the base generation's, which a removal returns to
/// (bsi keeps it whatever is active).
fn trees_to_hash(
    device: &Device,
    listings: Listings,
    state: Option<&(GenName, crate::version::Base)>,
    manifests: &mut Manifests,
    found: &mut Vec<Problem>,
) -> Vec<(Cryptex, GenName, Vec<FileEntry>)> {
    let mut trees: Vec<(Cryptex, GenName, Vec<FileEntry>)> = listings
        .into_iter()
        .map(|(c, (g, files))| (c, g, files))
        .collect();
    let Some((_, base)) = state else {
        return trees;
    };
    let base_gen = GenName::Base(base.build.clone());
    if !device
        .root()
        .exists_nofollow(device.generation_path(&base_gen))
        .unwrap_or(false)
    {
        return trees;
    }
    for cryptex in Cryptex::ALL {
        if trees
            .iter()
            .any(|(c, g, _)| *c == cryptex && *g == base_gen)
        {
            continue;
        }
        match manifests.take_listing(device, &base_gen, cryptex) {
            Ok(files) => trees.push((cryptex, base_gen.clone(), files)),
            Err(Some(message)) => found.push(Problem {
                damage: Damage::Base,
                message,
            }),
            Err(None) => {}
        }
    }
    trees
}

/// Opens a tree to hash and walks it: every regular file the manifest does not list is an
/// extra, every other kind of entry a problem (listed first).
fn open_tree(
    device: &Device,
    dir_rel: &Path,
    cryptex: Cryptex,
    files: &[FileEntry],
) -> (Option<Dir>, Vec<String>) {
    let mut odd = Vec::new();
    let mut extras = Vec::new();
    let dir = match device.root().dir().open_dir(dir_rel) {
        Ok(dir) => {
            let listed: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
            walk_tree(&dir, &mut String::new(), &mut |rel, entry| {
                let path = joined(cryptex, rel);
                match entry {
                    Entry::File(..) if listed.contains(rel) => {}
                    Entry::File(..) => {
                        extras.push(format!("{path}: not listed in the manifest"));
                    }
                    Entry::Symlink => odd.push(format!("{path}: unexpected symlink")),
                    Entry::Special => odd.push(format!("{path}: unexpected special file")),
                    Entry::Unreadable(why) => odd.push(format!("{path}: {why}")),
                }
                true
            });
            Some(dir)
        }
        Err(e) => {
            odd.push(format!("{}: {e}", dir_rel.display()));
            None
        }
    };
    odd.extend(extras);
    (dir, odd)
}

/// The trees of the active generation (each cryptex's directory in the generation that supplies
/// it), as far as the device's links say; the read-ahead's list, so nothing is reported here.
fn active_trees(device: &Device) -> Vec<std::path::PathBuf> {
    let Ok(current) = device.current() else {
        return Vec::new();
    };
    device
        .generation_sources(&current)
        .map(|sources| {
            sources
                .iter()
                .map(|(cryptex, supplier)| device.generation_path(supplier).join(cryptex.as_str()))
                .collect()
        })
        .unwrap_or_default()
}

impl Human for VerifyOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        if let Some(pending) = &self.recovery_pending {
            out.line(format!("note: {pending}"));
        }
        if self.problems.is_empty() {
            out.line(format!(
                "{}: {} files, {} bytes verified (the active content and the base content a removal returns to); links, records and SystemVersion.plist agree",
                self.version, self.files, self.bytes
            ));
        }
        for p in &self.problems {
            out.line(format!("problem: {p}"));
        }
    }
}
