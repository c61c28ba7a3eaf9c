//! Files a user names on the command line (declarations, catalogs, keys): opened once, without
//! blocking (a FIFO opens at once and is refused by its type, `/dev/zero` by its type too), the
//! type and size decided on the handle (`fstat`), and read within a limit stated in the message
//! when it is exceeded. Nothing is read from a path a second time.

use std::io::Read;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::{Error, Result};

/// `what` with its article: "a catalog", "an enrollment profile".
fn a(what: &str) -> String {
    let vowel = what.chars().next().is_some_and(|c| "aeioAEIO".contains(c));
    format!("{} {what}", if vowel { "an" } else { "a" })
}

/// Reads the regular file at `path` whole, refusing anything over `limit` bytes. `what` names it
/// in messages ("declaration", "catalog", "public key").
pub(crate) fn read_named(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        let e = std::io::Error::from(e);
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::usage(
                format!("no {what} at {}", path.display()),
                format!("check the path of the {what}"),
            )
        } else {
            Error::io("opening", path, e)
        }
    })?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| Error::io("reading", path, e))?;
    if !meta.is_file() {
        return Err(Error::usage(
            format!(
                "{} is not a regular file (it is {}), so it cannot be {}",
                path.display(),
                crate::error::kind_of(&meta),
                a(what)
            ),
            format!("give the path of {} file", a(what)),
        ));
    }
    if meta.len() > limit {
        return Err(Error::usage(
            format!(
                "{} is {} bytes, over the {limit}-byte limit for {}",
                path.display(),
                meta.len(),
                a(what)
            ),
            format!(
                "{} this large is not one bsi accepts; check the file",
                a(what)
            ),
        ));
    }
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io("reading", path, e))?;
    if out.len() as u64 > limit {
        return Err(Error::usage(
            format!(
                "{} grew past the {limit}-byte limit for {} while it was read",
                path.display(),
                a(what)
            ),
            format!(
                "give the path of {} file that is not being written",
                a(what)
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_take_the_right_article() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_named(dir.path(), 10, "enrollment profile")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be an enrollment profile"), "{err}");
        let err = read_named(dir.path(), 10, "catalog")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be a catalog"), "{err}");
    }

    #[test]
    fn refuses_what_is_not_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.json");
        std::fs::write(&f, b"{}").unwrap();
        assert_eq!(read_named(&f, 10, "declaration").unwrap(), b"{}");
        let err = read_named(&f, 1, "declaration").unwrap_err().to_string();
        assert!(err.contains("over the 1-byte limit"), "{err}");
        let err = read_named(dir.path(), 10, "declaration")
            .unwrap_err()
            .to_string();
        assert!(err.contains("directory"), "{err}");
        let err = read_named(Path::new("/dev/zero"), 10, "catalog")
            .unwrap_err()
            .to_string();
        assert!(err.contains("character device"), "{err}");
        assert_eq!(
            read_named(&dir.path().join("nope"), 10, "catalog")
                .unwrap_err()
                .exit_code(),
            2
        );
    }
}
