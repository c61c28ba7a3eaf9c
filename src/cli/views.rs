//! The small result types of the commands that have no library outcome of their own (`power`,
//! `settings`, `policy set|remove`, `trust add|remove`), and the one-line history summary of every
//! changing command's outcome ([`Summary`]).

use serde::Serialize;

use crate::ddm::auto::AutoOutcome;
use crate::ddm::store::SetOutcome;
use crate::device::{Device, Power, Settings};
use crate::gates::policy::{AutoSource, Policy};
use crate::gates::power;
use crate::lifecycle::apply::{ApplyAction, ApplyOutcome};
use crate::lifecycle::restart::RestartOutcome;
use crate::lifecycle::rollback::RollbackOutcome;
use crate::lifecycle::safari::RelaunchOutcome;
use crate::lifecycle::update::UpdateOutcome;

/// A summary line for the history.
pub(crate) trait Summary {
    /// One sentence.
    fn summary(&self) -> String;
    /// The target version or thing, if any.
    fn target(&self) -> Option<String> {
        None
    }
    /// The device was already in the requested state.
    fn nothing_to_do(&self) -> bool {
        false
    }
}

/// `bsi power`'s view.
#[derive(Clone, Debug, Serialize)]
pub struct PowerView {
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
    /// The view of `power` on `device`.
    #[must_use]
    pub fn new(device: &Device, power: Power, changed: bool, dry_run: bool) -> Self {
        let rule = power::rule(device.info());
        Self {
            on_ac: power.on_ac,
            battery_percent: power.battery_percent,
            minimum_percent: rule.minimum,
            ok: power::passes(device.info(), &power),
            reason: rule.why.to_owned(),
            changed,
            dry_run,
        }
    }
}

/// `bsi settings`'s view.
#[derive(Clone, Debug, Serialize)]
pub struct SettingsView {
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
    /// The view of `settings` under `policy`.
    #[must_use]
    pub fn new(settings: Settings, policy: &Policy, changed: bool, dry_run: bool) -> Self {
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
pub struct PolicySet {
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
    /// How the device treats it.
    pub note: String,
    /// Nothing was stored because of `--dry-run`.
    pub dry_run: bool,
}

/// `policy remove`'s result.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyRemoved {
    /// The identifier removed.
    pub identifier: String,
    /// Nothing was removed because of `--dry-run`.
    pub dry_run: bool,
}

/// `trust add`/`remove`'s result.
#[derive(Clone, Debug, Serialize)]
pub struct TrustChange {
    /// The key's fingerprint.
    pub fingerprint: String,
    /// Something changed.
    pub changed: bool,
    /// Added (else removed).
    pub added: bool,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
}

impl Summary for ApplyOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn target(&self) -> Option<String> {
        Some(self.version.clone())
    }
    fn nothing_to_do(&self) -> bool {
        matches!(
            self.action,
            ApplyAction::AlreadyActive | ApplyAction::AlreadyStaged
        )
    }
}

impl Summary for RestartOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn target(&self) -> Option<String> {
        self.activated.clone().or_else(|| self.removed.clone())
    }
    fn nothing_to_do(&self) -> bool {
        self.nothing_staged
    }
}

impl Summary for RelaunchOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn nothing_to_do(&self) -> bool {
        self.nothing_to_do
    }
}

impl Summary for RollbackOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn target(&self) -> Option<String> {
        Some(self.version.clone())
    }
}

impl Summary for UpdateOutcome {
    fn summary(&self) -> String {
        self.message.clone()
    }
    fn nothing_to_do(&self) -> bool {
        self.nothing_to_do
    }
}

impl Summary for PowerView {
    fn summary(&self) -> String {
        format!(
            "{}{}",
            self.battery_percent
                .map_or_else(|| "desktop".to_owned(), |b| format!("battery {b} %, ")),
            if self.on_ac { "on power" } else { "on battery" }
        )
    }
    fn nothing_to_do(&self) -> bool {
        !self.changed
    }
}

impl Summary for SettingsView {
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

impl Summary for PolicySet {
    fn summary(&self) -> String {
        format!("{} {}: {:?}", self.kind, self.identifier, self.change)
    }
    fn nothing_to_do(&self) -> bool {
        self.change == SetOutcome::Unchanged
    }
}

impl Summary for PolicyRemoved {
    fn summary(&self) -> String {
        format!("removed declaration {}", self.identifier)
    }
}

impl Summary for TrustChange {
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

impl Summary for AutoOutcome {
    fn summary(&self) -> String {
        self.log.join("; ")
    }
    fn target(&self) -> Option<String> {
        self.installed.clone()
    }
    fn nothing_to_do(&self) -> bool {
        self.installed.is_none()
    }
}
