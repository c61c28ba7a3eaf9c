//! The bundle manifest, `Info.plist` (DESIGN section 3): what a response is, which base it is
//! for, and the size, mode and SHA-256 of every payload file.
//!
//! Parsing is bounded before it starts ([`bounds`]: XML only, nesting, element count and text
//! length capped, no recursion), then serde reads the keys straight into compact typed values,
//! so 100,000 files cost a few hundred bytes each, never a generic plist tree. Every error names
//! the key at fault ("key Cryptexes.OS\[3\].Size must be a non-negative integer, found a
//! string"). Versions and builds are validated by the version engine; paths by `paths`; sizes and
//! counts against `limits`. Unknown keys are kept (by name) and otherwise ignored, so that newer
//! publishers can add keys.

use plist::{Dictionary, Integer, Value};
use std::collections::{BTreeMap, HashSet};

use super::BundleError;
use super::digest::Digest;
use super::limits::{MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES};
use super::paths::unsafe_reason;
use crate::platform::{Cryptex, Platform};
use crate::untrusted::clip;
use crate::version::{Build, Extra, OsVersion, ResponseVersion};

/// The bundle format this bsi reads and writes.
pub(crate) const FORMAT_VERSION: u64 = 1;

/// One payload file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileEntry {
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
pub(crate) struct Cryptexes(pub BTreeMap<Cryptex, Vec<FileEntry>>);

/// A parsed, validated manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
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
    /// `SigningKey`: the fingerprint of the key `bsi bundle sign` signed with. Inside the signed
    /// bytes, so a signer this device does not trust and a manifest changed after signing get
    /// different messages.
    pub signing_key: Option<String>,
    /// `Cryptexes`.
    pub cryptexes: Cryptexes,
    /// Top-level keys bsi does not know, kept by name.
    pub unknown_keys: Vec<String>,
}

impl Manifest {
    /// Parses and validates `Info.plist` bytes, with bounded cost whatever they hold: a binary
    /// plist is refused (DESIGN section 3: XML only), the XML is scanned for nesting, node count
    /// and text length before anything is built ([`bounds`]), and the keys go straight into
    /// compact typed values (no generic plist tree).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let raw: RawManifest = parse_xml(bytes)?;
        raw.validate()
    }

    /// [`Manifest::parse`] in one pass over `input`, never held whole: the bounds are enforced
    /// as the keys are read instead of by a scan before. For `verify`, which reads the device's
    /// own manifests: a refusal may name a key before a bound that comes later in the document,
    /// and the listing is not sized ahead (it grows). Installing keeps the scan first
    /// ([`Manifest::parse`]), so a hostile document is refused for its shape before any of it is
    /// read as a manifest.
    pub(crate) fn parse_in_one_pass(mut input: impl std::io::BufRead) -> Result<Self, BundleError> {
        let head = input.fill_buf().map_err(|e| BundleError::Read {
            path: "Info.plist".into(),
            source: e,
        })?;
        refuse_binary(head)?;
        Self::parse_scanned(input)
    }

    /// Reads a manifest whose bytes [`bounds`] has just scanned (on this thread: the scan
    /// leaves the size of the listing for it), from `input`: the private copy a large manifest
    /// is spooled to once its signature verified, so the copy is read once.
    pub(crate) fn parse_scanned(input: impl std::io::BufRead) -> Result<Self, BundleError> {
        let raw: RawManifest = deserialize(input)?;
        raw.validate()
    }

    /// The response's public version, e.g. `26.3.1 (a)`.
    #[must_use]
    pub(crate) fn response_version(&self) -> ResponseVersion {
        ResponseVersion::new(self.version, self.extra)
    }

    /// Does the response carry OS content (and so need a restart)?
    #[must_use]
    pub(crate) fn has_os(&self) -> bool {
        self.cryptexes.0.contains_key(&Cryptex::Os)
    }

    /// Serialises as an XML plist, keys in a fixed order.
    #[must_use]
    pub(crate) fn to_xml(&self) -> Vec<u8> {
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
        if let Some(fp) = &self.signing_key {
            dict.insert("SigningKey".into(), s(fp));
        }
        dict.insert("Cryptexes".into(), self.cryptexes.to_value());
        plist_xml(&Value::Dictionary(dict))
    }
}

/// The signing key a manifest names (`SigningKey`), read without trusting it: only to say who
/// claims to have signed it when the signature does not verify. Bounded like every read of
/// unsigned bytes; `None` when the bytes are not a manifest or name no key.
#[must_use]
pub(crate) fn signer_claim(bytes: &[u8]) -> Option<String> {
    use quick_xml::events::Event;
    bounds(bytes).ok()?;
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let (mut depth, mut in_key, mut after_key) = (0usize, false, false);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                depth += 1;
                in_key = depth == 3 && e.name().0 == "key";
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                in_key = false;
            }
            Event::Text(t) if in_key => {
                after_key = t.into_inner() == "SigningKey";
            }
            Event::Text(t) if after_key && depth == 3 => {
                let text = t.into_inner().into_owned();
                return (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| text.to_ascii_lowercase());
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Writes a plist value as XML bytes.
#[must_use]
pub(crate) fn plist_xml(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    let _ = value.to_writer_xml(&mut out);
    out.push(b'\n');
    out
}

impl Cryptexes {
    /// Every payload file in canonical order: cryptexes in `App`, `OS` order, then paths in byte
    /// order. The tar form lists its payload in exactly this order.
    pub(crate) fn files(&self) -> impl Iterator<Item = (Cryptex, &FileEntry)> {
        self.0
            .iter()
            .flat_map(|(c, files)| files.iter().map(move |f| (*c, f)))
    }

    /// Number of payload files.
    #[must_use]
    pub(crate) fn count(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    /// Total payload bytes.
    #[must_use]
    pub(crate) fn total_size(&self) -> u64 {
        self.files().map(|(_, f)| f.size).sum()
    }

    /// The `Cryptexes` dictionary.
    #[must_use]
    pub(crate) fn to_value(&self) -> Value {
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

    /// Parses and validates a plist whose top level is a `Cryptexes` dictionary (the base
    /// generation's `Cryptexes.plist`).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let raw: BTreeMap<String, RawEntries> = parse_xml(bytes)?;
        raw_cryptexes(raw, "Cryptexes")
    }
}

/// The bounds [`bounds`] enforces on a manifest's XML before it is parsed.
const MAX_DEPTH: usize = 16;
/// Elements: a dictionary of four keys and values per file, and room for the rest.
const MAX_NODES: usize = MAX_FILES * 12 + 10_000;
/// The longest text of one element (a `Description`, a path is at most 1 KiB).
const MAX_TEXT: usize = 64 * 1024;

/// Scans XML without building anything, refusing what would make parsing it costly: deeper
/// nesting than [`MAX_DEPTH`], more than [`MAX_NODES`] elements, a text longer than
/// [`MAX_TEXT`], or a binary plist. No recursion, so no input can exhaust the stack.
pub(crate) fn bounds(bytes: &[u8]) -> Result<(), BundleError> {
    refuse_binary(bytes)?;
    // From a slice, events borrow the bytes: nothing is copied.
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut seen = crate::plist_xml::Bounds::new(LIMITS);
    loop {
        let event = reader
            .read_event()
            .map_err(|e| syntax_error(reader.buffer_position(), &e))?;
        if seen.see(&event).map_err(exceeded)? {
            ENTRIES_HINT.with(|h| h.set(seen.dicts()));
            return Ok(());
        }
    }
}

/// [`bounds`] over a reader: for the private copy a large manifest being installed was
/// streamed into, so that it is never held whole. One event's bytes are held at a time (at
/// most the whole document, as [`bounds`] holds it).
pub(crate) fn bounds_from(mut input: impl std::io::BufRead) -> Result<(), BundleError> {
    // The first bytes, however few the reader hands out at a time, for the binary check.
    let mut head = [0u8; b"bplist".len()];
    let mut got = 0;
    while got < head.len() {
        match input.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(BundleError::Read {
                    path: "Info.plist".into(),
                    source: e,
                });
            }
        }
    }
    refuse_binary(&head[..got])?;
    let input = std::io::Read::chain(std::io::Cursor::new(&head[..got]), input);
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut seen = crate::plist_xml::Bounds::new(LIMITS);
    let mut event_bytes = Vec::new();
    loop {
        event_bytes.clear();
        let event = reader
            .read_event_into(&mut event_bytes)
            .map_err(|e| syntax_error(reader.buffer_position(), &e))?;
        if seen.see(&event).map_err(exceeded)? {
            ENTRIES_HINT.with(|h| h.set(seen.dicts()));
            return Ok(());
        }
    }
}

fn refuse_binary(head: &[u8]) -> Result<(), BundleError> {
    if head.starts_with(b"bplist") {
        return Err(BundleError::manifest(
            "a binary plist; a bundle's Info.plist is an XML plist (DESIGN section 3)",
        ));
    }
    Ok(())
}

fn syntax_error(at: u64, e: &quick_xml::Error) -> BundleError {
    BundleError::manifest(format!(
        "not a valid property list: the XML does not parse at byte {at} ({})",
        clip(&e.to_string())
    ))
}

/// The bounds on a manifest ([`crate::plist_xml::Limits`]): [`bounds`] checks them before
/// anything is read, and the reader enforces them again as it reads (a reader that skips the
/// scan still stops there).
const LIMITS: crate::plist_xml::Limits = crate::plist_xml::Limits {
    depth: MAX_DEPTH,
    nodes: MAX_NODES,
    text: MAX_TEXT,
    doctype: MAX_DOCTYPE,
};

/// The longest document type declaration a manifest may carry.
const MAX_DOCTYPE: usize = 1024;

/// The refusal for a manifest past one of its bounds.
fn exceeded(what: crate::plist_xml::Exceeded) -> BundleError {
    use crate::plist_xml::Exceeded;
    BundleError::manifest(match what {
        Exceeded::Depth => format!("nested deeper than {MAX_DEPTH} levels; a manifest needs 5"),
        Exceeded::Nodes => {
            format!("more than {MAX_NODES} elements, more than {MAX_FILES} files need")
        }
        Exceeded::Text(len) => {
            format!("a text of {len} bytes; bsi reads at most {MAX_TEXT} bytes per value")
        }
        Exceeded::Doctype => "a document type declaration of more than 1 KiB".to_owned(),
    })
}

/// Parses bounded XML plist bytes into `T`, naming the key at fault in errors.
fn parse_xml<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, BundleError> {
    bounds(bytes)?;
    deserialize(bytes)
}

/// Deserializes XML plist input that [`bounds`] has passed into `T`.
fn deserialize<T: serde::de::DeserializeOwned>(
    input: impl std::io::BufRead,
) -> Result<T, BundleError> {
    use serde::Deserialize as _;
    FAILED_AT.with(|f| f.borrow_mut().take());
    crate::plist_xml::from_reader(input, LIMITS, |de| Tracked::<T>::deserialize(de))
        .map(|t| t.0)
        .map_err(|e| {
            let failed = FAILED_AT.with(|f| f.borrow_mut().take());
            if let Some(what) = e.exceeded {
                return exceeded(what);
            }
            if e.malformed {
                // Not about any key: the XML is not a property list where it was being read.
                return BundleError::manifest(format!(
                    "not a valid property list: {}",
                    clip(&e.to_string())
                ));
            }
            let (path, inner) = failed.unwrap_or_else(|| (String::new(), e.to_string()));
            let inner = plain(&inner);
            if path.is_empty() || path == "." {
                BundleError::manifest(format!("not a valid property list: {inner}"))
            } else {
                BundleError::manifest(format!("key `{}` {inner}", clip(&path)))
            }
        })
}

thread_local! {
    /// Where the last [`Tracked`] parse failed (key path) and why, in plist's words.
    static FAILED_AT: std::cell::RefCell<Option<(String, String)>> =
        const { std::cell::RefCell::new(None) };
}

/// Deserializes `T` while tracking the key path, which a failure leaves in [`FAILED_AT`].
struct Tracked<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Tracked<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut track = serde_path_to_error::Track::new();
        T::deserialize(serde_path_to_error::Deserializer::new(d, &mut track))
            .map(Tracked)
            .inspect_err(|e| {
                FAILED_AT
                    .with(|f| *f.borrow_mut() = Some((track.path().to_string(), e.to_string())));
            })
    }
}

/// A parser's message in people's words: serde's "invalid type: string \"x\", expected an
/// array" becomes "must be an array, found a string"; plist's event names become types; nothing
/// of Rust's debug formatting reaches a person.
fn plain(message: &str) -> String {
    let mut message = message.trim().to_owned();
    // plist wraps serde's messages as `Serde("...")`.
    while let Some(inner) = message
        .strip_prefix("Serde(\"")
        .and_then(|m| m.strip_suffix("\")"))
    {
        message = inner.replace("\\\"", "\"");
    }
    let words = |s: &str| {
        s.replace("a sequence", "an array")
            .replace("a map", "a dictionary")
            .replace("unsigned integer", "integer")
    };
    let event = |e: &str| match e {
        "StartDictionary" => "a dictionary",
        "StartArray" => "an array",
        "String" => "a string",
        "Integer" => "an integer",
        "Real" => "a real number",
        "Boolean" => "a boolean",
        "Data" => "data",
        "Date" => "a date",
        "EndCollection" => "the end of a collection",
        "ValueOrStartCollection" => "a value",
        _ => "something else",
    };
    if let Some(rest) = message.strip_prefix("UnexpectedEventType { expected: ")
        && let Some((expected, found)) = rest.trim_end_matches(" }").split_once(", found: ")
    {
        return format!("must be {}, found {}", event(expected), event(found));
    }
    if let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        let found = match found.split(' ').next().unwrap_or(found) {
            "sequence" => "array",
            "map" => "dictionary",
            "unsigned" | "integer" => "integer",
            other => other,
        };
        let article = if found.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        return format!(
            "must be {}, found {article} {}",
            words(expected),
            words(found)
        );
    }
    if message.contains('{') || message.contains('(') {
        // Any other structured error: say what it is without the internals.
        return "it is not the property list a manifest is".to_owned();
    }
    words(&clip(&message))
}

/// A value read as whatever type the plist has, so that a wrong type gives a message naming
/// what was found, and a right one costs nothing more than the value. A key that is absent is
/// `Missing` (the default): plist's serde support cannot read `Option` struct fields in a
/// struct with flattened keys.
#[derive(Debug, Default)]
enum Typed<T> {
    #[default]
    Missing,
    Is(T),
    Found(&'static str),
}

/// A key that may be absent, of a type serde reads itself (arrays, dictionaries).
#[derive(Debug)]
struct Given<T>(Option<T>);

impl<T> Default for Given<T> {
    fn default() -> Self {
        Given(None)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Given<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|v| Given(Some(v)))
    }
}

/// What [`Typed`] accepts.
trait Expect: Sized {
    fn from_str(s: String) -> Option<Self>;
    fn from_u64(n: u64) -> Option<Self>;
}

impl Expect for String {
    fn from_str(s: String) -> Option<Self> {
        Some(s)
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
}

impl Expect for u64 {
    fn from_str(_: String) -> Option<Self> {
        None
    }
    fn from_u64(n: u64) -> Option<Self> {
        Some(n)
    }
}

impl<'de, T: Expect> serde::Deserialize<'de> for Typed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Expect> serde::de::Visitor<'de> for V<T> {
            type Value = Typed<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a plist value")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(T::from_str(v.to_owned()).map_or(Typed::Found("a string"), Typed::Is))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(T::from_str(v).map_or(Typed::Found("a string"), Typed::Is))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(T::from_u64(v).map_or(Typed::Found("an integer"), Typed::Is))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Typed::Found("a negative integer"))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Typed::Found("a real number"))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Typed::Found("a boolean"))
            }
            fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
                Ok(Typed::Found("data"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Typed::Found("an array"))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Typed::Found("a dictionary"))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The manifest's keys as they come, before any check.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default, expecting = "a dictionary")]
struct RawManifest {
    bundle_format_version: Typed<u64>,
    product_name: Typed<String>,
    product_version: Typed<String>,
    prerequisite_build: Typed<String>,
    product_version_extra: Typed<String>,
    product_build_version: Typed<String>,
    posting_date: Typed<String>,
    supported_devices: Given<Vec<Typed<String>>>,
    description: Typed<String>,
    signing_key: Typed<String>,
    cryptexes: Given<BTreeMap<String, RawEntries>>,
    /// Keys bsi does not know: kept by name, otherwise ignored.
    #[serde(flatten)]
    #[allow(clippy::zero_sized_map_values)] // Only the names are kept; values are skipped.
    unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

thread_local! {
    /// How many dictionaries [`bounds`] counted in the manifest about to be deserialized: at
    /// most one per payload file, plus the top level.
    static ENTRIES_HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A cryptex's listing as it comes. Its vector is sized once from [`ENTRIES_HINT`] (capped by
/// the file limit): grown by doubling, the 100,000 entries of a large response were copied on
/// every growth and left their old buffers behind, doubling the parse's peak memory.
#[derive(Debug, Default)]
struct RawEntries(Vec<RawEntry>);

impl<'de> serde::Deserialize<'de> for RawEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let room = ENTRIES_HINT.with(std::cell::Cell::take).min(MAX_FILES);
                let mut out = Vec::with_capacity(room);
                while let Some(entry) = seq.next_element()? {
                    out.push(entry);
                }
                Ok(RawEntries(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// One payload file's keys as they come.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, expecting = "a dictionary")]
struct RawEntry {
    #[serde(rename = "Path")]
    path: Typed<String>,
    #[serde(rename = "Size")]
    size: Typed<u64>,
    #[serde(rename = "SHA256")]
    sha256: Typed<DigestText>,
    #[serde(rename = "Mode")]
    mode: Typed<u64>,
}

/// A `SHA256` value as read: 64 hex digits become the digest at once, so no text is held per
/// payload file; anything else keeps its text for the message.
#[derive(Debug)]
enum DigestText {
    Valid(Digest),
    Invalid(String),
}

impl Expect for DigestText {
    fn from_str(s: String) -> Option<Self> {
        Some(Digest::from_hex(&s).map_or(DigestText::Invalid(s), DigestText::Valid))
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
}

/// The value of a key that must be there, with the type it must have. `key` is only formatted
/// for a message (per payload file, a string built for nothing costs 100,000 allocations).
fn need<T>(value: Typed<T>, key: impl std::fmt::Display, expected: &str) -> Result<T, BundleError> {
    match value {
        Typed::Missing => Err(BundleError::manifest(format!(
            "required key `{key}` is missing"
        ))),
        Typed::Is(v) => Ok(v),
        Typed::Found(found) => Err(BundleError::manifest(format!(
            "key `{key}` must be {expected}, found {found}"
        ))),
    }
}

fn optional(value: Typed<String>, key: &str) -> Result<Option<String>, BundleError> {
    match value {
        Typed::Missing => Ok(None),
        other => need(other, key, "a string").map(Some),
    }
}

fn parse_key<T, E: std::fmt::Display>(
    key: &str,
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, BundleError> {
    // The parsers' messages are bsi's own, with the refused text already clipped.
    parse(text).map_err(|e| BundleError::manifest(format!("key `{key}`: {e}")))
}

impl RawManifest {
    fn validate(self) -> Result<Manifest, BundleError> {
        match need(
            self.bundle_format_version,
            "BundleFormatVersion",
            "an integer",
        )? {
            FORMAT_VERSION => {}
            other => {
                return Err(BundleError::manifest(format!(
                    "key `BundleFormatVersion` is {other}; this bsi reads format {FORMAT_VERSION}"
                )));
            }
        }
        let product_name = need(self.product_name, "ProductName", "a string")?;
        let product = Platform::from_name(&product_name).ok_or_else(|| {
            BundleError::manifest(format!(
                "key `ProductName` is `{}`; expected macOS, iOS or iPadOS",
                clip(&product_name)
            ))
        })?;
        let version: OsVersion = parse_key(
            "ProductVersion",
            &need(self.product_version, "ProductVersion", "a string")?,
            str::parse,
        )?;
        let prerequisite: Build = parse_key(
            "PrerequisiteBuild",
            &need(self.prerequisite_build, "PrerequisiteBuild", "a string")?,
            Build::parse_base,
        )?;
        let extra: Extra = parse_key(
            "ProductVersionExtra",
            &need(
                self.product_version_extra,
                "ProductVersionExtra",
                "a string",
            )?,
            str::parse,
        )?;
        let build = parse_key(
            "ProductBuildVersion",
            &need(
                self.product_build_version,
                "ProductBuildVersion",
                "a string",
            )?,
            |s| Build::parse_supplemental(s, &prerequisite),
        )?;
        let supported_devices = self
            .supported_devices
            .0
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, v)| need(v, format_args!("SupportedDevices[{i}]"), "a string"))
            .collect::<Result<_, _>>()?;
        let cryptexes = raw_cryptexes(
            self.cryptexes
                .0
                .ok_or_else(|| BundleError::manifest("required key `Cryptexes` is missing"))?,
            "Cryptexes",
        )?;
        if cryptexes.0.is_empty() {
            return Err(BundleError::manifest(
                "key `Cryptexes` lists no cryptex; a response carries OS, App or both",
            ));
        }
        Ok(Manifest {
            product,
            version,
            prerequisite,
            extra,
            build,
            posting_date: optional(self.posting_date, "PostingDate")?,
            supported_devices,
            description: optional(self.description, "Description")?,
            signing_key: match optional(self.signing_key, "SigningKey")? {
                Some(fp) if fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(fp.to_ascii_lowercase())
                }
                Some(other) => {
                    return Err(BundleError::manifest(format!(
                        "key `SigningKey` must be a key fingerprint (64 hex digits), found `{}`",
                        clip(&other)
                    )));
                }
                None => None,
            },
            cryptexes,
            unknown_keys: self.unknown.into_keys().map(|k| clip(&k)).collect(),
        })
    }
}

/// Validates a `Cryptexes` dictionary; `key` names it in errors.
fn raw_cryptexes(raw: BTreeMap<String, RawEntries>, key: &str) -> Result<Cryptexes, BundleError> {
    let mut out = BTreeMap::new();
    let mut count = 0usize;
    let mut total = 0u64;
    for (name, RawEntries(items)) in raw {
        let cryptex = Cryptex::from_name(&name).ok_or_else(|| {
            BundleError::manifest(format!(
                "key `{key}.{}`: unknown cryptex; expected OS or App",
                clip(&name)
            ))
        })?;
        let at = format!("{key}.{name}");
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
        // Converted in place: each raw entry's memory holds its validated entry.
        let mut entries = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| raw_entry(item, &at, i, cryptex))
            .collect::<Result<Vec<_>, _>>()?;
        total = entries
            .iter()
            .fold(total, |sum, entry| sum.saturating_add(entry.size));
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

fn raw_entry(
    item: RawEntry,
    at: &str,
    i: usize,
    cryptex: Cryptex,
) -> Result<FileEntry, BundleError> {
    let path = need(item.path, format_args!("{at}[{i}].Path"), "a string")?;
    if let Some(reason) = unsafe_reason(&path) {
        return Err(BundleError::unsafe_path(
            format!("{cryptex}/{}", clip(&path)),
            reason,
        ));
    }
    let size = need(
        item.size,
        format_args!("{at}[{i}].Size"),
        "a non-negative integer",
    )?;
    if size > MAX_FILE_BYTES {
        return Err(BundleError::TooLarge {
            what: format!("{cryptex}/{path}'s declared size of {size} bytes"),
            limit: format!("{MAX_FILE_BYTES} bytes per file"),
        });
    }
    let sha256 = match need(item.sha256, format_args!("{at}[{i}].SHA256"), "a string")? {
        DigestText::Valid(digest) => digest,
        DigestText::Invalid(text) => {
            return Err(BundleError::manifest(format!(
                "key `{at}[{i}].SHA256` must be 64 hex digits, found `{}`",
                clip(&text)
            )));
        }
    };
    let mode = need(item.mode, format_args!("{at}[{i}].Mode"), "an integer")?;
    if mode > 0o777 || mode & 0o400 == 0 {
        return Err(BundleError::manifest(format!(
            "key `{at}[{i}].Mode` is {mode:#o}; it must be permission bits (at most 0o777) that let the owner read the file"
        )));
    }
    Ok(FileEntry {
        path,
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
}
