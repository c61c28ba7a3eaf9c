//! `bsi fleet init`: N devices made reproducibly from a seed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{FleetDevice, FleetFile};
use crate::clock::Clock;
use crate::error::IoContext;
use crate::human::{Human, Text};
use crate::lifecycle::init::{InitOptions, init as init_device};
use crate::platform::{Chip, Platform};
use crate::progress::Progress;
use crate::version::{Build, OsVersion};
use crate::{Error, Result};

/// How `fleet init` is asked to run.
#[derive(Clone, Debug)]
pub(crate) struct FleetInitOptions {
    /// The fleet's directory.
    pub dir: PathBuf,
    /// How many devices.
    pub count: u32,
    /// One platform for all, or a mix.
    pub platform: Option<Platform>,
    /// Battery charges, low and high percent.
    pub battery: (u8, u8),
    /// Percent supervised.
    pub supervised_percent: u8,
    /// The seed.
    pub seed: u64,
    /// Keys every device trusts.
    pub trust: Vec<PathBuf>,
    /// Devices made at once.
    pub concurrency: usize,
}

/// What `fleet init` made.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FleetInitOutcome {
    /// The fleet's directory.
    pub dir: PathBuf,
    /// Devices made.
    pub count: usize,
    /// Devices by platform.
    pub platforms: std::collections::BTreeMap<String, usize>,
    /// Seconds it took.
    pub seconds: f64,
}

/// A small, seedable generator (`SplitMix64`): the fleet's variety, reproducible from the seed.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next().to_be_bytes());
        bytes[8..].copy_from_slice(&self.next().to_be_bytes());
        crate::lifecycle::init::uuid_text(bytes)
    }
}

/// Parses `LOW-HIGH` percent.
pub(crate) fn parse_spread(text: &str) -> Result<(u8, u8)> {
    let bad = || {
        Error::usage(
            format!("--battery-spread {text} is not LOW-HIGH percent"),
            "give two percentages, the lower first, at most 100: e.g. --battery-spread 5-100",
        )
    };
    let (lo, hi) = text.split_once('-').ok_or_else(bad)?;
    let lo: u8 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u8 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi || hi > 100 {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// The options of device `index` of a fleet.
fn device_options(opts: &FleetInitOptions, index: u32) -> Result<InitOptions> {
    let mut mix = Mix(opts.seed ^ (u64::from(index) << 20) ^ 0x5EED);
    let platform = opts.platform.unwrap_or(match mix.below(100) {
        0..60 => Platform::MacOs,
        60..85 => Platform::Ios,
        _ => Platform::IpadOs,
    });
    let mac = platform == Platform::MacOs;
    let chip = if mac && mix.below(5) == 0 {
        Chip::Intel
    } else {
        Chip::AppleSilicon
    };
    let portable = !mac || mix.below(5) != 0;
    let (lo, hi) = opts.battery;
    let battery = lo + u8::try_from(mix.below(u64::from(hi - lo) + 1)).unwrap_or(0);
    let on_ac = !portable || mix.below(2) == 0;
    let supervised = mix.below(100) < u64::from(opts.supervised_percent);
    let (version, build) = (
        crate::lifecycle::init::DEFAULT_VERSION,
        crate::lifecycle::init::default_build(platform),
    );
    Ok(InitOptions {
        platform,
        version: version.parse::<OsVersion>()?,
        build: Build::parse_base(build)?,
        chip,
        portable,
        battery: if portable { battery } else { 100 },
        on_ac,
        supervised,
        trust: opts.trust.clone(),
        force: false,
        dry_run: false,
        wait: Duration::from_secs(5),
        enrollment_id: Some(mix.uuid()),
    })
}

fn device_dir(index: u32) -> PathBuf {
    Path::new("devices").join(format!("{index:04}"))
}

/// `bsi fleet init`.
pub(crate) fn init(
    opts: &FleetInitOptions,
    clock: &Clock,
    progress: &dyn Progress,
) -> Result<FleetInitOutcome> {
    let start = Instant::now();
    let devices = opts.dir.join("devices");
    let partial = std::fs::read_dir(&devices).is_ok_and(|mut d| d.next().is_some());
    if opts.dir.join("fleet.json").exists() || partial {
        return Err(Error::usage(
            format!(
                "{} already holds a fleet{}",
                opts.dir.display(),
                if partial && !opts.dir.join("fleet.json").exists() {
                    " (an unfinished one: it has devices but no fleet.json)"
                } else {
                    ""
                }
            ),
            "choose a new directory with --dir, or remove that one",
        ));
    }
    std::fs::create_dir_all(opts.dir.join("devices")).ctx("creating", opts.dir.join("devices"))?;
    let planned: Vec<(u32, InitOptions)> = (0..opts.count)
        .map(|i| device_options(opts, i).map(|o| (i, o)))
        .collect::<Result<_>>()?;
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    progress.begin_items("making", u64::from(opts.count));
    std::thread::scope(|scope| {
        for _ in 0..opts.concurrency.clamp(1, 64) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((index, o)) = planned.get(i) else {
                        break;
                    };
                    if failure.lock().map_or(true, |f| f.is_some()) {
                        break;
                    }
                    if let Err(e) = init_device(&opts.dir.join(device_dir(*index)), o, clock) {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                    progress.advance(1);
                }
            });
        }
    });
    progress.end();
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let devices: Vec<FleetDevice> = planned
        .iter()
        .map(|(index, o)| FleetDevice {
            index: *index,
            root: device_dir(*index),
            enrollment_id: o.enrollment_id.clone().unwrap_or_default(),
            platform: o.platform,
            supervised: o.supervised,
        })
        .collect();
    let mut platforms = std::collections::BTreeMap::new();
    for d in &devices {
        *platforms.entry(d.platform.to_string()).or_insert(0) += 1;
    }
    let file = FleetFile {
        seed: opts.seed,
        devices,
    };
    let text = serde_json::to_vec_pretty(&file)
        .map_err(|e| Error::io("writing", "fleet.json", std::io::Error::other(e)))?;
    let path = opts.dir.join("fleet.json");
    std::fs::write(&path, text).ctx("writing", &path)?;
    Ok(FleetInitOutcome {
        dir: opts.dir.clone(),
        count: file.devices.len(),
        platforms,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl Human for FleetInitOutcome {
    fn human(&self, out: &mut Text, _: u8) {
        let mix: Vec<String> = self
            .platforms
            .iter()
            .map(|(p, n)| format!("{n} {p}"))
            .collect();
        out.line(format!(
            "made {} devices in {} ({}) in {:.1} s",
            self.count,
            self.dir.display(),
            mix.join(", "),
            self.seconds
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_fleet() {
        let opts = FleetInitOptions {
            dir: PathBuf::new(),
            count: 50,
            platform: None,
            battery: (5, 100),
            supervised_percent: 80,
            seed: 7,
            trust: Vec::new(),
            concurrency: 1,
        };
        let a: Vec<_> = (0..50).map(|i| device_options(&opts, i).unwrap()).collect();
        let b: Vec<_> = (0..50).map(|i| device_options(&opts, i).unwrap()).collect();
        assert_eq!(
            a.iter()
                .map(|o| (o.platform, o.battery, o.enrollment_id.clone()))
                .collect::<Vec<_>>(),
            b.iter()
                .map(|o| (o.platform, o.battery, o.enrollment_id.clone()))
                .collect::<Vec<_>>()
        );
        let platforms: std::collections::BTreeSet<_> =
            a.iter().map(|o| o.platform.name()).collect();
        assert_eq!(platforms.len(), 3, "a mix of platforms");
        assert!(a.iter().all(|o| (5..=100).contains(&o.battery)));
        let ids: std::collections::BTreeSet<_> =
            a.iter().map(|o| o.enrollment_id.clone()).collect();
        assert_eq!(ids.len(), 50);
        assert_eq!(parse_spread("10-20").unwrap(), (10, 20));
        assert!(parse_spread("20-10").is_err() && parse_spread("x").is_err());
    }
}
