//! The command line: [`args`] (clap types); `commands` (each command: arguments to validated
//! options, one call into `ops`, an [`render::Output`]); [`render`] and `human` (JSON or text).
//!
//! [`run`] is the whole program: parse, execute, print, and turn the result into the exit code of
//! `docs/cli.md`. Errors print as one line saying what failed and why, then a `hint:` line with
//! what to do; with `--json`, stdout carries only the requested JSON.

pub mod args;
mod commands;
mod human;
pub mod render;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::Clock as Time;
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
    /// The command line, for the lock holder record.
    pub command_line: String,
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

fn print_error(error: &Error) {
    let mut text = format!("error: {}\n", clip_message(&error.to_string(), MAX_MESSAGE));
    if let Some(hint) = error.hint() {
        text = format!("{text}hint: {}\n", clip_message(&hint, MAX_MESSAGE));
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Runs bsi with `args` (the first is the program name) and returns the exit code.
pub fn run(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let _faults = crate::faults::setup();
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let command_line = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let parsed = match Args::try_parse_from(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 2,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let ctx = match context(&parsed, command_line) {
        Ok(ctx) => ctx,
        Err(e) => {
            print_error(&e);
            return ExitCode::from(e.exit_code());
        }
    };
    // A panic is a bug in bsi, never the user's fault: report it in one line and exit 1.
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(
            std::io::stderr(),
            "error: internal error (a bug in bsi): {info}\nhint: the device is left as the last completed step made it; run `bsi repair`, and please report this"
        );
    }));
    let executed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        commands::execute(&ctx, parsed.command)
    }));
    let (output, deferred) = match executed {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            print_error(&e);
            return ExitCode::from(e.exit_code());
        }
        Err(_) => return ExitCode::from(1),
    };
    let text = output.render(ctx.json, ctx.verbose);
    if (!ctx.quiet || ctx.json || deferred.is_some())
        && !text.is_empty()
        && let Err(e) = print_stdout(&text)
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = writeln!(std::io::stderr(), "error: writing to stdout: {e}");
        return ExitCode::from(1);
    }
    match deferred {
        Some(e) => {
            print_error(&e);
            ExitCode::from(e.exit_code())
        }
        None => ExitCode::SUCCESS,
    }
}

fn context(args: &Args, command_line: String) -> Result<Ctx> {
    let g = &args.global;
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
        root_flag: g.root.clone(),
        clock,
        wait: Duration::from_secs_f64(g.wait),
        json: g.json,
        quiet: g.quiet,
        verbose: g.verbose,
        progress: progress::reporter(g.progress, g.quiet),
        command_line,
    })
}

/// The clap command, for completions, the man page and help golden tests.
#[must_use]
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// Results a command returns: what to print and, for commands that print a report and still
/// fail (inspect, verify, `status --require`), the error to exit with after printing.
pub(crate) type Executed = (Output, Option<Error>);
