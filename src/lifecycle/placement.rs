//! Where a new generation's inodes go on the filesystem. On ext4 without a journal (as on these
//! machines' work disks), the inode allocator avoids inodes freed in the last minutes by scanning
//! past them, from the start of the block group, for every new inode, and it puts a directory,
//! and the files under it, in the flex group of its parent. A device whose previous content was
//! just removed (garbage collection, or a fresh device replacing an old one) paid that scan for
//! each of its files, and the scan grows as the group's other free inodes are used up: 20,000
//! files took 8-14 s instead of 0.6 s, 100,000 files 54 s (docs/performance.md, "On disk").
//!
//! This module owns the two answers: [`place_cryptex_dirs`] chooses, before the payload streams,
//! a flex group whose creations are fast for each cryptex directory; and a [`Spreader`] watches
//! the creations as the payload streams and, when they slow down (the groups after the first
//! one can hold freed inodes the first did not), creates the next files in an *anchor*
//! directory that ext4 placed elsewhere and renames each into its place: a rename moves the
//! name, not the inode. A filesystem without `FS_TOPDIR_FL` (tmpfs, XFS) refuses the flag and
//! gets plain directories and no spreading, and so does ext4 with a journal, where the scan does
//! not happen and placement was measured to earn nothing; nothing else depends on any of this.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cap_std::fs::{Dir, File, OpenOptions};

/// Payloads with fewer files than this are not worth probing or spreading for.
const PROBE_FROM: usize = 2_000;
/// Directories tried per cryptex at most.
const CANDIDATES: usize = 8;
/// Files created to probe a candidate; the mean of the last quarter is its score.
const PROBE_FILES: usize = 64;
/// A score under this shows a group without freed inodes in the way (a clean create takes
/// 10-15 us on these machines; in a group holding thousands of just-freed inodes the creations
/// take 50 us and on to milliseconds).
const FAST_CREATE: Duration = Duration::from_micros(20);
/// Creations a [`Spreader`] averages before it judges a group.
const WINDOW: u32 = 64;
/// A window whose mean creation is this many times the clean score moves on to a new anchor.
/// While the payload streams (two threads, data written between creations) a creation in a clean
/// group takes 50-80 us on these machines, 4-7 times the probe's score; in a group whose freed
/// inodes are in the way, from 100 us to milliseconds, and rising as the group fills.
const SLOW_FACTOR: u32 = 10;
/// Anchors one [`Spreader`] makes at most; after the last it stays where it is.
const MAX_ANCHORS: usize = 16;

/// What [`place_cryptex_dirs`] made.
pub(crate) struct Placed {
    /// The cryptex directories, made.
    pub(crate) made: HashSet<PathBuf>,
    /// Probe directories to remove once the payload is in (removing them first would put their
    /// freed inodes in the payload's way).
    pub(crate) probes: Vec<PathBuf>,
    /// Set when the payload is spread: the directory anchors are made in (marked a top of a
    /// hierarchy, so ext4 places each anchor afresh), and the clean creation time to judge by.
    spread: Option<(PathBuf, Duration)>,
}

impl Placed {
    /// A [`Spreader`] for one staging thread.
    pub(crate) fn spreader<'a>(&self, dir: &'a Dir) -> Spreader<'a> {
        Spreader {
            dir,
            spread: self.spread.clone(),
            window: Duration::ZERO,
            count: 0,
            anchor: None,
            anchors: 0,
            next: 0,
        }
    }

    /// Removes what placement left in the staging directory once the payload is in: the probe
    /// files and the (empty) anchors.
    pub(crate) fn clean_up(&self, dir: &Dir) -> io::Result<()> {
        for path in self.probes.iter().chain(self.spread.iter().map(|(p, _)| p)) {
            dir.remove_dir_all(path)?;
        }
        Ok(())
    }
}

/// Creates the directory of each carried cryptex before the payload streams into it, placed
/// where the filesystem has room that no recent deletion is still holding.
///
/// The staging directory is marked a top of a hierarchy (`FS_TOPDIR_FL`, what `chattr +T`
/// sets), which makes ext4 place each directory made in it Orlov-style, in the flex group with
/// the fewest directories (each one made there counts, so the next goes elsewhere); the name,
/// random, only breaks ties. A just-emptied group is often the one with the fewest directories,
/// so for a payload of [`PROBE_FROM`] files or more, up to [`CANDIDATES`] directories are made
/// and [`PROBE_FILES`] files created one directory down in each, timed: a group with freed
/// inodes in the way shows as slow creations. The first candidate whose last creations stay
/// under [`FAST_CREATE`] (or else the quickest) is kept; its probe files stay until the payload
/// is in. Placement is decided at creation, so the rename to the cryptex's name changes nothing.
pub(crate) fn place_cryptex_dirs(
    dir: &Dir,
    carried: &[crate::device::Cryptex],
    files: usize,
) -> io::Result<Placed> {
    // A benchmark measures what placement earns with `FAILPOINTS=stage.no-placement=return`.
    let topdir = !crate::faults::armed!("stage.no-placement")
        && !journaled(dir)
        && mark_top(dir, Path::new(".")).is_ok();
    let probe = topdir && files >= PROBE_FROM;
    let mut placed = Placed {
        made: HashSet::new(),
        probes: Vec::new(),
        spread: None,
    };
    let mut clean = FAST_CREATE;
    for cryptex in carried {
        let name = cryptex.as_str();
        if topdir {
            let (chosen, probed) = least_held_dir(dir, name, probe)?;
            dir.rename(&chosen, dir, name)?;
            if let Some((probe_dir, score)) = probed {
                placed.probes.push(Path::new(name).join(probe_dir));
                clean = clean.min(score);
            }
        } else {
            dir.create_dir(name)?;
        }
        placed.made.insert(PathBuf::from(name));
    }
    if probe {
        let anchors = PathBuf::from(random_name("anchors"));
        dir.create_dir(&anchors)?;
        mark_top(dir, &anchors)?;
        placed.spread = Some((anchors, clean));
    }
    Ok(placed)
}

/// Makes candidate directories for `name` (see [`place_cryptex_dirs`]) and returns the name of
/// the one kept and, if it was probed, its probe directory (relative to it) and score.
fn least_held_dir(
    dir: &Dir,
    name: &str,
    probe: bool,
) -> io::Result<(String, Option<(PathBuf, Duration)>)> {
    let mut tried: Vec<(Duration, String)> = Vec::new();
    // A random name: a payload cannot list a path inside it.
    let probe_dir = random_name("probe");
    for _ in 0..CANDIDATES {
        let candidate = random_name(name);
        dir.create_dir(&candidate)?;
        if !probe {
            return Ok((candidate, None));
        }
        let score = probe_creations(dir, &Path::new(&candidate).join(&probe_dir))?;
        tried.push((score, candidate));
        if score < FAST_CREATE {
            break;
        }
    }
    let best = tried
        .iter()
        .enumerate()
        .min_by_key(|(_, (score, _))| *score)
        .map_or(0, |(i, _)| i);
    let (score, kept) = tried.swap_remove(best);
    for (_, other) in tried {
        dir.remove_dir_all(&other)?;
    }
    Ok((kept, Some((PathBuf::from(probe_dir), score))))
}

/// `.bsi-tmp.<what>-<16 random hex digits>`. The bytes break ties between equally empty
/// groups and keep the name from any a payload lists; a failure to get them (zeros) costs only
/// the first.
fn random_name(what: &str) -> String {
    let mut random = [0u8; 8];
    let _ = getrandom::fill(&mut random);
    format!(
        "{}{what}-{}",
        crate::device::TMP_PREFIX,
        crate::bundle::digest::hex(&random)
    )
}

/// Creates [`PROBE_FILES`] empty files in a new directory `rel` and returns the mean time of
/// the last quarter of the creations.
fn probe_creations(dir: &Dir, rel: &Path) -> io::Result<Duration> {
    dir.create_dir(rel)?;
    let probes = dir.open_dir(rel)?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    let mut late = Duration::ZERO;
    for i in 0..PROBE_FILES {
        let start = Instant::now();
        drop(probes.open_with(format!("{i}"), &options)?);
        if i >= PROBE_FILES - PROBE_FILES / 4 {
            late += start.elapsed();
        }
    }
    Ok(late / u32::try_from(PROBE_FILES / 4).unwrap_or(1))
}

/// Sets `FS_TOPDIR_FL` on the directory `rel` beneath `dir`.
fn mark_top(dir: &Dir, rel: &Path) -> io::Result<()> {
    use rustix::fs::{IFlags, Mode, OFlags, ioctl_getflags, ioctl_setflags, openat};
    // The handle may be an `O_PATH` one, which ioctls refuse: open the directory itself.
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = openat(dir, rel, flags, Mode::empty())?;
    let current = ioctl_getflags(&fd)?;
    Ok(ioctl_setflags(&fd, current | IFlags::TOPDIR)?)
}

/// Whether `dir` is on a filesystem with a journal that the kernel shows (`/proc/fs/jbd2/DEV-*`,
/// one per journaled ext3/ext4 filesystem). There the allocator does not scan past freed
/// inodes: placement earned nothing on journaled ext4 (+2 % and -8 % at 20,000 and 100,000
/// files, within noise; docs/performance.md), so it is not done. When the device cannot be told,
/// placement is done as before.
fn journaled(dir: &Dir) -> bool {
    let Ok(stat) = rustix::fs::fstat(dir) else {
        return false;
    };
    let dev = stat.st_dev;
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let Ok(target) = std::fs::read_link(format!("/sys/dev/block/{major}:{minor}")) else {
        return false;
    };
    let Some(name) = target.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let prefix = format!("{name}-");
    std::fs::read_dir("/proc/fs/jbd2").is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
    })
}

/// Creates one staging thread's files. Each creation is timed; when a window of [`WINDOW`]
/// creations averages more than [`SLOW_FACTOR`] times the clean score the probe measured, the
/// group the files are landing in holds freed inodes, and the next files are created in a new
/// anchor directory (placed by ext4 in another flex group, as the anchors' parent is a top of a
/// hierarchy) and renamed at once to their place: their inodes stay where they were made. An
/// anchor that slows down in turn is replaced, up to [`MAX_ANCHORS`].
pub(crate) struct Spreader<'a> {
    dir: &'a Dir,
    spread: Option<(PathBuf, Duration)>,
    window: Duration,
    count: u32,
    anchor: Option<Dir>,
    anchors: usize,
    next: u64,
}

impl Spreader<'_> {
    /// Creates the new file `rel` (beneath the staging directory) with `options`.
    pub(crate) fn create(&mut self, rel: &Path, options: &OpenOptions) -> io::Result<File> {
        let Some((_, clean)) = self.spread else {
            return self.dir.open_with(rel, options);
        };
        let file = match &self.anchor {
            None => {
                let start = Instant::now();
                let file = self.dir.open_with(rel, options)?;
                self.window += start.elapsed();
                file
            }
            Some(anchor) => {
                let name = self.next.to_string();
                self.next += 1;
                let start = Instant::now();
                let file = anchor.open_with(&name, options)?;
                self.window += start.elapsed();
                // Payload paths are unique (the manifest refuses duplicates) and the staging
                // directory is new, so nothing is there to replace.
                anchor.rename(&name, self.dir, rel)?;
                file
            }
        };
        self.count += 1;
        if self.count == WINDOW {
            // The tests make every window slow (`FAILPOINTS=stage.spread=return`), so that the
            // anchors are used on any disk.
            let slow =
                self.window / WINDOW > clean * SLOW_FACTOR || crate::faults::armed!("stage.spread");
            self.window = Duration::ZERO;
            self.count = 0;
            if slow && self.anchors < MAX_ANCHORS {
                self.new_anchor()?;
            }
        }
        Ok(file)
    }

    fn new_anchor(&mut self) -> io::Result<()> {
        let Some((parent, _)) = &self.spread else {
            return Ok(());
        };
        let rel = parent.join(random_name("anchor"));
        self.dir.create_dir(&rel)?;
        let handle = self.dir.open_dir(&rel)?;
        self.anchors += 1;
        self.anchor = Some(handle);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_dir() -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        (tmp, dir)
    }

    /// A filesystem with no block device (tmpfs) has no journal; a directory named by
    /// `BSI_TEST_JOURNALED_DIR` (on journaled ext4) has one; `BSI_TEST_UNJOURNALED_DIR` (ext4
    /// without a journal) has none.
    #[test]
    fn a_journal_is_told_by_the_kernel_s_list_of_them() {
        let open = |p: &Path| Dir::open_ambient_dir(p, cap_std::ambient_authority()).unwrap();
        if Path::new("/dev/shm").is_dir() {
            assert!(!journaled(&open(Path::new("/dev/shm"))));
        }
        for (var, want) in [
            ("BSI_TEST_JOURNALED_DIR", true),
            ("BSI_TEST_UNJOURNALED_DIR", false),
        ] {
            if let Some(dir) = std::env::var_os(var) {
                assert_eq!(journaled(&open(Path::new(&dir))), want, "{var}");
            }
        }
    }

    fn create_new() -> OpenOptions {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        options
    }

    #[test]
    fn files_created_through_anchors_end_in_their_place_and_the_anchors_go() {
        let (_tmp, dir) = temp_dir();
        dir.create_dir("anchors").unwrap();
        dir.create_dir_all("a/b").unwrap();
        // A clean score of zero makes every window slow: a new anchor each window, up to the
        // limit, then the last one stays.
        let placed = Placed {
            made: HashSet::new(),
            probes: Vec::new(),
            spread: Some((PathBuf::from("anchors"), Duration::ZERO)),
        };
        let mut spreader = placed.spreader(&dir);
        let n = WINDOW as usize * (MAX_ANCHORS + 3);
        for i in 0..n {
            let mut file = spreader
                .create(Path::new(&format!("a/b/{i}")), &create_new())
                .unwrap();
            write!(file, "{i}").unwrap();
        }
        assert_eq!(spreader.anchors, MAX_ANCHORS);
        assert_eq!(dir.read_dir("a/b").unwrap().count(), n);
        for i in 0..n {
            assert_eq!(
                dir.read_to_string(format!("a/b/{i}")).unwrap(),
                i.to_string()
            );
        }
        let anchors: Vec<_> = dir
            .read_dir("anchors")
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(anchors.len(), MAX_ANCHORS);
        for anchor in anchors {
            let entries = anchor.open_dir().unwrap().entries().unwrap().count();
            assert_eq!(entries, 0, "an anchor keeps nothing");
        }
        placed.clean_up(&dir).unwrap();
        assert!(!dir.exists("anchors"));
        assert_eq!(dir.read_dir("a/b").unwrap().count(), n);
    }

    #[test]
    fn without_spreading_files_are_created_in_place_and_duplicates_refused() {
        let (_tmp, dir) = temp_dir();
        dir.create_dir("a").unwrap();
        let placed = Placed {
            made: HashSet::new(),
            probes: Vec::new(),
            spread: None,
        };
        let mut spreader = placed.spreader(&dir);
        for i in 0..(WINDOW * 3) {
            spreader
                .create(Path::new(&format!("a/{i}")), &create_new())
                .unwrap();
        }
        assert_eq!(spreader.anchors, 0);
        let again = spreader
            .create(Path::new("a/0"), &create_new())
            .unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(dir.read_dir("a").unwrap().count(), WINDOW as usize * 3);
        placed.clean_up(&dir).unwrap();
    }
}
