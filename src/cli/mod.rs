//! The command line: [`args`] (clap types); `commands` (each command: arguments to validated
//! options, one call into `ops`, an [`render::Output`]); [`render`] (JSON or the outcome's own
//! text).
//!
//! [`run`] is the whole program: parse, execute, print, and turn the result into the exit code of
//! `docs/cli.md`. Errors print as one line saying what failed and why, then a `hint:` line with
//! what to do; with `--json`, stdout carries only the requested JSON.

pub(crate) mod args;
mod bundle_args;
mod commands;
mod fleet_args;
mod get;
pub(crate) mod mdm;
pub(crate) mod render;
mod values;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::Clock as Time;
use crate::ops::{Done, Env};
use crate::progress::{self, Progress};
use crate::untrusted::clip_message;
use crate::{Error, Result};

use args::Args;
use render::Output;

/// What every command needs from the global options.
pub(crate) struct Ctx {
    /// `--root` / `BSI_ROOT`, unresolved.
    root_flag: Option<PathBuf>,
    /// The clock.
    pub clock: Time,
    /// Lock wait.
    pub wait: Duration,
    /// `--json`.
    pub json: bool,
    /// `-q`.
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
    /// Progress reporter.
    pub progress: Box<dyn Progress>,
}

impl Ctx {
    /// The device root.
    pub(crate) fn root(&self) -> Result<PathBuf> {
        crate::device::root::resolve(self.root_flag.clone())
    }
}

fn print_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The longest error message printed: messages carry untrusted text, which `clip_message` also
/// keeps from driving the terminal.
const MAX_MESSAGE: usize = 4096;

/// Prints an error on stderr: a line saying what failed and why and a `hint:` line, or with
/// `--json` one JSON object (`docs/error.schema.json`).
fn print_error(error: &Error, json: bool) {
    let mut report = crate::ErrorReport::of(error);
    report.error = clip_message(&report.error, MAX_MESSAGE);
    report.hint = report.hint.map(|h| clip_message(&h, MAX_MESSAGE));
    print_report(&report, json);
}

/// A warning on stderr, through the same pass as every other text.
/// The outcome of a changing operation, its warnings shown.
pub(super) fn shown<T>(done: Done<T>) -> T {
    for w in &done.warnings {
        warn(w);
    }
    done.value
}

pub(super) fn env(ctx: &Ctx) -> Result<Env> {
    Ok(Env {
        root: ctx.root()?,
        clock: ctx.clock,
        wait: ctx.wait,
    })
}

pub(crate) fn warn(message: &str) {
    let text = crate::human::terminal_safe(&format!("warning: {message}\n"));
    let _ = std::io::stderr().write_all(text.as_bytes());
}

fn print_report(report: &crate::ErrorReport, json: bool) {
    let text = if json {
        let mut line = serde_json::to_string(report).unwrap_or_default();
        line.push('\n');
        crate::human::json_safe(&line)
    } else {
        let mut text = format!("error: {}\n", report.error);
        if let Some(hint) = &report.hint {
            text = format!("{text}hint: {hint}\n");
        }
        crate::human::terminal_safe(&text)
    };
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// The hint under a usage error: the help of the command being run, when there is one.
fn usage_hint(args: &[OsString]) -> String {
    let mut cmd = command();
    let mut path = Vec::new();
    for a in args.iter().skip(1) {
        let a = a.to_string_lossy();
        if a.starts_with('-') {
            continue;
        }
        match cmd.find_subcommand(a.as_ref()) {
            Some(sub) => {
                path.push(a.into_owned());
                cmd = sub.clone();
            }
            // Before the command, a word that is none is a global option's value (`--root DIR`).
            None if path.is_empty() => {}
            None => break,
        }
    }
    if path.is_empty() {
        "`bsi --help` lists the commands; `bsi COMMAND --help` shows what one takes".to_owned()
    } else {
        format!(
            "`bsi {} --help` shows what it takes, with examples",
            path.join(" ")
        )
    }
}

/// Does the command line ask for JSON? (Read from the raw arguments, so that even an argument
/// error is reported as JSON.)
fn wants_json(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// Reports what clap refused (exit 2), or shows the help or version it was asked for (exit 0).
fn clap_error(e: &clap::Error, args: &[OsString], json: bool) -> ExitCode {
    use clap::error::ErrorKind as Clap;
    if matches!(e.kind(), Clap::DisplayHelp | Clap::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if json {
        let rendered = e.to_string();
        let first = rendered
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned();
        print_report(
            &crate::ErrorReport {
                error: clip_message(&first, MAX_MESSAGE),
                hint: Some(usage_hint(args)),
                exit_code: 2,
                kind: crate::ErrorKind::Usage,
            },
            true,
        );
    } else {
        // clap's own message (what is wrong, the usage line), then bsi's hint line.
        let rendered = e.render().to_string();
        let mut text = String::new();
        for l in rendered
            .lines()
            .filter(|l| !l.starts_with("For more information, try"))
        {
            text.push_str(l);
            text.push('\n');
        }
        while text.ends_with("\n\n") {
            text.pop();
        }
        text.push_str("hint: ");
        text.push_str(&usage_hint(args));
        text.push('\n');
        let _ = std::io::stderr().write_all(crate::human::terminal_safe(&text).as_bytes());
    }
    ExitCode::from(2)
}

/// Runs bsi with `args` (the first is the program name) and returns the exit code.
pub fn run(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let _faults = crate::faults::setup();
    crate::interrupt::install();
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let json = wants_json(&args);
    let parsed = match Args::try_parse_from(&args) {
        Ok(parsed) => parsed,
        Err(e) => return clap_error(&e, &args, json),
    };
    let ctx = match context(&parsed, &args) {
        Ok(ctx) => ctx,
        Err(e) => {
            print_error(&e, json);
            return ExitCode::from(e.exit_code());
        }
    };
    // A panic is a bug in bsi, never the user's fault: report it in one line and exit 1.
    let json_errors = ctx.json;
    std::panic::set_hook(Box::new(move |info| {
        print_report(
            &crate::ErrorReport {
                error: clip_message(&format!("internal error (a bug in bsi): {info}"), MAX_MESSAGE),
                hint: Some(
                    "the device is left as the last completed step made it; run `bsi repair`, and please report this".to_owned(),
                ),
                exit_code: 1,
                kind: crate::ErrorKind::Internal,
            },
            json_errors,
        );
    }));
    let executed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        commands::execute(&ctx, parsed.command)
    }));
    let (output, deferred) = match executed {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            print_error(&e, ctx.json);
            return ExitCode::from(e.exit_code());
        }
        Err(_) => return ExitCode::from(1),
    };
    let (text, is_json) = output.render(ctx.json, ctx.verbose);
    // The one place text leaves bsi: escaped for a terminal whatever it holds.
    let text = if is_json {
        crate::human::json_safe(&text)
    } else {
        crate::human::terminal_safe(&text)
    };
    if !ctx.quiet
        && !text.is_empty()
        && let Err(e) = print_stdout(&text)
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = writeln!(std::io::stderr(), "error: writing to stdout: {e}");
        return ExitCode::from(1);
    }
    match deferred {
        Some(e) => {
            print_error(&e, ctx.json);
            ExitCode::from(e.exit_code())
        }
        None => ExitCode::SUCCESS,
    }
}

fn context(args: &Args, raw: &[OsString]) -> Result<Ctx> {
    let g = &args.global;
    // An empty BSI_ROOT is unset (as an empty XDG_DATA_HOME is); an empty --root is a mistake.
    let root_flag = match &g.root {
        Some(p) if p.as_os_str().is_empty() => {
            let given = raw
                .iter()
                .any(|a| a == "--root" || a.to_string_lossy().starts_with("--root="));
            if given {
                return Err(Error::usage(
                    "--root is empty: it names the directory that holds the device",
                    "give a directory, e.g. --root /tmp/mac, or leave --root out for the default device",
                ));
            }
            None
        }
        other => other.clone(),
    };
    let clock = match &g.now {
        Some(text) => Time::parse(text)?,
        None => Time::system(),
    };
    if !(g.wait.is_finite() && g.wait >= 0.0 && g.wait <= 86_400.0) {
        return Err(Error::usage(
            format!("invalid --wait {}", g.wait),
            "give a number of seconds from 0 to 86400",
        ));
    }
    Ok(Ctx {
        root_flag,
        clock,
        wait: Duration::from_secs_f64(g.wait),
        json: g.json,
        quiet: g.quiet,
        verbose: g.verbose,
        progress: progress::reporter(g.progress, g.quiet),
    })
}

/// The clap command, for completions, the man page and help golden tests.
#[must_use]
pub(crate) fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// Results a command returns: what to print and, for commands that print a report and still
/// fail (inspect, verify, `status --require`), the error to exit with after printing.
pub(crate) type Executed = (Output, Option<Error>);
