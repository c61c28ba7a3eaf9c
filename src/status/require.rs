//! `status --require VERSION`: is the device at least at `VERSION`? Met when the active response
//! is that one or a later one of the same line, or when the base is a later minor version of the
//! same major release (which includes every response of earlier versions). A plain OS version
//! (`26.4`) is met by that base or any later one.

use crate::version::{OsVersion, ResponseVersion};
use crate::{Error, RequireGap, Result};

/// What `--require` asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Requirement {
    /// A response, e.g. `26.3.1 (b)`.
    Response(ResponseVersion),
    /// An OS version, e.g. `26.4`.
    Os(OsVersion),
}

impl Requirement {
    /// Parses `26.3.1 (b)` or `26.4`.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        if text.contains('(') {
            Ok(Requirement::Response(text.parse()?))
        } else {
            Ok(Requirement::Os(text.parse()?))
        }
    }
}

/// Checks `requirement` against the device's typed state (its base version and its active
/// response); exit 9 when not met, saying what it would take.
pub(crate) fn check(
    base: OsVersion,
    active: Option<ResponseVersion>,
    requirement: Requirement,
) -> Result<()> {
    let later = |v: OsVersion| {
        if v.major() == base.major() {
            RequireGap::OsUpdate {
                version: v.to_string(),
            }
        } else {
            RequireGap::OsUpgrade {
                version: v.to_string(),
            }
        }
    };
    let gap = match requirement {
        Requirement::Os(v) if base >= v => return Ok(()),
        Requirement::Os(v) => later(v),
        Requirement::Response(r) => {
            if base.includes_responses_of(&r.os) || active.is_some_and(|a| a.os == r.os && a >= r) {
                return Ok(());
            }
            match r.os.cmp(&base) {
                std::cmp::Ordering::Equal => RequireGap::Response,
                std::cmp::Ordering::Greater => later(r.os),
                std::cmp::Ordering::Less => RequireGap::Never,
            }
        }
    };
    Err(Error::RequireNotMet {
        required: match requirement {
            Requirement::Response(r) => r.to_string(),
            Requirement::Os(v) => v.to_string(),
        },
        actual: active.map_or_else(|| base.to_string(), |a| a.to_string()),
        gap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unmet_requirement_says_what_it_takes() {
        let v = |s: &str| s.parse::<OsVersion>().unwrap();
        let r = |s: &str| s.parse::<ResponseVersion>().unwrap();
        let base = v("26.3.1");
        let a = Some(r("26.3.1 (b)"));
        let gap = |req: &str, active: Option<ResponseVersion>| match check(
            base,
            active,
            Requirement::parse(req).unwrap(),
        ) {
            Ok(()) => None,
            Err(Error::RequireNotMet { gap, .. }) => Some(gap),
            Err(e) => panic!("{e}"),
        };
        let table: [(&str, Option<ResponseVersion>, Option<RequireGap>); 9] = [
            ("26.3.1 (a)", a, None),
            ("26.3.1 (b)", a, None),
            ("26.3.1 (c)", a, Some(RequireGap::Response)),
            ("26.3 (f)", None, None),
            ("26.3.1", None, None),
            (
                "26.4",
                a,
                Some(RequireGap::OsUpdate {
                    version: "26.4".into(),
                }),
            ),
            (
                "26.4 (a)",
                a,
                Some(RequireGap::OsUpdate {
                    version: "26.4".into(),
                }),
            ),
            (
                "27.0",
                a,
                Some(RequireGap::OsUpgrade {
                    version: "27.0".into(),
                }),
            ),
            ("25.0 (a)", a, Some(RequireGap::Never)),
        ];
        for (req, active, want) in table {
            assert_eq!(gap(req, active), want, "{req}");
        }
    }
}
