//! `bsi mdm poll`: the device checks in with its server as it does when pushed. It sends
//! `Status: Idle`, answers each command the server returns with its result (which fetches the
//! next), until the server has none or the bound is reached. A `DeclarativeManagement`
//! command, and `--then-auto`, end the poll with a DDM sync through the channel (and its
//! background pass). While another bsi holds the device lock, every command is answered
//! `NotNow` and nothing on the device changes: the server sends them again later.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use plist::Dictionary;
use serde::Serialize;

use super::channel::Channel;
use super::commands::{self, Answer, Command, Facts};
use super::enrollment;
use super::updates;
use crate::ddm::client::{Server, TokensResponse};
use crate::ddm::pass::AutoOptions;
use crate::ddm::sync::{self, SyncOptions, SyncOutcome};
use crate::device::Device;
use crate::human::{Human, Text};
use crate::lifecycle::journal::Tx;
use crate::progress::Progress;
use crate::untrusted::clip;
use crate::{Error, Result};

/// How `bsi mdm poll` is asked to run.
#[derive(Clone, Debug)]
pub(crate) struct PollOptions {
    /// Each request's bound.
    pub timeout: Duration,
    /// The whole poll's bound.
    pub deadline: Duration,
    /// The most commands answered in one poll.
    pub max_commands: usize,
    /// Bundles the device is offered (`AvailableOSUpdates`, `ScheduleOSUpdate`).
    pub from: Option<PathBuf>,
    /// A DDM sync with a background pass at the end of the poll.
    pub then_auto: Option<AutoOptions>,
}

/// One command and how the device answered it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Handled {
    /// `CommandUUID`.
    pub command_uuid: String,
    /// `RequestType`.
    pub request_type: String,
    /// `Acknowledged`, `Error` or `NotNow`.
    pub status: &'static str,
    /// The first `ErrorChain` entry's description, for `Error`.
    pub error: Option<String>,
}

/// What a poll did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct PollOutcome {
    /// `ServerURL`.
    pub server_url: String,
    /// The UDID.
    pub udid: String,
    /// The commands answered, in order.
    pub commands: Vec<Handled>,
    /// Another bsi held the device: every command was answered `NotNow`.
    pub busy: bool,
    /// The poll stopped at `--max-commands` with the server still sending.
    pub more: bool,
    /// The DDM sync through the channel, when one ran.
    pub sync: Option<SyncOutcome>,
}

fn server_error(channel_url: &str, problem: String) -> Error {
    Error::Server {
        service: "MDM server",
        method: "PUT",
        endpoint: channel_url.to_owned(),
        problem,
        hint: "check the MDM server's queue and log; the device answered what it could read"
            .to_owned(),
    }
}

/// The enrollment, its channel (bounded by the poll's deadline) and an empty outcome.
fn start(
    device: &Device,
    opts: &PollOptions,
    busy: bool,
) -> Result<(enrollment::Enrollment, Channel, PollOutcome)> {
    let enrollment = enrollment::require(device)?;
    let channel = enrollment::channel(device, &enrollment, opts.timeout, 1)?.until(opts.deadline);
    let outcome = PollOutcome {
        server_url: enrollment.server_url.clone(),
        udid: enrollment.udid.clone(),
        commands: Vec::new(),
        busy,
        more: false,
        sync: None,
    };
    Ok((enrollment, channel, outcome))
}

/// Polls until the server has nothing more; `answer` says what to send for each command.
fn run_commands(
    channel: &Channel,
    max: usize,
    outcome: &mut PollOutcome,
    mut answer: impl FnMut(&Command) -> Result<Answer>,
) -> Result<()> {
    let mut idle = Dictionary::new();
    idle.insert("Status".into(), "Idle".into());
    let mut body = channel.connect(idle)?;
    loop {
        let Some(cmd) =
            commands::read(&body).map_err(|why| server_error(&outcome.server_url, why))?
        else {
            return Ok(());
        };
        if outcome.commands.len() >= max {
            outcome.more = true;
            return Ok(());
        }
        let a = answer(&cmd)?;
        let error = a
            .fields
            .get("ErrorChain")
            .and_then(plist::Value::as_array)
            .and_then(|c| c.first())
            .and_then(plist::Value::as_dictionary)
            .and_then(|e| e.get("USEnglishDescription"))
            .and_then(plist::Value::as_string)
            .map(str::to_owned);
        outcome.commands.push(Handled {
            command_uuid: cmd.uuid.clone(),
            request_type: cmd.request_type.clone(),
            status: a.status.name(),
            error,
        });
        body = channel.connect(a.into_message(&cmd.uuid))?;
    }
}

/// Whether the poll ends with a DDM sync: a `DeclarativeManagement` command asked for one,
/// with the tokens the last such command carried (`None`: the sync asks for them); or a
/// command changed what the device reports (a restart, an install), and a device that
/// declarative management runs on sends its status when that changes.
enum Wanted {
    No,
    Report,
    Yes(Option<TokensResponse>),
}

impl Wanted {
    /// After a command that changed the device's state.
    fn report(&mut self) {
        if matches!(self, Self::No) {
            *self = Self::Report;
        }
    }
}

/// Answers one command on the device of `tx`.
fn answer(
    tx: &mut Tx<'_>,
    enrollment: &enrollment::Enrollment,
    cmd: &Command,
    opts: &PollOptions,
    progress: &dyn Progress,
    sync: &mut Wanted,
) -> Result<Answer> {
    let device = tx.device();
    let snapshot = device.snapshot()?;
    let facts = Facts {
        device,
        snapshot: &snapshot,
        enrollment,
    };
    let from = opts.from.as_deref();
    if updates::removed(&facts, &cmd.request_type) {
        return Ok(commands::unknown(&cmd.request_type));
    }
    if let Some(refused) = commands::refusal(&facts, &cmd.request_type) {
        return Ok(refused);
    }
    Ok(match cmd.request_type.as_str() {
        "DeviceInformation" => commands::device_information(&facts, cmd),
        "ProfileList" => commands::profile_list(&facts),
        "CertificateList" => commands::certificate_list(&facts)?,
        "SecurityInfo" => commands::security_info(&facts),
        "DeclarativeManagement" => match commands::declarative_management(cmd) {
            Ok(tokens) => {
                *sync = Wanted::Yes(tokens);
                Answer::ack(Dictionary::new())
            }
            Err(refused) => refused,
        },
        "RestartDevice" => {
            tx.begin()?;
            sync.report();
            commands::restart_device(tx, &facts, cmd)
        }
        "AvailableOSUpdates" => updates::available_os_updates(&facts, from),
        "OSUpdateStatus" => updates::os_update_status(&facts),
        "ScheduleOSUpdate" => {
            tx.begin()?;
            sync.report();
            updates::schedule_os_update(tx, &facts, cmd, from, progress)
        }
        "" => Answer::error(12001, "MCMDMErrorDomain", "The command has no RequestType."),
        other => commands::unknown(other),
    })
}

/// One poll of the enrolled device of `tx`. An error of the DDM sync's background pass comes
/// back beside the outcome, as `sync` returns it.
pub(crate) fn poll(
    tx: &mut Tx<'_>,
    opts: &PollOptions,
    progress: &dyn Progress,
) -> Result<(PollOutcome, Option<Error>)> {
    let device = tx.device();
    let (enrollment, channel, mut outcome) = start(device, opts, false)?;
    let mut wanted = Wanted::No;
    run_commands(&channel, opts.max_commands, &mut outcome, |cmd| {
        answer(tx, &enrollment, cmd, opts, progress, &mut wanted)
    })?;
    tx.begin()?;
    enrollment::note_checkin(device, &enrollment, tx.clock().stamp())?;
    let mut deferred = None;
    let server = Server::through(Arc::new(channel));
    let given = match wanted {
        Wanted::Yes(tokens) => Some(tokens),
        _ if opts.then_auto.is_some() => Some(None),
        // The token the device holds: nothing is fetched, only what changed is reported.
        Wanted::Report => sync::held(device, server.url(), &enrollment.udid)
            .and_then(|s| s.declarations_token)
            .map(|t| Some(TokensResponse::holding(t))),
        Wanted::No => None,
    };
    if let Some(tokens) = given {
        let (synced, pass_error) = sync::run(
            tx,
            &SyncOptions {
                server: Some(server),
                tokens,
                timeout: opts.timeout,
                enrollment_id: Some(enrollment.udid.clone()),
                then_auto: opts.then_auto.clone(),
                dry_run: false,
                deadline: opts.deadline,
            },
            progress,
        )?;
        outcome.sync = Some(synced);
        deferred = pass_error;
    }
    Ok((outcome, deferred))
}

/// A poll while another bsi holds the device: every command is answered `NotNow`; nothing on
/// the device is written.
pub(crate) fn poll_busy(device: &Device, opts: &PollOptions) -> Result<PollOutcome> {
    let (_, channel, mut outcome) = start(device, opts, true)?;
    run_commands(&channel, opts.max_commands, &mut outcome, |_| {
        Ok(Answer::not_now())
    })?;
    Ok(outcome)
}

impl Human for PollOutcome {
    fn human(&self, out: &mut Text, verbosity: u8) {
        let o = self;
        if o.commands.is_empty() {
            out.line(format!("polled {}: no commands", clip(&o.server_url)));
        } else {
            out.line(format!(
                "polled {}: {} command(s) answered{}",
                clip(&o.server_url),
                o.commands.len(),
                if o.busy {
                    " NotNow (another bsi holds the device; the server sends them again)"
                } else {
                    ""
                }
            ));
        }
        for c in &o.commands {
            let why = c
                .error
                .as_deref()
                .map(|e| format!(" ({})", clip(e)))
                .unwrap_or_default();
            out.line(format!(
                "  {} {}: {}{why}",
                clip(&c.request_type),
                clip(&c.command_uuid),
                c.status
            ));
        }
        if o.more {
            out.line(
                "the server has more commands: poll again (--max-commands N answers more at once)",
            );
        }
        if let Some(s) = &o.sync {
            out.line("declarative management through the MDM server:");
            s.human(out, verbosity);
        }
    }
}
