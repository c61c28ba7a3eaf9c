//! Fuzzes the version engine's parsers: no input may panic, and whatever parses prints back to
//! something that parses to the same value.
#![no_main]

use bsi::version::{Build, Extra, OsVersion, ResponseVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(v) = text.parse::<OsVersion>() {
        assert_eq!(v.to_string().parse::<OsVersion>().unwrap(), v);
    }
    if let Ok(v) = text.parse::<Extra>() {
        assert_eq!(v.to_string().parse::<Extra>().unwrap(), v);
    }
    if let Ok(v) = text.parse::<ResponseVersion>() {
        assert_eq!(v.to_string().parse::<ResponseVersion>().unwrap(), v);
    }
    if let Ok(b) = text.parse::<Build>() {
        assert_eq!(b.to_string(), text);
        let _ = Build::parse_supplemental(text, &b);
    }
});
