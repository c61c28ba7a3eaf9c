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
pub(crate) struct Build {
    text: String,
    /// Length of the `25D` train prefix within `text`.
    prefix_len: usize,
    /// Whether the build ends in a lowercase letter (beta or supplemental build).
    suffixed: bool,
}

impl Build {
    /// The train prefix: the major digits and the train letter (`25D` of `25D2128`).
    #[must_use]
    pub(crate) fn train(&self) -> &str {
        &self.text[..self.prefix_len]
    }

    /// The build as text.
    #[must_use]
    pub(crate) fn as_str(&self) -> &str {
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
    pub(crate) fn suffix(&self) -> Option<char> {
        if self.suffixed {
            self.text.chars().last()
        } else {
            None
        }
    }

    /// Is this a base build: a train and a number, with no letter after it?
    #[must_use]
    pub(crate) fn is_base(&self) -> bool {
        !self.suffixed
    }

    /// Parses `input` as a base build (`25D2128`): a train and a number, nothing after it. A
    /// response's build (`25D771280a`) or a beta build (`25D5087f`) is refused.
    pub(crate) fn parse_base(input: &str) -> Result<Build, VersionError> {
        let build: Build = input.parse()?;
        if build.suffixed {
            let looks_like = if build.looks_supplemental() {
                "; it looks like a response's build"
            } else {
                ""
            };
            return Err(VersionError::NotBase {
                input: input.to_owned(),
                reason: format!(
                    "a base build is a train and a number with no letter after it (e.g. 25D2128){looks_like}"
                ),
            });
        }
        Ok(build)
    }

    /// The digits of the build number as a number (at most 8 digits, so it fits).
    fn number_value(&self) -> u64 {
        self.number().parse().unwrap_or(0)
    }

    /// Does this build have the shape of a supplemental build (`<train>77<3 digits>0<letter>`)?
    fn looks_supplemental(&self) -> bool {
        let n = self.number();
        self.suffixed && n.len() == 6 && n.starts_with("77") && n.ends_with('0')
    }

    /// The supplemental build of a response to `base` without its final letter: the train,
    /// `77`, the base build's number as its last three digits, and `0` (`25D2128` ->
    /// `25D771280`, `20F75` -> `20F770750`, `23D8133` -> `23D771330`).
    #[must_use]
    pub(crate) fn supplemental_stem(base: &Build) -> String {
        format!("{}77{:03}0", base.train(), base.number_value() % 1000)
    }

    /// Parses `input` as the supplemental build of a response whose prerequisite is `base`: it
    /// must be [`Build::supplemental_stem`] of the base followed by one lowercase letter, the form
    /// Apple gives every response's build. The letter need not be the public letter.
    pub(crate) fn parse_supplemental(input: &str, base: &Build) -> Result<Build, VersionError> {
        let build: Build = input.parse()?;
        let stem = Self::supplemental_stem(base);
        let bad = |reason: String| VersionError::Supplemental {
            build: input.to_owned(),
            prerequisite: base.to_string(),
            reason,
        };
        if !base.is_base() {
            return Err(bad(format!(
                "the prerequisite `{base}` is not a base build (a train and a number, no letter after it)"
            )));
        }
        if build.suffix().is_none() {
            return Err(bad(format!(
                "a response's build ends in one lowercase letter: expected {stem} and a letter, e.g. {stem}a"
            )));
        }
        if build.train() != base.train() {
            return Err(bad(format!(
                "its train prefix `{}` differs from the prerequisite's `{}`: expected {stem} and a letter",
                build.train(),
                base.train()
            )));
        }
        if !input.starts_with(&stem) || input.len() != stem.len() + 1 {
            return Err(bad(format!(
                "a response to {base} has the build {stem} and one letter (train, 77, the base number's last three digits, 0, a letter)"
            )));
        }
        Ok(build)
    }

    /// Checks that `self` can follow `from` as the base build of an OS update of `kind`: for a
    /// minor update, the same major release number and a later train letter or a larger number
    /// (`25D2128` -> `25D2140`, `25D2128` -> `25E100`); for a major upgrade, a larger major
    /// release number (`25E100` -> `26A100`).
    pub(crate) fn check_follows(&self, from: &Build, kind: BaseMove) -> Result<(), VersionError> {
        let bad = |reason: String| VersionError::BuildOrder {
            build: self.to_string(),
            from: from.to_string(),
            reason,
        };
        match kind {
            BaseMove::Minor => {
                if self.major_number() != from.major_number() {
                    return Err(bad(format!(
                        "a minor update keeps the build's major release number ({}), then moves to a later train letter or a larger number (e.g. {}{} or {}{})",
                        from.major_number(),
                        from.train(),
                        from.number_value() + 1,
                        from.major_number(),
                        next_letter(from)
                    )));
                }
                if self <= from {
                    return Err(bad(format!(
                        "a minor update moves to a later build of release {}: a later train letter or a larger number than {from}",
                        from.major_number()
                    )));
                }
            }
            BaseMove::Major => {
                if self.major_number() <= from.major_number() {
                    return Err(bad(format!(
                        "a major upgrade moves to a later major release number than {} (e.g. {}A100)",
                        from.major_number(),
                        from.major_number() + 1
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Which way a base build moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BaseMove {
    /// A minor update: same major release number, later train letter or number.
    Minor,
    /// A major upgrade: a later major release number.
    Major,
}

impl BaseMove {
    /// The move from the base `from` to `to` (assumed later): minor within one major release.
    #[must_use]
    pub(crate) fn between(from: &super::OsVersion, to: &super::OsVersion) -> Self {
        if from.major() == to.major() {
            BaseMove::Minor
        } else {
            BaseMove::Major
        }
    }

    /// The bsi command that makes it: `update` or `upgrade`.
    #[must_use]
    pub(crate) const fn command(self) -> &'static str {
        match self {
            BaseMove::Minor => "update",
            BaseMove::Major => "upgrade",
        }
    }

    /// Its name in a sentence: `minor update` or `major upgrade`.
    #[must_use]
    pub(crate) const fn name(self) -> &'static str {
        match self {
            BaseMove::Minor => "minor update",
            BaseMove::Major => "major upgrade",
        }
    }

    /// The other kind.
    #[must_use]
    pub(crate) const fn other(self) -> Self {
        match self {
            BaseMove::Minor => BaseMove::Major,
            BaseMove::Major => BaseMove::Minor,
        }
    }
}

fn next_letter(b: &Build) -> String {
    let letter = b.train().chars().last().unwrap_or('A');
    let next = if letter == 'Z' {
        'Z'
    } else {
        char::from(letter as u8 + 1)
    };
    format!("{next}100")
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
    fn supplemental_builds_follow_their_prerequisite() {
        // Real pairs from Apple's releases: the letter need not be the public one.
        for (base, response) in [
            ("20E252", "20E772520a"),
            ("22E261", "22E772610a"),
            ("22F82", "22F770820d"),
            ("20F75", "20F770750b"),
            ("25D2128", "25D771280a"),
            ("23D8133", "23D771330a"),
        ] {
            let parsed = Build::parse_supplemental(response, &b(base));
            assert!(parsed.is_ok(), "{base} -> {response}: {parsed:?}");
            assert_eq!(
                format!(
                    "{}{}",
                    Build::supplemental_stem(&b(base)),
                    &response[response.len() - 1..]
                ),
                response
            );
        }
        let base = b("25D2128");
        for (input, needle) in [
            ("25E771280a", "train prefix `25E`"),
            ("25D771280", "ends in one lowercase letter"),
            ("25D771290a", "25D771280 and one letter"),
            ("25D77128a", "25D771280 and one letter"),
            ("25D7712800a", "25D771280 and one letter"),
            ("25D2128a", "25D771280 and one letter"),
        ] {
            let err = Build::parse_supplemental(input, &base)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
        let err = Build::parse_supplemental("25D771280a", &b("25D5087f")).unwrap_err();
        assert!(err.to_string().contains("not a base build"), "{err}");
    }

    #[test]
    fn base_builds_have_no_letter() {
        assert!(Build::parse_base("25D2128").is_ok());
        let err = Build::parse_base("25D771280a").unwrap_err().to_string();
        assert!(
            err.contains("not a base build") && err.contains("response's build"),
            "{err}"
        );
        assert!(Build::parse_base("25D5087f").is_err());
    }

    #[test]
    fn base_moves_follow_build_order() {
        let table = [
            ("25D2128", "25D2140", BaseMove::Minor, true),
            ("25D2128", "25E100", BaseMove::Minor, true),
            ("25D2128", "25D2128", BaseMove::Minor, false),
            ("25D2128", "25D999", BaseMove::Minor, false),
            ("25D2128", "25C9999", BaseMove::Minor, false),
            ("25D2128", "24A100", BaseMove::Minor, false),
            ("25D2128", "26A100", BaseMove::Minor, false),
            ("25E100", "26A100", BaseMove::Major, true),
            ("25E100", "25F100", BaseMove::Major, false),
            ("25E100", "24A100", BaseMove::Major, false),
        ];
        for (from, to, kind, ok) in table {
            assert_eq!(
                b(to).check_follows(&b(from), kind).is_ok(),
                ok,
                "{from} -> {to} ({kind:?})"
            );
        }
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
