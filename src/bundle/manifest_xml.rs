//! Reading a manifest's XML: the bounds checked before anything is parsed (XML only, nesting,
//! element count and text length capped, no recursion), and serde over the bounded reader, which
//! names every failure by the key at fault, in people's words.

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

/// Deserializes XML plist input that [`bounds`] has passed into `T`: a refused value is named
/// by its key, in the reader's words ("key `Cryptexes.OS[3].Size` must be a non-negative
/// integer, found a string").
pub(super) fn deserialize<T: serde::de::DeserializeOwned>(
    input: impl std::io::BufRead,
) -> Result<T, BundleError> {
    crate::plist_xml::from_reader(input, LIMITS).map_err(|e| match e.exceeded {
        Some(what) => exceeded(what),
        None if e.located() => BundleError::manifest(e.to_string()),
        None => BundleError::manifest(format!(
            "not a valid property list: {}",
            clip(&e.to_string())
        )),
    })
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
