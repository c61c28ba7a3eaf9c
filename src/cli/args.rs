//! The command line, as clap types. The doc comments here are the single source of `--help`, the
//! man page (`bsi man`) and shell completions (`bsi completions`). Values are parsed into bsi's
//! own types (versions, builds, platforms) so that a malformed one is refused before any command
//! runs.

// The doc comments here are help text for people, not rustdoc: no Markdown backticks in them.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args as ClapArgs, Parser, Subcommand, ValueEnum};

pub(crate) use super::bundle_args::{BundleCommand, KeyCommand, TrustCommand};
pub(crate) use super::fleet_args::{FleetCommand, FleetInitArgs, FleetSyncArgs};
pub(crate) use super::values::{ChipArg, PlatformArg};
use crate::progress::ProgressMode;

const EXAMPLES: &str = "\
Examples:
  bsi init --root /tmp/mac                      make a macOS 26.3.1 (25D2128) laptop
  bsi --root /tmp/mac trust add fixtures/keys/test-only.key.pub
  bsi --root /tmp/mac apply fixtures/bundles/macos-26.3.1-a.bsi --restart
  bsi --root /tmp/mac status                    sw_vers-style summary
  bsi --root /tmp/mac status --json             schema version 1 (docs/status.schema.json)
  bsi --root /tmp/mac rollback --restart        back to the base OS

Versions:
  26.3.1              an OS version: MAJOR.MINOR[.PATCH] (26.4.0 is 26.4)
  \"26.3.1 (a)\"        a response: its base version, a space, its letter ((a) ... (z), (aa) ...)
  25D2128             a base build: the release number, a train letter and a number
  25D771280a          a response's build: its base's train, 77, the base number's last three
                      digits, 0 and one letter (20F75 -> 20F770750b)

Exit codes: 0 ok or nothing to do, 1 failed, 2 usage, 3 power gate, 4 policy, 5 not applicable,
6 bundle rejected, 7 busy, 8 no device or damaged, 9 --require not met, 130/143 interrupted
(docs/cli.md). With --json, an error is one JSON object on stderr (docs/error.schema.json).";

/// Manage Apple Background Security Improvements on a simulated device.
///
/// bsi applies, activates, removes and reports Background Security Improvements (security
/// responses that patch an OS between updates, formerly Rapid Security Responses) on a directory
/// laid out like a Mac's or an iPhone's system volumes, with Apple's rules: cumulative response
/// letters, the base-version rule, the power gate, restarts, Safari relaunch, removal, and the
/// management declarations of a supervised device.
#[derive(Debug, Parser)]
#[command(name = "bsi", version, after_help = EXAMPLES, max_term_width = 100)]
pub(crate) struct Args {
    /// Options for every command.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, ClapArgs)]
pub(crate) struct Global {
    /// The device root [default: $XDG_DATA_HOME/bsi/device, i.e. ~/.local/share/bsi/device; an
    /// empty BSI_ROOT counts as unset]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "BSI_ROOT",
        value_name = "DIR",
        value_parser = clap::builder::TypedValueParser::map(
            clap::builder::OsStringValueParser::new(),
            PathBuf::from
        )
    )]
    pub root: Option<PathBuf>,
    /// Print machine-readable JSON on stdout, and nothing else there.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// Fix the clock (RFC 3339, e.g. 2026-12-01T09:30:00Z); its offset is the device's local time.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "RFC3339"
    )]
    pub now: Option<String>,
    /// Print only errors.
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        conflicts_with = "verbose"
    )]
    pub quiet: bool,
    /// Print more detail (repeat for even more).
    #[arg(short, long, global = true, help_heading = "Global options", action = ArgAction::Count)]
    pub verbose: u8,
    /// Seconds to wait for another bsi to release the device before failing with exit 7.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "SECONDS",
        default_value_t = 5.0,
        allow_negative_numbers = true
    )]
    pub wait: f64,
    /// Progress on stderr: a bar on a terminal (auto), JSON lines (json), or nothing (none).
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t = ProgressMode::Auto, value_name = "MODE")]
    pub progress: ProgressMode,
}

/// bsi's commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Make a new simulated device.
    #[command(
        after_help = "Examples:\n  bsi init --root /tmp/mac\n  bsi init --root /tmp/intel --chip intel --battery 15 --no-ac\n  bsi init --root /tmp/phone --platform iOS --supervised --trust key.pub"
    )]
    Init(InitArgs),
    /// Show the device's OS, responses, power, settings and management.
    #[command(
        after_help = "Examples:\n  bsi status\n  bsi status --json | jq .active\n  bsi status --require \"26.3.1 (b)\" && echo patched"
    )]
    Status(StatusArgs),
    /// Apply a response bundle (directory or tar form).
    #[command(
        after_help = "Checks, in order: the bundle's manifest, signature and paths; the platform; the base\n(ProductVersion and PrerequisiteBuild); the order (not older than what is active or staged);\nmanagement policy; the power gate. Then the payload is staged, each file checked as it streams in.\n\nExamples:\n  bsi apply macos-26.3.1-a.bsi\n  bsi apply macos-26.3.1-a.bsi.tar --restart\n  bsi apply macos-26.3.1-b.bsi --dry-run"
    )]
    Apply(ApplyArgs),
    /// Restart the device: activate a staged response, or complete a staged removal.
    Restart(DryRunArgs),
    /// Relaunch Safari and its associated processes onto staged content (macOS only).
    RelaunchSafari(DryRunArgs),
    /// Remove a response: discard a staged one at once, or remove the active one at restart.
    Rollback(RollbackArgs),
    /// Simulate a minor OS update (e.g. 26.3.1 -> 26.4), which includes the old line's responses.
    #[command(
        after_help = "Examples:\n  bsi update --version 26.4 --build 25E100\n  bsi update --version 26.4 --build 25E100 --catalog fixtures/catalog.json"
    )]
    Update(UpdateArgs),
    /// Simulate a major OS upgrade (e.g. 26.4 -> 27.0); it includes no responses.
    #[command(after_help = "Example:\n  bsi upgrade --version 27.0 --build 26A100")]
    Upgrade(UpdateArgs),
    /// Show or change the simulated power source.
    #[command(
        after_help = "Examples:\n  bsi power\n  bsi power --battery 9 --no-ac\n  bsi power --ac"
    )]
    Power(PowerArgs),
    /// Show or change the user's settings (Automatically Install).
    #[command(after_help = "Examples:\n  bsi settings\n  bsi settings --automatic off")]
    Settings(SettingsArgs),
    /// Manage DDM declarations as an MDM server sends them.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run one background pass: install what automatic install or an enforcement calls for.
    #[command(
        after_help = "Examples:\n  bsi auto --from fixtures/bundles\n  bsi auto --from bundles/ --now 2026-12-01T10:00:00Z"
    )]
    Auto(AutoArgs),
    /// Sync with a DDM server as a device does: fetch declarations, report status.
    #[command(
        after_help = "One sync: GET /tokens; when the declarations token changed, GET /declaration-items and\nevery new or changed declaration (stored and evaluated as `policy set` does), dropping the\nones no longer listed; then PUT /status: the first report to a server is full, later ones\nhold only what changed since the last report the server acknowledged. With --then-auto, a\nbackground pass (`bsi auto`) runs between the two, as in a device's background cycle.\n\nExamples:\n  bsi sync --server http://127.0.0.1:9002\n  bsi sync --server http://127.0.0.1:9002 --then-auto --from bundles/\n  bsi sync --server http://127.0.0.1:9002 --dry-run --json"
    )]
    Sync(SyncArgs),
    /// Many simulated devices at once: make them, sync them all with a DDM server.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Be a device an MDM server manages: enroll, answer its commands, leave it.
    #[command(subcommand)]
    Mdm(super::mdm::MdmCommand),
    /// Read a software lookup catalog: releases and background security improvements.
    #[command(
        after_help = "Examples:\n  bsi lookup --catalog fixtures/catalog.json\n  bsi lookup --catalog fixtures/catalog.json --version \"26.3.1 (a)\""
    )]
    Lookup(LookupArgs),
    /// Print the DDM StatusReport a device sends: its subscribed and implicit status items.
    #[command(
        after_help = "A full report (FullReport true) by default, with what a device sends: the status items that
status-subscriptions configurations in effect subscribe to, plus management.client-capabilities
and management.declarations, which a device always reports (where its OS version and enrollment
support each). --all shows every item the device supports, subscribed or not. Real devices send
only what changed since the report the server acknowledged: --changes prints those items
(FullReport false), compared with the report last marked --delivered.

Examples:
  bsi report
  bsi report --all | jq .StatusItems.softwareupdate
  bsi report --delivered            # print the full report and mark it delivered
  bsi report --changes --delivered  # print what changed since, and mark this one delivered"
    )]
    Report(ReportArgs),
    /// Show the device's operation history.
    History(HistoryArgs),
    /// Re-hash the active content against its manifest and check the links (exit 8 on mismatch).
    Verify,
    /// Recover an interrupted operation and put damage right; --from restores a response's content.
    #[command(
        after_help = "repair restores what bsi made itself: an interrupted operation, the links, bsi's records,\nleftovers, and the base OS content. A response's content can only come from its bundle:\n`bsi verify` names it, and `bsi repair --from BUNDLE` restores it (signature and digests\nchecked as in apply).\n\nExamples:\n  bsi repair\n  bsi repair --from macos-26.3.1-c.bsi"
    )]
    Repair(RepairArgs),
    /// Make Ed25519 signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage the keys the device trusts to sign bundles.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Make, sign, pack and inspect bundles.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  bsi completions bash > ~/.local/share/bash-completion/completions/bsi"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory.
    Man {
        /// Write bsi.1 and bsi-COMMAND.1 files here instead of printing bsi.1.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// `--dry-run` alone.
#[derive(Debug, ClapArgs)]
pub(crate) struct DryRunArgs {
    /// Show what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `bsi repair`.
#[derive(Debug, ClapArgs)]
pub(crate) struct RepairArgs {
    /// Restore the damaged content of the response this bundle is (either form).
    #[arg(long, value_name = "BUNDLE")]
    pub from: Option<PathBuf>,
    /// Show what would be repaired; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `bsi init`.
#[derive(Debug, ClapArgs)]
pub(crate) struct InitArgs {
    /// The platform.
    #[arg(long, value_enum, default_value_t = PlatformArg::MacOs, ignore_case = true)]
    pub platform: PlatformArg,
    /// Base OS version [default: 26.3.1]
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Base build [default: 25D2128 on macOS, 23D8133 on iOS and iPadOS]
    #[arg(long, value_name = "BUILD")]
    pub build: Option<String>,
    /// Processor family (macOS only) [default: apple-silicon]
    #[arg(long, value_enum)]
    pub chip: Option<ChipArg>,
    /// A laptop (the default).
    #[arg(long, conflicts_with = "desktop")]
    pub portable: bool,
    /// A desktop Mac: no battery, always on power.
    #[arg(long, conflicts_with_all = ["battery", "no_ac"])]
    pub desktop: bool,
    /// Battery charge in percent [default: 100]
    #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u8).range(0..=100), allow_negative_numbers = true)]
    pub battery: Option<u8>,
    /// Connected to power (the default).
    #[arg(long, conflicts_with = "no_ac")]
    pub ac: bool,
    /// Running on battery.
    #[arg(long)]
    pub no_ac: bool,
    /// Supervised by an organisation (management settings take effect).
    #[arg(long)]
    pub supervised: bool,
    /// Trust this Ed25519 public key for bundle signatures (repeatable).
    #[arg(long, value_name = "KEY.pub")]
    pub trust: Vec<PathBuf>,
    /// The enrollment identifier a DDM server will know the device by (`bsi sync`) [default: a
    /// new UUID]
    #[arg(long, value_name = "ID")]
    pub enrollment_id: Option<String>,
    /// Replace an existing device.
    #[arg(long)]
    pub force: bool,
    /// Show what would be made; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `bsi status`.
#[derive(Debug, ClapArgs)]
pub(crate) struct StatusArgs {
    /// Exit 9 unless the device has at least these fixes: an OS version ("26.4": that base or
    /// later) or a response ("26.3.1 (b)": a later base, minor or major, or on 26.3.1 an active
    /// response of at least (b) whose every cryptex carries at least (b)'s content; content
    /// still the base's meets no response).
    #[arg(long, value_name = "VERSION")]
    pub require: Option<String>,
    /// Print one value of `status --json` by its key path (e.g. version, active.build,
    /// ddm.device.operating-system.supplemental.extra-version); null prints an empty line.
    #[arg(long, value_name = "KEY", conflicts_with = "schema")]
    pub get: Option<String>,
    /// Print the JSON Schema of `status --json` instead.
    #[arg(long)]
    pub schema: bool,
}

/// `bsi apply`.
#[derive(Debug, ClapArgs)]
pub(crate) struct ApplyArgs {
    /// The bundle: a NAME.bsi directory or a NAME.bsi.tar file.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Restart at once if the response needs it.
    #[arg(long)]
    pub restart: bool,
    /// Run every check and show what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `bsi rollback`.
#[derive(Debug, ClapArgs)]
pub(crate) struct RollbackArgs {
    /// Restart at once to complete the removal.
    #[arg(long)]
    pub restart: bool,
    /// Show what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `bsi update` / `bsi upgrade`.
#[derive(Debug, ClapArgs)]
pub(crate) struct UpdateArgs {
    /// The new OS version.
    #[arg(long, value_name = "VERSION")]
    pub version: String,
    /// The new base build.
    #[arg(long, value_name = "BUILD")]
    pub build: String,
    /// A software lookup catalog: a minor update includes every response it lists for the old
    /// base, not only those this device saw (`update` only).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Show what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `bsi power`.
#[derive(Debug, ClapArgs)]
pub(crate) struct PowerArgs {
    /// Set the battery charge in percent.
    #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u8).range(0..=100), allow_negative_numbers = true)]
    pub battery: Option<u8>,
    /// Connect to power.
    #[arg(long, conflicts_with = "no_ac")]
    pub ac: bool,
    /// Disconnect from power.
    #[arg(long)]
    pub no_ac: bool,
    /// Show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// On or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// `bsi settings`.
#[derive(Debug, ClapArgs)]
pub(crate) struct SettingsArgs {
    /// Automatically install Background Security Improvements.
    #[arg(long, value_enum, value_name = "on|off")]
    pub automatic: Option<Switch>,
    /// Show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `bsi policy`.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Store a declaration (JSON, exactly as an MDM server sends it).
    #[command(
        after_help = "Exit 2: the file is not a declaration. Exit 4: the device refuses it (unknown Type,\nwrong value type, value out of range). A known Identifier with a new ServerToken replaces the old one."
    )]
    Set {
        /// The declaration file.
        #[arg(value_name = "FILE.json")]
        file: PathBuf,
        /// Validate and show what would change; store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List stored declarations and how the device treats them.
    List,
    /// Remove a declaration.
    Remove {
        /// Its Identifier.
        identifier: String,
        /// Show what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `bsi auto`.
#[derive(Debug, ClapArgs)]
pub(crate) struct AutoArgs {
    /// Directory of bundles (either form) the pass may install from.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// A software lookup catalog, to check builds against published releases.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Show what the pass would do; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `bsi sync`.
#[derive(Debug, ClapArgs)]
pub(crate) struct SyncArgs {
    /// The base URL of a DDM server's device endpoints (where it answers GET /tokens)
    /// [default: through the MDM server the device is enrolled in]
    #[arg(long, value_name = "URL", env = "BSI_SERVER")]
    pub server: Option<String>,
    /// The enrollment identifier to send (X-Enrollment-ID) [default: the device's own, see
    /// `bsi status`]
    #[arg(long, value_name = "ID")]
    pub enrollment_id: Option<String>,
    /// CA certificates (PEM) to trust for an https:// --server, beside the web's roots.
    #[arg(long, value_name = "FILE", requires = "server")]
    pub ca: Option<PathBuf>,
    /// Run a background pass (`bsi auto`) after fetching and before reporting.
    #[arg(long, requires = "from")]
    pub then_auto: bool,
    /// Directory of bundles for --then-auto.
    #[arg(long, value_name = "DIR", requires = "then_auto")]
    pub from: Option<PathBuf>,
    /// A software lookup catalog for --then-auto.
    #[arg(long, value_name = "FILE", requires = "then_auto")]
    pub catalog: Option<PathBuf>,
    /// Seconds each request may take.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        value_parser = super::values::seconds,
        allow_negative_numbers = true
    )]
    pub timeout: Duration,
    /// Seconds the whole sync may take (every request, retry and pause), so that a slow server
    /// cannot hold the device lock for longer.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "120",
        value_parser = super::values::seconds,
        allow_negative_numbers = true
    )]
    pub deadline: Duration,
    /// Fetch and say what would change; store and send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `bsi report`.
#[derive(Debug, ClapArgs)]
pub(crate) struct ReportArgs {
    /// Only the items that changed since the report last marked delivered (FullReport false).
    #[arg(long)]
    pub changes: bool,
    /// Record the report printed as delivered: the next --changes compares with it.
    #[arg(long)]
    pub delivered: bool,
    /// Every status item the device supports, subscribed or not (no device sends this).
    #[arg(long, conflicts_with_all = ["changes", "delivered"])]
    pub all: bool,
}

/// `bsi lookup`.
#[derive(Debug, ClapArgs)]
pub(crate) struct LookupArgs {
    /// The catalog (Apple Software Lookup Service JSON).
    #[arg(long, value_name = "FILE")]
    pub catalog: PathBuf,
    /// Only this platform.
    #[arg(long, value_enum, ignore_case = true)]
    pub platform: Option<PlatformArg>,
    /// Only this OS version, or answer for one response (e.g. "26.3.1 (a)").
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
}

/// `bsi history`.
#[derive(Debug, ClapArgs)]
pub(crate) struct HistoryArgs {
    /// Show only the last N entries.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub limit: Option<usize>,
}
