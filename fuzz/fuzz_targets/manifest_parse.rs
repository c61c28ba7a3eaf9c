//! Fuzzes the manifest parser (bounded XML, serde): no panic, accepted manifests round-trip. The work is `bsi::fuzzing::manifest`; run with
//! `-rss_limit_mb=256 -timeout=2` (docs/reliability.md) so that costly inputs count as findings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bsi::fuzzing::manifest(data));
