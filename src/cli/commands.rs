//! Each command: its arguments become validated options, the library does the work, and the
//! result becomes an [`Output`]. Commands that change a device go through [`change`], which
//! takes the exclusive lock (recovering an interrupted operation first) and records the
//! operation, refused or not, in the device history.

use std::io::Write as _;
use std::path::Path;

use crate::bundle::{create, inspect, keys, pack, trust};
use crate::ddm::{auto, catalog, report};
use crate::device::init::{InitOptions, init};
use crate::device::{Access, Chip, Device, Platform};
use crate::history::{self, Entry, OpResult};
use crate::lifecycle::{self, apply, recover, restart, rollback, safari, update, verify};
use crate::status::{self, require};
use crate::version::{Build, OsVersion};
use crate::{Error, Result};

use super::args::{BundleCommand, Command, KeyCommand};
use super::render::Output;
use super::views::Summary;
use super::{Ctx, Executed};

/// Default base for a new device.
const DEFAULT_VERSION: &str = "26.3.1";

pub(super) fn open(ctx: &Ctx, access: Access) -> Result<Device> {
    lifecycle::open(
        &ctx.root()?,
        access,
        ctx.wait,
        &ctx.command_line,
        &ctx.clock,
    )
}

/// Runs a changing command: exclusive lock, then `body`, then a history entry for the outcome
/// (except with `--dry-run`, which changes nothing, not even the history).
pub(super) fn change<T: Summary>(
    ctx: &Ctx,
    action: &str,
    dry_run: bool,
    target: Option<String>,
    body: impl FnOnce(&Device) -> Result<T>,
) -> Result<T> {
    let device = open(ctx, Access::Change)?;
    if dry_run {
        return body(&device);
    }
    // The journal covers the whole command, history included, so that a crash at any point
    // leaves something the next command recovers from, and no stray temporary.
    lifecycle::journal::begin(&device, &ctx.clock, action)?;
    let before = device.snapshot().ok().map(|s| s.version_label());
    let result = body(&device);
    let after = device.snapshot().ok().map(|s| s.version_label());
    let mut entry = Entry::new(&ctx.clock, action);
    entry.before = before;
    entry.after = after;
    match &result {
        Ok(outcome) => {
            entry.target = outcome.target().or(target);
            entry.detail = Some(outcome.summary());
            if outcome.nothing_to_do() {
                entry.result = OpResult::NothingToDo;
            }
            // The change is made; failing to record it must not report the change as failed.
            if let Err(e) = history::append(device.root(), &entry) {
                warn(&format!(
                    "{action} succeeded, but recording it in the history failed: {e}"
                ));
            }
        }
        Err(e) => {
            let mut entry = entry.failed(e);
            entry.target = target;
            // The command failed already; failing to record that must not hide why.
            let _ = history::append(device.root(), &entry);
        }
    }
    if device.journal_open() {
        // A committed update whose completion failed keeps its journal for recovery.
        let committed = result.is_err()
            && lifecycle::journal::read(&device)?.is_some_and(|j| j.commit.is_some());
        if !committed {
            lifecycle::journal::end(&device)?;
        }
    }
    result
}

/// A warning on stderr: something secondary failed after the command did its work.
fn warn(message: &str) {
    let _ = writeln!(std::io::stderr(), "warning: {message}");
}

fn parse_os(text: &str) -> Result<OsVersion> {
    Ok(text.parse()?)
}

fn parse_base_build(text: &str) -> Result<Build> {
    Ok(Build::parse_base(text)?)
}

pub(crate) fn execute(ctx: &Ctx, command: Command) -> Result<Executed> {
    let done = |o: Output| Ok((o, None));
    match command {
        Command::Init(a) => {
            let ios = a.platform != Platform::MacOs;
            if ios && a.chip == Some(Chip::Intel) {
                return Err(Error::usage(
                    "--chip intel applies to macOS only",
                    "iPhone and iPad are Apple silicon; leave --chip out",
                ));
            }
            if ios && a.desktop {
                return Err(Error::usage(
                    format!(
                        "--desktop applies to macOS only; every {} device is portable",
                        a.platform
                    ),
                    "leave --desktop out",
                ));
            }
            if a.desktop && (a.battery.is_some() || a.no_ac) {
                return Err(Error::usage(
                    "a desktop Mac has no battery and is always on power",
                    "leave --battery and --no-ac out with --desktop",
                ));
            }
            let default_build = match a.platform {
                Platform::MacOs => "25D2128",
                Platform::Ios | Platform::IpadOs => "23D8133",
            };
            let (version, build) = match (&a.version, &a.build) {
                (None, None) => (DEFAULT_VERSION.to_owned(), default_build.to_owned()),
                (Some(v), Some(b)) => (v.clone(), b.clone()),
                (None, Some(b)) => (DEFAULT_VERSION.to_owned(), b.clone()),
                (Some(v), None) if v == DEFAULT_VERSION => (v.clone(), default_build.to_owned()),
                (Some(v), None) => {
                    return Err(Error::usage(
                        format!("--version {v} needs --build too"),
                        format!("e.g. --version {v} --build 25E100"),
                    ));
                }
            };
            let opts = InitOptions {
                platform: a.platform,
                version: parse_os(&version)?,
                build: parse_base_build(&build)?,
                chip: a.chip.unwrap_or(Chip::AppleSilicon),
                portable: !a.desktop,
                battery: a.battery.unwrap_or(100),
                on_ac: !a.no_ac,
                supervised: a.supervised,
                trust: a.trust,
                force: a.force,
                dry_run: a.dry_run,
                wait: ctx.wait,
            };
            done(Output::Init(init(&ctx.root()?, &opts, &ctx.clock)?))
        }
        Command::Status(a) => {
            if a.schema {
                return done(Output::Json(status::model::schema()));
            }
            let requirement = a
                .require
                .as_deref()
                .map(require::Requirement::parse)
                .transpose()?;
            let device = open(ctx, Access::Read)?;
            let s = status::collect(&device)?;
            let deferred = requirement.and_then(|r| require::check(&s, r).err());
            Ok((Output::Status(Box::new(s)), deferred))
        }
        Command::Apply(a) => {
            let opts = apply::ApplyOptions {
                bundle: a.bundle.clone(),
                restart: a.restart,
                dry_run: a.dry_run,
                enforced_by: None,
            };
            // On success the outcome names the response; a refusal records the bundle's path
            // (reading its manifest a second time just for the history would cost a parse).
            let target = Some(a.bundle.display().to_string());
            let outcome = change(ctx, "apply", a.dry_run, target, |d| {
                let result = apply::apply(d, &opts, &ctx.clock, ctx.progress.as_ref());
                if !a.dry_run
                    && let Err(e) = report::record_apply(d, &ctx.clock, &result)
                {
                    warn(&format!(
                        "apply: recording the software-update status failed: {e}"
                    ));
                }
                result
            })?;
            done(Output::Apply(outcome))
        }
        Command::Restart(a) => done(Output::Restart(change(
            ctx,
            "restart",
            a.dry_run,
            None,
            |d| restart::restart(d, &ctx.clock, a.dry_run),
        )?)),
        Command::RelaunchSafari(a) => done(Output::Relaunch(change(
            ctx,
            "relaunch-safari",
            a.dry_run,
            None,
            |d| safari::relaunch_safari(d, &ctx.clock, a.dry_run),
        )?)),
        Command::Rollback(a) => done(Output::Rollback(change(
            ctx,
            "rollback",
            a.dry_run,
            None,
            |d| rollback::rollback(d, &ctx.clock, a.restart, a.dry_run),
        )?)),
        Command::Update(a) => run_update(ctx, update::Kind::Minor, &a.version, &a.build, a.dry_run),
        Command::Upgrade(a) => {
            run_update(ctx, update::Kind::Major, &a.version, &a.build, a.dry_run)
        }
        Command::Power(a) => super::manage::power(ctx, a.battery, a.ac, a.no_ac, a.dry_run),
        Command::Settings(a) => super::manage::settings(ctx, a.automatic, a.dry_run),
        Command::Policy(p) => super::manage::policy(ctx, p),
        Command::Auto(a) => {
            let opts = auto::AutoOptions {
                from: a.from,
                catalog: a.catalog,
                dry_run: a.dry_run,
            };
            let outcome = change(ctx, "auto", a.dry_run, None, |d| {
                auto::run(d, &opts, &ctx.clock, ctx.progress.as_ref())
            })?;
            done(Output::Auto(outcome))
        }
        Command::Lookup(a) => {
            let cat = catalog::Catalog::load(&a.catalog, &ctx.clock)?;
            done(Output::Lookup(
                cat.lookup(a.platform, a.version.as_deref())?,
            ))
        }
        Command::Report => {
            let device = open(ctx, Access::Read)?;
            done(Output::Json(report::build(&device)?))
        }
        Command::History(a) => {
            let device = open(ctx, Access::Read)?;
            let mut entries = history::read_all(device.root())?;
            if let Some(n) = a.limit {
                entries = entries.split_off(entries.len().saturating_sub(n));
            }
            done(Output::History(entries))
        }
        Command::Verify => {
            let device = open(ctx, Access::Read)?;
            let (outcome, error) = verify::verify(&device, ctx.progress.as_ref())?;
            Ok((Output::Verify(outcome), error))
        }
        Command::Repair(a) => {
            let root = ctx.root()?;
            let rebuilt = if a.dry_run {
                None
            } else {
                crate::device::rebuild_record(&root, &ctx.clock.stamp())?
            };
            let device = Device::open(&root, Access::Change, ctx.wait, &ctx.command_line)?;
            let opts = recover::RepairOptions {
                from: a.from,
                dry_run: a.dry_run,
            };
            let mut outcome = recover::repair(&device, &ctx.clock, &opts, ctx.progress.as_ref())?;
            outcome.actions.splice(0..0, rebuilt);
            done(Output::Repair(outcome))
        }
        Command::Key(KeyCommand::Generate { out, force }) => {
            done(Output::KeyGenerated(keys::generate(&out, force)?))
        }
        Command::Trust(t) => super::manage::trust_command(ctx, t),
        Command::Bundle(b) => bundle_command(ctx, b),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut super::command(), "bsi", &mut out);
            done(Output::Raw(String::from_utf8_lossy(&out).into_owned()))
        }
        Command::Man { out } => man(out.as_deref()),
    }
}

fn run_update(
    ctx: &Ctx,
    kind: update::Kind,
    version: &str,
    build: &str,
    dry_run: bool,
) -> Result<Executed> {
    let version = parse_os(version)?;
    let build = parse_base_build(build)?;
    let action = match kind {
        update::Kind::Minor => "update",
        update::Kind::Major => "upgrade",
    };
    let target = Some(format!("{version} ({build})"));
    let outcome = change(ctx, action, dry_run, target, |d| {
        update::update(d, &ctx.clock, kind, version, &build, dry_run)
    })?;
    Ok((Output::Update(outcome), None))
}

fn bundle_command(ctx: &Ctx, command: BundleCommand) -> Result<Executed> {
    match command {
        BundleCommand::Create(a) => {
            let prerequisite = parse_base_build(&a.prerequisite)?;
            let opts = create::CreateOptions {
                product: a.product,
                version: parse_os(&a.version)?,
                extra: a.extra.parse()?,
                build: Build::parse_supplemental(&a.build, &prerequisite)?,
                prerequisite,
                os: a.os,
                app: a.app,
                description: a.description,
                posting_date: a.posting_date,
                supported_devices: a.supported_devices,
                out: a.out,
                force: a.force,
            };
            Ok((
                Output::Created(create::create(&opts, ctx.progress.as_ref())?),
                None,
            ))
        }
        BundleCommand::Sign { bundle, key } => {
            Ok((Output::Signed(create::sign(&bundle, &key)?), None))
        }
        BundleCommand::Pack { bundle, out, force } => {
            Ok((Output::Packed(pack::pack(&bundle, &out, force)?), None))
        }
        BundleCommand::Inspect { bundle, key } => {
            let (trusted, source) = if let Some(path) = key {
                (
                    vec![keys::read_public_key(&path)?],
                    format!("key {}", path.display()),
                )
            } else {
                let root = ctx.root()?;
                let device = lifecycle::open(&root, Access::Read, ctx.wait, &ctx.command_line, &ctx.clock).map_err(|e| match e {
                    Error::NoDevice { root } => Error::usage(
                        format!("no key to check the signature against: no --key, and no bsi device at {}", root.display()),
                        "pass --key KEY.pub, or --root DIR of a device that trusts the signer",
                    ),
                    other => other,
                })?;
                (
                    trust::load(device.root())?,
                    format!("the trusted keys of the device at {}", root.display()),
                )
            };
            let (report, error) =
                inspect::inspect(&bundle, &trusted, &source, ctx.progress.as_ref())?;
            Ok((Output::Inspected(Box::new(report)), error))
        }
    }
}

fn man(out: Option<&Path>) -> Result<Executed> {
    let cmd = super::command();
    match out {
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .map_err(|e| Error::io("rendering", "the man page", e))?;
            Ok((
                Output::Raw(String::from_utf8_lossy(&buf).into_owned()),
                None,
            ))
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
            clap_mangen::generate_to(cmd, dir)
                .map_err(|e| Error::io("writing man pages to", dir, e))?;
            Ok((
                Output::Raw(format!("wrote man pages to {}\n", dir.display())),
                None,
            ))
        }
    }
}
