//! The management-policy gate: what the declarations in effect and the user's own switch allow.
//!
//! Only a configuration that is active (an active activation references it) and valid takes
//! effect (`declarations::state`); of a settings declaration, only the keys this platform and
//! enrollment support (`declarations::support`: e.g. `RapidSecurityResponse` needs a supervised
//! iPhone, `Deferrals.CombinedPeriodInDays` is macOS only). Several settings declarations combine
//! as Apple's schema says: `InstallSecurityUpdate` takes the last value (by identifier order),
//! `Enable` and `EnableRollback` are false if any declaration makes them false, deferrals take the
//! maximum. Enforcement declarations in effect are listed for the background pass.

use crate::declarations::declaration::{
    AutomaticAction, Category, EnforcementPayload, Payload, Reason, SettingsPayload,
};
use crate::declarations::predicate::StatusValue;
use crate::declarations::state::{self, Evaluated, Validity};
use crate::declarations::support::{DeviceFacts, KeyLimit};
use crate::device::state::Snapshot;
use crate::device::{Device, DeviceInfo, Settings};
use crate::refusal::PolicyRefusal;

/// Where the automatic-install setting comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AutoSource {
    /// The user's switch.
    User,
    /// A declaration forces it.
    Policy {
        /// The declaration's identifier.
        identifier: String,
    },
}

/// A declaration as the device treats it.
#[derive(Clone, Debug)]
pub(crate) struct Considered {
    /// The declaration and its state (`active`, `valid`, reasons).
    pub state: Evaluated,
    /// Whether it (or some of its keys) takes effect.
    pub honored: bool,
    /// What it does, or why it does nothing.
    pub note: String,
}

/// The effect of all declarations and the user's switch.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    /// The facts support was decided on.
    pub facts: DeviceFacts,
    /// Automatic install on or off.
    pub automatic: bool,
    /// Where that comes from.
    pub automatic_source: AutoSource,
    /// The declaration that forces the automatic switch, with its value.
    pub automatic_forced: Option<(bool, String)>,
    /// The declaration whose `RapidSecurityResponse.Enable = false` stops user installs.
    pub install_blocked_by: Option<String>,
    /// The declaration whose `EnableRollback = false` stops removal.
    pub rollback_blocked_by: Option<String>,
    /// The longest deferral in effect: (key, days, declaration).
    pub deferral: Option<(String, u64, String)>,
    /// Enforcement declarations in effect.
    pub enforcements: Vec<(String, EnforcementPayload)>,
    /// The status items the status-subscriptions configurations in effect subscribe to.
    pub subscriptions: std::collections::BTreeSet<String>,
    /// Every declaration with its treatment.
    pub declarations: Vec<Considered>,
}

/// The facts about `device` that decide what it supports.
pub(crate) fn facts(device: &Device, snapshot: &Snapshot) -> DeviceFacts {
    let info = device.info();
    DeviceFacts::new(info.platform, snapshot.base.version, info.supervised)
}

/// The status items an activation predicate may name, from `snapshot`: whatever the registry
/// makes from the device's state (`declarations::items`), as text, where the device reports it.
fn status_value(info: &DeviceInfo, snapshot: &Snapshot, name: &str) -> Option<StatusValue> {
    let identity = info.identity();
    let inputs = crate::declarations::items::Inputs {
        facts: DeviceFacts::new(info.platform, snapshot.base.version, info.supervised),
        identity: &identity,
        build: snapshot.base.build.to_string(),
        supplemental_build: snapshot.supplemental_build(),
        extra: snapshot.extra(),
        declarations: None,
        software_update: None,
    };
    match crate::declarations::items::value(name, &inputs)? {
        serde_json::Value::String(s) => Some(StatusValue::Text(s)),
        _ => None,
    }
}

/// The management policy in effect on `device`: its stored declarations and the user's switch.
pub(crate) fn of(device: &Device) -> crate::Result<Policy> {
    of_with(device, &device.snapshot()?)
}

/// The management policy in effect on `device` as `snapshot` shows it.
pub(crate) fn of_with(device: &Device, snapshot: &Snapshot) -> crate::Result<Policy> {
    with_declarations(
        device,
        snapshot,
        crate::declarations::store::list(device.root())?,
    )
}

/// The management policy `declarations` would make on `device` (for `policy set --dry-run`,
/// and to say what a declaration does before it is stored).
pub(crate) fn with_declarations(
    device: &Device,
    snapshot: &Snapshot,
    declarations: Vec<crate::declarations::declaration::Declaration>,
) -> crate::Result<Policy> {
    let info = device.info();
    let facts = facts(device, snapshot);
    let evaluated = state::evaluate(declarations, &facts, &|name| {
        status_value(info, snapshot, name)
    });
    let received = crate::declarations::store::received(device.root());
    Ok(Policy::evaluate(
        facts,
        device.settings()?,
        evaluated,
        Some(&Judge {
            base: &snapshot.base,
            received: &received,
        }),
    ))
}

/// What an enforcement is judged against: the base the device ran when it arrived (recorded as
/// it was stored), else the base it runs now.
pub(crate) struct Judge<'a> {
    /// The base now.
    pub base: &'a crate::version::Base,
    /// Arrivals, by identifier.
    pub received: &'a std::collections::BTreeMap<String, crate::declarations::store::Received>,
}

impl Judge<'_> {
    fn base_for(&self, d: &crate::declarations::declaration::Declaration) -> crate::version::Base {
        self.received
            .get(&d.identifier)
            .filter(|r| r.token == d.server_token)
            .and_then(|r| {
                Some(crate::version::Base {
                    version: r.version.parse().ok()?,
                    build: r.build.parse().ok()?,
                })
            })
            .unwrap_or_else(|| self.base.clone())
    }
}

fn not_in_effect_note(e: &Evaluated) -> String {
    match (e.valid, Reason::first_invalidating(&e.reasons)) {
        (Validity::Invalid, Some(r)) => format!("invalid ({}): {}", r.code, r.description),
        _ if !e.active && e.declaration.category() == Category::Configuration => {
            "not active: no active activation references it (`bsi policy set` an activation that lists it in StandardConfigurations)".to_owned()
        }
        _ => match e.reasons.first() {
            Some(r) => format!("not active ({}): {}", r.code, r.description),
            None => "not active".to_owned(),
        },
    }
}

impl Policy {
    /// Decides what the evaluated declarations and the user's settings allow.
    #[must_use]
    pub(crate) fn evaluate(
        facts: DeviceFacts,
        settings: Settings,
        evaluated: Vec<Evaluated>,
        judge: Option<&Judge<'_>>,
    ) -> Self {
        let mut policy = Policy {
            facts,
            automatic: settings.automatic_install,
            automatic_source: AutoSource::User,
            automatic_forced: None,
            install_blocked_by: None,
            rollback_blocked_by: None,
            deferral: None,
            enforcements: Vec::new(),
            subscriptions: std::collections::BTreeSet::new(),
            declarations: Vec::new(),
        };
        for mut e in evaluated {
            if let Some(judge) = judge {
                let base = judge.base_for(&e.declaration);
                judge_enforcement(&mut e, &base);
            }
            let (honored, note) = policy.consider(&e);
            policy.declarations.push(Considered {
                state: e,
                honored,
                note,
            });
        }
        if let Some((value, id)) = &policy.automatic_forced {
            policy.automatic = *value;
            policy.automatic_source = AutoSource::Policy {
                identifier: id.clone(),
            };
        }
        policy
    }

    fn consider(&mut self, e: &Evaluated) -> (bool, String) {
        let d = &e.declaration;
        match &d.payload {
            Payload::Activation(a) if e.active => (
                true,
                format!(
                    "active: activates {}",
                    if a.configurations.is_empty() {
                        "nothing".to_owned()
                    } else {
                        crate::untrusted::list(a.configurations.iter().map(String::as_str), 10)
                    }
                ),
            ),
            _ if !e.in_effect() && d.category() != Category::Management => {
                (false, not_in_effect_note(e))
            }
            Payload::Settings(s) => self.consider_settings(e, s),
            Payload::Enforcement(en) => {
                self.enforcements.push((d.identifier.clone(), en.clone()));
                (
                    true,
                    format!(
                        "in effect: enforces {}{} by {} local time",
                        en.target_os_version,
                        en.target_build_version
                            .as_ref()
                            .map(|b| format!(" ({b})"))
                            .unwrap_or_default(),
                        en.target_local_date_time.format("%Y-%m-%dT%H:%M:%S")
                    ),
                )
            }
            Payload::StatusSubscriptions(items) => {
                self.subscriptions.extend(items.iter().cloned());
                (
                    true,
                    format!(
                        "in effect: subscribes to {}",
                        crate::untrusted::list(items.iter().map(String::as_str), 20)
                    ),
                )
            }
            Payload::ServerCapabilities => (
                e.valid == Validity::Valid,
                if e.valid == Validity::Valid {
                    "processed: server capabilities".to_owned()
                } else {
                    not_in_effect_note(e)
                },
            ),
            Payload::Activation(_) | Payload::Unusable => (false, not_in_effect_note(e)),
        }
    }

    /// What a settings declaration in effect does to the policy, in words.
    fn consider_settings(&mut self, e: &Evaluated, s: &SettingsPayload) -> (bool, String) {
        let d = &e.declaration;
        let skipped = |key: &str| e.limited_keys.iter().any(|(k, _)| k == key);
        let id = &d.identifier;
        let mut parts = Vec::new();
        // Automatic install acts only while downloads are automatic (Apple's current
        // documentation of `InstallSecurityUpdate`): downloads always off turn it off.
        if s.download == Some(AutomaticAction::AlwaysOff) && !skipped("AutomaticActions.Download") {
            self.automatic_forced = Some((false, id.clone()));
            parts.push("automatic downloads always off, so no automatic install".to_owned());
        } else if !skipped("AutomaticActions.InstallSecurityUpdate") {
            match s.install_security_update {
                Some(AutomaticAction::AlwaysOn) => {
                    self.automatic_forced = Some((true, id.clone()));
                    parts.push("automatic install always on".to_owned());
                }
                Some(AutomaticAction::AlwaysOff) => {
                    self.automatic_forced = Some((false, id.clone()));
                    parts.push("automatic install always off".to_owned());
                }
                Some(AutomaticAction::Allowed) => {
                    self.automatic_forced = None;
                    parts.push("automatic install left to the user".to_owned());
                }
                None => {}
            }
        }
        if s.rsr_enable == Some(false) && !skipped("RapidSecurityResponse.Enable") {
            if self.install_blocked_by.is_none() {
                self.install_blocked_by = Some(id.clone());
            }
            parts.push(
                "manual installs blocked (automatic installs and enforcement still install)"
                    .to_owned(),
            );
        }
        if s.rsr_enable_rollback == Some(false) && !skipped("RapidSecurityResponse.EnableRollback")
        {
            if self.rollback_blocked_by.is_none() {
                self.rollback_blocked_by = Some(id.clone());
            }
            parts.push("removal blocked".to_owned());
        }
        for (key, days) in &s.deferrals {
            if skipped(key) {
                continue;
            }
            if self.deferral.as_ref().is_none_or(|(_, d, _)| days > d) {
                self.deferral = Some((key.clone(), *days, id.clone()));
            }
            parts.push(format!("{key} = {days} (does not delay responses)"));
        }
        for (key, limit) in &e.limited_keys {
            parts.push(format!(
                "{key} ignored ({})",
                match limit {
                    KeyLimit::NotOnPlatform =>
                        format!("not available on {}", self.facts.schema_os()),
                    KeyLimit::NotForEnrollment =>
                        format!("not for {} enrollment", self.facts.enrollment.name()),
                }
            ));
        }
        if parts.is_empty() {
            (true, "in effect; no key here affects responses".to_owned())
        } else {
            (true, format!("in effect: {}", parts.join("; ")))
        }
    }
}

/// An enforcement as a device running `base` reads it (Apple's current documentation of
/// `SoftwareUpdateEnforcementSpecific`): a `TargetBuildVersion` that does not belong to
/// `TargetOSVersion` is dropped (`TargetOSVersion` wins); a target that is not later than what
/// the device runs cannot be applied, and the declaration says so as real devices report it
/// (`Error.ConfigurationCannotBeApplied`, `DowngradeNotSupported`).
fn judge_enforcement(e: &mut Evaluated, base: &crate::version::Base) {
    use crate::version::Build;
    if !e.in_effect() {
        return;
    }
    let Payload::Enforcement(en) = &mut e.declaration.payload else {
        return;
    };
    let target = en.target_os_version;
    let consistent = en.target_build_version.as_ref().is_none_or(|b| {
        match (Build::parse_base(b.as_str()), target.cmp(&base.version)) {
            // A response build of this base must be one of its responses.
            (Err(_), std::cmp::Ordering::Equal) => {
                Build::parse_supplemental(b.as_str(), &base.build).is_ok()
            }
            (Err(_), _) => true,
            // A base build of a later version must be able to follow the device's.
            (Ok(_), std::cmp::Ordering::Greater) => b
                .check_follows(
                    &base.build,
                    if target.major() == base.version.major() {
                        crate::version::BaseMove::Minor
                    } else {
                        crate::version::BaseMove::Major
                    },
                )
                .is_ok(),
            (Ok(_), _) => *b == base.build,
        }
    });
    if !consistent {
        en.target_build_version = None;
    }
    let response = en
        .target_build_version
        .as_ref()
        .is_some_and(|b| Build::parse_base(b.as_str()).is_err());
    let why = match target.cmp(&base.version) {
        std::cmp::Ordering::Less => Some(format!(
            "the target {target} is older than the {} the device runs",
            base.version
        )),
        std::cmp::Ordering::Equal if !response => Some(format!(
            "the target {target} is the version the device runs ({}); an enforcement moves a device to a later one",
            base.build
        )),
        _ => None,
    };
    if let Some(why) = why {
        e.valid = Validity::Invalid;
        e.reasons.push(Reason::new(
            "Error.ConfigurationCannotBeApplied",
            format!("The software update cannot be applied: DowngradeNotSupported ({why})"),
            &[(
                "Error",
                serde_json::Value::String(format!("DowngradeNotSupported: {why}")),
            )],
        ));
    }
}

/// Refuses (exit 4) a user's install when a declaration in effect sets
/// `RapidSecurityResponse.Enable = false`.
pub(crate) fn check_install(policy: &Policy) -> crate::Result<()> {
    match &policy.install_blocked_by {
        Some(id) => Err(PolicyRefusal::InstallDisabled {
            declaration: id.clone(),
        }
        .into()),
        None => Ok(()),
    }
}

/// Refuses (exit 4) removing a response when a declaration in effect sets
/// `RapidSecurityResponse.EnableRollback = false`.
pub(crate) fn check_rollback(policy: &Policy) -> crate::Result<()> {
    match &policy.rollback_blocked_by {
        Some(id) => Err(PolicyRefusal::RollbackDisabled {
            declaration: id.clone(),
        }
        .into()),
        None => Ok(()),
    }
}

/// Refuses (exit 4) switching automatic install to `wanted` when a declaration forces it the
/// other way (`InstallSecurityUpdate = AlwaysOn` or `AlwaysOff` in effect).
pub(crate) fn check_automatic_change(policy: &Policy, wanted: bool) -> crate::Result<()> {
    match &policy.automatic_forced {
        Some((forced, id)) if *forced != wanted => Err(PolicyRefusal::AutomaticForced {
            declaration: id.clone(),
            forced_on: *forced,
        }
        .into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
