//! Walking a generation's tree as it is on disk: without following a symlink, without blocking
//! on a FIFO, and never leaving the directory handle a walk starts from. `verify` and its
//! read-ahead both read the active trees this way, so a planted link or special file is seen as
//! what it is, never as a path to somewhere else. Files are then opened with
//! `bundle::dir_form::open_beneath`, the one opener beneath a handle.

use cap_std::fs::Dir;

/// What a walk of a tree finds at one path; directories are walked into, not reported.
pub(super) enum Entry<'a> {
    /// A regular file: the handle of its directory and its name there.
    File(&'a Dir, &'a std::ffi::OsStr),
    Symlink,
    /// A FIFO, a socket or a device.
    Special,
    /// A directory that could not be opened or listed, and why.
    Unreadable(String),
}

/// Walks `dir` without following symlinks, `rel` being its path below the tree (one buffer
/// serves the whole walk), calling `visit(rel, entry)` for everything but directories. Stops,
/// returning false, as soon as `visit` returns false.
pub(super) fn walk_tree(
    dir: &Dir,
    rel: &mut String,
    visit: &mut dyn FnMut(&str, Entry<'_>) -> bool,
) -> bool {
    let Ok(entries) = dir.entries() else {
        return visit(rel, Entry::Unreadable("cannot be listed".to_owned()));
    };
    for entry in entries.flatten() {
        let len = rel.len();
        if !rel.is_empty() {
            rel.push('/');
        }
        let name = entry.file_name();
        rel.push_str(&name.to_string_lossy());
        let go_on = match entry.file_type() {
            Ok(ft) if ft.is_dir() => match open_subdir(dir, &name) {
                Ok(sub) => walk_tree(&sub, rel, visit),
                Err(e) => visit(rel, Entry::Unreadable(e.to_string())),
            },
            Ok(ft) if ft.is_file() => visit(rel, Entry::File(dir, &name)),
            Ok(ft) if ft.is_symlink() => visit(rel, Entry::Symlink),
            _ => visit(rel, Entry::Special),
        };
        rel.truncate(len);
        if !go_on {
            return false;
        }
    }
    true
}

/// Opens the directory `name` (one component, from a listing) in `dir`, not following a
/// symlink put there since it was listed.
fn open_subdir(dir: &Dir, name: &std::ffi::OsStr) -> std::io::Result<Dir> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    Ok(Dir::from_std_file(std::fs::File::from(fd)))
}
