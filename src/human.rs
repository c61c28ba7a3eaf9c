//! How results become text for people. Every outcome a command prints implements [`Human`]
//! beside its type (its JSON is its `Serialize`), so a new command's output lives with its
//! outcome; the command line only chooses which form to print.
//!
//! Every text bsi prints goes through [`terminal_safe`] on its way out (`cli` calls it on stdout
//! and stderr alike): control characters other than newline and tab are escaped, and so are the
//! Unicode controls that reorder or break what a terminal shows (bidi overrides and isolates,
//! line and paragraph separators); a line longer than [`MAX_LINE`] bytes is cut, saying how much
//! was left out. Untrusted values inside a line are also [`clip`]ped where they are formatted
//! (a newline in a server's identifier must not start a line of its own).

use std::fmt::Write as _;

pub(crate) use crate::untrusted::{clip, is_reordering};

/// What a result says to a person.
pub(crate) trait Human {
    /// Appends the text; `verbose` is the number of `-v` flags.
    fn human(&self, out: &mut Text, verbose: u8);
}

/// Text being written for a person, a line at a time.
#[derive(Debug, Default)]
pub(crate) struct Text(String);

impl Text {
    /// Appends one line.
    pub(crate) fn line(&mut self, text: impl AsRef<str>) {
        self.0.push_str(text.as_ref());
        self.0.push('\n');
    }

    /// Appends text as it is (it ends its own lines).
    pub(crate) fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    /// The text.
    #[must_use]
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

/// The longest line bsi prints: a message that long is a flood, not an explanation.
pub(crate) const MAX_LINE: usize = 4096;

/// `text`, safe to print: controls other than newline and tab, and reordering characters,
/// escaped (`\u{1b}`); every line cut at [`MAX_LINE`] bytes.
#[must_use]
pub(crate) fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let start = out.len();
        let mut cut = None;
        for (at, c) in line.char_indices() {
            if out.len() - start >= MAX_LINE {
                cut = Some(line.trim_end_matches('\n').len() - at);
                break;
            }
            if c == '\n' || c == '\t' {
                out.push(c);
            } else if c.is_control() || is_reordering(c) {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        if let Some(left) = cut {
            let newline = line.ends_with('\n');
            let _ = write!(out, "... ({left} more bytes)");
            if newline {
                out.push('\n');
            }
        }
    }
    out
}

/// JSON text, safe to print: the reordering characters JSON leaves raw written as `\uXXXX`
/// escapes (the same string to a parser; nothing a terminal reorders).
#[must_use]
pub(crate) fn json_safe(json: &str) -> String {
    if !json.chars().any(is_reordering) {
        return json.to_owned();
    }
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if is_reordering(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
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
    fn controls_and_reordering_are_escaped_and_lines_cut() {
        assert_eq!(
            terminal_safe("ok\n\u{1b}[2Jfake\u{202e}evil\ttab\n"),
            "ok\n\\u{1b}[2Jfake\\u{202e}evil\ttab\n"
        );
        let long = format!("{}\nnext\n", "x".repeat(5000));
        let safe = terminal_safe(&long);
        assert!(safe.starts_with(&"x".repeat(MAX_LINE)));
        assert!(safe.contains("... (904 more bytes)\nnext\n"), "{safe}");
        let json = json_safe("{\"a\":\"b\u{202e}c\"}");
        assert_eq!(json, "{\"a\":\"b\\u202ec\"}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["a"], "b\u{202e}c");
    }
}
