//! Fleets: many simulated devices in one directory, made reproducibly from a seed
//! ([`init`](mod@init)), synced with a DDM server in parallel ([`sync`](mod@sync)), enrolled in
//! and polled by an MDM server ([`mdm`]), and summed up at a glance ([`status`]), for testing a
//! server's workflow at scale. Each device is an ordinary bsi device (`DIR/devices/NNNN`); the
//! fleet adds `DIR/fleet.json`, the list of devices with their enrollment identifiers.
//!
//! Work on a fleet is many single-device operations (each under that device's lock, journal
//! and history) on worker threads ([`run_each`]); `--shard K/N` takes every N-th device, so
//! that a fleet larger than one machine runs as N jobs of a scheduler. Devices are processed,
//! not held: the workers keep only each device's latency and failures.

pub(crate) mod init;
pub(crate) mod mdm;
pub(crate) mod status;
pub(crate) mod sync;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::platform::Platform;
use crate::progress::Progress;
use crate::{Error, Result};

pub(crate) use init::{FleetInitOptions, init, parse_spread};
pub(crate) use sync::{FleetSyncOptions, sync};

/// `fleet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FleetFile {
    /// The seed it was made from.
    pub seed: u64,
    /// Its devices.
    pub devices: Vec<FleetDevice>,
}

/// One device of a fleet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FleetDevice {
    /// Its number.
    pub index: u32,
    /// Its root, relative to the fleet directory.
    pub root: PathBuf,
    /// Its enrollment identifier.
    pub enrollment_id: String,
    /// Its platform.
    pub platform: Platform,
    /// Supervised.
    pub supervised: bool,
}

/// `--shard K/N`: the devices whose index is K modulo N (K from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shard {
    /// K.
    pub index: u32,
    /// N.
    pub count: u32,
}

impl Shard {
    /// Every device.
    pub(crate) const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `K/N`.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::usage(
                format!("--shard {text} is not K/N"),
                "give the shard and the number of shards, K from 0 to N-1: e.g. --shard 0/4 (a Kubernetes Indexed Job: --shard $JOB_COMPLETION_INDEX/N)",
            )
        };
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Does the shard take `device`?
    #[must_use]
    pub(crate) fn takes(self, device: &FleetDevice) -> bool {
        device.index % self.count == self.index
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// A device whose operation failed.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FleetFailure {
    /// Its root, relative to the fleet directory.
    pub device: PathBuf,
    /// Its enrollment identifier.
    pub enrollment_id: String,
    /// bsi's exit code for the error.
    pub exit_code: u8,
    /// The error.
    pub error: String,
}

/// How one run over a fleet went.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Tally {
    /// Devices the run took (the shard's).
    pub devices: usize,
    /// Operations that succeeded.
    pub ok: usize,
    /// Operations that failed.
    pub failed: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Devices per second.
    pub per_second: f64,
    /// Per-device latency.
    pub latency_ms: Latency,
    /// CPU seconds bsi used (user + system).
    pub cpu_seconds: f64,
    /// Every failure.
    pub failures: Vec<FleetFailure>,
}

impl Tally {
    /// The error `bsi fleet {command}` exits with when devices failed.
    #[must_use]
    pub(crate) fn error(&self, command: &'static str) -> Option<Error> {
        (self.failed > 0).then_some(Error::FleetFailures {
            command,
            failed: self.failed,
            devices: self.devices,
        })
    }

    /// The lines every fleet command prints about its run.
    pub(crate) fn human(&self, out: &mut crate::human::Text, what: &str) {
        let l = &self.latency_ms;
        out.line(format!(
            "latency: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; bsi CPU {:.2} s",
            l.p50, l.p90, l.p99, l.max, self.cpu_seconds
        ));
        for fail in &self.failures {
            out.line(format!(
                "{what} failed: {} ({}): {}",
                fail.device.display(),
                crate::human::clip(&fail.enrollment_id),
                fail.error
            ));
        }
    }
}

/// This process's CPU time (user + system), in seconds, from `/proc/self/stat`.
#[must_use]
pub(crate) fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    #[allow(clippy::cast_precision_loss)]
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    (ticks(11) + ticks(12)) / per_second
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Largest `fleet.json` bsi reads: 100,000 devices at about 200 bytes each.
const MAX_FLEET_FILE: u64 = 64 << 20;

/// Reads `fleet.json`: read without blocking and within a limit, and every device's root
/// relative and beneath the fleet directory (a root that is absolute, has `..`, or leads
/// elsewhere through a symlink would make a fleet command change a device outside the fleet).
pub(crate) fn load(dir: &Path) -> Result<FleetFile> {
    let path = dir.join("fleet.json");
    if !path.exists() {
        return Err(Error::usage(
            format!("{} is not a fleet (no fleet.json)", dir.display()),
            format!(
                "make one with `bsi fleet init --dir {} --count N`",
                dir.display()
            ),
        ));
    }
    let damaged = |reason: String| Error::FleetDamaged {
        reason,
        path: path.clone(),
    };
    let bytes = crate::input::read_named(&path, MAX_FLEET_FILE, "fleet file")
        .map_err(|e| damaged(crate::untrusted::clip(&e.to_string())))?;
    let fleet: FleetFile = serde_json::from_slice(&bytes)
        .map_err(|e| damaged(crate::untrusted::clip(&e.to_string())))?;
    let home = dir.canonicalize().ctx("reading", dir)?;
    for device in &fleet.devices {
        let plain = device
            .root
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        let inside = plain
            && dir
                .join(&device.root)
                .canonicalize()
                .map_or(true, |real| real.starts_with(&home) && real != home);
        if !(plain && inside) {
            return Err(damaged(format!(
                "device {} has the root {}, which is not a directory inside the fleet",
                device.index,
                crate::untrusted::clip(&device.root.display().to_string())
            )));
        }
    }
    Ok(fleet)
}

/// Runs `work` on every device of `fleet` that `shard` takes, on `workers` threads, and tallies
/// how it went.
pub(crate) fn run_each(
    fleet: &FleetFile,
    shard: Shard,
    workers: usize,
    progress: &dyn Progress,
    verb: &str,
    work: impl Fn(&FleetDevice) -> std::result::Result<(), Error> + Sync,
) -> Tally {
    let devices: Vec<&FleetDevice> = fleet.devices.iter().filter(|d| shard.takes(d)).collect();
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(devices.len()));
    let failures = Mutex::new(Vec::new());
    progress.begin_items(verb, devices.len() as u64);
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, 256) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(device) = devices.get(i) else {
                        break;
                    };
                    let began = Instant::now();
                    let result = work(device);
                    let ms = began.elapsed().as_secs_f64() * 1000.0;
                    if let Ok(mut l) = latencies.lock() {
                        l.push(ms);
                    }
                    if let Err(e) = result
                        && let Ok(mut f) = failures.lock()
                    {
                        f.push(FleetFailure {
                            device: device.root.clone(),
                            enrollment_id: device.enrollment_id.clone(),
                            exit_code: e.exit_code(),
                            error: e.to_string(),
                        });
                    }
                    progress.advance(1);
                }
            });
        }
    });
    progress.end();
    let seconds = start.elapsed().as_secs_f64();
    let mut latencies = latencies.into_inner().unwrap_or_default();
    latencies.sort_by(f64::total_cmp);
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by(|a, b| a.device.cmp(&b.device));
    let n = devices.len();
    #[allow(clippy::cast_precision_loss)]
    let per_second = if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    };
    Tally {
        devices: n,
        ok: n - failures.len(),
        failed: failures.len(),
        seconds,
        per_second,
        latency_ms: Latency {
            p50: percentile(&latencies, 0.50),
            p90: percentile(&latencies, 0.90),
            p99: percentile(&latencies, 0.99),
            max: latencies.last().copied().unwrap_or(0.0),
        },
        cpu_seconds: cpu_seconds() - cpu_before,
        failures,
    }
}

/// Where a fleet device's root is.
#[must_use]
pub(crate) fn root_of(dir: &Path, device: &FleetDevice) -> PathBuf {
    dir.join(&device.root)
}

/// How a fleet command runs an operation on one of its devices: the device's root, the
/// command's clock, and a wait for the device's lock long enough for another job's step.
pub(crate) fn env_of(
    dir: &Path,
    device: &FleetDevice,
    clock: crate::clock::Clock,
) -> crate::ops::Env {
    crate::ops::Env {
        root: root_of(dir, device),
        clock,
        wait: std::time::Duration::from_secs(30),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_fleet_once() {
        let devices: Vec<FleetDevice> = (0..10)
            .map(|index| FleetDevice {
                index,
                root: PathBuf::from(format!("devices/{index:04}")),
                enrollment_id: String::new(),
                platform: Platform::MacOs,
                supervised: true,
            })
            .collect();
        let mut seen = vec![0; 10];
        for k in 0..4 {
            let s = Shard::parse(&format!("{k}/4")).unwrap();
            for d in devices.iter().filter(|d| s.takes(d)) {
                seen[d.index as usize] += 1;
            }
        }
        assert_eq!(seen, vec![1; 10]);
        for bad in ["4/4", "1", "a/b", "0/0", "-1/4"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
