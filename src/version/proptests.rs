//! Property tests for the version engine: print/parse round trips, orders consistent with the
//! parts, the letter sequence without gaps, and no panic on arbitrary input.

use proptest::prelude::*;

use super::{Build, Extra, OsVersion, ResponseVersion};

fn os_version() -> impl Strategy<Value = OsVersion> {
    (1u32..=9_999, 0u32..=9_999, 0u32..=9_999).prop_map(|(a, b, c)| OsVersion::new(a, b, c))
}

fn extra() -> impl Strategy<Value = Extra> {
    (1u32..=500_000).prop_map(Extra::from_index)
}

fn build_parts() -> impl Strategy<Value = (u32, u8, u64, Option<u8>)> {
    (
        1u32..=999,
        b'A'..=b'Z',
        0u64..=99_999_999,
        proptest::option::of(b'a'..=b'z'),
    )
}

fn build_text((major, train, number, suffix): (u32, u8, u64, Option<u8>)) -> String {
    let mut s = format!("{major}{}{number}", train as char);
    if let Some(c) = suffix {
        s.push(c as char);
    }
    s
}

proptest! {
    #[test]
    fn os_version_round_trips(v in os_version()) {
        let printed = v.to_string();
        prop_assert_eq!(printed.parse::<OsVersion>().unwrap(), v);
    }

    #[test]
    fn os_version_order_follows_parts(a in (1u32..50, 0u32..50, 0u32..50), b in (1u32..50, 0u32..50, 0u32..50)) {
        let va = OsVersion::new(a.0, a.1, a.2);
        let vb = OsVersion::new(b.0, b.1, b.2);
        prop_assert_eq!(va.cmp(&vb), a.cmp(&b));
    }

    #[test]
    fn extra_round_trips(e in extra()) {
        prop_assert_eq!(e.to_string().parse::<Extra>().unwrap(), e);
        prop_assert_eq!(Extra::parse_letters(&e.letters()).unwrap(), e);
    }

    #[test]
    fn extra_sequence_has_no_gaps(e in extra()) {
        // The successor's letters are the next string in shortlex order: same length and
        // lexicographically greater, or one letter longer and all `a`s after an all-`z` string.
        let (this, next) = (e.letters(), e.next().letters());
        if this.bytes().all(|b| b == b'z') {
            prop_assert_eq!(next, "a".repeat(this.len() + 1));
        } else {
            prop_assert_eq!(next.len(), this.len());
            prop_assert!(next > this);
            let common = this.bytes().zip(next.bytes()).take_while(|(x, y)| x == y).count();
            prop_assert_eq!(next.as_bytes()[common], this.as_bytes()[common] + 1);
            prop_assert!(this.bytes().skip(common + 1).all(|b| b == b'z'));
            prop_assert!(next.bytes().skip(common + 1).all(|b| b == b'a'));
        }
    }

    #[test]
    fn response_version_round_trips_and_orders(a in os_version(), x in extra(), b in os_version(), y in extra()) {
        let ra = ResponseVersion::new(a, x);
        let rb = ResponseVersion::new(b, y);
        prop_assert_eq!(ra.to_string().parse::<ResponseVersion>().unwrap(), ra);
        prop_assert_eq!(ra.cmp(&rb), (a, x).cmp(&(b, y)));
    }

    #[test]
    fn build_round_trips_and_orders(pa in build_parts(), pb in build_parts()) {
        let (ta, tb) = (build_text(pa), build_text(pb));
        let (ba, bb): (Build, Build) = (ta.parse().unwrap(), tb.parse().unwrap());
        prop_assert_eq!(ba.to_string(), ta);
        prop_assert_eq!(ba.cmp(&bb), pa.cmp(&pb));
    }

    #[test]
    fn every_base_has_exactly_its_supplemental_builds(
        (major, train, number, _) in build_parts(),
        letter in b'a'..=b'z',
        other in 0u64..=99_999_999,
    ) {
        let base: Build = build_text((major, train, number, None)).parse().unwrap();
        prop_assert!(base.is_base());
        let stem = Build::supplemental_stem(&base);
        let mine = format!("{stem}{}", letter as char);
        prop_assert!(Build::parse_supplemental(&mine, &base).is_ok(), "{} for {}", mine, base);
        // A response build is never a base build, and fits no base with other last digits.
        prop_assert!(Build::parse_base(&mine).is_err());
        let foreign: Build = build_text((major, train, other, None)).parse().unwrap();
        if other % 1000 != number % 1000 {
            prop_assert!(Build::parse_supplemental(&mine, &foreign).is_err());
        }
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,24}") {
        let _ = s.parse::<OsVersion>();
        let _ = s.parse::<Extra>();
        let _ = s.parse::<ResponseVersion>();
        let _ = s.parse::<Build>();
    }

    #[test]
    fn parsers_never_panic_on_near_misses(s in "[0-9.()a-zA-Z ]{0,16}") {
        let _ = s.parse::<OsVersion>();
        let _ = s.parse::<Extra>();
        let _ = s.parse::<ResponseVersion>();
        if let Ok(b) = s.parse::<Build>() {
            prop_assert_eq!(b.to_string(), s);
        }
    }
}
