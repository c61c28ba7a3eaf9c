//! Fuzzes SystemVersion.plist, which round-trips. The work is `bsi::fuzzing::system_version`; run with
//! `-rss_limit_mb=256 -timeout=2` (docs/reliability.md) so that costly inputs count as findings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bsi::fuzzing::system_version(data));
