//! How bsi shows text it does not trust: names from a tar header or a manifest, keys and values
//! from declarations and catalogs, paths on the command line. Such text reaches error messages,
//! the history and records; [`clip`] makes sure it can neither flood them (a 100 MB tar name) nor
//! drive the terminal (an escape sequence): control characters are escaped, and anything beyond
//! [`MAX_SHOWN`] characters is cut with a note of how much was left out.

use std::fmt::Write as _;

/// The most characters of one untrusted string bsi shows.
pub(crate) const MAX_SHOWN: usize = 160;

/// Is `c` a character that reorders or breaks what a terminal shows, though it is no control
/// character: bidi embeddings, overrides and isolates, marks, and the line and paragraph
/// separators?
#[must_use]
pub(crate) fn is_reordering(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `text`, safe to show: control characters escaped (`\u{1b}`), cut to [`MAX_SHOWN`]
/// characters.
#[must_use]
pub(crate) fn clip(text: &str) -> String {
    clip_to(text, MAX_SHOWN)
}

/// [`clip`], keeping up to `max` characters.
#[must_use]
pub(crate) fn clip_to(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (shown, (i, c)) in text.char_indices().enumerate() {
        if shown >= max {
            let _ = write!(out, "... ({} more bytes)", text.len() - i);
            break;
        }
        if c.is_control() || is_reordering(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Untrusted names as one short list: each [`clip`]ped, at most `max` of them, then how many
/// more there are ("a, b, c and 89,997 more").
#[must_use]
pub(crate) fn list<'a>(names: impl ExactSizeIterator<Item = &'a str>, max: usize) -> String {
    let total = names.len();
    let mut out: Vec<String> = names.take(max).map(clip).collect();
    if total > max {
        let last = format!("{} and {} more", out.pop().unwrap_or_default(), total - max);
        out.push(last);
    }
    out.join(", ")
}

/// `message`, safe to print or record whole: control characters other than newlines and tabs
/// escaped, and cut to `limit` bytes on a character boundary.
#[must_use]
pub(crate) fn clip_message(message: &str, limit: usize) -> String {
    let mut out = String::with_capacity(message.len().min(limit));
    for (i, c) in message.char_indices() {
        if out.len() >= limit {
            let _ = write!(out, "... ({} more bytes)", message.len() - i);
            break;
        }
        if (c.is_control() && c != '\n' && c != '\t') || is_reordering(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_cuts() {
        assert_eq!(clip("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(clip("ok"), "ok");
        let long = "x".repeat(1000);
        let c = clip(&long);
        assert!(c.starts_with(&"x".repeat(MAX_SHOWN)));
        assert!(c.ends_with("(840 more bytes)"), "{c}");
        assert_eq!(clip(&"\0".repeat(3)), "\\u{0}\\u{0}\\u{0}");
        let m = clip_message("line one\nline\u{7} two", 100);
        assert_eq!(m, "line one\nline\\u{7} two");
        assert!(clip_message(&"é".repeat(100), 11).len() < 40);
        let names = ["a", "b", "c", "d"];
        assert_eq!(list(names.iter().copied(), 2), "a, b and 2 more");
        assert_eq!(list(names.iter().copied(), 4), "a, b, c, d");
    }
}
