//! Reading a manifest's XML: the bounds checked before anything is parsed (XML only, nesting,
//! element count and text length capped, no recursion), and serde over the bounded reader with
//! every failure named by the key at fault, in people's words. The types the manifest's raw
//! keys are read as ([`Typed`], [`Given`]) live here so that a wrong type says what was found.

use super::BundleError;
use super::limits::MAX_FILES;
use crate::untrusted::clip;

thread_local! {
    /// How many dictionaries [`bounds`] counted in the manifest about to be deserialized: at
    /// most one per payload file, plus the top level.
    pub(super) static ENTRIES_HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
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

pub(super) fn refuse_binary(head: &[u8]) -> Result<(), BundleError> {
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
pub(super) fn exceeded(what: crate::plist_xml::Exceeded) -> BundleError {
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
pub(super) fn parse_xml<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, BundleError> {
    bounds(bytes)?;
    deserialize(bytes)
}

/// Deserializes XML plist input that [`bounds`] has passed into `T`.
pub(super) fn deserialize<T: serde::de::DeserializeOwned>(
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
pub(super) fn plain(message: &str) -> String {
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
pub(super) enum Typed<T> {
    #[default]
    Missing,
    Is(T),
    Found(&'static str),
}

/// A key that may be absent, of a type serde reads itself (arrays, dictionaries).
#[derive(Debug)]
pub(super) struct Given<T>(pub(super) Option<T>);

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
pub(super) trait Expect: Sized {
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
