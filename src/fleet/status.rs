//! `bsi fleet status`: how a fleet stands at a glance, for watching it converge on an enforced
//! response: devices by version, install state, enrollment and platform, and the oldest and
//! newest check-in. Each device is read as `bsi status` reads it (no lock, nothing written), in
//! parallel; a device that cannot be read is counted and listed, never guessed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;

use super::{Shard, Tally};
use crate::human::{Human, Text};
use crate::progress::Progress;
use crate::{Error, Result};

/// How `fleet status` is asked to run.
#[derive(Clone, Debug)]
pub(crate) struct FleetStatusOptions {
    /// The fleet's directory.
    pub dir: PathBuf,
    /// The devices this run takes.
    pub shard: Shard,
    /// Devices read at once.
    pub concurrency: usize,
}

/// What `fleet status` found.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct FleetStatus {
    /// Devices read.
    pub devices: usize,
    /// Devices by the version they run (`26.3.1 (a)`).
    pub by_version: BTreeMap<String, usize>,
    /// Devices by `softwareupdate.install-state`.
    pub by_install_state: BTreeMap<String, usize>,
    /// Devices by enrollment: `mdm` (enrolled in an MDM server), `ddm` (synced with a DDM server
    /// directly), `none`.
    pub by_enrollment: BTreeMap<String, usize>,
    /// Devices by platform.
    pub by_platform: BTreeMap<String, usize>,
    /// The oldest last check-in (MDM) or sync (DDM), RFC 3339.
    pub oldest_checkin: Option<String>,
    /// The newest.
    pub newest_checkin: Option<String>,
    /// Devices that could not be read, with why.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Seconds it took.
    pub seconds: f64,
}

/// What one device adds to the status.
struct Seen {
    version: String,
    state: String,
    enrollment: &'static str,
    platform: String,
    checkin: Option<String>,
}

fn look(root: &std::path::Path) -> Result<Seen> {
    let device = crate::lifecycle::open_to_read(root)?;
    let status = crate::status::collect::collect(&device)?;
    let su = crate::ddm::software_update::derive(&device, &status);
    let mdm = crate::device::enrollment::load(&device)?;
    let sync: Option<crate::device::records::SyncState> = crate::device::records::read_json_lenient(
        device.root(),
        crate::device::layout::SYNC_RECORD,
    );
    let (enrollment, checkin) = match (&mdm, &sync) {
        (Some(m), s) => (
            "mdm",
            m.last_checkin
                .clone()
                .or_else(|| s.as_ref().map(|s| s.last_sync.clone())),
        ),
        (None, Some(s)) => ("ddm", Some(s.last_sync.clone())),
        (None, None) => ("none", None),
    };
    Ok(Seen {
        version: status.version,
        state: su.state.name().to_owned(),
        enrollment,
        platform: device.info().platform.to_string(),
        checkin,
    })
}

/// `bsi fleet status`.
pub(crate) fn status(opts: &FleetStatusOptions, progress: &dyn Progress) -> Result<FleetStatus> {
    let fleet = super::load(&opts.dir)?;
    let out = Mutex::new(FleetStatus::default());
    let tally: Tally = super::run_each(
        &fleet,
        opts.shard,
        opts.concurrency,
        progress,
        "reading",
        |d| {
            let seen = look(&super::root_of(&opts.dir, d));
            let mut o = out
                .lock()
                .map_err(|_| Error::usage("a worker failed", "run it again"))?;
            match seen {
                Ok(s) => {
                    o.devices += 1;
                    *o.by_version.entry(s.version).or_insert(0) += 1;
                    *o.by_install_state.entry(s.state).or_insert(0) += 1;
                    *o.by_enrollment.entry(s.enrollment.to_owned()).or_insert(0) += 1;
                    *o.by_platform.entry(s.platform).or_insert(0) += 1;
                    if let Some(c) = s.checkin {
                        if o.oldest_checkin.as_ref().is_none_or(|old| c < *old) {
                            o.oldest_checkin = Some(c.clone());
                        }
                        if o.newest_checkin.as_ref().is_none_or(|new| c > *new) {
                            o.newest_checkin = Some(c);
                        }
                    }
                    Ok(())
                }
                Err(e) => {
                    o.unreadable.push((d.root.clone(), e.to_string()));
                    Ok(())
                }
            }
        },
    );
    let mut o = out.into_inner().unwrap_or_default();
    o.unreadable.sort();
    o.seconds = tally.seconds;
    Ok(o)
}

fn counts(map: &BTreeMap<String, usize>) -> String {
    map.iter()
        .map(|(k, n)| format!("{n} {}", crate::human::clip(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Human for FleetStatus {
    fn human(&self, out: &mut Text, _: u8) {
        let s = self;
        out.line(format!(
            "devices:    {} ({})",
            s.devices,
            counts(&s.by_platform)
        ));
        out.line(format!("versions:   {}", counts(&s.by_version)));
        out.line(format!("install:    {}", counts(&s.by_install_state)));
        out.line(format!("enrollment: {}", counts(&s.by_enrollment)));
        if let (Some(old), Some(new)) = (&s.oldest_checkin, &s.newest_checkin) {
            out.line(format!("check-ins:  oldest {old}, newest {new}"));
        }
        for (d, why) in &s.unreadable {
            out.line(format!("unreadable: {}: {why}", d.display()));
        }
    }
}
