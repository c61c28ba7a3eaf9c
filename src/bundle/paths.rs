//! Payload path rules and the two names every bundle has: a manifest path is relative to its cryptex, `/`-separated, UTF-8, with no
//! empty, `.` or `..` component, no control characters, and within the length limits of
//! `limits`. Checked before any byte of payload is read or written, so that no path in a bundle can
//! name anything outside the directory it is staged into.

use super::limits::{MAX_COMPONENT_BYTES, MAX_DEPTH, MAX_PATH_BYTES};

/// The manifest's name in a bundle.
pub(crate) const MANIFEST: &str = "Info.plist";
/// The signature's name in a bundle.
pub(crate) const SIGNATURE: &str = "Info.plist.sig";

/// Why `path` is not a safe payload path, or `None` if it is.
#[must_use]
pub(crate) fn unsafe_reason(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("the path is empty".to_owned());
    }
    if path.starts_with('/') {
        return Some("absolute paths are not allowed".to_owned());
    }
    if path.len() > MAX_PATH_BYTES {
        return Some(format!("longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.chars().any(char::is_control) {
        return Some("control characters are not allowed".to_owned());
    }
    let mut depth = 0;
    for part in path.split('/') {
        depth += 1;
        match part {
            "" => return Some("empty path component (`//` or a trailing `/`)".to_owned()),
            "." => return Some("`.` components are not allowed".to_owned()),
            ".." => return Some("`..` components are not allowed".to_owned()),
            p if p.len() > MAX_COMPONENT_BYTES => {
                return Some(format!(
                    "a component is longer than {MAX_COMPONENT_BYTES} bytes"
                ));
            }
            _ => {}
        }
    }
    if depth > MAX_DEPTH {
        return Some(format!("deeper than {MAX_DEPTH} directories"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for p in [
            "a",
            "System/Library/dyld/dyld_shared_cache_arm64e",
            "Safari.app/Contents/Info.plist",
            "é/ü",
        ] {
            assert_eq!(unsafe_reason(p), None, "{p}");
        }
    }

    #[test]
    fn rejects_unsafe_paths() {
        for (p, needle) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("a/../b", "`..`"),
            ("..", "`..`"),
            ("a//b", "empty path component"),
            ("a/", "empty path component"),
            ("./a", "`.`"),
            ("a\nb", "control"),
            ("a\0b", "control"),
        ] {
            let reason = unsafe_reason(p).unwrap_or_default();
            assert!(reason.contains(needle), "{p:?}: {reason}");
        }
        assert!(unsafe_reason("a/".repeat(70).trim_end_matches('/')).is_some());
        assert!(unsafe_reason(&"x".repeat(300)).is_some());
    }
}
