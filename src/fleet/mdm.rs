//! A fleet over MDM: `bsi fleet enroll` enrolls every device with one profile (each gets its
//! own identity; `%UDID%` in the profile's SCEP subject names each), and `bsi fleet poll` polls
//! each enrolled device, answering its commands and syncing declarations through the server.
//! Both run as many single-device operations in parallel (`fleet::run_each`), `--shard K/N`
//! taking every N-th device.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::Result;
use crate::clock::Clock;
use crate::fleet::{self, Shard, Tally};
use crate::human::{Human, Text};
use crate::mdm::enrollment::EnrollOptions;
use crate::mdm::poll::PollOptions;
use crate::ops;
use crate::progress::Progress;
use crate::untrusted::clip;

/// How `fleet enroll` is asked to run.
#[derive(Clone, Debug)]
pub(crate) struct FleetEnrollOptions {
    /// The fleet's directory.
    pub dir: PathBuf,
    /// The enrollment profile every device uses.
    pub profile: PathBuf,
    /// `--ca FILE`.
    pub ca: Option<PathBuf>,
    /// Devices enrolled at once.
    pub concurrency: usize,
    /// Each request's bound.
    pub timeout: Duration,
    /// Each device's whole enrollment's bound.
    pub deadline: Duration,
    /// The devices this run takes.
    pub shard: Shard,
}

/// What `fleet enroll` did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FleetEnrollOutcome {
    /// The MDM server the devices enrolled in.
    pub server_url: Option<String>,
    /// How the run went.
    #[serde(flatten)]
    pub tally: Tally,
}

/// How `fleet poll` is asked to run.
#[derive(Clone, Debug)]
pub(crate) struct FleetPollOptions {
    /// The fleet's directory.
    pub dir: PathBuf,
    /// Devices polled at once.
    pub concurrency: usize,
    /// Each device's poll.
    pub poll: PollOptions,
    /// The devices this run takes.
    pub shard: Shard,
}

/// What `fleet poll` did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FleetPollOutcome {
    /// How the run went.
    #[serde(flatten)]
    pub tally: Tally,
    /// Commands answered, by request type.
    pub commands: BTreeMap<String, usize>,
    /// Commands answered `NotNow` (another bsi held the device).
    pub not_now: usize,
    /// DDM syncs through the server.
    pub syncs: usize,
    /// Declarations added, replaced or removed across the fleet.
    pub declaration_changes: usize,
    /// Status reports the server acknowledged.
    pub reports_sent: usize,
}

/// `bsi fleet enroll`.
pub(crate) fn enroll(
    opts: &FleetEnrollOptions,
    clock: &Clock,
    progress: &dyn Progress,
) -> Result<FleetEnrollOutcome> {
    let f = fleet::load(&opts.dir)?;
    let server = Mutex::new(None);
    let enroll_opts = EnrollOptions {
        profile: opts.profile.clone(),
        identity: None,
        ca: opts.ca.clone(),
        timeout: opts.timeout,
        deadline: opts.deadline,
        dry_run: false,
    };
    let tally = fleet::run_each(
        &f,
        opts.shard,
        opts.concurrency,
        progress,
        "enrolling",
        |d| {
            let done = ops::mdm::enroll(&fleet::env_of(&opts.dir, d, *clock), &enroll_opts)?;
            if let Ok(mut s) = server.lock() {
                s.get_or_insert(done.value.server_url);
            }
            Ok(())
        },
    );
    Ok(FleetEnrollOutcome {
        server_url: server.into_inner().ok().flatten(),
        tally,
    })
}

/// `bsi fleet poll`.
pub(crate) fn poll(
    opts: &FleetPollOptions,
    clock: &Clock,
    progress: &dyn Progress,
) -> Result<FleetPollOutcome> {
    let f = fleet::load(&opts.dir)?;
    let commands = Mutex::new(BTreeMap::new());
    let (not_now, syncs, changes, reports) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let tally = fleet::run_each(&f, opts.shard, opts.concurrency, progress, "polling", |d| {
        let done = ops::mdm::poll(
            &fleet::env_of(&opts.dir, d, *clock),
            &opts.poll,
            &crate::progress::Silent,
        )?;
        let o = &done.value.outcome;
        if let Ok(mut c) = commands.lock() {
            for h in &o.commands {
                *c.entry(h.request_type.clone()).or_insert(0) += 1;
            }
        }
        if o.busy {
            not_now.fetch_add(o.commands.len(), Ordering::Relaxed);
        }
        if let Some(s) = &o.sync {
            syncs.fetch_add(1, Ordering::Relaxed);
            changes.fetch_add(s.changes.len(), Ordering::Relaxed);
            reports.fetch_add(usize::from(s.report.sent), Ordering::Relaxed);
        }
        done.value.deferred.map_or(Ok(()), Err)
    });
    Ok(FleetPollOutcome {
        tally,
        commands: commands.into_inner().unwrap_or_default(),
        not_now: not_now.into_inner(),
        syncs: syncs.into_inner(),
        declaration_changes: changes.into_inner(),
        reports_sent: reports.into_inner(),
    })
}

impl Human for FleetEnrollOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        let t = &self.tally;
        out.line(format!(
            "enrolled {} of {} devices{} in {:.2} s: {:.0} enrollments/s",
            t.ok,
            t.devices,
            self.server_url
                .as_deref()
                .map(|s| format!(" in {}", clip(s)))
                .unwrap_or_default(),
            t.seconds,
            t.per_second
        ));
        t.human(out, "enrollment");
    }
}

impl Human for FleetPollOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        let t = &self.tally;
        out.line(format!(
            "polled {} of {} devices in {:.2} s: {:.0} polls/s",
            t.ok, t.devices, t.seconds, t.per_second
        ));
        let answered: Vec<String> = self
            .commands
            .iter()
            .map(|(k, n)| format!("{n} {}", clip(k)))
            .collect();
        if !answered.is_empty() {
            out.line(format!("commands: {}", answered.join(", ")));
        }
        if self.not_now > 0 {
            out.line(format!(
                "{} command(s) answered NotNow (device busy)",
                self.not_now
            ));
        }
        out.line(format!(
            "{} DDM sync(s): {} declaration change(s), {} report(s) sent",
            self.syncs, self.declaration_changes, self.reports_sent
        ));
        t.human(out, "poll");
    }
}
