//! Fuzzes the manifest parser (`Info.plist`): no input may panic, and an accepted manifest
//! written back out parses to the same manifest.
#![no_main]

use bsi::bundle::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        let again = Manifest::parse(&m.to_xml()).expect("bsi reads what it writes");
        assert_eq!(again.cryptexes, m.cryptexes);
        assert_eq!(again.build, m.build);
    }
});
