//! `OsVersion`: a marketing OS version such as `26.3.1`, `26.4` or `27.0`.

use std::fmt;
use std::str::FromStr;

use super::VersionError;

/// The largest number bsi accepts in one component; real ones have two digits.
const MAX_COMPONENT: u32 = 9_999;

/// An OS version: `MAJOR.MINOR[.PATCH]`.
///
/// A patch of zero is the same version as no patch (`26.4.0` is `26.4`) and is printed without
/// it, as Apple does. Ordering is numeric, component by component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct OsVersion {
    major: u32,
    minor: u32,
    patch: u32,
}

/// How one base version relates to another, in Apple's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpdateKind {
    /// Same version.
    Same,
    /// A later version with the same major number (26.3.1 -> 26.4): it includes every response of
    /// the earlier version's line.
    MinorUpdate,
    /// A later major version (26.x -> 27.0): it does not count as including responses.
    MajorUpgrade,
    /// An earlier version: a downgrade.
    Downgrade,
}

impl OsVersion {
    /// Makes a version from its parts.
    #[must_use]
    pub(crate) const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// The major number (`26` of `26.3.1`).
    #[must_use]
    pub(crate) const fn major(&self) -> u32 {
        self.major
    }

    /// The minor number.
    #[must_use]
    pub(crate) const fn minor(&self) -> u32 {
        self.minor
    }

    /// How `self` relates to `from` when a device moves from `from` to `self`.
    #[must_use]
    pub(crate) fn update_kind_from(&self, from: &OsVersion) -> UpdateKind {
        use std::cmp::Ordering;
        match self.cmp(from) {
            Ordering::Equal => UpdateKind::Same,
            Ordering::Less => UpdateKind::Downgrade,
            Ordering::Greater if self.major == from.major => UpdateKind::MinorUpdate,
            Ordering::Greater => UpdateKind::MajorUpgrade,
        }
    }
}

fn component(input: &str, part: &str, name: &str) -> Result<u32, VersionError> {
    let bad = |reason: String| VersionError::OsVersion {
        input: input.to_owned(),
        reason,
    };
    if part.is_empty() {
        return Err(bad(format!("the {name} number is empty")));
    }
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!(
            "the {name} number `{part}` is not a decimal number"
        )));
    }
    if part.len() > 1 && part.starts_with('0') {
        return Err(bad(format!(
            "the {name} number `{part}` has a leading zero"
        )));
    }
    match part.parse::<u32>() {
        Ok(n) if n <= MAX_COMPONENT => Ok(n),
        _ => Err(bad(format!("the {name} number `{part}` is too large"))),
    }
}

impl FromStr for OsVersion {
    type Err = VersionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.trim().is_empty() {
            return Err(VersionError::Empty {
                what: "OS version",
                example: "26.3.1",
            });
        }
        let parts: Vec<&str> = input.split('.').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(VersionError::OsVersion {
                input: input.to_owned(),
                reason: format!("it has {} dot-separated numbers", parts.len()),
            });
        }
        let major = component(input, parts[0], "major")?;
        let minor = component(input, parts[1], "minor")?;
        let patch = match parts.get(2) {
            Some(p) => component(input, p, "patch")?,
            None => 0,
        };
        if major == 0 {
            return Err(VersionError::OsVersion {
                input: input.to_owned(),
                reason: "the major number cannot be 0".to_owned(),
            });
        }
        Ok(Self::new(major, minor, patch))
    }
}

impl fmt::Display for OsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.patch == 0 {
            write!(f, "{}.{}", self.major, self.minor)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> OsVersion {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        for (input, printed) in [
            ("26.3.1", "26.3.1"),
            ("26.4", "26.4"),
            ("27.0", "27.0"),
            ("26.4.0", "26.4"),
            ("13.3.1", "13.3.1"),
        ] {
            assert_eq!(v(input).to_string(), printed, "{input}");
        }
    }

    #[test]
    fn rejects_bad_strings_with_reasons() {
        for (input, needle) in [
            ("", "empty OS version"),
            ("26..1", "minor number is empty"),
            ("26", "1 dot-separated"),
            ("26.3.1.4", "4 dot-separated"),
            ("26.3a", "not a decimal"),
            ("26.03", "leading zero"),
            ("0.1", "cannot be 0"),
            ("26.3.", "patch number is empty"),
            ("99999.1", "too large"),
            (" 26.3", "not a decimal"),
        ] {
            let err = input.parse::<OsVersion>().unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
    }

    #[test]
    fn orders_numerically() {
        assert!(v("26.10") > v("26.9"));
        assert!(v("26.3.1") > v("26.3"));
        assert!(v("27.0") > v("26.99.99"));
        assert_eq!(v("26.4.0"), v("26.4"));
    }

    #[test]
    fn classifies_updates() {
        let table = [
            ("26.3.1", "26.4", UpdateKind::MinorUpdate),
            ("26.3.1", "26.3.2", UpdateKind::MinorUpdate),
            ("26.4", "27.0", UpdateKind::MajorUpgrade),
            ("26.4", "26.3.1", UpdateKind::Downgrade),
            ("26.4", "26.4", UpdateKind::Same),
        ];
        for (from, to, kind) in table {
            assert_eq!(v(to).update_kind_from(&v(from)), kind, "{from} -> {to}");
        }
    }
}
