//! bsi's integration tests: every test drives the real binary on a device in a temp dir.
//!
//! - `harness`: devices, the runner, tree snapshots (I4 checks), bundle helpers.
//! - `fixtures`: the fixture generator and the test that the committed fixtures are current.
//! - `cli`: help, completions, man page, exit codes, usage errors.
//! - `device`: init, status, power, settings, the status schema.
//! - `bundles`: keys, trust, create/sign/pack/inspect, every rejection kind.
//! - `lifecycle`: apply, restart, Safari, rollback, update/upgrade, history, verify; the seed's
//!   versioning table.
//! - `ddm`: DDM declarations and activations, automatic install, enforcement, the install-state
//!   lifecycle, lookup, report; `apple_schema` validates every report against Apple's YAML.
//! - `faults`: kills at random instants, fault points, concurrent changers, planted symlinks.
//! - `hostile`, `hostile_input`: hostile input, each refused cheaply (time and peak RSS
//!   measured); `hostile_input` is issue 23, one test per item.
//! - `kmfddm`: `bsi sync` and `bsi fleet` against a real DDM server (KMFDDM), and the protocol's
//!   error paths against a stub.
//! - `realfs`: a device on a small tmpfs that runs full, and on a read-only bind mount (root).
//! - `transcript`: golden human output (stdout, stderr, exit code) of every command.
//! - `truth`: the truthful-state defects and the hint-following test.
//! - `damage`: every kind of damage any command refuses for, found by `verify` and undone by
//!   following the hints (issue 25).

// Test code: printing the kill test's seed is the point, and helpers favour brevity.
// A scenario test walks one device through one story, top to bottom; functions in src/ stay
// under clippy's 100 lines, scenarios may run longer.
#![allow(
    clippy::too_many_lines,
    clippy::print_stderr,
    clippy::format_push_string,
    clippy::too_many_arguments,
    clippy::needless_pass_by_value,
    clippy::format_collect,
    clippy::many_single_char_names
)]

mod apple_schema;
mod bundles;
mod cli;
mod damage;
mod ddm;
mod device;
mod faults;
mod fixtures;
mod harness;
mod hostile;
mod hostile_input;
mod kmfddm;
mod lifecycle;
mod mdm;
#[path = "../common/outputs.rs"]
mod outputs;
mod reading;
mod realfs;
#[path = "../common/status_view.rs"]
mod status_view;
mod stub;
mod transcript;
mod truth;
