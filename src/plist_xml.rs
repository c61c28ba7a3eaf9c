//! The one reader of every property list bsi reads: bundle manifests, `SystemVersion.plist`, the
//! base generation's `Cryptexes.plist`, and what an MDM server sends (enrollment profiles,
//! commands). XML only: a binary plist (`bplist00`, whose shared references let 162 bytes stand
//! for billions of objects) is refused by its first bytes, wherever it appears. Values are read
//! straight into serde types, holding one XML event's bytes at a time, and every document is
//! counted against [`Limits`] as it is read, so no input costs more than its bounds allow.
//!
//! `plist`'s XML reader (1.10.3) reads every XML event into one buffer that it never clears, so
//! reading a document holds all of it again in memory: the 30 MB manifest of a 100,000-file
//! response cost 30 MB on top of the listing parsed from it. Here quick-xml events, read into a
//! buffer cleared per event, become plist values under the same rules as `plist`'s reader
//! (empty elements expanded, end names checked, only whitespace between elements, character
//! references and the five XML entities resolved), and a small `serde::Deserializer` hands them
//! to typed readers.
//!
//! Every value is offered through `deserialize_any`; `deserialize_ignored_any` skips a value
//! without building it, and an `Option` is `Some` of whatever is there. A `<date>` is offered as
//! its text, as `plist` does outside its `Value`; `<data>` as its decoded bytes.

use std::io::BufRead;
use std::iter::Peekable;

use base64::Engine as _;
use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::Event as Xml;
use serde::de::{self, DeserializeSeed, Visitor};

use crate::untrusted::clip;

mod error;
pub(crate) use error::Error;
use error::Segment;

/// Bounds on what one document may cost, checked on every XML event as it is read, so a
/// document is refused at the first element past a bound, before anything is built from it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Elements open at once.
    pub depth: usize,
    /// Elements in the document.
    pub nodes: usize,
    /// Bytes of one element's text.
    pub text: usize,
    /// Bytes of a document type declaration.
    pub doctype: usize,
}

/// Which of the [`Limits`] a document went past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// Nested deeper than `Limits::depth`.
    Depth,
    /// More elements than `Limits::nodes`.
    Nodes,
    /// A text of this many bytes (at least), over `Limits::text`.
    Text(usize),
    /// A document type declaration over `Limits::doctype`.
    Doctype,
}

/// A document's XML events counted against [`Limits`]: the one check behind both the scan a
/// manifest gets before it is read and the reader itself. No recursion, so no nesting can
/// exhaust the stack.
#[derive(Debug)]
pub(crate) struct Bounds {
    limits: Limits,
    depth: usize,
    nodes: usize,
    dicts: usize,
}

impl Bounds {
    /// Nothing seen yet.
    pub(crate) fn new(limits: Limits) -> Self {
        Bounds {
            limits,
            depth: 0,
            nodes: 0,
            dicts: 0,
        }
    }

    /// Takes one XML event into account: the bound it breaks, if any; `true` at the end.
    pub(crate) fn see(&mut self, event: &Xml<'_>) -> Result<bool, Exceeded> {
        let text = |len: usize| {
            if len > self.limits.text {
                Err(Exceeded::Text(len))
            } else {
                Ok(())
            }
        };
        match event {
            Xml::Start(start) => {
                if start.name().0 == "dict" {
                    self.dicts += 1;
                }
                self.depth += 1;
                self.nodes += 1;
                if self.depth > self.limits.depth {
                    return Err(Exceeded::Depth);
                }
            }
            Xml::Empty(_) => self.nodes += 1,
            Xml::End(_) => self.depth = self.depth.saturating_sub(1),
            Xml::Text(t) => text(t.len())?,
            Xml::CData(t) => text(t.len())?,
            Xml::DocType(t) if t.len() > self.limits.doctype => return Err(Exceeded::Doctype),
            Xml::Eof => return Ok(true),
            _ => {}
        }
        if self.nodes > self.limits.nodes {
            return Err(Exceeded::Nodes);
        }
        Ok(false)
    }

    /// The `<dict>` elements seen so far (one per payload file in a manifest, plus its top).
    pub(crate) fn dicts(&self) -> usize {
        self.dicts
    }
}

/// One plist event.
#[derive(Debug, PartialEq)]
enum Event {
    StartArray,
    StartDict,
    End,
    String(String),
    Integer(i128),
    Real(f64),
    Boolean(bool),
    Data(Vec<u8>),
    Date(String),
}

/// The plist events of one XML document.
struct Events<R: BufRead> {
    reader: quick_xml::Reader<R>,
    buf: Vec<u8>,
    bounds: Bounds,
}

impl<R: BufRead> Events<R> {
    fn new(input: R, limits: Limits) -> Self {
        let mut reader = quick_xml::Reader::from_reader(input);
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        config.expand_empty_elements = true;
        Events {
            reader,
            buf: Vec::new(),
            bounds: Bounds::new(limits),
        }
    }

    /// Reads the next XML event, counted against the bounds.
    fn read(&mut self) -> Result<Xml<'_>, Error> {
        self.buf.clear();
        let event = match self.reader.read_event_into(&mut self.buf) {
            Ok(event) => event,
            Err(e) => {
                let message = e.to_string();
                return Err(Error::malformed(format!(
                    "{message}, at byte {}",
                    self.reader.buffer_position()
                )));
            }
        };
        self.bounds.see(&event).map_err(Error::exceeded)?;
        Ok(event)
    }

    fn error(&self, message: &str) -> Error {
        Error::malformed(format!(
            "{message}, at byte {}",
            self.reader.buffer_position()
        ))
    }

    /// The text of the element just opened, up to its end tag (the bound on text holds for
    /// the whole value, however many events it comes in).
    fn content(&mut self) -> Result<String, Error> {
        let limit = self.bounds.limits.text;
        let mut text = String::new();
        loop {
            let problem = match self.read()? {
                Xml::Text(t) => {
                    text_fits(limit, text.len() + t.len())?;
                    text.push_str(&t);
                    continue;
                }
                Xml::CData(t) => {
                    text_fits(limit, text.len() + t.len())?;
                    continue;
                }
                Xml::GeneralRef(r) => match r.resolve_char_ref() {
                    Ok(Some(c)) => {
                        text.push(c);
                        continue;
                    }
                    Ok(None) => match resolve_xml_entity(&r) {
                        Some(entity) => {
                            text.push_str(entity);
                            continue;
                        }
                        None => format!("unknown entity &{};", clip(&r)),
                    },
                    Err(e) => e.to_string(),
                },
                Xml::End(_) => return Ok(text),
                Xml::Start(_) => "an element inside a value".to_owned(),
                Xml::Eof => "the document ends inside a value".to_owned(),
                _ => continue,
            };
            return Err(self.error(&problem));
        }
    }

    fn next_event(&mut self) -> Result<Option<Event>, Error> {
        loop {
            let tag = match self.read()? {
                Xml::Start(start) => start.local_name().as_ref().to_owned(),
                Xml::End(end) if matches!(end.local_name().as_ref(), "array" | "dict") => {
                    return Ok(Some(Event::End));
                }
                Xml::Text(t) if t.chars().all(char::is_whitespace) => continue,
                Xml::Text(_) | Xml::GeneralRef(_) => {
                    return Err(self.error("text between elements"));
                }
                Xml::Eof => return Ok(None),
                _ => continue,
            };
            let event = match tag.as_str() {
                "plist" => continue,
                "array" => Event::StartArray,
                "dict" => Event::StartDict,
                "key" | "string" => Event::String(self.content()?),
                "integer" => {
                    let text = self.content()?;
                    Event::Integer(
                        text.trim()
                            .parse()
                            .map_err(|_| self.error("an integer that does not parse"))?,
                    )
                }
                "real" => {
                    let text = self.content()?;
                    Event::Real(
                        text.trim()
                            .parse()
                            .map_err(|_| self.error("a real number that does not parse"))?,
                    )
                }
                "true" | "false" => {
                    self.content()?;
                    Event::Boolean(tag == "true")
                }
                "date" => Event::Date(self.content()?.trim().to_owned()),
                "data" => {
                    let text: String = self.content()?.split_ascii_whitespace().collect();
                    Event::Data(
                        base64::engine::general_purpose::STANDARD
                            .decode(text)
                            .map_err(|_| self.error("<data> that is not base64"))?,
                    )
                }
                other => {
                    return Err(self.error(&format!("an unknown element <{}>", clip(other))));
                }
            };
            return Ok(Some(event));
        }
    }
}

/// Refuses a text of `len` bytes over `limit`.
fn text_fits(limit: usize, len: usize) -> Result<(), Error> {
    if len > limit {
        return Err(Error::exceeded(Exceeded::Text(len)));
    }
    Ok(())
}

impl<R: BufRead> Iterator for Events<R> {
    type Item = Result<Event, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// Reads the one value of the XML plist `input` into `T`.
pub(crate) fn from_reader<R: BufRead, T: de::DeserializeOwned>(
    mut input: R,
    limits: Limits,
) -> Result<T, Error> {
    let head = input
        .fill_buf()
        .map_err(|e| Error::malformed(format!("reading it: {e}")))?;
    if is_binary(head) {
        return Err(Error::malformed(BINARY));
    }
    let mut de = Deserializer {
        events: Events::new(input, limits).peekable(),
        keys: Vec::new(),
        depth: 0,
    };
    let value = T::deserialize(&mut de)?;
    match de.events.next() {
        None => Ok(value),
        Some(Err(e)) => Err(e),
        Some(Ok(_)) => Err(Error::malformed("more than one value at the top level")),
    }
}

/// Why a binary plist is refused.
pub(crate) const BINARY: &str =
    "a binary property list; bsi reads XML property lists only (Apple's format for this file)";

/// Do these first bytes start a binary plist?
#[must_use]
pub(crate) fn is_binary(head: &[u8]) -> bool {
    head.starts_with(b"bplist")
}

/// Reads the XML plist `bytes` into `T`, within `limits`.
pub(crate) fn read<T: de::DeserializeOwned>(bytes: &[u8], limits: Limits) -> Result<T, Error> {
    from_reader(bytes, limits)
}

/// Bounds for the small documents bsi reads (`SystemVersion.plist`, a profile, a command):
/// far more than any real one needs, far less than would cost anything.
pub(crate) const SMALL: Limits = Limits {
    depth: 32,
    nodes: 20_000,
    text: 1 << 20,
    doctype: 1024,
};

/// A `serde::Deserializer` over the plist events of one XML document.
pub(crate) struct Deserializer<R: BufRead> {
    events: Peekable<Events<R>>,
    /// The key last read at each depth of dictionaries, for the path of an error: one buffer
    /// per depth, reused, so reading keys allocates nothing.
    keys: Vec<String>,
    /// Collections open.
    depth: usize,
}

impl<R: BufRead> Deserializer<R> {
    fn next(&mut self) -> Result<Event, Error> {
        match self.events.next() {
            Some(event) => event,
            None => Err(Error::malformed("the document ends where a value belongs")),
        }
    }

    /// Reads a collection whose start was read, through `visit`.
    fn collection<T>(
        &mut self,
        visit: impl FnOnce(Collection<'_, R>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let level = self.depth;
        if self.keys.len() <= level {
            self.keys.push(String::new());
        }
        self.depth += 1;
        let value = visit(Collection {
            de: self,
            level,
            index: 0,
        });
        self.depth = level;
        value
    }

    /// Skips the rest of a collection whose start was read.
    fn skip_collection(&mut self) -> Result<(), Error> {
        let mut depth = 1usize;
        while depth > 0 {
            match self.next()? {
                Event::StartArray | Event::StartDict => depth += 1,
                Event::End => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }
}

impl<'de, R: BufRead> de::Deserializer<'de> for &mut Deserializer<R> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.next()? {
            Event::StartArray => self.collection(|c| visitor.visit_seq(c)),
            Event::StartDict => self.collection(|c| visitor.visit_map(c)),
            Event::End => Err(Error::malformed("a collection ends where a value belongs")),
            Event::String(s) => visitor.visit_string(s),
            Event::Integer(n) => match (u64::try_from(n), i64::try_from(n)) {
                (Ok(n), _) => visitor.visit_u64(n),
                (_, Ok(n)) => visitor.visit_i64(n),
                _ => Err(Error::malformed("an integer out of range")),
            },
            Event::Real(x) => visitor.visit_f64(x),
            Event::Boolean(b) => visitor.visit_bool(b),
            Event::Data(bytes) => visitor.visit_byte_buf(bytes),
            Event::Date(text) => visitor.visit_string(text),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if let Event::StartArray | Event::StartDict = self.next()? {
            self.skip_collection()?;
        }
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier
    }
}

/// The entries of an array or dictionary being read.
struct Collection<'a, R: BufRead> {
    de: &'a mut Deserializer<R>,
    /// Its depth, which indexes [`Deserializer::keys`].
    level: usize,
    /// The next element's index, in an array.
    index: usize,
}

impl<R: BufRead> Collection<'_, R> {
    /// Whether the collection has ended (and its end was read).
    fn at_end(&mut self) -> Result<bool, Error> {
        match self.de.events.peek() {
            Some(Ok(Event::End)) => {
                self.de.events.next();
                Ok(true)
            }
            Some(Ok(_)) => Ok(false),
            Some(Err(_)) => Err(self
                .de
                .next()
                .err()
                .unwrap_or_else(|| Error::malformed("the document ends inside a collection"))),
            None => Err(Error::malformed("the document ends inside a collection")),
        }
    }
}

impl<'de, R: BufRead> de::SeqAccess<'de> for Collection<'_, R> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.at_end()? {
            return Ok(None);
        }
        let index = self.index;
        self.index += 1;
        seed.deserialize(&mut *self.de)
            .map(Some)
            .map_err(|e| e.within(|| Segment::Index(index)))
    }
}

impl<'de, R: BufRead> de::MapAccess<'de> for Collection<'_, R> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.at_end()? {
            return Ok(None);
        }
        if let Some(Ok(Event::String(key))) = self.de.events.peek() {
            let kept = &mut self.de.keys[self.level];
            kept.clear();
            kept.push_str(key);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.de)
            .map_err(|e| e.within(|| Segment::Key(self.de.keys[self.level].clone())))
    }
}

#[cfg(test)]
mod tests;
