//! What a command prints: its outcome as pretty JSON (`--json`, one document on stdout) or as
//! text for people, which each outcome writes itself ([`Human`], beside its type). Every text
//! leaves through [`crate::human::terminal_safe`] or [`crate::human::json_safe`] (in `cli::run`).

use serde::Serialize;

use crate::human::{Human, Text};

/// An outcome that can be printed either way.
pub(crate) trait Rendered: std::fmt::Debug {
    /// The `--json` document.
    fn json(&self) -> String;
    /// The text for people.
    fn text(&self, verbose: u8) -> String;
}

impl<T: Serialize + Human + std::fmt::Debug> Rendered for T {
    fn json(&self) -> String {
        json(self)
    }

    fn text(&self, verbose: u8) -> String {
        let mut out = Text::default();
        self.human(&mut out, verbose);
        out.into_string()
    }
}

/// Everything a command can print.
#[derive(Debug)]
pub(crate) enum Output {
    /// A command's outcome.
    Outcome(Box<dyn Rendered>),
    /// A JSON document that is also the text for people (`report`, `--schema`).
    Json(serde_json::Value),
    /// A value for people that is JSON with `--json` (`status --get`).
    Value(serde_json::Value),
    /// Text bsi made itself, printed as is (completions, the man page).
    Raw(String),
}

impl Output {
    /// The output of an outcome.
    pub(crate) fn of(outcome: impl Serialize + Human + std::fmt::Debug + 'static) -> Self {
        Output::Outcome(Box::new(outcome))
    }

    /// The text to print on stdout, and whether it is JSON.
    #[must_use]
    pub(crate) fn render(&self, as_json: bool, verbose: u8) -> (String, bool) {
        match self {
            Output::Outcome(o) if as_json => (o.json(), true),
            Output::Outcome(o) => (o.text(verbose), false),
            Output::Json(v) => (json(v), true),
            Output::Value(v) if as_json => (format!("{v}\n"), true),
            Output::Value(serde_json::Value::String(s)) => (format!("{s}\n"), false),
            Output::Value(serde_json::Value::Null) => ("\n".to_owned(), false),
            Output::Value(v) => (format!("{v}\n"), false),
            Output::Raw(s) => (s.clone(), true),
        }
    }
}

fn json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut s =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
