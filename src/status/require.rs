//! `status --require VERSION`: does this device have at least these fixes? (DESIGN section 7, as
//! docs/design.md states it.) A plain OS version (`26.4`) is met by that base or any later one. A
//! response (`26.3.1 (b)`) is met by any later base, minor or major (a minor update includes
//! the line; a major upgrade is later still), and on its own base when the active response is at
//! least `(b)` and every cryptex carries at least `(b)`'s content: supplied by `(b)` or a later
//! response, or inherited from an earlier response that a response at least `(b)` replaced, or
//! kept from the base when no response of the line up to `(b)` carries that cryptex (as the device
//! knows it: its generations and what it installed; a response it never saw is taken to carry OS
//! content and no App content). So an App-only `(d)` over the base lacks the OS content of `(c)`,
//! and OS-only responses over the base meet their own line.

use crate::platform::Cryptex;
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

/// What supplies one cryptex: a response's version, or `None` for the base.
pub(crate) type Supplier = (Cryptex, Option<ResponseVersion>);

/// Does response `r` carry `cryptex` itself, as far as the device knows (`known`: from its
/// generations and what it installed)? A response the device never saw is taken to carry OS
/// content (every response Apple has published does) and no App content (many carry none).
fn carries(
    r: ResponseVersion,
    cryptex: Cryptex,
    known: &dyn Fn(ResponseVersion) -> Option<Vec<Cryptex>>,
) -> bool {
    known(r).map_or(cryptex == Cryptex::Os, |c| c.contains(&cryptex))
}

/// Checks `requirement` against the device's typed state: its base version, its active response
/// and what supplies each cryptex; `known` says which cryptexes a response carried, when the
/// device knows. Exit 9 when not met, saying what it would take.
pub(crate) fn check(
    base: OsVersion,
    active: Option<ResponseVersion>,
    suppliers: &[Supplier],
    known: &dyn Fn(ResponseVersion) -> Option<Vec<Cryptex>>,
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
        Requirement::Response(r) if base > r.os => return Ok(()),
        Requirement::Response(r) if base < r.os => later(r.os),
        Requirement::Response(r) => {
            let active_meets = active.is_some_and(|a| a.os == r.os && a >= r);
            // Content a response supplies is at least `r`'s when that response is `r` or later,
            // or (inherited through responses) when the active one is; content the base
            // supplies is, only when no response of the line up to `r` carries that cryptex.
            let meets = |(cryptex, supplier): &&Supplier| match supplier {
                Some(s) => *s >= r || active_meets,
                None => !r.line_up_to().any(|v| carries(v, *cryptex, known)),
            };
            let lacking = suppliers.iter().find(|s| !meets(s));
            match (active_meets, lacking) {
                (true, None) => return Ok(()),
                (true, Some((cryptex, _))) => RequireGap::Content { cryptex: *cryptex },
                (false, _) => RequireGap::Response,
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

    /// One row: base, requirement, active response, (App, OS) suppliers, the gap expected.
    type Case = (
        &'static str,
        &'static str,
        Option<&'static str>,
        [Option<&'static str>; 2],
        Option<RequireGap>,
    );

    /// Checks each row of `table`.
    fn check_table(table: &[Case]) {
        let v = |s: &str| s.parse::<OsVersion>().unwrap();
        let r = |s: &str| s.parse::<ResponseVersion>().unwrap();
        let both = |x: Option<&str>, y: Option<&str>| {
            vec![(Cryptex::App, x.map(r)), (Cryptex::Os, y.map(r))]
        };
        for (base, req, active, [app, os], want) in table.iter().cloned() {
            let known =
                |x: ResponseVersion| (x.extra.to_string() == "(d)").then(|| vec![Cryptex::App]);
            let got = match check(
                v(base),
                active.map(r),
                &both(app, os),
                &known,
                Requirement::parse(req).unwrap(),
            ) {
                Ok(()) => None,
                Err(Error::RequireNotMet { gap, .. }) => Some(gap),
                Err(e) => panic!("{e}"),
            };
            assert_eq!(got, want, "{req} on {base} with {active:?}");
        }
    }

    #[test]
    fn an_unmet_requirement_on_the_base_or_a_full_response_says_what_it_takes() {
        let b = Some("26.3.1 (b)");
        check_table(&[
            // OS-only responses over the base meet their own line: no response carries App.
            (
                "26.3.1",
                "26.3.1 (b)",
                Some("26.3.1 (c)"),
                [None, Some("26.3.1 (c)")],
                None,
            ),
            (
                "26.3.1",
                "26.3.1 (c)",
                Some("26.3.1 (c)"),
                [None, Some("26.3.1 (c)")],
                None,
            ),
            ("26.3.1", "26.3.1 (a)", b, [b, b], None),
            ("26.3.1", "26.3.1 (b)", b, [b, b], None),
            (
                "26.3.1",
                "26.3.1 (c)",
                b,
                [b, b],
                Some(RequireGap::Response),
            ),
            ("26.3.1", "26.3 (f)", None, [None, None], None),
            ("26.3.1", "26.3.1", None, [None, None], None),
            (
                "26.3.1",
                "26.4",
                b,
                [b, b],
                Some(RequireGap::OsUpdate {
                    version: "26.4".into(),
                }),
            ),
            (
                "26.3.1",
                "26.4 (a)",
                b,
                [b, b],
                Some(RequireGap::OsUpdate {
                    version: "26.4".into(),
                }),
            ),
            (
                "26.3.1",
                "27.0",
                b,
                [b, b],
                Some(RequireGap::OsUpgrade {
                    version: "27.0".into(),
                }),
            ),
            // A later base, minor or major, meets every earlier response.
            ("27.0", "26.3.1 (a)", None, [None, None], None),
            ("27.0", "25.0 (a)", None, [None, None], None),
            ("26.4", "26.3.1 (c)", None, [None, None], None),
        ]);
    }

    #[test]
    fn an_app_only_response_meets_only_what_its_os_content_supplies() {
        check_table(&[
            // An App-only (d) over the base lacks the OS content of (c), and of (d) itself.
            (
                "26.3.1",
                "26.3.1 (c)",
                Some("26.3.1 (d)"),
                [Some("26.3.1 (d)"), None],
                Some(RequireGap::Content {
                    cryptex: Cryptex::Os,
                }),
            ),
            (
                "26.3.1",
                "26.3.1 (d)",
                Some("26.3.1 (d)"),
                [Some("26.3.1 (d)"), None],
                Some(RequireGap::Content {
                    cryptex: Cryptex::Os,
                }),
            ),
            // An App-only (d) over (c): the OS content (c) supplied is (d)'s.
            (
                "26.3.1",
                "26.3.1 (d)",
                Some("26.3.1 (d)"),
                [Some("26.3.1 (d)"), Some("26.3.1 (c)")],
                None,
            ),
            (
                "26.3.1",
                "26.3.1 (c)",
                Some("26.3.1 (d)"),
                [Some("26.3.1 (d)"), Some("26.3.1 (c)")],
                None,
            ),
            (
                "26.3.1",
                "26.3.1 (e)",
                Some("26.3.1 (d)"),
                [Some("26.3.1 (d)"), Some("26.3.1 (c)")],
                Some(RequireGap::Response),
            ),
        ]);
    }
}
