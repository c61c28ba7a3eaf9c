//! Fuzzes the tar bundle reader: the bytes are written to a file and read as a bundle (header,
//! structure walk, payload stream). No input may panic or hang; every rejection is a bundle error.
#![no_main]

use bsi::bundle::Bundle;
use bsi::bundle::source::CheckOnly;
use bsi::bundle::stream;
use bsi::progress::Silent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, data).unwrap();
    let Ok(mut bundle) = Bundle::open(file.path()) else { return };
    if bundle.check_structure().is_err() {
        return;
    }
    let total = bundle.manifest.cryptexes.total_size();
    let _ = stream::run(&Silent, "fuzz", total, |feeder| bundle.stream(feeder, &mut CheckOnly));
});
