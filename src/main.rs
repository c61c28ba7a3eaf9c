//! The `bsi` binary: everything lives in the library; this only hands over the arguments and
//! turns the result into the process's exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    bsi::run(std::env::args_os())
}
