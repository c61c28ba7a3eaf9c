//! Each command: its arguments become validated options, one operation in `ops` does the work
//! (the lock, recovery, journal and history are the operation's), and the result becomes an
//! [`Output`]. Nothing here touches a device directly.

use std::path::Path;

use crate::bundle::{create, inspect, keys, pack};
use crate::ddm::{auto, catalog, client, sync};
use crate::device::{Chip, Platform};
use crate::fleet;
use crate::lifecycle::init::{DEFAULT_VERSION, InitOptions, default_build, init};
use crate::lifecycle::{apply, repair};
use crate::ops::{self, manage};
use crate::version::{BaseMove, Build};
use crate::{Error, Result};

use super::args::{
    BundleCommand, Command, FleetCommand, FleetInitArgs, FleetSyncArgs, HistoryArgs, InitArgs,
    KeyCommand, PolicyCommand, PowerArgs, RepairArgs, SettingsArgs, StatusArgs, Switch, SyncArgs,
    TrustCommand,
};
use super::render::Output;
use super::{Ctx, Executed};

use super::values::{check_enrollment_id, parse_base_build, parse_os};
use super::{env, shown};

pub(crate) fn execute(ctx: &Ctx, command: Command) -> Result<Executed> {
    let done = |o: Output| Ok((o, None));
    match command {
        Command::Init(a) => init_command(ctx, a),
        Command::Status(a) => status_command(ctx, &a),
        Command::Apply(a) => {
            let opts = apply::ApplyOptions {
                bundle: a.bundle.clone(),
                restart: a.restart,
                dry_run: a.dry_run,
                enforced_by: None,
                trigger: apply::InstallTrigger::CommandLine,
            };
            let outcome = ops::apply(&env(ctx)?, &opts, ctx.progress.as_ref())?;
            done(Output::of(shown(outcome)))
        }
        Command::Restart(a) => done(Output::of(shown(ops::restart(&env(ctx)?, a.dry_run)?))),
        Command::RelaunchSafari(a) => done(Output::of(shown(ops::relaunch_safari(
            &env(ctx)?,
            a.dry_run,
        )?))),
        Command::Rollback(a) => done(Output::of(shown(ops::rollback(
            &env(ctx)?,
            a.restart,
            a.dry_run,
        )?))),
        Command::Update(a) => run_update(ctx, BaseMove::Minor, &a),
        Command::Upgrade(a) => {
            if a.catalog.is_some() {
                return Err(Error::usage(
                    "--catalog applies to `bsi update`: a major upgrade includes no responses",
                    "leave --catalog out",
                ));
            }
            run_update(ctx, BaseMove::Major, &a)
        }
        Command::Power(a) => power_command(ctx, &a),
        Command::Settings(a) => settings_command(ctx, &a),
        Command::Policy(p) => policy_command(ctx, p),
        Command::Auto(a) => {
            let opts = auto::AutoOptions {
                from: a.from,
                catalog: a.catalog,
                dry_run: a.dry_run,
            };
            let outcome = ops::auto(&env(ctx)?, &opts, ctx.progress.as_ref())?;
            done(Output::of(shown(outcome)))
        }
        Command::Sync(a) => {
            let opts = sync_options(&a)?;
            let done = ops::sync(&env(ctx)?, &opts, ctx.progress.as_ref())?;
            let synced = shown(done);
            Ok((Output::of(synced.outcome), synced.deferred))
        }
        Command::Fleet(FleetCommand::Init(a)) => fleet_init(ctx, a),
        Command::Fleet(FleetCommand::Sync(a)) => fleet_sync(ctx, a),
        Command::Mdm(c) => super::mdm::execute(ctx, c),
        Command::Fleet(FleetCommand::Enroll(a)) => super::mdm::fleet_enroll(ctx, a),
        Command::Fleet(FleetCommand::Poll(a)) => super::mdm::fleet_poll(ctx, a),
        Command::Fleet(FleetCommand::Status(a)) => super::mdm::fleet_status(ctx, a),
        Command::Lookup(a) => {
            let cat = catalog::Catalog::load(&a.catalog, &ctx.clock)?;
            done(Output::of(cat.lookup(
                a.platform.map(Platform::from),
                a.version.as_deref(),
            )?))
        }
        Command::Report(a) => done(Output::Json(ops::report(
            &env(ctx)?,
            a.changes,
            a.delivered,
            a.all,
        )?)),
        Command::History(a) => history_command(ctx, &a),
        Command::Verify => {
            let (outcome, error) = ops::verify(&env(ctx)?, ctx.progress.as_ref())?;
            Ok((Output::of(outcome), error))
        }
        Command::Repair(a) => repair_command(ctx, a),
        Command::Key(KeyCommand::Generate { out, force }) => {
            done(Output::of(keys::generate(&out, force)?))
        }
        Command::Trust(t) => trust_command(ctx, t),
        Command::Bundle(b) => bundle_command(ctx, b),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut super::command(), "bsi", &mut out);
            done(Output::Raw(String::from_utf8_lossy(&out).into_owned()))
        }
        Command::Man { out } => man(out.as_deref()),
    }
}

fn init_command(ctx: &Ctx, a: InitArgs) -> Result<Executed> {
    let platform = Platform::from(a.platform);
    let chip = a.chip.map_or(Chip::AppleSilicon, Chip::from);
    let ios = platform != Platform::MacOs;
    if ios && chip == Chip::Intel {
        return Err(Error::usage(
            "--chip intel applies to macOS only",
            "iPhone and iPad are Apple silicon; leave --chip out",
        ));
    }
    if ios && a.desktop {
        return Err(Error::usage(
            format!("--desktop applies to macOS only; every {platform} device is portable"),
            "leave --desktop out",
        ));
    }
    let default_build = default_build(platform);
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
        platform,
        version: parse_os(&version)?,
        build: parse_base_build(&build)?,
        chip,
        portable: !a.desktop,
        battery: a.battery.unwrap_or(100),
        on_ac: !a.no_ac,
        supervised: a.supervised,
        trust: a.trust,
        force: a.force,
        dry_run: a.dry_run,
        wait: ctx.wait,
        enrollment_id: match &a.enrollment_id {
            Some(id) => {
                check_enrollment_id(id)?;
                Some(id.clone())
            }
            None => None,
        },
    };
    Ok((Output::of(init(&ctx.root()?, &opts, &ctx.clock)?), None))
}

fn power_command(ctx: &Ctx, a: &PowerArgs) -> Result<Executed> {
    let ac = if a.ac {
        Some(true)
    } else if a.no_ac {
        Some(false)
    } else {
        None
    };
    let env = env(ctx)?;
    let view = if a.battery.is_none() && ac.is_none() {
        manage::power_show(&env)?
    } else {
        shown(manage::power_set(&env, a.battery, ac, a.dry_run)?)
    };
    Ok((Output::of(view), None))
}

fn policy_command(ctx: &Ctx, p: PolicyCommand) -> Result<Executed> {
    let done = |o: Output| Ok((o, None));
    let env = env(ctx)?;
    match p {
        PolicyCommand::Set { file, dry_run } => {
            let (set, refusal) = manage::policy_set(&env, &file, dry_run)?;
            Ok((Output::of(shown(set)), refusal))
        }
        PolicyCommand::List => done(Output::of(manage::policy_list(&env)?)),
        PolicyCommand::Remove {
            identifier,
            dry_run,
        } => done(Output::of(shown(manage::policy_remove(
            &env,
            &identifier,
            dry_run,
        )?))),
    }
}

fn trust_command(ctx: &Ctx, t: TrustCommand) -> Result<Executed> {
    let done = |o: Output| Ok((o, None));
    let env = env(ctx)?;
    match t {
        TrustCommand::Add { key, dry_run } => {
            done(Output::of(shown(manage::trust_add(&env, &key, dry_run)?)))
        }
        TrustCommand::List => done(Output::of(crate::device::trust::TrustList(
            manage::trust_list(&env)?,
        ))),
        TrustCommand::Remove { key, dry_run } => done(Output::of(shown(manage::trust_remove(
            &env, &key, dry_run,
        )?))),
    }
}

fn fleet_init(ctx: &Ctx, a: FleetInitArgs) -> Result<Executed> {
    let opts = fleet::FleetInitOptions {
        dir: a.dir,
        count: a.count,
        platform: a.platform.map(Platform::from),
        battery: fleet::parse_spread(&a.battery_spread)?,
        supervised_percent: a.supervised_percent,
        seed: a.seed,
        trust: a.trust,
        concurrency: a.concurrency,
    };
    Ok((
        Output::of(fleet::init(&opts, &ctx.clock, ctx.progress.as_ref())?),
        None,
    ))
}

fn fleet_sync(ctx: &Ctx, a: FleetSyncArgs) -> Result<Executed> {
    let opts = fleet::FleetSyncOptions {
        dir: a.dir,
        server: a.server,
        concurrency: a.concurrency,
        then_auto: a.from.map(|from| auto::AutoOptions {
            from,
            catalog: None,
            dry_run: false,
        }),
        timeout: a.timeout,
        deadline: a.deadline,
        shard: a
            .shard
            .as_deref()
            .map_or(Ok(fleet::Shard::ALL), fleet::Shard::parse)?,
    };
    let outcome = fleet::sync(&opts, &ctx.clock, ctx.progress.as_ref())?;
    let failed = outcome.tally.error("sync");
    Ok((Output::of(outcome), failed))
}

fn status_command(ctx: &Ctx, a: &StatusArgs) -> Result<Executed> {
    let done = |o: Output| Ok((o, None));
    if a.schema {
        return done(Output::Json(crate::status::model::schema()));
    }
    let (s, unmet) = ops::status(&env(ctx)?, a.require.as_deref())?;
    if let Some(key) = &a.get {
        return Ok((Output::Value(super::get::value(&s, key)?), unmet));
    }
    Ok((Output::of(s), unmet))
}

fn history_command(ctx: &Ctx, a: &HistoryArgs) -> Result<Executed> {
    let done = |o: Output| Ok((o, None));
    let entries = ops::history(&env(ctx)?, a.limit)?;
    if a.limit == Some(0) {
        // Zero entries asked for, zero shown: that says nothing about the device.
        return done(Output::Raw(if ctx.json {
            "[]\n".to_owned()
        } else {
            String::new()
        }));
    }
    done(Output::of(crate::history::Entries(entries)))
}

fn settings_command(ctx: &Ctx, a: &SettingsArgs) -> Result<Executed> {
    let done = |o: Output| Ok((o, None));
    let env = env(ctx)?;
    let view = match a.automatic {
        None => manage::settings_show(&env)?,
        Some(s) => shown(manage::settings_set(&env, s == Switch::On, a.dry_run)?),
    };
    done(Output::of(view))
}

fn repair_command(ctx: &Ctx, a: RepairArgs) -> Result<Executed> {
    let done = |o: Output| Ok((o, None));
    let opts = repair::RepairOptions {
        from: a.from,
        dry_run: a.dry_run,
    };
    done(Output::of(ops::repair(
        &env(ctx)?,
        &opts,
        ctx.progress.as_ref(),
    )?))
}

fn run_update(ctx: &Ctx, kind: BaseMove, a: &super::args::UpdateArgs) -> Result<Executed> {
    let version = parse_os(&a.version)?;
    let build = parse_base_build(&a.build)?;
    let outcome = ops::update(
        &env(ctx)?,
        kind,
        version,
        &build,
        a.catalog.as_deref(),
        a.dry_run,
    )?;
    Ok((Output::of(shown(outcome)), None))
}

fn bundle_command(ctx: &Ctx, command: BundleCommand) -> Result<Executed> {
    match command {
        BundleCommand::Create(a) => {
            let prerequisite = parse_base_build(&a.prerequisite)?;
            let opts = create::CreateOptions {
                product: a.product.into(),
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
            let out = opts.out.display().to_string();
            let created = create::create(&opts, ctx.progress.as_ref()).map_err(|e| {
                crate::interrupt::saying(e, &format!("no bundle was written at {out}"))
            })?;
            Ok((Output::of(created), None))
        }
        BundleCommand::Sign { bundle, key } => Ok((Output::of(create::sign(&bundle, &key)?), None)),
        BundleCommand::Pack { bundle, out, force } => {
            let packed = pack::pack(&bundle, &out, force).map_err(|e| {
                crate::interrupt::saying(e, &format!("no tar was written at {}", out.display()))
            })?;
            Ok((Output::of(packed), None))
        }
        BundleCommand::Inspect { bundle, key } => {
            let (report, error) = if let Some(path) = key {
                inspect::inspect(
                    &bundle,
                    Some((
                        &[keys::read_public_key(&path)?],
                        &format!("key {}", path.display()),
                    )),
                    ctx.progress.as_ref(),
                )?
            } else {
                ops::inspect_with_device_trust(&env(ctx)?, &bundle, ctx.progress.as_ref())?
            };
            Ok((Output::of(report), error))
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

fn sync_options(a: &SyncArgs) -> Result<sync::SyncOptions> {
    if let Some(id) = &a.enrollment_id {
        check_enrollment_id(id)?;
    }
    Ok(sync::SyncOptions {
        server: a
            .server
            .as_deref()
            .map(|url| {
                let tls = crate::http::Tls {
                    roots: a
                        .ca
                        .as_deref()
                        .map(crate::http::trust_file)
                        .transpose()?
                        .unwrap_or_default(),
                    client: None,
                };
                client::Server::new(url, a.timeout, 1, &tls)
            })
            .transpose()?,
        timeout: a.timeout,
        enrollment_id: a.enrollment_id.clone(),
        then_auto: a.from.clone().map(|from| auto::AutoOptions {
            from,
            catalog: a.catalog.clone(),
            dry_run: a.dry_run,
        }),
        dry_run: a.dry_run,
        deadline: a.deadline,
        tokens: None,
    })
}
