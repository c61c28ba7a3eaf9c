//! The bundle manifest, `Info.plist` (DESIGN section 3): what a response is, which base it is
//! for, and the size, mode and SHA-256 of every payload file.
//!
//! Parsing goes through `plist::Value` rather than a derived struct so that every error names the
//! key at fault (`Cryptexes.OS[3].Size must be an integer`). Versions and builds are validated by
//! the version engine; paths by `paths`; sizes and counts against `limits`. Unknown keys are kept
//! (by name) and otherwise ignored, so that newer publishers can add keys.

use std::collections::{BTreeMap, HashSet};
use std::io::Cursor;

use plist::{Dictionary, Integer, Value};

use super::BundleError;
use super::digest::Digest;
use super::limits::{MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES};
use super::paths::unsafe_reason;
use crate::device::{Cryptex, Platform};
use crate::version::{Build, Extra, OsVersion, ResponseVersion};

/// The bundle format this bsi reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// The keys bsi knows at the top level.
const KNOWN_KEYS: [&str; 10] = [
    "BundleFormatVersion",
    "ProductName",
    "ProductVersion",
    "PrerequisiteBuild",
    "ProductVersionExtra",
    "ProductBuildVersion",
    "PostingDate",
    "SupportedDevices",
    "Description",
    "Cryptexes",
];

/// One payload file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to its cryptex directory.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: Digest,
    /// Permission bits (at most 0o777).
    pub mode: u32,
}

/// The payload listing: for each cryptex, its files sorted by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cryptexes(pub BTreeMap<Cryptex, Vec<FileEntry>>);

/// A parsed, validated manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// `ProductName`.
    pub product: Platform,
    /// `ProductVersion`: the base version.
    pub version: OsVersion,
    /// `PrerequisiteBuild`: the base build.
    pub prerequisite: Build,
    /// `ProductVersionExtra`: the response letter.
    pub extra: Extra,
    /// `ProductBuildVersion`: the supplemental build.
    pub build: Build,
    /// `PostingDate`, as given.
    pub posting_date: Option<String>,
    /// `SupportedDevices`.
    pub supported_devices: Vec<String>,
    /// `Description`.
    pub description: Option<String>,
    /// `Cryptexes`.
    pub cryptexes: Cryptexes,
    /// Top-level keys bsi does not know, kept by name.
    pub unknown_keys: Vec<String>,
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "an array",
        Value::Dictionary(_) => "a dictionary",
        Value::Boolean(_) => "a boolean",
        Value::Data(_) => "data",
        Value::Date(_) => "a date",
        Value::Real(_) => "a real number",
        Value::Integer(_) => "an integer",
        Value::String(_) => "a string",
        Value::Uid(_) => "a UID",
        _ => "an unknown value",
    }
}

fn mistyped(key: &str, expected: &str, value: &Value) -> BundleError {
    BundleError::manifest(format!(
        "key `{key}` must be {expected}, found {}",
        type_name(value)
    ))
}

fn required<'a>(dict: &'a Dictionary, key: &str, at: &str) -> Result<&'a Value, BundleError> {
    dict.get(key)
        .ok_or_else(|| BundleError::manifest(format!("required key `{at}{key}` is missing")))
}

fn string<'a>(dict: &'a Dictionary, key: &str) -> Result<&'a str, BundleError> {
    let value = required(dict, key, "")?;
    value
        .as_string()
        .ok_or_else(|| mistyped(key, "a string", value))
}

fn optional_string(dict: &Dictionary, key: &str) -> Result<Option<String>, BundleError> {
    match dict.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Date(d)) => Ok(Some(d.to_xml_format())),
        Some(other) => Err(mistyped(key, "a string", other)),
    }
}

fn parse_key<T, E: std::fmt::Display>(
    key: &str,
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, BundleError> {
    parse(text).map_err(|e| BundleError::manifest(format!("key `{key}`: {e}")))
}

impl Manifest {
    /// Parses and validates `Info.plist` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let value = Value::from_reader(Cursor::new(bytes))
            .map_err(|e| {
                BundleError::manifest(format!(
                    "not a valid property list (neither an XML nor a binary plist bsi can read; parser: {e})"
                ))
            })?;
        let Value::Dictionary(dict) = value else {
            return Err(BundleError::manifest(format!(
                "the top level must be a dictionary, found {}",
                type_name(&value)
            )));
        };
        let format = required(&dict, "BundleFormatVersion", "")?;
        match format.as_unsigned_integer() {
            Some(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(BundleError::manifest(format!(
                    "key `BundleFormatVersion` is {other}; this bsi reads format {FORMAT_VERSION}"
                )));
            }
            None => return Err(mistyped("BundleFormatVersion", "an integer", format)),
        }
        let product_name = string(&dict, "ProductName")?;
        let product = Platform::from_name(product_name).ok_or_else(|| {
            BundleError::manifest(format!(
                "key `ProductName` is `{product_name}`; expected macOS, iOS or iPadOS"
            ))
        })?;
        let version: OsVersion = parse_key(
            "ProductVersion",
            string(&dict, "ProductVersion")?,
            str::parse,
        )?;
        let prerequisite: Build = parse_key(
            "PrerequisiteBuild",
            string(&dict, "PrerequisiteBuild")?,
            str::parse,
        )?;
        let extra: Extra = parse_key(
            "ProductVersionExtra",
            string(&dict, "ProductVersionExtra")?,
            str::parse,
        )?;
        let build = parse_key(
            "ProductBuildVersion",
            string(&dict, "ProductBuildVersion")?,
            |s| Build::parse_supplemental(s, &prerequisite),
        )?;
        let supported_devices = match dict.get("SupportedDevices") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_string()
                        .map(str::to_owned)
                        .ok_or_else(|| mistyped(&format!("SupportedDevices[{i}]"), "a string", v))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(mistyped("SupportedDevices", "an array", other)),
        };
        let cryptexes_value = required(&dict, "Cryptexes", "")?;
        let cryptexes = Cryptexes::from_value(cryptexes_value, "Cryptexes")?;
        if cryptexes.0.is_empty() {
            return Err(BundleError::manifest(
                "key `Cryptexes` lists no cryptex; a response carries OS, App or both",
            ));
        }
        let unknown_keys = dict
            .keys()
            .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
        Ok(Self {
            product,
            version,
            prerequisite,
            extra,
            build,
            posting_date: optional_string(&dict, "PostingDate")?,
            supported_devices,
            description: optional_string(&dict, "Description")?,
            cryptexes,
            unknown_keys,
        })
    }

    /// The response's public version, e.g. `26.3.1 (a)`.
    #[must_use]
    pub fn response_version(&self) -> ResponseVersion {
        ResponseVersion::new(self.version, self.extra)
    }

    /// Does the response carry OS content (and so need a restart)?
    #[must_use]
    pub fn has_os(&self) -> bool {
        self.cryptexes.0.contains_key(&Cryptex::Os)
    }

    /// Serialises as an XML plist, keys in a fixed order.
    #[must_use]
    pub fn to_xml(&self) -> Vec<u8> {
        let mut dict = Dictionary::new();
        let s = |v: &dyn ToString| Value::String(v.to_string());
        dict.insert(
            "BundleFormatVersion".into(),
            Value::Integer(Integer::from(FORMAT_VERSION)),
        );
        dict.insert("ProductName".into(), s(&self.product.name()));
        dict.insert("ProductVersion".into(), s(&self.version));
        dict.insert("PrerequisiteBuild".into(), s(&self.prerequisite));
        dict.insert("ProductVersionExtra".into(), s(&self.extra));
        dict.insert("ProductBuildVersion".into(), s(&self.build));
        if let Some(date) = &self.posting_date {
            dict.insert("PostingDate".into(), s(date));
        }
        if !self.supported_devices.is_empty() {
            dict.insert(
                "SupportedDevices".into(),
                Value::Array(self.supported_devices.iter().map(|d| s(d)).collect()),
            );
        }
        if let Some(text) = &self.description {
            dict.insert("Description".into(), s(text));
        }
        dict.insert("Cryptexes".into(), self.cryptexes.to_value());
        plist_xml(&Value::Dictionary(dict))
    }
}

/// Writes a plist value as XML bytes.
#[must_use]
pub fn plist_xml(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    let _ = value.to_writer_xml(&mut out);
    out.push(b'\n');
    out
}

impl Cryptexes {
    /// Every payload file in canonical order: cryptexes in `App`, `OS` order, then paths in byte
    /// order. The tar form lists its payload in exactly this order.
    pub fn files(&self) -> impl Iterator<Item = (Cryptex, &FileEntry)> {
        self.0
            .iter()
            .flat_map(|(c, files)| files.iter().map(move |f| (*c, f)))
    }

    /// Number of payload files.
    #[must_use]
    pub fn count(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    /// Total payload bytes.
    #[must_use]
    pub fn total_size(&self) -> u64 {
        self.files().map(|(_, f)| f.size).sum()
    }

    /// The `Cryptexes` dictionary.
    #[must_use]
    pub fn to_value(&self) -> Value {
        let mut dict = Dictionary::new();
        for (cryptex, files) in &self.0 {
            let entries = files
                .iter()
                .map(|f| {
                    let mut e = Dictionary::new();
                    e.insert("Path".into(), Value::String(f.path.clone()));
                    e.insert("Size".into(), Value::Integer(Integer::from(f.size)));
                    e.insert("SHA256".into(), Value::String(f.sha256.to_hex()));
                    e.insert(
                        "Mode".into(),
                        Value::Integer(Integer::from(u64::from(f.mode))),
                    );
                    Value::Dictionary(e)
                })
                .collect();
            dict.insert(cryptex.as_str().into(), Value::Array(entries));
        }
        Value::Dictionary(dict)
    }

    /// Parses and validates a `Cryptexes` dictionary; `key` names it in errors.
    pub fn from_value(value: &Value, key: &str) -> Result<Self, BundleError> {
        let dict = value
            .as_dictionary()
            .ok_or_else(|| mistyped(key, "a dictionary", value))?;
        let mut out = BTreeMap::new();
        let mut count = 0usize;
        let mut total = 0u64;
        for (name, files) in dict {
            let cryptex = Cryptex::from_name(name).ok_or_else(|| {
                BundleError::manifest(format!(
                    "key `{key}.{name}`: unknown cryptex; expected OS or App"
                ))
            })?;
            let at = format!("{key}.{name}");
            let items = files
                .as_array()
                .ok_or_else(|| mistyped(&at, "an array", files))?;
            if items.is_empty() {
                return Err(BundleError::manifest(format!(
                    "key `{at}` lists no files; leave the cryptex out instead"
                )));
            }
            count += items.len();
            if count > MAX_FILES {
                return Err(BundleError::TooLarge {
                    what: "the number of payload files".into(),
                    limit: format!("{MAX_FILES} files"),
                });
            }
            let mut entries = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let entry = parse_entry(item, &format!("{at}[{i}]"), cryptex)?;
                total = total.saturating_add(entry.size);
                entries.push(entry);
            }
            check_tree(cryptex, &mut entries)?;
            out.insert(cryptex, entries);
        }
        if total > MAX_TOTAL_BYTES {
            return Err(BundleError::TooLarge {
                what: format!("the declared payload of {total} bytes"),
                limit: format!("{MAX_TOTAL_BYTES} bytes"),
            });
        }
        Ok(Cryptexes(out))
    }
}

fn parse_entry(item: &Value, at: &str, cryptex: Cryptex) -> Result<FileEntry, BundleError> {
    let dict = item
        .as_dictionary()
        .ok_or_else(|| mistyped(at, "a dictionary", item))?;
    let field = |name: &str| required(dict, name, &format!("{at}."));
    let path_value = field("Path")?;
    let path = path_value
        .as_string()
        .ok_or_else(|| mistyped(&format!("{at}.Path"), "a string", path_value))?;
    if let Some(reason) = unsafe_reason(path) {
        return Err(BundleError::unsafe_path(
            format!("{cryptex}/{path}"),
            reason,
        ));
    }
    let size_value = field("Size")?;
    let size = size_value
        .as_unsigned_integer()
        .ok_or_else(|| mistyped(&format!("{at}.Size"), "a non-negative integer", size_value))?;
    if size > MAX_FILE_BYTES {
        return Err(BundleError::TooLarge {
            what: format!("{cryptex}/{path}'s declared size of {size} bytes"),
            limit: format!("{MAX_FILE_BYTES} bytes per file"),
        });
    }
    let digest_value = field("SHA256")?;
    let digest_text = digest_value
        .as_string()
        .ok_or_else(|| mistyped(&format!("{at}.SHA256"), "a string", digest_value))?;
    let sha256 = Digest::from_hex(digest_text).ok_or_else(|| {
        BundleError::manifest(format!(
            "key `{at}.SHA256` must be 64 hex digits, found `{digest_text}`"
        ))
    })?;
    let mode_value = field("Mode")?;
    let mode = mode_value
        .as_unsigned_integer()
        .ok_or_else(|| mistyped(&format!("{at}.Mode"), "an integer", mode_value))?;
    if mode > 0o777 || mode & 0o400 == 0 {
        return Err(BundleError::manifest(format!(
            "key `{at}.Mode` is {mode:#o}; it must be permission bits (at most 0o777) that let the owner read the file"
        )));
    }
    Ok(FileEntry {
        path: path.to_owned(),
        size,
        sha256,
        mode: mode as u32,
    })
}

/// Sorts `entries` and rejects duplicates and a path that is both a file and a directory.
fn check_tree(cryptex: Cryptex, entries: &mut [FileEntry]) -> Result<(), BundleError> {
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    if let Some(pair) = entries.windows(2).find(|w| w[0].path == w[1].path) {
        return Err(BundleError::unsafe_path(
            format!("{cryptex}/{}", pair[0].path),
            "listed twice in the manifest",
        ));
    }
    let mut dirs = HashSet::new();
    for entry in entries.iter() {
        let mut end = 0;
        while let Some(pos) = entry.path[end..].find('/') {
            end += pos;
            dirs.insert(&entry.path[..end]);
            end += 1;
        }
    }
    if let Some(clash) = entries.iter().find(|e| dirs.contains(e.path.as_str())) {
        return Err(BundleError::unsafe_path(
            format!("{cryptex}/{}", clash.path),
            "listed as a file and also used as a directory by another entry",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            cryptexes: Cryptexes(files),
            unknown_keys: vec![],
        }
    }

    fn with(edit: impl FnOnce(&mut Dictionary)) -> Result<Manifest, BundleError> {
        let mut dict = Value::from_reader(Cursor::new(sample().to_xml()))
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
}
