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
use crate::bundle::source::{Bundle, Form, Sink};
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
/// On ext4 without a journal (as on these machines' work disks), the inode allocator skips
/// inodes freed in the last minutes, scanning past every one of them for every new file; and it
/// places a directory, and the files under it, in the block group of its parent. A device whose
/// previous generation was just removed (garbage collection, or a fresh device replacing an old
/// one) would then pay a scan of the freed inodes for each of its files: 20,000 files took 8-14 s
/// instead of 0.5 s. Marking the staging directory a top of a hierarchy (`FS_TOPDIR_FL`, what
/// `chattr +T` sets) makes ext4 spread its subdirectories Orlov-style to the least used groups,
/// starting from a hash of the name; a name random per apply (renamed to the cryptex's name at
/// once; placement is decided at creation) keeps it from landing on the same, just-freed group
/// every time. Filesystems without the flag ignore it; nothing else depends on it.
fn place_cryptex_dirs(dir: &Dir, carried: &[Cryptex]) -> io::Result<HashSet<PathBuf>> {
    let topdir = mark_top(dir, Path::new(".")).is_ok();
    let mut made = HashSet::new();
    for cryptex in carried {
        let name = cryptex.as_str();
        if topdir {
            // Only the choice among equally good groups depends on the bytes: a failure to
            // get random ones costs nothing but that.
            let mut random = [0u8; 8];
            let _ = getrandom::fill(&mut random);
            let tmp = format!(
                "{}{name}-{}",
                crate::device::TMP_PREFIX,
                crate::bundle::digest::hex(&random)
            );
            dir.create_dir(&tmp)?;
            dir.rename(&tmp, dir, name)?;
        } else {
            dir.create_dir(name)?;
        }
        made.insert(PathBuf::from(name));
    }
    Ok(made)
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
    let placed = place_cryptex_dirs(&dir, &carried).ctx("creating", &shown)?;
    let sink = || StagingSink {
        dir: &dir,
        shown: shown.clone(),
        made: placed.clone(),
        umask,
    };
    let total = bundle.manifest.cryptexes.total_size();
    let files = bundle.manifest.cryptexes.count();
    if bundle.form == Form::Directory && files >= stream::PARALLEL_MIN_FILES {
        // Many files from a directory: two readers, each with its own hasher.
        let bundle: &Bundle = bundle;
        stream::run_parts(progress, "staging", total, 2, |part, feeder| {
            bundle.stream_part(part, 2, feeder, &mut sink())
        })?;
    } else {
        stream::run(progress, "staging", total, |feeder| {
            bundle.stream(feeder, &mut sink())
        })?;
    }
    let write = |name: &str, bytes: &[u8]| -> Result<()> {
        let shown = root.show(staging.join(name));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o644);
        let mut file = dir.open_with(name, &options).ctx("creating", &shown)?;
        io::Write::write_all(&mut file, bytes).ctx("writing", &shown)
    };
    {
        let shown = root.show(staging.join(GEN_MANIFEST));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o644);
        let file = dir
            .open_with(GEN_MANIFEST, &options)
            .ctx("creating", &shown)?;
        let mut out = io::BufWriter::with_capacity(1 << 16, file);
        bundle
            .manifest_bytes
            .write_to(&mut out)
            .and_then(|()| io::Write::flush(&mut out))
            .ctx("writing", &shown)?;
    }
    if let Some(sig) = &bundle.signature {
        write(GEN_SIGNATURE, sig)?;
    }
    let m = &bundle.manifest;
    let sv = SystemVersion {
        // The device's own name: an iPad runs iOS bundles as iPadOS.
        product_name: device.info().platform.name().to_owned(),
        version: m.version,
        build: m.build.clone(),
        extra: Some(m.extra),
    };
    write(GEN_SYSTEM_VERSION, &sv.to_xml())?;
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
