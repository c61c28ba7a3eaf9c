//! Why reading a property list failed, in people's words: serde's type, length, missing-key
//! and repeated-key errors worded as a plist's types are named, and the key path of the refused
//! value, which the reader records as the error leaves each collection.

use serde::de;

use super::Exceeded;
use crate::untrusted::clip;

/// Why reading failed: an XML or plist rule broken (`malformed`: the document is not a
/// property list), a bound of [`Limits`] passed (`exceeded`), or a value a typed reader refused,
/// said in people's words ("must be a string, found an integer") and placed by its key path
/// (`Cryptexes.OS[3].Size`), which the reader records as the error leaves each collection.
///
/// [`Limits`]: super::Limits
#[derive(Debug)]
pub(crate) struct Error {
    message: String,
    /// The document itself is not a property list, wherever it was being read.
    pub malformed: bool,
    /// The document went past one of the reader's bounds (`Limits`).
    pub exceeded: Option<Exceeded>,
    /// Where the refused value is (or the key that is missing or repeated), innermost first.
    path: Vec<Segment>,
    /// The message is that a required key is missing.
    missing: bool,
}

/// One step of a key path.
#[derive(Debug)]
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

impl Error {
    fn new(message: String, malformed: bool) -> Self {
        Error {
            message,
            malformed,
            exceeded: None,
            path: Vec::new(),
            missing: false,
        }
    }

    pub(super) fn malformed(message: impl Into<String>) -> Self {
        Self::new(message.into(), true)
    }

    pub(super) fn exceeded(what: Exceeded) -> Self {
        Error {
            exceeded: Some(what),
            ..Self::new(
                format!("the document goes past a reading bound ({what:?})"),
                true,
            )
        }
    }

    /// A message about the key `field` of the dictionary being read.
    fn about(field: &'static str, message: &str) -> Self {
        Error {
            path: vec![Segment::Key(field.to_owned())],
            ..Self::new(message.to_owned(), false)
        }
    }

    /// Records that the error left the collection entry `segment`.
    pub(super) fn within(mut self, segment: impl FnOnce() -> Segment) -> Self {
        if !self.malformed {
            self.path.push(segment());
        }
        self
    }

    /// Does the message name the key it is about (a value was refused inside the document)?
    #[must_use]
    pub(crate) fn located(&self) -> bool {
        !self.malformed && !self.path.is_empty()
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.located() {
            return f.write_str(&self.message);
        }
        let required = if self.missing { "required " } else { "" };
        write!(f, "{required}key `")?;
        for (i, step) in self.path.iter().rev().enumerate() {
            match step {
                Segment::Key(k) if i == 0 => f.write_str(&clip(k))?,
                Segment::Key(k) => write!(f, ".{}", clip(k))?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        write!(f, "` {}", self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self::new(msg.to_string(), false)
    }

    fn invalid_type(found: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "must be {}, found {}",
            expected_words(&expected.to_string()),
            found_words(&found)
        ))
    }

    fn invalid_value(found: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::invalid_type(found, expected)
    }

    fn invalid_length(len: usize, expected: &dyn de::Expected) -> Self {
        let expected = expected.to_string();
        match expected_words(&expected) {
            // A struct offered an array reads it by position; a plist's are dictionaries.
            "a dictionary" => Self::custom("must be a dictionary, found an array"),
            words => Self::custom(format_args!("must be {words}, found {len} elements")),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Error {
            missing: true,
            ..Self::about(field, "is missing")
        }
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::about(field, "is given twice")
    }
}

/// What a typed reader expected, as a plist's types are named.
fn expected_words(expected: &str) -> &str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a real number",
        "a sequence" => "an array",
        "a map" => "a dictionary",
        e if e.starts_with("struct ") => "a dictionary",
        e => e,
    }
}

/// What a value was, as a plist's types are named.
fn found_words(found: &de::Unexpected<'_>) -> &'static str {
    use de::Unexpected as U;
    match found {
        U::Bool(_) => "a boolean",
        U::Signed(n) if *n < 0 => "a negative integer",
        U::Unsigned(_) | U::Signed(_) => "an integer",
        U::Float(_) => "a real number",
        U::Char(_) | U::Str(_) => "a string",
        U::Bytes(_) => "data",
        U::Seq => "an array",
        U::Map => "a dictionary",
        _ => "something else",
    }
}
