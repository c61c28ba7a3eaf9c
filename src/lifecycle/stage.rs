//! Staging a response's content into a new generation: the payload streams from the bundle
//! through the single-pass pipeline into `generations/.bsi-tmp.staging-<build>/`, confined beneath
//! that directory's handle; the manifest, signature and a `SystemVersion.plist` are added; the tree
//! is made durable with one `syncfs`; only then is it renamed to `generations/<build>`. A failure
//! at any point removes the staging directory, so a rejected bundle is never half-copied (I4).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt, Permissions, PermissionsExt};

use crate::Result;
use crate::bundle::manifest::FileEntry;
use crate::bundle::source::{Bundle, Sink};
use crate::bundle::stream;
use crate::device::layout::{GEN_MANIFEST, GEN_SIGNATURE, GEN_SYSTEM_VERSION};
use crate::device::{Cryptex, Device, GenName, SystemVersion};
use crate::error::IoContext;
use crate::faults::fault_point;
use crate::progress::Progress;

struct StagingSink<'a> {
    dir: &'a Dir,
    shown: PathBuf,
    made: HashSet<PathBuf>,
    umask: u32,
}

impl StagingSink<'_> {
    fn make_parents(&mut self, rel: &Path) -> io::Result<()> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        if parent.as_os_str().is_empty() || self.made.contains(parent) {
            return Ok(());
        }
        let mut path = PathBuf::new();
        for part in parent.components() {
            path.push(part);
            if self.made.contains(&path) {
                continue;
            }
            match self.dir.create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            self.made.insert(path.clone());
        }
        Ok(())
    }

    fn create(&mut self, rel: &Path, mode: u32) -> io::Result<File> {
        fault_point!("stage.create");
        self.make_parents(rel)?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(mode);
        let file = self.dir.open_with(rel, &options)?;
        if mode & self.umask != 0 {
            file.set_permissions(Permissions::from_mode(mode))?;
        }
        Ok(file.into_std())
    }
}

impl Sink for StagingSink<'_> {
    fn open(&mut self, cryptex: Cryptex, entry: &FileEntry) -> Result<Option<(File, PathBuf)>> {
        let rel = Path::new(cryptex.as_str()).join(&entry.path);
        let shown = self.shown.join(&rel);
        let file = self.create(&rel, entry.mode).ctx("creating", &shown)?;
        Ok(Some((file, shown)))
    }

    fn close(&mut self, _file: File, path: &Path, _entry: &FileEntry) -> Result<()> {
        written().ctx("writing", path)
    }
}

/// A staged file is complete (a fault point: an I/O error or a full disk mid-payload).
// Without the `failpoints` feature this cannot fail; the signature is for the fault point.
#[cfg_attr(not(feature = "failpoints"), allow(clippy::unnecessary_wraps))]
fn written() -> io::Result<()> {
    fault_point!("stage.write");
    Ok(())
}

/// Puts the finished staging directory in place under its generation name (replacing, in one
/// exchange, a generation of that name being restored).
fn rename_into_place(root: &crate::device::Root, gens: &Path, name: &GenName) -> io::Result<()> {
    fault_point!("stage.rename");
    root.replace_dir(gens, &name.staging_name(), &name.dir_name())
}

/// Creates the directory of each carried cryptex before the payload streams into it, placed
/// where the filesystem has room that no recent deletion is still holding.
///
/// On ext4 without a journal (as on these machines' work disks), the inode allocator avoids
/// inodes freed in the last minutes by scanning past them, from the start of the block group,
/// for every new inode; and it puts a directory, and the files under it, in the flex group of
/// its parent. A device whose previous content was just removed (garbage collection, or a fresh
/// device replacing an old one) paid that scan for each of its files, and the scan grows as the
/// group's other free inodes are used up: 20,000 files took 8-14 s instead of 0.6 s, 100,000
/// files 54 s.
///
/// So the staging directory is marked a top of a hierarchy (`FS_TOPDIR_FL`, what `chattr +T`
/// sets), which makes ext4 place each directory made in it Orlov-style, in the flex group with
/// the fewest directories (each one made there counts, so the next goes elsewhere); the name,
/// random, only breaks ties. A just-emptied group is often the one with the fewest directories,
/// so for a payload of [`PROBE_FROM`] files or more, up to [`CANDIDATES`] directories are made
/// and [`PROBE_FILES`] files created one directory down in each, timed: a group with freed
/// inodes in the way shows as creations that slow down as they go. The first candidate whose
/// last creations stay under [`FAST_CREATE`] (or else the quickest) is kept; its probe files stay
/// until the payload is in (removing them first would put freed inodes in the way) and are
/// returned to be removed then. Placement is decided at creation, so the rename to the
/// cryptex's name changes nothing. A filesystem without the flag (tmpfs, for one) refuses it and
/// gets plain directories; nothing else depends on any of this.
fn place_cryptex_dirs(
    dir: &Dir,
    carried: &[Cryptex],
    files: usize,
) -> io::Result<(HashSet<PathBuf>, Vec<PathBuf>)> {
    let topdir = mark_top(dir, Path::new(".")).is_ok();
    let mut made = HashSet::new();
    let mut probes = Vec::new();
    for cryptex in carried {
        let name = cryptex.as_str();
        if topdir {
            let (chosen, probe) = least_held_dir(dir, name, files >= PROBE_FROM)?;
            dir.rename(&chosen, dir, name)?;
            probes.extend(probe.map(|p| Path::new(name).join(p)));
        } else {
            dir.create_dir(name)?;
        }
        made.insert(PathBuf::from(name));
    }
    Ok((made, probes))
}

/// Payloads with fewer files than this are not worth probing for (see [`place_cryptex_dirs`]).
const PROBE_FROM: usize = 2_000;
/// Directories tried per cryptex at most.
const CANDIDATES: usize = 4;
/// Files created to probe a candidate; the mean of the last quarter is its score.
const PROBE_FILES: usize = 64;
/// A score under this shows a group without freed inodes in the way (a clean create takes
/// 10-20 us on these machines; in a group holding thousands of just-freed inodes the creations
/// climb past 50 us within 64 files, and on to milliseconds).
const FAST_CREATE: std::time::Duration = std::time::Duration::from_micros(30);

/// Makes candidate directories for `name` (see [`place_cryptex_dirs`]) and returns the name of
/// the one kept and, if it was probed, its probe directory (relative to it).
fn least_held_dir(dir: &Dir, name: &str, probe: bool) -> io::Result<(String, Option<PathBuf>)> {
    let mut tried: Vec<(std::time::Duration, String)> = Vec::new();
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
    let (_, kept) = tried.swap_remove(best);
    for (_, other) in tried {
        dir.remove_dir_all(&other)?;
    }
    Ok((kept, Some(PathBuf::from(probe_dir))))
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
fn probe_creations(dir: &Dir, rel: &Path) -> io::Result<std::time::Duration> {
    dir.create_dir(rel)?;
    let probes = dir.open_dir(rel)?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    let mut late = std::time::Duration::ZERO;
    for i in 0..PROBE_FILES {
        let start = std::time::Instant::now();
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

fn current_umask() -> u32 {
    // umask can only be read by setting it; put it straight back.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rustix::process::umask(old);
    old.bits()
}

/// Stages `bundle` as the generation for its build and returns the generation's name. Each
/// cryptex the response does not carry is linked to the generation `suppliers` names for it (the
/// content of the response it replaces: responses are cumulative per cryptex, I1).
pub(crate) fn stage(
    device: &Device,
    bundle: &mut Bundle,
    suppliers: &BTreeMap<Cryptex, GenName>,
    progress: &dyn Progress,
) -> Result<GenName> {
    let root = device.root();
    let name = GenName::Response(bundle.manifest.build.clone());
    let gens = device.layout().generations();
    let staging = gens.join(name.staging_name());
    root.remove_tree_if_exists(&staging)
        .ctx("removing", root.show(&staging))?;
    root.dir()
        .create_dir(&staging)
        .ctx("creating", root.show(&staging))?;
    crate::faults::pause_point!("stage.streaming");
    let result = fill(device, bundle, suppliers, &staging, progress);
    if let Err(e) = result {
        let _ = root.remove_tree_if_exists(&staging);
        return Err(e);
    }
    let finish = || -> Result<()> {
        root.sync_filesystem().ctx("syncing", root.show(&staging))?;
        rename_into_place(root, &gens, &name).ctx("renaming", root.show(&staging))
    };
    if let Err(e) = finish() {
        let _ = root.remove_tree_if_exists(&staging);
        return Err(e);
    }
    Ok(name)
}

fn fill(
    device: &Device,
    bundle: &mut Bundle,
    suppliers: &BTreeMap<Cryptex, GenName>,
    staging: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let root = device.root();
    let dir = root
        .dir()
        .open_dir(staging)
        .ctx("opening", root.show(staging))?;
    let shown = root.show(staging);
    let umask = current_umask();
    let carried: Vec<Cryptex> = bundle.manifest.cryptexes.0.keys().copied().collect();
    let (placed, probes) = place_cryptex_dirs(&dir, &carried, bundle.manifest.cryptexes.count())
        .ctx("creating", &shown)?;
    let sink = || StagingSink {
        dir: &dir,
        shown: shown.clone(),
        made: placed.clone(),
        umask,
    };
    let total = bundle.manifest.cryptexes.total_size();
    let files = bundle.manifest.cryptexes.count();
    if files >= stream::PARALLEL_MIN_FILES {
        // Many files: two readers, each with its own hasher (a tar's files are read at the
        // offsets its structure check found, so its two readers do not share a position).
        let bundle: &Bundle = bundle;
        stream::run_parts(progress, "staging", total, 2, |part, feeder| {
            bundle.stream_part(part, 2, feeder, &mut sink())
        })?;
    } else {
        stream::run(progress, "staging", total, |feeder| {
            bundle.stream(feeder, &mut sink())
        })?;
    }
    // The probe files kept the placement's freed inodes out of the way; the payload is in.
    for probe in probes {
        dir.remove_dir_all(&probe)
            .ctx("removing", root.show(staging.join(&probe)))?;
    }
    let write = |name: &str, fill: &dyn Fn(&mut dyn io::Write) -> io::Result<()>| -> Result<()> {
        let shown = root.show(staging.join(name));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o644);
        let file = dir.open_with(name, &options).ctx("creating", &shown)?;
        let mut out = io::BufWriter::with_capacity(1 << 16, file);
        fill(&mut out)
            .and_then(|()| io::Write::flush(&mut out))
            .ctx("writing", &shown)
    };
    // A large manifest was spooled to an unnamed file on this filesystem once its signature
    // verified: it becomes the generation's manifest as it is, not written again.
    let linked = bundle
        .manifest_bytes
        .link_into(&dir, GEN_MANIFEST)
        .ctx("linking", root.show(staging.join(GEN_MANIFEST)))?;
    if !linked {
        write(GEN_MANIFEST, &|out| bundle.manifest_bytes.write_to(out))?;
    }
    if let Some(sig) = &bundle.signature {
        write(GEN_SIGNATURE, &|out| out.write_all(sig))?;
    }
    let m = &bundle.manifest;
    let sv = SystemVersion {
        // The device's own name: an iPad runs iOS bundles as iPadOS.
        product_name: device.info().platform.name().to_owned(),
        version: m.version,
        build: m.build.clone(),
        extra: Some(m.extra),
    };
    let system_version = sv.to_xml();
    write(GEN_SYSTEM_VERSION, &|out| out.write_all(&system_version))?;
    for cryptex in Cryptex::ALL {
        if !m.cryptexes.0.contains_key(&cryptex) {
            let supplier = suppliers.get(&cryptex).ok_or_else(|| {
                crate::Error::damaged(format!("no generation supplies the {cryptex} cryptex"))
            })?;
            dir.symlink(supplier.supplier_link(cryptex), cryptex.as_str())
                .ctx("linking", root.show(staging.join(cryptex.as_str())))?;
        }
    }
    Ok(())
}
