//! Unit tests of `manifest`.

use super::*;
use crate::bundle::manifest_write::plist_xml;
use crate::bundle::manifest_xml::{bounds, bounds_from};
use plist::{Dictionary, Value};

fn sample() -> Manifest {
    let mut files = BTreeMap::new();
    files.insert(
        Cryptex::Os,
        vec![FileEntry {
            path: "System/Library/dyld/cache".into(),
            size: 3,
            sha256: Digest::of(b"abc"),
            mode: 0o644,
        }],
    );
    Manifest {
        product: Platform::MacOs,
        version: "26.3.1".parse().unwrap(),
        prerequisite: "25D2128".parse().unwrap(),
        extra: "(a)".parse().unwrap(),
        build: "25D771280a".parse().unwrap(),
        posting_date: Some("2026-03-17".into()),
        supported_devices: vec![],
        description: Some("test".into()),
        signing_key: None,
        cryptexes: Cryptexes(files),
        unknown_keys: vec![],
    }
}

fn with(edit: impl FnOnce(&mut Dictionary)) -> Result<Manifest, BundleError> {
    let mut dict = Value::from_reader(std::io::Cursor::new(sample().to_xml()))
        .unwrap()
        .into_dictionary()
        .unwrap();
    edit(&mut dict);
    Manifest::parse(&plist_xml(&Value::Dictionary(dict)))
}

fn os_entry(dict: &mut Dictionary) -> &mut Dictionary {
    dict.get_mut("Cryptexes")
        .and_then(Value::as_dictionary_mut)
        .and_then(|c| c.get_mut("OS"))
        .and_then(Value::as_array_mut)
        .and_then(|a| a.get_mut(0))
        .and_then(Value::as_dictionary_mut)
        .unwrap()
}

/// The one-pass reader reads what the scan-first one does, and refuses what passes a bound
/// (here nesting 140,000 deep under a key it would skip) without recursing into it.
#[test]
fn the_one_pass_reader_agrees_and_stays_bounded() {
    let m = sample();
    assert_eq!(
        Manifest::parse_in_one_pass(m.to_xml().as_slice()).unwrap(),
        m
    );
    let mut deep =
        String::from("<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Unknown</key>");
    deep.push_str(&"<array>".repeat(140_000));
    deep.push_str(&"</array>".repeat(140_000));
    deep.push_str("</dict></plist>");
    for err in [
        Manifest::parse(deep.as_bytes()).unwrap_err(),
        Manifest::parse_in_one_pass(deep.as_bytes()).unwrap_err(),
    ] {
        assert!(
            err.to_string().contains("nested deeper than 16 levels"),
            "{err}"
        );
    }
}

/// The scan over a reader (for a large manifest streamed to a private copy) accepts and
/// refuses what the scan over bytes does, with the same message, however the reader cuts
/// its input: deep nesting, too long a text, too long a document type, a binary plist,
/// broken XML, a good manifest.
#[test]
fn the_scan_over_a_reader_agrees_with_the_scan_over_bytes() {
    let good = sample().to_xml();
    let mut deep = String::from("<plist><dict><key>K</key>");
    deep.push_str(&"<array>".repeat(40));
    deep.push_str(&"</array>".repeat(40));
    deep.push_str("</dict></plist>");
    let long_text = format!("<plist><string>{}</string></plist>", "x".repeat(70_000));
    let long_doctype = format!("<!DOCTYPE plist [{}]><plist/>", "y".repeat(2_000));
    let cut = &good[..good.len() / 2];
    let inputs: [&[u8]; 7] = [
        &good,
        deep.as_bytes(),
        long_text.as_bytes(),
        long_doctype.as_bytes(),
        b"bplist00xyz",
        b"<plist><dict></array></plist>",
        cut,
    ];
    for input in inputs {
        let whole = bounds(input).map_err(|e| e.to_string());
        for capacity in [1, 7, 4096] {
            let streamed = bounds_from(std::io::BufReader::with_capacity(capacity, input))
                .map_err(|e| e.to_string());
            assert_eq!(whole, streamed, "capacity {capacity}");
        }
    }
    assert!(bounds(deep.as_bytes()).is_err() && bounds(long_text.as_bytes()).is_err());
}

proptest::proptest! {
    /// Any document cut from a manifest and changed at one byte, read by any buffer size:
    /// the scan over a reader gives the scan over bytes' answer and message.
    #[test]
    fn the_scans_agree_on_damaged_manifests(
        cut in 0usize..2_000,
        at in 0usize..2_000,
        byte in proptest::sample::select(b"<>/![]?&;\"' xK\0".to_vec()),
        capacity in 1usize..64,
    ) {
        let mut doc = sample().to_xml();
        doc.truncate(cut.min(doc.len()));
        if let Some(b) = doc.get_mut(at) {
            *b = byte;
        }
        let whole = bounds(&doc).map_err(|e| e.to_string());
        let streamed = bounds_from(std::io::BufReader::with_capacity(capacity, doc.as_slice()))
            .map_err(|e| e.to_string());
        proptest::prop_assert_eq!(whole, streamed);
    }
}

#[test]
fn a_document_that_is_not_a_property_list_is_named_so_not_blamed_on_a_key() {
    let xml = sample().to_xml();
    // Cut after a whole tag, so the XML parses as far as it goes.
    let cut = &xml[..=xml[..xml.len() / 2]
        .iter()
        .rposition(|&b| b == b'>')
        .unwrap()];
    let err = Manifest::parse(cut).unwrap_err().to_string();
    assert!(
        err.contains("not a valid property list: the document ends"),
        "{err}"
    );
    let err = Cryptexes::parse(b"<plist><dict><key>OS</key>")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid property list"), "{err}");
}

#[test]
fn round_trips() {
    let m = sample();
    assert_eq!(Manifest::parse(&m.to_xml()).unwrap(), m);
}

#[test]
fn keeps_unknown_keys() {
    let m = with(|d| {
        d.insert("FutureKey".into(), Value::Boolean(true));
    })
    .unwrap();
    assert_eq!(m.unknown_keys, ["FutureKey"]);
}

#[test]
fn names_the_key_at_fault() {
    type Edit = Box<dyn FnOnce(&mut Dictionary)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|d| {
                d.remove("ProductVersion");
            }),
            "`ProductVersion` is missing",
        ),
        (
            Box::new(|d| {
                d.insert("ProductVersion".into(), Value::Integer(26.into()));
            }),
            "`ProductVersion` must be a string",
        ),
        (
            Box::new(|d| {
                d.insert("ProductVersionExtra".into(), "(A)".into());
            }),
            "`ProductVersionExtra`",
        ),
        (
            Box::new(|d| {
                d.insert("ProductBuildVersion".into(), "25E771280a".into());
            }),
            "train prefix",
        ),
        (
            Box::new(|d| {
                d.insert("ProductName".into(), "watchOS".into());
            }),
            "`ProductName`",
        ),
        (
            Box::new(|d| {
                d.insert("BundleFormatVersion".into(), Value::Integer(2.into()));
            }),
            "format 1",
        ),
        (
            Box::new(|d| {
                os_entry(d).insert("Size".into(), "3".into());
            }),
            "`Cryptexes.OS[0].Size` must be a non-negative integer",
        ),
        (
            Box::new(|d| {
                os_entry(d).remove("SHA256");
            }),
            "`Cryptexes.OS[0].SHA256` is missing",
        ),
        (
            Box::new(|d| {
                os_entry(d).insert("SHA256".into(), "abc".into());
            }),
            "64 hex digits",
        ),
        (
            Box::new(|d| {
                os_entry(d).insert("Mode".into(), Value::Integer(0o4755.into()));
            }),
            "`Cryptexes.OS[0].Mode`",
        ),
        (
            Box::new(|d| {
                os_entry(d).insert("Path".into(), "../x".into());
            }),
            "`..`",
        ),
        (
            Box::new(|d| {
                os_entry(d).insert("Path".into(), "/etc/passwd".into());
            }),
            "absolute",
        ),
        (
            Box::new(|d| {
                os_entry(d).insert("Size".into(), Value::Integer((MAX_FILE_BYTES + 1).into()));
            }),
            "limit",
        ),
        (
            Box::new(|d| {
                d.insert("Cryptexes".into(), Value::Dictionary(Dictionary::new()));
            }),
            "lists no cryptex",
        ),
    ];
    for (edit, needle) in cases {
        let err = with(edit).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn rejects_duplicates_and_file_directory_clashes() {
    for (a, b, needle) in [
        ("x/y", "x/y", "twice"),
        ("x", "x/y", "also used as a directory"),
    ] {
        let err = with(|d| {
            let arr = d
                .get_mut("Cryptexes")
                .and_then(Value::as_dictionary_mut)
                .and_then(|c| c.get_mut("OS"))
                .and_then(Value::as_array_mut)
                .unwrap();
            let mut second = arr[0].clone();
            second
                .as_dictionary_mut()
                .unwrap()
                .insert("Path".into(), b.into());
            arr[0]
                .as_dictionary_mut()
                .unwrap()
                .insert("Path".into(), a.into());
            arr.push(second);
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn rejects_garbage() {
    for bytes in [&b""[..], b"not a plist", b"<plist><array/></plist>"] {
        assert!(matches!(
            Manifest::parse(bytes),
            Err(BundleError::Manifest { .. })
        ));
    }
}
