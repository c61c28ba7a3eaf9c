//! Fuzzes DDM declarations as `policy set` reads them. The work is `bsi::fuzzing::declaration`; run with
//! `-rss_limit_mb=256 -timeout=2` (docs/reliability.md) so that costly inputs count as findings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bsi::fuzzing::declaration(data));
