//! `Build`: Apple build numbers. A base build is `25D2128` (or a beta such as `25D5087f`); a
//! response's supplemental build is `25D771280a`: the base build's train prefix (`25D`), digits,
//! and one trailing lowercase letter.
//!
//! The trailing letter of a supplemental build is *not* always the response's public letter, so
//! nothing here derives one from the other; both travel in the manifest.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use super::VersionError;

const MAX_MAJOR_DIGITS: usize = 3;
const MAX_NUMBER_DIGITS: usize = 8;

/// A build number: `<major digits><train letter><digits>[<lowercase letter>]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Build {
    text: String,
    /// Length of the `25D` train prefix within `text`.
    prefix_len: usize,
    /// Whether the build ends in a lowercase letter (beta or supplemental build).
    suffixed: bool,
}

impl Build {
    /// The train prefix: the major digits and the train letter (`25D` of `25D2128`).
    #[must_use]
    pub fn train(&self) -> &str {
        &self.text[..self.prefix_len]
    }

    /// The build as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The digits after the train letter.
    fn number(&self) -> &str {
        let end = if self.suffixed {
            self.text.len() - 1
        } else {
            self.text.len()
        };
        &self.text[self.prefix_len..end]
    }

    fn major_number(&self) -> u32 {
        self.text[..self.prefix_len - 1].parse().unwrap_or(0)
    }

    /// The trailing lowercase letter, if any.
    #[must_use]
    pub fn suffix(&self) -> Option<char> {
        if self.suffixed {
            self.text.chars().last()
        } else {
            None
        }
    }

    /// Parses `input` as the supplemental build of a response whose prerequisite is `base`:
    /// it must share the base's train prefix and end in one lowercase letter.
    pub fn parse_supplemental(input: &str, base: &Build) -> Result<Build, VersionError> {
        let build: Build = input.parse()?;
        let bad = |reason: String| VersionError::Supplemental {
            build: input.to_owned(),
            prerequisite: base.to_string(),
            reason,
        };
        if build.suffix().is_none() {
            return Err(bad(
                "a supplemental build ends in one lowercase letter".to_owned()
            ));
        }
        if build.train() != base.train() {
            return Err(bad(format!(
                "its train prefix `{}` differs from the prerequisite's `{}`",
                build.train(),
                base.train()
            )));
        }
        if &build == base {
            return Err(bad("it is the prerequisite build itself".to_owned()));
        }
        Ok(build)
    }
}

impl FromStr for Build {
    type Err = VersionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.trim().is_empty() {
            return Err(VersionError::Empty {
                what: "build",
                example: "25D2128",
            });
        }
        let bad = |reason: &str| VersionError::Build {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let bytes = input.as_bytes();
        let major_len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        if major_len == 0 {
            return Err(bad("it must start with the major release digits"));
        }
        if major_len > MAX_MAJOR_DIGITS {
            return Err(bad("too many major release digits"));
        }
        if bytes[0] == b'0' {
            return Err(bad("the major release digits have a leading zero"));
        }
        let Some(&train) = bytes.get(major_len) else {
            return Err(bad("the train letter after the major digits is missing"));
        };
        if train.is_ascii_lowercase() {
            return Err(bad("the train letter must be uppercase"));
        }
        if !train.is_ascii_uppercase() {
            return Err(bad(
                "the train letter after the major digits must be A to Z",
            ));
        }
        let rest = &bytes[major_len + 1..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad("the build number after the train letter is missing"));
        }
        if digits > MAX_NUMBER_DIGITS {
            return Err(bad("the build number is too long"));
        }
        let tail = &rest[digits..];
        let suffixed = match tail {
            [] => false,
            [c] if c.is_ascii_lowercase() => true,
            [c] if c.is_ascii_uppercase() => {
                return Err(bad("the trailing letter must be lowercase"));
            }
            _ => {
                return Err(bad("only one lowercase letter may follow the build number"));
            }
        };
        Ok(Build {
            text: input.to_owned(),
            prefix_len: major_len + 1,
            suffixed,
        })
    }
}

impl Ord for Build {
    fn cmp(&self, other: &Self) -> Ordering {
        let number = |b: &Build| (b.number().len(), b.number().to_owned());
        self.major_number()
            .cmp(&other.major_number())
            .then_with(|| self.train().cmp(other.train()))
            .then_with(|| number(self).cmp(&number(other)))
            .then_with(|| self.suffix().cmp(&other.suffix()))
    }
}

impl PartialOrd for Build {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Build {
        s.parse().unwrap()
    }

    #[test]
    fn parses_real_builds() {
        for (input, train, suffix) in [
            ("25D2128", "25D", None),
            ("25D5087f", "25D", Some('f')),
            ("25D771280a", "25D", Some('a')),
            ("22E261", "22E", None),
            ("22E772610a", "22E", Some('a')),
            ("20F75", "20F", None),
            ("20F770750d", "20F", Some('d')),
            ("23D8133", "23D", None),
        ] {
            let build = b(input);
            assert_eq!(build.to_string(), input);
            assert_eq!(build.train(), train);
            assert_eq!(build.suffix(), suffix);
        }
    }

    #[test]
    fn rejects_bad_builds() {
        for (input, needle) in [
            ("25d2128", "must be uppercase"),
            ("", "empty build"),
            ("D2128", "start with the major"),
            ("25D", "number after the train letter is missing"),
            ("25DD2128", "number after the train letter is missing"),
            ("25D2128ab", "only one lowercase letter"),
            ("25D2128A", "trailing letter must be lowercase"),
            ("2525D1", "too many major"),
            ("25-2128", "must be A to Z"),
            ("05D1", "leading zero"),
        ] {
            let err = input.parse::<Build>().unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
    }

    #[test]
    fn supplemental_builds_share_the_train() {
        let base = b("25D2128");
        assert!(Build::parse_supplemental("25D771280a", &base).is_ok());
        let err = Build::parse_supplemental("25E771280a", &base).unwrap_err();
        assert!(err.to_string().contains("train prefix `25E`"), "{err}");
        let err = Build::parse_supplemental("25D771280", &base).unwrap_err();
        assert!(err.to_string().contains("lowercase letter"), "{err}");
    }

    #[test]
    fn orders_by_parts() {
        assert!(b("25E100") > b("25D2128"));
        assert!(b("25D2128") > b("25D999"));
        assert!(b("26A1") > b("25Z99999"));
        assert!(b("25D771280b") > b("25D771280a"));
        assert!(b("25D2128a") > b("25D2128"));
    }
}
