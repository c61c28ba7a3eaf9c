//! Fuzzes what a DDM server answers `GET /tokens` and `GET /declaration-items` with. The work is
//! `bsi::fuzzing::ddm_answers`; run with `-rss_limit_mb=256 -timeout=2` (docs/reliability.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bsi::fuzzing::ddm_answers(data));
