//! `ResponseVersion`: a response's full public version, `26.3.1 (a)`: the base OS version it
//! applies to, a space, and its extra letter.

use std::fmt;
use std::str::FromStr;

use super::{Extra, OsVersion, VersionError};

/// A response version such as `26.3.1 (a)`. Orders by base version, then by letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ResponseVersion {
    /// The base OS version the response is for.
    pub os: OsVersion,
    /// Its position in the line for that base.
    pub extra: Extra,
}

impl ResponseVersion {
    /// Makes a response version from its parts.
    #[must_use]
    pub(crate) const fn new(os: OsVersion, extra: Extra) -> Self {
        Self { os, extra }
    }

    /// Every response of this one's line up to and including it: `(a)`, `(b)`, ... `self`.
    /// Responses are cumulative, so having `self` means having all of these.
    pub(crate) fn line_up_to(self) -> impl Iterator<Item = ResponseVersion> {
        self.extra
            .up_to()
            .map(move |extra| ResponseVersion::new(self.os, extra))
    }
}

impl FromStr for ResponseVersion {
    type Err = VersionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.trim().is_empty() {
            return Err(VersionError::Empty {
                what: "response version",
                example: "26.3.1 (a)",
            });
        }
        let Some((os, extra)) = input.split_once(' ') else {
            let reason = if input.contains('(') {
                "put one space between the OS version and the letter"
            } else {
                "the letter in parentheses is missing"
            };
            return Err(VersionError::ResponseVersion {
                input: input.to_owned(),
                reason: reason.to_owned(),
            });
        };
        Ok(ResponseVersion::new(os.parse()?, extra.parse()?))
    }
}

impl fmt::Display for ResponseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.os, self.extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_orders() {
        let a: ResponseVersion = "26.3.1 (a)".parse().unwrap();
        let c: ResponseVersion = "26.3.1 (c)".parse().unwrap();
        let next: ResponseVersion = "26.4 (a)".parse().unwrap();
        assert_eq!(a.to_string(), "26.3.1 (a)");
        assert!(a < c && c < next);
        let line: Vec<String> = c.line_up_to().map(|v| v.to_string()).collect();
        assert_eq!(line, ["26.3.1 (a)", "26.3.1 (b)", "26.3.1 (c)"]);
    }

    #[test]
    fn rejects_bad_response_versions() {
        for (input, needle) in [
            ("26.3.1(a)", "one space"),
            ("26.3.1", "letter in parentheses is missing"),
            ("26.3.1 (A)", "lowercase"),
            ("26..1 (a)", "minor number is empty"),
            ("26.3.1  (a)", "start with"),
            ("", "empty response version"),
        ] {
            let err = input.parse::<ResponseVersion>().unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
    }
}
