//! Fuzzes the version engine's parsers: what parses prints back to the same value. The work is `bsi::fuzzing::versions`; run with
//! `-rss_limit_mb=256 -timeout=2` (docs/reliability.md) so that costly inputs count as findings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bsi::fuzzing::versions(data));
