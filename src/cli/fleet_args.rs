//! The arguments of `bsi fleet`: many simulated devices made, synced, enrolled and polled at once.

// The doc comments here are help text for people, not rustdoc: no Markdown backticks in them.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Subcommand};

use super::values::PlatformArg;

/// `bsi fleet`.
#[derive(Debug, Subcommand)]
pub(crate) enum FleetCommand {
    /// Make N simulated devices in DIR, varied reproducibly from --seed.
    #[command(
        after_help = "Devices are DIR/devices/0000, 0001, ...; DIR/fleet.json lists them with their enrollment\nidentifiers. Without --platform, about 60 % are Macs (a fifth of them Intel, a fifth\ndesktops), 25 % iPhones and 15 % iPads; batteries are spread over --battery-spread, half of\nthe portable devices on power. The same --seed makes the same fleet.\n\nExample:\n  bsi fleet init --dir /tmp/fleet --count 100 --trust fixtures/keys/test-only.key.pub"
    )]
    Init(FleetInitArgs),
    /// Sync every device of a fleet with a DDM server, in parallel.
    #[command(
        after_help = "Prints throughput (syncs/s), latency percentiles, the CPU time bsi used, and every failure.\n\nExample:\n  bsi fleet sync --dir /tmp/fleet --server http://127.0.0.1:9002 --concurrency 16"
    )]
    Sync(FleetSyncArgs),
    /// Enroll every device of a fleet in an MDM server with one enrollment profile.
    #[command(
        after_help = "Each device gets its own identity from the profile's SCEP payload (put %UDID% in its\nSubject so the CA issues each device its own). Prints throughput, latency percentiles, the\nCPU time bsi used, and every failure.\n\nExample:\n  bsi fleet enroll --dir /tmp/fleet --profile enroll.mobileconfig --concurrency 16"
    )]
    Enroll(super::mdm::FleetEnrollArgs),
    /// Poll every enrolled device of a fleet: answer its commands, sync through the server.
    #[command(
        after_help = "Example:\n  bsi fleet poll --dir /tmp/fleet --then-auto --from fixtures/bundles --concurrency 16"
    )]
    Poll(super::mdm::FleetPollArgs),
    /// How a fleet stands: devices by version, install state, enrollment, last check-in.
    #[command(
        after_help = "Example:\n  bsi fleet status --dir /tmp/fleet\n  bsi fleet status --dir /tmp/fleet --json | jq .by_version"
    )]
    Status(super::mdm::FleetStatusArgs),
}

/// `bsi fleet init`.
#[derive(Debug, ClapArgs)]
pub(crate) struct FleetInitArgs {
    /// The fleet's directory (new or empty).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// How many devices.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000), allow_negative_numbers = true)]
    pub count: u32,
    /// Every device of this platform [default: a mix].
    #[arg(long, value_enum, ignore_case = true)]
    pub platform: Option<PlatformArg>,
    /// Battery charges, LOW-HIGH percent, spread over the portable devices.
    #[arg(long, value_name = "LOW-HIGH", default_value = "5-100")]
    pub battery_spread: String,
    /// Percent of devices that are supervised.
    #[arg(long, value_name = "PCT", default_value_t = 100, value_parser = clap::value_parser!(u8).range(0..=100), allow_negative_numbers = true)]
    pub supervised_percent: u8,
    /// The seed that makes the fleet (same seed, same fleet).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub seed: u64,
    /// Trust this Ed25519 public key on every device (repeatable).
    #[arg(long, value_name = "KEY.pub")]
    pub trust: Vec<PathBuf>,
    /// Devices made at once.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 8,
        allow_negative_numbers = true
    )]
    pub concurrency: usize,
}

/// `bsi fleet sync`.
#[derive(Debug, ClapArgs)]
pub(crate) struct FleetSyncArgs {
    /// The fleet's directory (`bsi fleet init --dir`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The base URL of the server's device endpoints.
    #[arg(long, value_name = "URL", env = "BSI_SERVER")]
    pub server: String,
    /// Devices synced at once.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 16,
        allow_negative_numbers = true
    )]
    pub concurrency: usize,
    /// Run a background pass on each device after fetching and before reporting.
    #[arg(long, requires = "from")]
    pub then_auto: bool,
    /// Directory of bundles for --then-auto.
    #[arg(long, value_name = "DIR", requires = "then_auto")]
    pub from: Option<PathBuf>,
    /// Seconds each request may take.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        value_parser = super::values::seconds,
        allow_negative_numbers = true
    )]
    pub timeout: Duration,
    /// Seconds a whole sync of one device may take (every request, retry and pause), so that a
    /// slow server cannot hold the device lock for longer.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "120",
        value_parser = super::values::seconds,
        allow_negative_numbers = true
    )]
    pub deadline: Duration,
    /// Only the devices whose index is K modulo N (K from 0), for N parallel jobs.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
}
