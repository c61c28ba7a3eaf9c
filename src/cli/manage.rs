//! The device-management commands: `power`, `settings`, `policy` and `trust`. Each reads, or
//! changes through [`change`], one of the device's records.

use std::path::Path;

use crate::bundle::trust;
use crate::ddm::{declaration::Declaration, store};
use crate::device::layout::{POWER_RECORD, SETTINGS_RECORD};
use crate::device::{Access, Power, Settings, records};
use crate::lifecycle;
use crate::status;
use crate::{Error, Result};

use super::args::{PolicyCommand, Switch, TrustCommand};
use super::commands::{change, open};
use super::render::{Output, PowerView, SettingsView};
use super::{Ctx, Executed};

pub(super) fn power(
    ctx: &Ctx,
    battery: Option<u8>,
    ac: bool,
    no_ac: bool,
    dry_run: bool,
) -> Result<Executed> {
    if battery.is_none() && !ac && !no_ac {
        let device = open(ctx, Access::Read)?;
        let power = device.power()?;
        return Ok((
            Output::Power(PowerView::new(&device, power, false, false)),
            None,
        ));
    }
    let view = change(ctx, "power", dry_run, None, |device| {
        if !device.info().portable && (battery.is_some() || no_ac) {
            return Err(Error::usage(
                "a desktop Mac has no battery and is always on power",
                "leave --battery and --no-ac out",
            ));
        }
        let old = device.power()?;
        let new = Power {
            battery_percent: battery.or(old.battery_percent),
            on_ac: if ac {
                true
            } else if no_ac {
                false
            } else {
                old.on_ac
            },
        };
        let changed = new != old;
        if changed && !dry_run {
            lifecycle::journaled(device, &ctx.clock, "power", || {
                records::write_json(device.root(), POWER_RECORD, &new)
            })?;
        }
        Ok(PowerView::new(device, new, changed, dry_run))
    })?;
    Ok((Output::Power(view), None))
}

pub(super) fn settings(ctx: &Ctx, automatic: Option<Switch>, dry_run: bool) -> Result<Executed> {
    let Some(switch) = automatic else {
        let device = open(ctx, Access::Read)?;
        let policy = status::collect::policy(&device)?;
        return Ok((
            Output::Settings(SettingsView::new(device.settings()?, &policy, false, false)),
            None,
        ));
    };
    let wanted = switch == Switch::On;
    let view = change(ctx, "settings", dry_run, None, |device| {
        let policy = status::collect::policy(device)?;
        if let Some((forced, id)) = &policy.automatic_forced
            && *forced != wanted
        {
            let (state, value) = if *forced {
                ("on", "AlwaysOn")
            } else {
                ("off", "AlwaysOff")
            };
            return Err(Error::policy(
                format!(
                    "automatic install is forced {state} by declaration {id} (InstallSecurityUpdate = {value})"
                ),
                "the MDM server controls this setting on this supervised device",
            ));
        }
        let old = device.settings()?;
        let new = Settings {
            automatic_install: wanted,
        };
        let changed = old != new;
        if changed && !dry_run {
            lifecycle::journaled(device, &ctx.clock, "settings", || {
                records::write_json(device.root(), SETTINGS_RECORD, &new)
            })?;
        }
        let policy = status::collect::policy(device)?;
        Ok(SettingsView::new(
            if dry_run { new } else { device.settings()? },
            &policy,
            changed,
            dry_run,
        ))
    })?;
    Ok((Output::Settings(view), None))
}

fn read_declaration(file: &Path) -> Result<Declaration> {
    let raw = std::fs::read(file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::usage(
                format!("no file at {}", file.display()),
                "check the path of the declaration",
            )
        } else {
            Error::io("reading", file, e)
        }
    })?;
    Declaration::parse(&raw, &file.display().to_string())
}

pub(super) fn policy(ctx: &Ctx, command: PolicyCommand) -> Result<Executed> {
    match command {
        PolicyCommand::Set { file, dry_run } => {
            let declaration = read_declaration(&file)?;
            let target = Some(declaration.identifier.clone());
            let outcome = change(ctx, "policy set", dry_run, target, |device| {
                let plan = store::plan(device.root(), &declaration)?;
                if plan != store::SetOutcome::Unchanged && !dry_run {
                    lifecycle::journaled(device, &ctx.clock, "policy set", || {
                        store::store(device.root(), &declaration)
                    })?;
                }
                let policy = status::collect::policy(device)?;
                let note = policy
                    .declarations
                    .iter()
                    .find(|c| c.declaration.identifier == declaration.identifier)
                    .map_or_else(String::new, |c| c.note.clone());
                Ok(super::render::PolicySet {
                    identifier: declaration.identifier.clone(),
                    kind: declaration.kind.clone(),
                    server_token: declaration.server_token.clone(),
                    change: plan,
                    note,
                    dry_run,
                })
            })?;
            Ok((Output::PolicySet(outcome), None))
        }
        PolicyCommand::List => {
            let device = open(ctx, Access::Read)?;
            let s = status::collect(&device)?;
            Ok((Output::PolicyList(s.policy), None))
        }
        PolicyCommand::Remove {
            identifier,
            dry_run,
        } => {
            let outcome = change(
                ctx,
                "policy remove",
                dry_run,
                Some(identifier.clone()),
                |device| {
                    if !dry_run {
                        lifecycle::journaled(device, &ctx.clock, "policy remove", || {
                            store::remove(device.root(), &identifier)
                        })?;
                    } else if !store::list(device.root())?
                        .iter()
                        .any(|d| d.identifier == identifier)
                    {
                        store::remove(device.root(), &identifier)?;
                    }
                    Ok(super::render::PolicyRemoved {
                        identifier: identifier.clone(),
                        dry_run,
                    })
                },
            )?;
            Ok((Output::PolicyRemoved(outcome), None))
        }
    }
}

pub(super) fn trust_command(ctx: &Ctx, command: TrustCommand) -> Result<Executed> {
    match command {
        TrustCommand::Add { key, dry_run } => {
            let public = trust::read_public_key(&key)?;
            let fingerprint = public.fingerprint.clone();
            let added = change(
                ctx,
                "trust add",
                dry_run,
                Some(fingerprint.clone()),
                |device| {
                    let known = trust::load(device.root())?
                        .iter()
                        .any(|k| k.fingerprint == public.fingerprint);
                    if !known && !dry_run {
                        lifecycle::journaled(device, &ctx.clock, "trust add", || {
                            trust::install(device.root(), &public)
                        })?;
                    }
                    Ok(super::render::TrustChange {
                        fingerprint: fingerprint.clone(),
                        changed: !known,
                        added: true,
                        dry_run,
                    })
                },
            )?;
            Ok((Output::Trust(added), None))
        }
        TrustCommand::List => {
            let device = open(ctx, Access::Read)?;
            Ok((Output::TrustList(trust::list(device.root())?), None))
        }
        TrustCommand::Remove { key, dry_run } => {
            let removed = change(ctx, "trust remove", dry_run, Some(key.clone()), |device| {
                let fingerprint = if dry_run {
                    let all = trust::list(device.root())?;
                    let wanted = key.to_lowercase();
                    all.iter()
                        .find(|k| k.fingerprint.starts_with(&wanted))
                        .map(|k| k.fingerprint.clone())
                        .ok_or_else(|| {
                            Error::not_applicable(
                                format!("the device trusts no key with fingerprint {wanted}"),
                                "see `bsi trust list`",
                            )
                        })?
                } else {
                    lifecycle::journaled(device, &ctx.clock, "trust remove", || {
                        trust::remove(device.root(), &key)
                    })?
                };
                Ok(super::render::TrustChange {
                    fingerprint,
                    changed: true,
                    added: false,
                    dry_run,
                })
            })?;
            Ok((Output::Trust(removed), None))
        }
    }
}
