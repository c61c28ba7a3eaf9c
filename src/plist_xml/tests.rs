//! Unit tests of `plist_xml`.

use super::*;
use serde::Deserialize;
use std::collections::BTreeMap;

const LIMITS: Limits = Limits {
    depth: 64,
    nodes: 1 << 20,
    text: 1 << 20,
    doctype: 1024,
};

const TIGHT: Limits = Limits {
    depth: 8,
    nodes: 100,
    text: 64,
    doctype: 32,
};

fn read_tight<T: de::DeserializeOwned>(xml: &str) -> Result<T, Error> {
    from_reader(xml.as_bytes(), TIGHT)
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct Sample {
    name: String,
    count: u64,
    delta: i64,
    ratio: f64,
    on: bool,
    list: Vec<BTreeMap<String, String>>,
    #[serde(flatten)]
    #[allow(clippy::zero_sized_map_values)] // As the manifest keeps unknown keys.
    rest: BTreeMap<String, de::IgnoredAny>,
}

fn read<T: de::DeserializeOwned>(xml: &str) -> Result<T, Error> {
    from_reader(xml.as_bytes(), LIMITS)
}

#[test]
fn reads_the_plist_values_bsi_uses_as_plist_does() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
  <key>Name</key><string>A &amp; B&#x21; &lt;c&gt;</string>
  <key>Count</key><integer>18446744073709551615</integer>
  <key>Delta</key><integer>-3</integer>
  <key>Ratio</key><real>1.5</real>
  <key>On</key><true/>
  <key>List</key><array><dict><key>K</key><string>v</string></dict><dict/></array>
  <key>Extra</key><dict><key>D</key><data>AAEC</data><key>T</key><date>2026-11-30T00:00:00Z</date><key>N</key><array><array/></array></dict>
</dict></plist>"#;
    let ours: Sample = read(xml).unwrap();
    let theirs: Sample = plist::from_reader_xml(xml.as_bytes()).unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(ours.name, "A & B! <c>");
    assert_eq!(ours.count, u64::MAX);
}

#[test]
fn what_is_not_a_plist_value_is_refused_saying_why() {
    for (xml, needle) in [
        (
            "<plist><dict><key>a</key><blob/></dict></plist>",
            "unknown element <blob>",
        ),
        ("<plist><dict>text</dict></plist>", "text between elements"),
        (
            "<plist><integer>x</integer></plist>",
            "integer that does not parse",
        ),
        ("<plist><string>a</dict></plist>", "at byte"),
        ("<plist><string>&bogus;</string></plist>", "unknown entity"),
        ("<plist><dict><key>a</key>", "ends where a value belongs"),
        (
            "<plist><string>a</string><string>b</string></plist>",
            "more than one value",
        ),
    ] {
        let error = read::<serde_json::Value>(xml).unwrap_err().to_string();
        assert!(error.contains(needle), "{xml}: {error}");
    }
}

/// Every bound stops the reader at the element that passes it, whatever the reader asked for.
#[test]
fn the_limits_stop_reading_where_they_are_passed() {
    let deep = format!(
        "<plist>{}{}</plist>",
        "<array>".repeat(9),
        "</array>".repeat(9)
    );
    let wide = format!("<plist><array>{}</array></plist>", "<true/>".repeat(99));
    let long = format!("<plist><string>{}</string></plist>", "x".repeat(65));
    let split = format!(
        "<plist><string>{}&amp;{}</string></plist>",
        "x".repeat(40),
        "y".repeat(40)
    );
    let doctype = format!("<!DOCTYPE plist {}><plist><true/></plist>", "x".repeat(40));
    let cases = [
        (deep, Exceeded::Depth),
        (wide, Exceeded::Nodes),
        (long, Exceeded::Text(65)),
        (split, Exceeded::Text(81)),
        (doctype, Exceeded::Doctype),
    ];
    for (xml, want) in cases {
        for skipped in [false, true] {
            let error = if skipped {
                read_tight::<de::IgnoredAny>(&xml).unwrap_err()
            } else {
                read_tight::<serde_json::Value>(&xml).unwrap_err()
            };
            assert_eq!(error.exceeded, Some(want), "{xml}: {error}");
        }
    }
    // Just inside every bound: read.
    let fits = format!(
        "<plist>{}<string>{}</string>{}</plist>",
        "<array>".repeat(6),
        "x".repeat(64),
        "</array>".repeat(6)
    );
    read_tight::<serde_json::Value>(&fits).unwrap();
}

#[test]
fn a_refused_value_is_named_by_its_key_path_in_plist_words() {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    #[allow(dead_code)] // Only the errors are looked at.
    struct Entry {
        size: u64,
        path: String,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    #[allow(dead_code)]
    struct Top {
        cryptexes: BTreeMap<String, Vec<Entry>>,
    }
    let doc = |entry: &str| {
        format!(
            "<plist><dict><key>Cryptexes</key><dict><key>OS</key><array>\
             <dict><key>Size</key><integer>1</integer><key>Path</key><string>a</string></dict>\
             {entry}</array></dict></dict></plist>"
        )
    };
    let said = |xml: String| read::<Top>(&xml).unwrap_err().to_string();
    assert_eq!(
        said(doc(
            "<dict><key>Size</key><string>9</string><key>Path</key><string>b</string></dict>"
        )),
        "key `Cryptexes.OS[1].Size` must be a non-negative integer, found a string"
    );
    assert_eq!(
        said(doc("<dict><key>Size</key><integer>-2</integer></dict>")),
        "key `Cryptexes.OS[1].Size` must be a non-negative integer, found a negative integer"
    );
    assert_eq!(
        said(doc("<dict><key>Size</key><integer>2</integer></dict>")),
        "required key `Cryptexes.OS[1].Path` is missing"
    );
    assert_eq!(
        said(doc(
            "<dict><key>Path</key><string>b</string><key>Size</key><integer>2</integer>\
             <key>Path</key><string>c</string></dict>"
        )),
        "key `Cryptexes.OS[1].Path` is given twice"
    );
    assert_eq!(
        said(doc("<string>b</string>")),
        "key `Cryptexes.OS[1]` must be a dictionary, found a string"
    );
    // Not about a key: the document itself, or its top.
    let top = read::<Top>("<plist><array/></plist>").unwrap_err();
    assert!(!top.located());
    assert_eq!(top.to_string(), "must be a dictionary, found an array");
    let broken = read::<Top>("<plist><dict><key>Cryptexes</key><dict><key>OS</key><array><wat/>")
        .unwrap_err();
    assert!(broken.malformed && !broken.located(), "{broken}");
}
