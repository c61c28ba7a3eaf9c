//! Fuzzes a tar bundle end to end: head, signature, bounded parse, structure walk, payload. The work is `bsi::fuzzing::tar_bundle`; run with
//! `-rss_limit_mb=256 -timeout=2` (docs/reliability.md) so that costly inputs count as findings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bsi::fuzzing::tar_bundle(data));
