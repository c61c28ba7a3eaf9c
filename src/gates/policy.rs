//! The management-policy gate: what the stored declarations and the user's own switch allow.
//!
//! Settings keys are honoured only on supervised devices (DESIGN section 5); on others each one is
//! listed as ignored, with why. Several settings declarations combine as Apple's schema says:
//! `InstallSecurityUpdate` takes the last value (by identifier order), `Enable` and
//! `EnableRollback` are false if any declaration makes them false, deferrals take the maximum.
//! Enforcement declarations are honoured on supervised devices, and on unsupervised iPhones and
//! iPads (Apple's schema allows them with device enrollment there, not on unsupervised Macs).

use crate::declarations::declaration::{AutomaticAction, Declaration, EnforcementPayload, Payload};
use crate::device::{DeviceInfo, Platform, Settings};

/// Where the automatic-install setting comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutoSource {
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
pub struct Considered {
    /// The declaration.
    pub declaration: Declaration,
    /// Whether its keys take effect.
    pub honored: bool,
    /// Why not, or what it does.
    pub note: String,
}

/// The effect of all declarations and the user's switch.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Supervised device.
    pub supervised: bool,
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
    /// Honoured enforcement declarations.
    pub enforcements: Vec<(String, EnforcementPayload)>,
    /// Every declaration with its treatment.
    pub declarations: Vec<Considered>,
}

/// The management policy in effect on `device`: its stored declarations and the user's switch.
pub fn of(device: &crate::device::Device) -> crate::Result<Policy> {
    Ok(Policy::evaluate(
        device.info(),
        &device.settings()?,
        crate::declarations::store::list(device.root())?,
    ))
}

impl Policy {
    /// Evaluates the declarations for this device and the user's settings.
    #[must_use]
    pub fn evaluate(
        info: &DeviceInfo,
        settings: &Settings,
        declarations: Vec<Declaration>,
    ) -> Self {
        let mut policy = Policy {
            supervised: info.supervised,
            automatic: settings.automatic_install,
            automatic_source: AutoSource::User,
            automatic_forced: None,
            install_blocked_by: None,
            rollback_blocked_by: None,
            deferral: None,
            enforcements: Vec::new(),
            declarations: Vec::new(),
        };
        for declaration in declarations {
            let (honored, note) = match &declaration.payload {
                Payload::Settings(s) if info.supervised => {
                    let id = &declaration.identifier;
                    match s.install_security_update {
                        Some(AutomaticAction::AlwaysOn) => {
                            policy.automatic_forced = Some((true, id.clone()));
                        }
                        Some(AutomaticAction::AlwaysOff) => {
                            policy.automatic_forced = Some((false, id.clone()));
                        }
                        Some(AutomaticAction::Allowed) => policy.automatic_forced = None,
                        None => {}
                    }
                    if s.rsr_enable == Some(false) && policy.install_blocked_by.is_none() {
                        policy.install_blocked_by = Some(id.clone());
                    }
                    if s.rsr_enable_rollback == Some(false) && policy.rollback_blocked_by.is_none()
                    {
                        policy.rollback_blocked_by = Some(id.clone());
                    }
                    for (key, days) in &s.deferrals {
                        if policy.deferral.as_ref().is_none_or(|(_, d, _)| days > d) {
                            policy.deferral = Some((key.clone(), *days, id.clone()));
                        }
                    }
                    (true, settings_note(s))
                }
                Payload::Settings(_) => (
                    false,
                    "ignored: software update settings are honoured only on supervised devices"
                        .to_owned(),
                ),
                Payload::Enforcement(e) if info.supervised || info.platform != Platform::MacOs => {
                    policy
                        .enforcements
                        .push((declaration.identifier.clone(), e.clone()));
                    (
                        true,
                        format!(
                            "enforces {}{} by {} local time",
                            e.target_os_version,
                            e.target_build_version
                                .as_ref()
                                .map(|b| format!(" ({b})"))
                                .unwrap_or_default(),
                            e.target_local_date_time.format("%Y-%m-%dT%H:%M:%S")
                        ),
                    )
                }
                Payload::Enforcement(_) => (
                    false,
                    "ignored: a Mac accepts software update enforcement only when supervised"
                        .to_owned(),
                ),
            };
            policy.declarations.push(Considered {
                declaration,
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
}

/// Refuses (exit 4) switching automatic install to `wanted` when a declaration forces it the
/// other way (`InstallSecurityUpdate = AlwaysOn` or `AlwaysOff` on a supervised device).
pub fn check_automatic_change(policy: &Policy, wanted: bool) -> crate::Result<()> {
    match &policy.automatic_forced {
        Some((forced, id)) if *forced != wanted => {
            let (state, value) = if *forced {
                ("on", "AlwaysOn")
            } else {
                ("off", "AlwaysOff")
            };
            Err(crate::Error::policy(
                format!(
                    "automatic install is forced {state} by declaration {id} (InstallSecurityUpdate = {value})"
                ),
                "the MDM server controls this setting on this supervised device",
            ))
        }
        _ => Ok(()),
    }
}

fn settings_note(s: &crate::declarations::declaration::SettingsPayload) -> String {
    let mut parts = Vec::new();
    match s.install_security_update {
        Some(AutomaticAction::AlwaysOn) => parts.push("automatic install always on".to_owned()),
        Some(AutomaticAction::AlwaysOff) => parts.push("automatic install always off".to_owned()),
        Some(AutomaticAction::Allowed) => {
            parts.push("automatic install left to the user".to_owned());
        }
        None => {}
    }
    if s.rsr_enable == Some(false) {
        parts.push("user installs blocked (enforcement still installs)".to_owned());
    }
    if s.rsr_enable_rollback == Some(false) {
        parts.push("removal blocked".to_owned());
    }
    for (key, days) in &s.deferrals {
        parts.push(format!("{key} = {days} (does not delay responses)"));
    }
    if parts.is_empty() {
        "honoured; no key here affects responses".to_owned()
    } else {
        format!("honoured: {}", parts.join("; "))
    }
}
