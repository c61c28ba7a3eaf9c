//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the docs, and nothing
//! else uses them). Each takes the raw bytes an attacker controls and runs them through the same
//! code bsi runs them through, asserting what must hold whatever the input: no panic, bounded
//! work, and that what bsi accepts it can read back.

use std::path::Path;

use crate::bundle::manifest::Manifest;
use crate::bundle::manifest_xml::signer_claim;
use crate::bundle::source::{CheckOnly, Opened};
use crate::bundle::{Bundle, stream};
use crate::clock::Clock;
use crate::ddm::catalog::Catalog;
use crate::declarations::declaration::Declaration;
use crate::device::SystemVersion;
use crate::progress::Silent;

/// The manifest parser: accepted manifests write back out to the same manifest (less the names
/// of unknown keys, which bsi reports but never writes: `to_xml` makes new manifests), and the
/// one-pass reader `verify` uses accepts exactly what the scan-first reader does, as the same.
pub fn manifest(data: &[u8]) {
    let _ = signer_claim(data);
    let one_pass = Manifest::parse_in_one_pass(data);
    match Manifest::parse(data) {
        Ok(m) => {
            let again = Manifest::parse(&m.to_xml()).expect("bsi reads what it writes");
            let mut known = m.clone();
            known.unknown_keys.clear();
            assert_eq!(again, known);
            assert_eq!(one_pass.expect("the one-pass reader accepts it too"), m);
        }
        Err(_) => assert!(
            one_pass.is_err(),
            "the one-pass reader accepts what parse refuses"
        ),
    }
}

/// A tar bundle end to end: head, signature check against no key, bounded parse, structure
/// walk, payload stream.
pub fn tar_bundle(data: &[u8]) {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if std::io::Write::write_all(&mut file, data).is_err() {
        return;
    }
    open_and_read(file.path());
}

/// The raw-manifest path of a directory bundle: `data` is `Info.plist` (its first byte, when
/// odd, also adds a malformed `Info.plist.sig`), checked against a key before it is parsed.
pub fn raw_manifest(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let bundle = dir.path().join("x.bsi");
    if std::fs::create_dir(&bundle).is_err()
        || std::fs::write(bundle.join("Info.plist"), data).is_err()
    {
        return;
    }
    if data.first().is_some_and(|b| b % 2 == 1) {
        let _ = std::fs::write(bundle.join("Info.plist.sig"), &data[..data.len().min(64)]);
    }
    open_and_read(&bundle);
}

fn open_and_read(path: &Path) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let trusted = [crate::bundle::keys::PublicKey::new(key.verifying_key())];
    let Ok(opened) = Opened::open(path) else {
        return;
    };
    assert!(opened.manifest_bytes.len() as u64 <= crate::bundle::limits::MAX_MANIFEST_BYTES);
    let _ = signer_claim(&opened.manifest_bytes);
    let bundle: Option<Bundle> = match opened.verify(&trusted) {
        Ok((b, _)) => Some(b),
        Err(_) => Opened::open(path).ok().and_then(|o| o.parse().ok()),
    };
    let Some(mut bundle) = bundle else { return };
    if bundle.check_structure().is_err() {
        return;
    }
    let total = bundle.manifest.cryptexes.total_size();
    let _ = stream::run(&Silent, "fuzz", total, |feeder| {
        bundle.stream(feeder, &mut CheckOnly)
    });
}

/// A DDM declaration as `policy set` reads it.
pub fn declaration(data: &[u8]) {
    if let Ok(d) = Declaration::parse(data, "fuzz.json") {
        assert!(!d.identifier.is_empty());
        // What the device makes of it, next to an activation of it: states, reasons, predicate.
        let facts = crate::declarations::support::DeviceFacts::new(
            crate::platform::Platform::MacOs,
            crate::version::OsVersion::new(26, 3, 1),
            true,
        );
        let states = crate::declarations::state::evaluate(vec![d], &facts, &|name| {
            (name == "device.operating-system.family")
                .then(|| crate::declarations::predicate::StatusValue::Text("macOS".to_owned()))
        });
        assert_eq!(states.len(), 1);
    }
}

/// What a DDM server answers `GET /tokens` and `GET /declaration-items` with, as `sync` reads and
/// checks it before fetching anything (`Declaration::parse` is the `declaration` target's).
pub fn ddm_answers(data: &[u8]) {
    use crate::ddm::client::{DeclarationItemsResponse, TokensResponse};
    if let Ok(t) = serde_json::from_slice::<TokensResponse>(data) {
        let _ = t.sync_tokens.declarations_token.len();
    }
    if let Ok(items) = serde_json::from_slice::<DeclarationItemsResponse>(data)
        && crate::ddm::sync::check_listing("fuzz", &items.declarations).is_ok()
    {
        let mut seen = std::collections::HashSet::new();
        assert!(
            items
                .declarations
                .all()
                .all(|(_, d)| seen.insert(d.identifier.clone()))
        );
        assert!(seen.len() <= crate::declarations::store::MAX_DECLARATIONS);
    }
}

/// An activation predicate: parsing is bounded and evaluation never panics.
pub fn predicate(data: &[u8]) {
    use crate::declarations::predicate::{Predicate, StatusValue};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Predicate::parse(text) {
        let _ =
            p.evaluate(&|name| (name.len() % 2 == 0).then(|| StatusValue::Text(name.to_owned())));
    }
}

/// A software lookup catalog as `lookup` and `auto --catalog` read it.
pub fn catalog(data: &[u8]) {
    let clock = Clock::parse("2026-12-01T10:00:00Z").expect("a fixed clock");
    if let Ok(c) = Catalog::parse(data, Path::new("fuzz.json"), &clock) {
        let _ = c.lookup(None, None);
        let _ = c.lookup(None, Some("26.3.1 (a)"));
    }
}

/// A `SystemVersion.plist`: what is accepted writes back out to the same value.
pub fn system_version(data: &[u8]) {
    if let Ok(sv) = SystemVersion::parse(data, Path::new("SystemVersion.plist")) {
        let again = SystemVersion::parse(&sv.to_xml(), Path::new("again")).expect("round trip");
        assert_eq!(again, sv);
    }
}

/// The device's JSON records, each as its own type.
pub fn records(data: &[u8]) {
    use crate::device::records::{
        DeviceInfo, Failure, Included, InstallReason, Power, SafariRecord, Settings,
    };
    let _ = serde_json::from_slice::<DeviceInfo>(data);
    let _ = serde_json::from_slice::<Power>(data);
    let _ = serde_json::from_slice::<Settings>(data);
    let _ = serde_json::from_slice::<Included>(data);
    let _ = serde_json::from_slice::<SafariRecord>(data);
    let _ = serde_json::from_slice::<Failure>(data);
    let _ = serde_json::from_slice::<InstallReason>(data);
    let _ = serde_json::from_slice::<crate::history::Entry>(data);
    let _ = serde_json::from_slice::<crate::history::LastOperation>(data);
    let _ = serde_json::from_slice::<crate::lifecycle::journal::Journal>(data);
    let _ = serde_json::from_slice::<crate::device::Holder>(data);
    let _ = serde_json::from_slice::<
        std::collections::BTreeMap<String, crate::device::origins::Origin>,
    >(data);
}

/// The version engine's parsers: what parses prints back to the same value.
pub fn versions(data: &[u8]) {
    use crate::version::{Build, Extra, OsVersion, ResponseVersion};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(v) = text.parse::<OsVersion>() {
        assert_eq!(v.to_string().parse::<OsVersion>().ok(), Some(v));
    }
    if let Ok(v) = text.parse::<Extra>() {
        assert_eq!(v.to_string().parse::<Extra>().ok(), Some(v));
    }
    if let Ok(v) = text.parse::<ResponseVersion>() {
        assert_eq!(v.to_string().parse::<ResponseVersion>().ok(), Some(v));
    }
    if let Ok(b) = text.parse::<Build>() {
        assert_eq!(b.to_string(), text);
        let _ = Build::parse_supplemental(text, &b);
        let _ = Build::parse_base(text);
    }
}

/// A command plist an MDM server answers a check-in with, as `bsi mdm poll` reads it: the
/// bounded plist reader and the command's shape; a command read is answered as unknown, and
/// that answer must be a plist bsi writes.
pub fn mdm_command(data: &[u8]) {
    if let Ok(Some(command)) = crate::mdm::commands::read(data) {
        let answer = crate::mdm::commands::unknown(&command.request_type);
        let message = answer.into_message(&command.uuid);
        let mut out = Vec::new();
        plist::to_writer_xml(&mut out, &plist::Value::Dictionary(message))
            .expect("an answer writes");
    }
}

/// An enrollment profile, XML or signed (CMS), as `bsi mdm enroll` reads it.
pub fn enrollment_profile(data: &[u8]) {
    let _ = crate::mdm::profile::Profile::parse(data);
}

/// A SCEP server's `CertRep`: the CMS signed data, its signature, status attributes and the
/// enveloped certificate, against a fixed request key and CA.
pub fn scep_answer(data: &[u8]) {
    use std::sync::OnceLock;
    static FIXED: OnceLock<(crate::mdm::pki::Key, x509_cert::Certificate)> = OnceLock::new();
    let (key, ca) = FIXED.get_or_init(|| {
        let key = crate::mdm::pki::Key::generate_rsa(1024).expect("a key");
        let name = crate::mdm::pki::parse_name("CN=fuzz CA").expect("a name");
        let ca = crate::mdm::pki::self_signed(&name, &key).expect("a certificate");
        (key, ca)
    });
    let _ =
        crate::mdm::scep::read_cert_rep(data, std::slice::from_ref(ca), b"0123456789abcdef", key);
}

/// A PKCS #12 identity as a profile's `com.apple.security.pkcs12` payload carries it.
pub fn pkcs12(data: &[u8]) {
    let _ = crate::mdm::pkcs12::identity(data, Some("secret"));
}
