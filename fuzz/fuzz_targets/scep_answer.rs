//! Fuzzes `bsi::fuzzing::scep_answer` (docs/reliability.md); run with `-rss_limit_mb=256 -timeout=2`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bsi::fuzzing::scep_answer(data));
