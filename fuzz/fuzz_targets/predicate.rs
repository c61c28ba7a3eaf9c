//! Fuzzes activation predicates as the device evaluates them. The work is
//! `bsi::fuzzing::predicate`; run with `-rss_limit_mb=256 -timeout=2` (docs/reliability.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bsi::fuzzing::predicate(data));
