//! The device-management operations: the simulated power source, the user's settings, the DDM
//! declarations (`policy`) and the trusted keys (`trust`). Each reads, or changes through
//! [`change`], one of the device's records, and returns a typed view for the command line.

use std::path::Path;

use serde::Serialize;

use super::{Done, Env, Recorded, change, open_read};
use crate::declarations::declaration::UNKNOWN_PAYLOAD_KEYS;
use crate::declarations::declaration::{Declaration, Reason};
use crate::declarations::state::Validity;
use crate::declarations::state::state_words;
use crate::declarations::store::{self, SetOutcome};
use crate::device::layout::{POWER_RECORD, SETTINGS_RECORD};
use crate::device::trust::{self, TrustedKey};
use crate::device::{Device, Power, Settings, records};
use crate::gates::policy::{AutoSource, Policy};
use crate::gates::power;
use crate::human::{Human, Text, clip};
use crate::refusal::PolicyRefusal;
use crate::status::{self, model::PolicyStatus};
use crate::{Error, Result};

/// `bsi power`'s view.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct PowerView {
    /// Connected to power.
    pub on_ac: bool,
    /// Battery charge; null for a desktop.
    pub battery_percent: Option<u8>,
    /// The gate's minimum; null when there is none.
    pub minimum_percent: Option<u8>,
    /// The gate passes.
    pub ok: bool,
    /// The rule in words.
    pub reason: String,
    /// Something changed.
    pub changed: bool,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
}

impl PowerView {
    fn new(device: &Device, power: Power, changed: bool, dry_run: bool) -> Self {
        let rule = power::rule(device.info());
        Self {
            on_ac: power.on_ac,
            battery_percent: power.battery_percent,
            minimum_percent: rule.minimum,
            ok: power::passes(device.info(), power),
            reason: rule.why.to_owned(),
            changed,
            dry_run,
        }
    }
}

/// `bsi settings`'s view.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SettingsView {
    /// The user's own switch.
    pub automatic_user: bool,
    /// What is in effect.
    pub automatic_effective: bool,
    /// The declaration that forces it, if any.
    pub forced_by: Option<String>,
    /// Something changed.
    pub changed: bool,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
}

impl SettingsView {
    fn new(settings: Settings, policy: &Policy, changed: bool, dry_run: bool) -> Self {
        Self {
            automatic_user: settings.automatic_install,
            automatic_effective: policy
                .automatic_forced
                .as_ref()
                .map_or(settings.automatic_install, |f| f.0),
            forced_by: match &policy.automatic_source {
                AutoSource::User => None,
                AutoSource::Policy { identifier } => Some(identifier.clone()),
            },
            changed,
            dry_run,
        }
    }
}

/// `policy set`'s result.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct PolicySet {
    /// `Identifier`.
    pub identifier: String,
    /// `Type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `ServerToken`.
    pub server_token: String,
    /// Added, replaced or unchanged.
    #[serde(flatten)]
    pub change: SetOutcome,
    /// Active on the device now.
    pub active: bool,
    /// `valid`, `invalid` or `unknown`, as `management.declarations` reports it.
    pub valid: Validity,
    /// Apple's reasons.
    pub reasons: Vec<Reason>,
    /// How the device treats it.
    pub note: String,
    /// Nothing was stored because of `--dry-run`.
    pub dry_run: bool,
}

/// `policy remove`'s result.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct PolicyRemoved {
    /// The identifier removed.
    pub identifier: String,
    /// Nothing was removed because of `--dry-run`.
    pub dry_run: bool,
}

/// `trust add`/`remove`'s result.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct TrustChange {
    /// The key's fingerprint.
    pub fingerprint: String,
    /// The files that held it (for `remove`: every one removed).
    pub files: Vec<String>,
    /// Something changed.
    pub changed: bool,
    /// Added (else removed).
    pub added: bool,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
}

/// `bsi power` without changes.
pub(crate) fn power_show(env: &Env) -> Result<PowerView> {
    let device = open_read(env)?;
    let power = device.power()?;
    Ok(PowerView::new(&device, power, false, false))
}

/// `bsi power --battery/--ac/--no-ac`.
pub(crate) fn power_set(
    env: &Env,
    battery: Option<u8>,
    ac: Option<bool>,
    dry_run: bool,
) -> Result<Done<PowerView>> {
    change(env, "power", dry_run, None, |tx| {
        let device = tx.device();
        if !device.info().portable && (battery.is_some() || ac == Some(false)) {
            return Err(Error::usage(
                "a desktop Mac has no battery and is always on power",
                "leave --battery and --no-ac out",
            ));
        }
        let old = device.power()?;
        let new = Power {
            battery_percent: battery.or(old.battery_percent),
            on_ac: ac.unwrap_or(old.on_ac),
        };
        let changed = new != old;
        if changed && !dry_run {
            tx.begin()?;
            records::write_json(device.root(), POWER_RECORD, &new)?;
        }
        Ok(PowerView::new(device, new, changed, dry_run))
    })
}

/// `bsi settings` without changes.
pub(crate) fn settings_show(env: &Env) -> Result<SettingsView> {
    let device = open_read(env)?;
    let policy = crate::gates::policy::of(&device)?;
    Ok(SettingsView::new(device.settings()?, &policy, false, false))
}

/// `bsi settings --automatic on|off`: refused (exit 4) when a declaration forces the other way.
pub(crate) fn settings_set(
    env: &Env,
    automatic: bool,
    dry_run: bool,
) -> Result<Done<SettingsView>> {
    change(env, "settings", dry_run, None, |tx| {
        let device = tx.device();
        let policy = crate::gates::policy::of(device)?;
        crate::gates::policy::check_automatic_change(&policy, automatic)?;
        let old = device.settings()?;
        let new = Settings {
            automatic_install: automatic,
        };
        let changed = old != new;
        if changed && !dry_run {
            tx.begin()?;
            records::write_json(device.root(), SETTINGS_RECORD, &new)?;
        }
        // What a declaration forces does not depend on the user's switch: the policy read
        // before the change still holds.
        Ok(SettingsView::new(new, &policy, changed, dry_run))
    })
}

/// `bsi policy set FILE`: the declaration, read with a size limit, then stored. A well-formed
/// declaration is stored whatever its payload, as a device keeps what the server sent; when the
/// device cannot use it (an invalid payload, a type this OS version or enrollment does not
/// support, a predicate it cannot evaluate) the second value is the refusal to exit with (4).
pub(crate) fn policy_set(
    env: &Env,
    file: &Path,
    dry_run: bool,
) -> Result<(Done<PolicySet>, Option<Error>)> {
    let raw = crate::input::read_named(file, store::MAX_DECLARATION_BYTES, "declaration")?;
    let declaration = Declaration::parse(&raw, &file.display().to_string())?;
    let target = Some(declaration.identifier.clone());
    let done = change(env, "policy set", dry_run, target, |tx| {
        let device = tx.device();
        let held = store::list(device.root())?;
        let plan = store::plan(&held, &declaration);
        // What the device would hold with it: within the bounds every reader relies on.
        let kept = held
            .iter()
            .filter(|d| d.identifier != declaration.identifier);
        let count = kept.clone().count() + 1;
        let bytes = kept.map(|d| d.raw.len() as u64).sum::<u64>() + declaration.raw.len() as u64;
        if let Some(why) = store::over_bounds(count, bytes) {
            return Err(Error::usage(
                format!(
                    "storing {} would make the device hold {why}",
                    crate::untrusted::clip(&declaration.identifier)
                ),
                "remove declarations the device no longer needs (`bsi policy list`, `bsi policy remove ID`), then set it again",
            ));
        }
        if plan != SetOutcome::Unchanged && !dry_run {
            tx.begin()?;
            store::store(device.root(), &declaration)?;
        }
        // What the device makes of it, with every declaration it holds (with `--dry-run`, as if
        // it were stored).
        let mut all: Vec<Declaration> = held
            .into_iter()
            .filter(|d| d.identifier != declaration.identifier)
            .collect();
        all.push(declaration.clone());
        all.sort_by(|a, b| a.identifier.cmp(&b.identifier));
        if plan != SetOutcome::Unchanged && !dry_run {
            store::note_received(device.root(), &all, &device.base()?)?;
        }
        let policy = crate::gates::policy::with_declarations(device, &device.snapshot()?, all)?;
        let considered = policy
            .declarations
            .into_iter()
            .find(|c| c.state.declaration.identifier == declaration.identifier);
        let (active, valid, reasons, note) = considered.map_or_else(
            || (false, Validity::Unknown, Vec::new(), String::new()),
            |c| (c.state.active, c.state.valid, c.state.reasons, c.note),
        );
        Ok(PolicySet {
            identifier: declaration.identifier.clone(),
            kind: declaration.kind.clone(),
            server_token: declaration.server_token.clone(),
            change: plan,
            active,
            valid,
            reasons,
            note,
            dry_run,
        })
    })?;
    let refusal = unusable(&done.value);
    Ok((done, refusal))
}

/// The refusal for a stored declaration the device cannot use. A missing configuration is not
/// one: the activation works once the server (or `policy set`) sends what it names.
fn unusable(set: &PolicySet) -> Option<Error> {
    if set.valid != Validity::Invalid {
        return None;
    }
    let reason = Reason::first_invalidating(&set.reasons)?;
    if reason.code == "Error.MissingConfigurations" {
        return None;
    }
    Some(
        PolicyRefusal::DeclarationUnusable {
            identifier: crate::untrusted::clip(&set.identifier),
            dry_run: set.dry_run,
            code: reason.code.clone(),
            description: reason.description.clone(),
        }
        .into(),
    )
}

/// `bsi policy list`.
pub(crate) fn policy_list(env: &Env) -> Result<PolicyStatus> {
    let device = open_read(env)?;
    Ok(status::collect(&device)?.policy)
}

/// `bsi policy remove IDENTIFIER`.
pub(crate) fn policy_remove(
    env: &Env,
    identifier: &str,
    dry_run: bool,
) -> Result<Done<PolicyRemoved>> {
    change(
        env,
        "policy remove",
        dry_run,
        Some(identifier.to_owned()),
        |tx| {
            let device = tx.device();
            let held = store::list(device.root())?;
            let known = held.iter().any(|d| d.identifier == identifier);
            if !known {
                // The same refusal `store::remove` gives, without changing anything.
                return store::remove(device.root(), identifier).map(|()| PolicyRemoved {
                    identifier: identifier.to_owned(),
                    dry_run,
                });
            }
            if !dry_run {
                tx.begin()?;
                store::remove(device.root(), identifier)?;
                let kept: Vec<_> = held
                    .into_iter()
                    .filter(|d| d.identifier != identifier)
                    .collect();
                store::note_received(device.root(), &kept, &device.base()?)?;
            }
            Ok(PolicyRemoved {
                identifier: identifier.to_owned(),
                dry_run,
            })
        },
    )
}

/// `bsi trust add KEY.pub`.
pub(crate) fn trust_add(env: &Env, key: &Path, dry_run: bool) -> Result<Done<TrustChange>> {
    let public = trust::read_public_key(key)?;
    let fingerprint = public.fingerprint.clone();
    change(env, "trust add", dry_run, Some(fingerprint.clone()), |tx| {
        let device = tx.device();
        let known = trust::load(device.root())?
            .iter()
            .any(|k| k.fingerprint == public.fingerprint);
        let mut files = Vec::new();
        if !known && !dry_run {
            tx.begin()?;
            trust::install(device.root(), &public)?;
        }
        if !known {
            files.push(trust::key_file(&fingerprint).display().to_string());
        }
        Ok(TrustChange {
            fingerprint: fingerprint.clone(),
            files,
            changed: !known,
            added: true,
            dry_run,
        })
    })
}

/// `bsi trust list`: exactly the keys verification uses, with every file holding each.
pub(crate) fn trust_list(env: &Env) -> Result<Vec<TrustedKey>> {
    let device = open_read(env)?;
    trust::list(device.root())
}

/// `bsi trust remove FINGERPRINT|KEY.pub`: removes every file that holds the key.
pub(crate) fn trust_remove(env: &Env, which: &str, dry_run: bool) -> Result<Done<TrustChange>> {
    change(env, "trust remove", dry_run, Some(which.to_owned()), |tx| {
        let device = tx.device();
        let (fingerprint, files) = trust::find(device.root(), which)?;
        if !dry_run {
            tx.begin()?;
            trust::remove(device.root(), &files)?;
        }
        Ok(TrustChange {
            fingerprint,
            files: files.iter().map(|f| f.display().to_string()).collect(),
            changed: true,
            added: false,
            dry_run,
        })
    })
}

impl Recorded for PowerView {
    fn summary(&self) -> String {
        format!(
            "{}{}",
            self.battery_percent
                .map_or_else(|| "desktop, ".to_owned(), |b| format!("battery {b} %, ")),
            if self.on_ac { "on power" } else { "on battery" }
        )
    }
    fn nothing_to_do(&self) -> bool {
        !self.changed
    }
}

impl Recorded for SettingsView {
    fn summary(&self) -> String {
        format!(
            "automatic install {}",
            if self.automatic_user { "on" } else { "off" }
        )
    }
    fn nothing_to_do(&self) -> bool {
        !self.changed
    }
}

impl Recorded for PolicySet {
    fn summary(&self) -> String {
        let what = match &self.change {
            SetOutcome::Added => "added".to_owned(),
            SetOutcome::Replaced { previous_token } => {
                format!("replaced ServerToken {previous_token}")
            }
            SetOutcome::Unchanged => "unchanged".to_owned(),
        };
        let state = match self.valid {
            Validity::Invalid => ", invalid",
            Validity::Unknown => ", not active",
            Validity::Valid if self.active => ", active",
            Validity::Valid => ", valid, not active",
        };
        format!("{} {}: {what}{state}", self.kind, self.identifier)
    }
    fn nothing_to_do(&self) -> bool {
        self.change == SetOutcome::Unchanged
    }
}

impl Recorded for PolicyRemoved {
    fn summary(&self) -> String {
        format!("removed declaration {}", self.identifier)
    }
}

impl Recorded for TrustChange {
    fn summary(&self) -> String {
        format!(
            "{} key {}",
            if self.added {
                "trusted"
            } else {
                "stopped trusting"
            },
            self.fingerprint
        )
    }
    fn nothing_to_do(&self) -> bool {
        !self.changed
    }
}

impl Human for PowerView {
    fn human(&self, out: &mut Text, _: u8) {
        match self.battery_percent {
            Some(b) => out.line(format!(
                "battery {b} %, {}",
                if self.on_ac { "on power" } else { "on battery" }
            )),
            None => out.line("no battery (desktop), on power"),
        }
        out.line(format!(
            "power gate: {} ({})",
            if self.ok { "passes" } else { "blocks installs" },
            self.reason
        ));
        if self.dry_run && self.changed {
            out.line("(dry run: nothing changed)");
        }
    }
}

impl Human for SettingsView {
    fn human(&self, out: &mut Text, _: u8) {
        let onoff = |b: bool| if b { "on" } else { "off" };
        out.line(format!(
            "automatically install: {}",
            onoff(self.automatic_effective)
        ));
        if let Some(id) = &self.forced_by {
            out.line(format!(
                "  forced by declaration {}; the user's switch ({}) has no effect",
                clip(id),
                onoff(self.automatic_user)
            ));
        }
        if self.dry_run && self.changed {
            out.line("(dry run: nothing changed)");
        }
    }
}

impl Human for PolicySet {
    fn human(&self, out: &mut Text, _: u8) {
        let what = match (&self.change, self.dry_run) {
            (SetOutcome::Unchanged, _) => {
                "already stored (same ServerToken); nothing to do".to_owned()
            }
            (SetOutcome::Added, false) => "stored".to_owned(),
            (SetOutcome::Added, true) => "would store".to_owned(),
            (SetOutcome::Replaced { previous_token }, false) => format!(
                "replaced the declaration with ServerToken {}",
                clip(previous_token)
            ),
            (SetOutcome::Replaced { previous_token }, true) => format!(
                "would replace the declaration with ServerToken {}",
                clip(previous_token)
            ),
        };
        out.line(format!(
            "{} ({}): {what}",
            clip(&self.identifier),
            clip(&self.kind)
        ));
        out.line(format!("  {}", state_words(self.active, self.valid)));
        if !self.note.is_empty() {
            out.line(format!("  {}", self.note));
        }
        for r in self
            .reasons
            .iter()
            .filter(|r| r.code == UNKNOWN_PAYLOAD_KEYS)
        {
            out.line(format!("  {}: {}", r.code, r.description));
        }
    }
}

impl Human for PolicyRemoved {
    fn human(&self, out: &mut Text, _: u8) {
        out.line(format!(
            "{} {}",
            if self.dry_run {
                "would remove"
            } else {
                "removed"
            },
            clip(&self.identifier)
        ));
    }
}

impl Human for TrustChange {
    fn human(&self, out: &mut Text, _: u8) {
        let verb = match (self.added, self.changed, self.dry_run) {
            (true, false, _) => "already trusted",
            (true, true, false) => "now trusted",
            (true, true, true) => "would be trusted",
            (false, _, false) => "no longer trusted",
            (false, _, true) => "would no longer be trusted",
        };
        out.line(format!("key {}: {verb}", self.fingerprint));
        if !self.added && self.files.len() > 1 {
            out.line(format!(
                "  {} the {} files that held it: {}",
                if self.dry_run {
                    "would remove"
                } else {
                    "removed"
                },
                self.files.len(),
                self.files.join(", ")
            ));
        }
    }
}
