//! `Extra`: the response letter `(a)`, `(b)` ... `(z)`, `(aa)`, `(ab)` ... in bijective base 26.
//!
//! Apple's text only shows single letters; bsi continues past `(z)` the way spreadsheet columns
//! do (bijective base 26: no "zero" letter, so `(z)` is followed by `(aa)`), which keeps every
//! letter sequence gap-free and totally ordered.

use std::fmt;
use std::str::FromStr;

use super::VersionError;

/// Letters beyond this many would overflow the index; no real line comes near it.
const MAX_LETTERS: usize = 6;

/// A response's extra version: its position in the line of responses for one base, from 1 (`a`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Extra(u32);

impl Extra {
    /// The extra at 1-based position `index` (1 is `(a)`, 27 is `(aa)`).
    ///
    /// # Panics
    /// When `index` is 0: there is no response before `(a)`.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn from_index(index: u32) -> Self {
        assert!(index > 0, "response letters start at 1 = (a)");
        Extra(index)
    }

    /// The 1-based position in the line.
    #[cfg(test)]
    #[must_use]
    pub(crate) const fn index(self) -> u32 {
        self.0
    }

    /// The next response letter.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn next(self) -> Self {
        Extra(self.0 + 1)
    }

    /// Every extra from `(a)` up to and including `self`.
    pub(crate) fn up_to(self) -> impl Iterator<Item = Extra> {
        (1..=self.0).map(Extra)
    }

    /// The letters alone, without parentheses: `a`, `aa`.
    #[must_use]
    pub(crate) fn letters(self) -> String {
        let mut n = self.0;
        let mut out = Vec::new();
        while n > 0 {
            n -= 1;
            out.push(b'a' + (n % 26) as u8);
            n /= 26;
        }
        out.reverse();
        String::from_utf8(out).unwrap_or_default()
    }

    /// Parses the letters alone (`a`, `ab`), as the DDM schema's example shows them.
    pub(crate) fn parse_letters(input: &str) -> Result<Self, VersionError> {
        let bad = |reason: &str| VersionError::Extra {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(bad("no letters between the parentheses"));
        }
        if input.len() > MAX_LETTERS {
            return Err(bad("too many letters"));
        }
        let mut n: u32 = 0;
        for b in input.bytes() {
            if b.is_ascii_uppercase() {
                return Err(bad("letters must be lowercase"));
            }
            if !b.is_ascii_lowercase() {
                return Err(bad("only the letters a to z are allowed"));
            }
            n = n * 26 + u32::from(b - b'a' + 1);
        }
        Ok(Extra(n))
    }
}

impl FromStr for Extra {
    type Err = VersionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.trim().is_empty() {
            return Err(VersionError::Empty {
                what: "response extra version",
                example: "(a)",
            });
        }
        let inner = input
            .strip_prefix('(')
            .ok_or_else(|| VersionError::Extra {
                input: input.to_owned(),
                reason: "it must start with `(`".to_owned(),
            })?
            .strip_suffix(')')
            .ok_or_else(|| VersionError::Extra {
                input: input.to_owned(),
                reason: "it must end with `)`".to_owned(),
            })?;
        Extra::parse_letters(inner).map_err(|e| match e {
            VersionError::Extra { reason, .. } => VersionError::Extra {
                input: input.to_owned(),
                reason,
            },
            other => other,
        })
    }
}

impl fmt::Display for Extra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({})", self.letters())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_follow_bijective_base_26() {
        let table = [
            (1, "(a)"),
            (2, "(b)"),
            (26, "(z)"),
            (27, "(aa)"),
            (28, "(ab)"),
            (52, "(az)"),
            (53, "(ba)"),
            (702, "(zz)"),
            (703, "(aaa)"),
        ];
        for (index, text) in table {
            assert_eq!(Extra::from_index(index).to_string(), text);
            assert_eq!(text.parse::<Extra>().unwrap().index(), index, "{text}");
        }
    }

    #[test]
    fn rejects_bad_extras() {
        for (input, needle) in [
            ("(A)", "lowercase"),
            ("(a", "end with"),
            ("a)", "start with"),
            ("()", "no letters"),
            ("(a1)", "only the letters"),
            ("", "empty"),
            ("(aaaaaaa)", "too many"),
        ] {
            let err = input.parse::<Extra>().unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
    }
}
