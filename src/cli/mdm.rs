//! The MDM device's command line: `bsi mdm enroll|unenroll|poll`, and the fleet's
//! `enroll`, `poll` and `status`: their clap types and their calls into `ops`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Subcommand};

use super::render::Output;
use super::{Ctx, Executed};
use crate::Result;
use crate::ddm::pass::AutoOptions;
use crate::fleet::mdm::{FleetEnrollOptions, FleetPollOptions};
use crate::fleet::{self, Shard};
use crate::mdm::enrollment::EnrollOptions;
use crate::mdm::poll::PollOptions;
use crate::ops;

/// `bsi mdm`.
#[derive(Debug, Subcommand)]
pub(crate) enum MdmCommand {
    /// Enroll in an MDM server from its enrollment profile: identity by SCEP, then
    /// `Authenticate` and `TokenUpdate`.
    #[command(
        after_help = "Reads the profile (XML, or signed): its com.apple.mdm payload names the server; its\ncom.apple.security.scep (or .pkcs12) payload gives the identity. The identity's key stays in\nthe device's records (mode 0600) and is never printed. Messages are signed (Mdm-Signature)\nwhen the profile says SignMessage; else the identity is the TLS client certificate.\n\nExamples:\n  bsi mdm enroll --profile enroll.mobileconfig\n  bsi mdm enroll --profile enroll.mobileconfig --ca ca.pem\n  bsi mdm enroll --profile enroll.mobileconfig --identity device.pem --key device.key"
    )]
    Enroll(EnrollArgs),
    /// Leave the MDM server: send `CheckOut` and remove the enrollment.
    Unenroll(UnenrollArgs),
    /// Check in with the server: answer each queued command, then sync declarations through it.
    #[command(
        after_help = "Sends Status Idle and answers each command the server returns (DeviceInformation,\nProfileList, SecurityInfo, DeclarativeManagement; before OS 26 also AvailableOSUpdates,\nScheduleOSUpdate and OSUpdateStatus; any other request type gets an Error), until the server\nhas none. A DeclarativeManagement command, or --then-auto, ends the poll with a DDM sync\nthrough the server. While another bsi holds the device, every command is answered NotNow.\n\nExamples:\n  bsi mdm poll\n  bsi mdm poll --then-auto --from fixtures/bundles\n  bsi mdm poll --json | jq .commands"
    )]
    Poll(PollArgs),
}

/// `bsi mdm enroll`.
#[derive(Debug, ClapArgs)]
pub(crate) struct EnrollArgs {
    /// The enrollment profile (.mobileconfig, XML or signed).
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// An identity certificate (PEM) to use instead of the profile's SCEP or PKCS #12 payload.
    #[arg(long, value_name = "CERT", requires = "key")]
    pub identity: Option<PathBuf>,
    /// The identity's private key (PEM: PKCS #8, PKCS #1 or SEC 1; RSA or P-256).
    #[arg(long, value_name = "KEY", requires = "identity")]
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) to trust for the servers' TLS, beside the profile's own.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Seconds each request may take.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "30",
        value_parser = super::values::seconds,
        allow_negative_numbers = true
    )]
    pub timeout: Duration,
    /// Seconds the whole enrollment may take (every request, retry and pause).
    #[arg(
        long,
        value_name = "SECS",
        default_value = "120",
        value_parser = super::values::seconds,
        allow_negative_numbers = true
    )]
    pub deadline: Duration,
    /// Read the profile and say what would happen; contact nobody, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `bsi mdm unenroll`.
#[derive(Debug, ClapArgs)]
pub(crate) struct UnenrollArgs {
    /// Seconds the `CheckOut` may take.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        value_parser = super::values::seconds,
        allow_negative_numbers = true
    )]
    pub timeout: Duration,
    /// Say what would happen; send and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What a poll takes, for one device or a fleet.
#[derive(Debug, ClapArgs)]
pub(crate) struct PollArgs {
    /// Bundles the device is offered (`AvailableOSUpdates`, `ScheduleOSUpdate`) and, with
    /// --then-auto, installs from.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// After the commands, sync declarations through the server and run a background pass.
    #[arg(long, requires = "from")]
    pub then_auto: bool,
    /// A software lookup catalog for --then-auto.
    #[arg(long, value_name = "FILE", requires = "then_auto")]
    pub catalog: Option<PathBuf>,
    /// The most commands answered in one poll.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_commands: u32,
    /// Seconds each request may take.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        value_parser = super::values::seconds,
        allow_negative_numbers = true
    )]
    pub timeout: Duration,
    /// Seconds the whole poll may take.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "120",
        value_parser = super::values::seconds,
        allow_negative_numbers = true
    )]
    pub deadline: Duration,
}

/// `bsi fleet enroll`.
#[derive(Debug, ClapArgs)]
pub(crate) struct FleetEnrollArgs {
    /// The fleet's directory (`bsi fleet init --dir`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The enrollment profile every device uses (%UDID% in its SCEP Subject names each).
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// CA certificates (PEM) to trust for the servers' TLS.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Devices enrolled at once.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Seconds each request may take.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "30",
        value_parser = super::values::seconds,
        allow_negative_numbers = true
    )]
    pub timeout: Duration,
    /// Seconds each device's whole enrollment may take.
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

/// `bsi fleet poll`.
#[derive(Debug, ClapArgs)]
pub(crate) struct FleetPollArgs {
    /// The fleet's directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Devices polled at once.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Only the devices whose index is K modulo N (K from 0), for N parallel jobs.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// What each device's poll takes.
    #[command(flatten)]
    pub poll: PollArgs,
}

/// `bsi fleet status`.
#[derive(Debug, ClapArgs)]
pub(crate) struct FleetStatusArgs {
    /// The fleet's directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Only the devices whose index is K modulo N (K from 0).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Devices read at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
}

fn shard(text: Option<&str>) -> Result<Shard> {
    text.map_or(Ok(Shard::ALL), Shard::parse)
}

fn poll_options(a: &PollArgs, dry: bool) -> PollOptions {
    PollOptions {
        timeout: a.timeout,
        deadline: a.deadline,
        max_commands: a.max_commands as usize,
        from: a.from.clone(),
        then_auto: a.then_auto.then(|| AutoOptions {
            from: a.from.clone().unwrap_or_default(),
            catalog: a.catalog.clone(),
            dry_run: dry,
        }),
    }
}

/// `bsi mdm ...`.
pub(crate) fn execute(ctx: &Ctx, command: MdmCommand) -> Result<Executed> {
    let env = super::env(ctx)?;
    match command {
        MdmCommand::Enroll(a) => {
            let opts = EnrollOptions {
                profile: a.profile,
                identity: a.identity.zip(a.key),
                ca: a.ca,
                timeout: a.timeout,
                deadline: a.deadline,
                dry_run: a.dry_run,
            };
            let done = ops::mdm::enroll(&env, &opts)?;
            Ok((Output::of(super::shown(done)), None))
        }
        MdmCommand::Unenroll(a) => {
            let done = ops::mdm::unenroll(&env, a.timeout, a.dry_run)?;
            Ok((Output::of(super::shown(done)), None))
        }
        MdmCommand::Poll(a) => {
            let opts = poll_options(&a, false);
            let polled = super::shown(ops::mdm::poll(&env, &opts, ctx.progress.as_ref())?);
            Ok((Output::of(polled.outcome), polled.deferred))
        }
    }
}

/// `bsi fleet enroll`.
pub(crate) fn fleet_enroll(ctx: &Ctx, a: FleetEnrollArgs) -> Result<Executed> {
    let opts = FleetEnrollOptions {
        dir: a.dir,
        profile: a.profile,
        ca: a.ca,
        concurrency: a.concurrency as usize,
        timeout: a.timeout,
        deadline: a.deadline,
        shard: shard(a.shard.as_deref())?,
    };
    let outcome = crate::fleet::mdm::enroll(&opts, &ctx.clock, ctx.progress.as_ref())?;
    let failed = outcome.tally.error("enroll");
    Ok((Output::of(outcome), failed))
}

/// `bsi fleet poll`.
pub(crate) fn fleet_poll(ctx: &Ctx, a: FleetPollArgs) -> Result<Executed> {
    let opts = FleetPollOptions {
        dir: a.dir,
        concurrency: a.concurrency as usize,
        poll: poll_options(&a.poll, false),
        shard: shard(a.shard.as_deref())?,
    };
    let outcome = crate::fleet::mdm::poll(&opts, &ctx.clock, ctx.progress.as_ref())?;
    let failed = outcome.tally.error("poll");
    Ok((Output::of(outcome), failed))
}

/// `bsi fleet status`.
pub(crate) fn fleet_status(ctx: &Ctx, a: FleetStatusArgs) -> Result<Executed> {
    let opts = fleet::status::FleetStatusOptions {
        dir: a.dir,
        shard: shard(a.shard.as_deref())?,
        concurrency: a.concurrency as usize,
    };
    Ok((
        Output::of(fleet::status::status(&opts, ctx.progress.as_ref())?),
        None,
    ))
}
