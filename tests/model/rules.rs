//! The reference model: Apple's rules for Background Security Improvements as DESIGN.md and the
//! seed state them, as a small pure state machine. It shares no code with bsi: versions are
//! tuples, builds are strings compared by their parts, and every rule is written out here from the
//! contract, not read from `src/`.
//!
//! - A response belongs to a base (`ProductVersion` + `PrerequisiteBuild`); a later minor version
//!   includes every response of an earlier one of the same major release; a major upgrade leaves
//!   the old line behind.
//! - Responses are cumulative within a line, and per cryptex: a response without OS (or App)
//!   content keeps the OS (or App) content of the response it replaces.
//! - OS content waits for a restart; App-only content is active at once.
//! - A Mac laptop needs power or 10 % (Apple silicon) / 20 % (Intel) battery to apply.
//! - Nothing to do (already active, staged, older, included; nothing to remove) is exit 0.

use std::cmp::Ordering;

/// An OS version, `major.minor.patch`.
pub(crate) type Version = (u32, u32, u32);

pub(crate) fn version_text(v: Version) -> String {
    if v.2 == 0 {
        format!("{}.{}", v.0, v.1)
    } else {
        format!("{}.{}.{}", v.0, v.1, v.2)
    }
}

/// A build: major digits, train letter, number, optional trailing letter. Ordered by parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Build(pub &'static str);

impl Build {
    fn parts(&self) -> (u32, char, u64, Option<char>) {
        let s = self.0;
        let major_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let major = s[..major_len].parse().unwrap();
        let train = s[major_len..].chars().next().unwrap();
        let rest = &s[major_len + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number = rest[..digits].parse().unwrap();
        let letter = rest[digits..].chars().next();
        (major, train, number, letter)
    }
    pub(crate) fn major(&self) -> u32 {
        self.parts().0
    }
    pub(crate) fn has_letter(&self) -> bool {
        self.parts().3.is_some()
    }
}

impl PartialOrd for Build {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Build {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts().cmp(&other.parts())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Platform {
    Mac,
    IPhone,
}

impl Platform {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Platform::Mac => "macOS",
            Platform::IPhone => "iOS",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kind {
    pub(crate) platform: Platform,
    pub(crate) intel: bool,
    pub(crate) portable: bool,
    pub(crate) supervised: bool,
}

/// A response bundle in the pool, as the model sees it.
#[derive(Clone, Debug)]
pub(crate) struct Bundle {
    pub(crate) name: &'static str,
    pub(crate) platform: Platform,
    pub(crate) version: Version,
    pub(crate) prerequisite: Build,
    /// The public letter as an index: 1 is `(a)`.
    pub(crate) letter: u32,
    pub(crate) build: Build,
    pub(crate) os: bool,
    pub(crate) app: bool,
    /// Its manifest was changed after signing.
    pub(crate) tampered: bool,
}

impl Bundle {
    pub(crate) fn label(&self) -> String {
        format!(
            "{} ({})",
            version_text(self.version),
            letter_text(self.letter)
        )
    }
}

pub(crate) fn letter_text(i: u32) -> String {
    char::from(b'a' + u8::try_from(i - 1).unwrap()).to_string()
}

/// Where a cryptex's content comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Src {
    Base,
    Bundle(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sources {
    pub(crate) os: Src,
    pub(crate) app: Src,
}

const BASE_SOURCES: Sources = Sources {
    os: Src::Base,
    app: Src::Base,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Staged {
    Install(usize, Sources),
    Remove,
}

/// A base a device can move to with `update` or `upgrade`.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) version: Version,
    pub(crate) build: Build,
}

#[derive(Clone, Debug)]
pub(crate) enum Step {
    Apply {
        bundle: usize,
        restart: bool,
        dry_run: bool,
    },
    Restart,
    RelaunchSafari,
    Rollback {
        restart: bool,
    },
    Update(Target),
    Upgrade(Target),
    Power {
        battery: Option<u8>,
        ac: Option<bool>,
    },
    Settings {
        automatic: bool,
    },
    Init(Kind),
}

#[derive(Clone, Debug)]
pub(crate) struct Model {
    pub(crate) pool: &'static [Bundle],
    pub(crate) kind: Kind,
    pub(crate) version: Version,
    pub(crate) build: Build,
    pub(crate) active: Option<usize>,
    pub(crate) sources: Sources,
    pub(crate) staged: Option<Staged>,
    pub(crate) relaunched: bool,
    pub(crate) included: Vec<String>,
    /// The newest letter installed on the current base (for what a minor update includes).
    pub(crate) seen: Option<u32>,
    pub(crate) battery: Option<u8>,
    pub(crate) ac: bool,
    pub(crate) automatic: bool,
    /// The exit code the last step must have had.
    pub(crate) exit: i32,
}

impl Model {
    pub(crate) fn new(pool: &'static [Bundle], kind: Kind) -> Self {
        let build = match kind.platform {
            Platform::Mac => Build("25D2128"),
            Platform::IPhone => Build("23D8133"),
        };
        Model {
            pool,
            kind,
            version: (26, 3, 1),
            build,
            active: None,
            sources: BASE_SOURCES,
            staged: None,
            relaunched: false,
            included: Vec::new(),
            seen: None,
            battery: kind.portable.then_some(100),
            ac: true,
            automatic: true,
            exit: 0,
        }
    }

    fn bundle(&self, i: usize) -> &Bundle {
        &self.pool[i]
    }

    pub(crate) fn label(&self) -> String {
        match self.active {
            Some(i) => self.bundle(i).label(),
            None => version_text(self.version),
        }
    }

    pub(crate) fn src_label(&self, s: Src) -> String {
        match s {
            Src::Base => version_text(self.version),
            Src::Bundle(i) => self.bundle(i).label(),
        }
    }

    fn power_ok(&self) -> bool {
        match (self.kind.platform, self.kind.portable) {
            (Platform::Mac, true) => {
                let minimum = if self.kind.intel { 20 } else { 10 };
                self.ac || self.battery.unwrap_or(0) >= minimum
            }
            _ => true,
        }
    }

    /// The responses the device holds, with their bundles.
    fn held(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut add = |i: usize| {
            if !out.contains(&i) {
                out.push(i);
            }
        };
        if let Some(a) = self.active {
            add(a);
        }
        for src in [self.sources.os, self.sources.app] {
            if let Src::Bundle(i) = src {
                add(i);
            }
        }
        if let Some(Staged::Install(i, s)) = self.staged {
            add(i);
            for src in [s.os, s.app] {
                if let Src::Bundle(j) = src {
                    add(j);
                }
            }
        }
        out
    }

    /// Applies `step`; sets `exit` to the code bsi must exit with.
    pub(crate) fn step(&mut self, step: &Step) {
        self.exit = match step {
            Step::Apply {
                bundle,
                restart,
                dry_run,
            } => self.apply(*bundle, *restart, *dry_run),
            Step::Restart => {
                self.restart();
                0
            }
            Step::RelaunchSafari if self.kind.platform != Platform::Mac => 5,
            Step::RelaunchSafari => {
                if self.staged.is_some() {
                    self.relaunched = true;
                }
                0
            }
            Step::Rollback { restart } => {
                match (self.staged, self.active) {
                    (Some(Staged::Install(..)), _) => {
                        self.staged = None;
                        self.relaunched = false;
                    }
                    (Some(Staged::Remove), Some(_)) if *restart => self.restart(),
                    (None, Some(_)) => {
                        self.staged = Some(Staged::Remove);
                        self.relaunched = false;
                        if *restart {
                            self.restart();
                        }
                    }
                    _ => {}
                }
                0
            }
            Step::Update(t) => self.move_base(t, false),
            Step::Upgrade(t) => self.move_base(t, true),
            Step::Power { battery, ac } => {
                if !self.kind.portable && (battery.is_some() || *ac == Some(false)) {
                    2
                } else {
                    if let Some(b) = battery {
                        self.battery = Some(*b);
                    }
                    if let Some(ac) = ac {
                        self.ac = *ac;
                    }
                    0
                }
            }
            Step::Settings { automatic } => {
                self.automatic = *automatic;
                0
            }
            Step::Init(kind) => {
                *self = Model::new(self.pool, *kind);
                0
            }
        };
    }

    fn restart(&mut self) {
        match self.staged.take() {
            Some(Staged::Install(i, s)) => {
                self.active = Some(i);
                self.sources = s;
            }
            Some(Staged::Remove) => {
                self.active = None;
                self.sources = BASE_SOURCES;
            }
            None => {}
        }
        self.relaunched = false;
    }

    fn apply(&mut self, i: usize, restart: bool, dry_run: bool) -> i32 {
        let b = self.bundle(i).clone();
        // 1. The signature over the manifest, then the manifest.
        if b.tampered {
            return 6;
        }
        // 2. The platform.
        if b.platform != self.kind.platform {
            return 5;
        }
        // 3. The base.
        if (b.version, &b.prerequisite) != (self.version, &self.build) {
            let included = b.version < self.version && b.version.0 == self.version.0;
            return if included { 0 } else { 5 };
        }
        // 4. A build that contradicts a response the device holds.
        for h in self.held() {
            let o = self.bundle(h);
            let contradicts = if o.letter == b.letter {
                o.build != b.build
            } else {
                o.build == b.build || (o.letter < b.letter) != (o.build < b.build)
            };
            if contradicts {
                return 6;
            }
        }
        // 5. The order: what is active or staged includes older letters.
        if let Some(Staged::Install(s, _)) = self.staged
            && b.letter <= self.bundle(s).letter
        {
            return 0;
        }
        if let Some(a) = self.active
            && b.letter <= self.bundle(a).letter
        {
            return 0;
        }
        // 6. The power gate.
        if !self.power_ok() {
            return 3;
        }
        if dry_run {
            return 0;
        }
        self.seen = Some(self.seen.map_or(b.letter, |s| s.max(b.letter)));
        self.relaunched = false;
        if b.os {
            let replaced = match self.staged {
                Some(Staged::Install(_, s)) => s,
                _ => self.sources,
            };
            let sources = Sources {
                os: Src::Bundle(i),
                app: if b.app { Src::Bundle(i) } else { replaced.app },
            };
            self.staged = Some(Staged::Install(i, sources));
            if restart {
                self.restart();
            }
        } else {
            self.active = Some(i);
            self.sources = Sources {
                os: self.sources.os,
                app: Src::Bundle(i),
            };
            self.staged = None;
        }
        0
    }

    fn move_base(&mut self, t: &Target, major: bool) -> i32 {
        // A response's build is no base build: a usage error, whatever the versions.
        if t.build.has_letter() {
            return 2;
        }
        if t.version == self.version && t.build == self.build {
            return 0;
        }
        // The kind of move, from the versions.
        let kind_ok = match t.version.cmp(&self.version) {
            Ordering::Less | Ordering::Equal => return 5,
            Ordering::Greater => (t.version.0 > self.version.0) == major,
        };
        if !kind_ok {
            return 5;
        }
        // The build must follow the current one.
        let follows = if major {
            t.build.major() > self.build.major()
        } else {
            t.build.major() == self.build.major() && t.build > self.build
        };
        if !follows {
            return 2;
        }
        let old = self.version;
        self.included = match (major, self.seen) {
            (false, Some(n)) => (1..=n)
                .map(|l| format!("{} ({})", version_text(old), letter_text(l)))
                .collect(),
            _ => Vec::new(),
        };
        self.version = t.version;
        self.build = t.build.clone();
        self.active = None;
        self.staged = None;
        self.sources = BASE_SOURCES;
        self.relaunched = false;
        self.seen = None;
        0
    }

    /// What `status --json` must say about Safari: (version, relaunched), Macs only.
    pub(crate) fn safari(&self) -> Option<(String, bool)> {
        if self.kind.platform != Platform::Mac {
            return None;
        }
        Some(match (self.relaunched, self.staged) {
            (true, Some(Staged::Install(i, _))) => (self.bundle(i).label(), true),
            (true, _) => (version_text(self.version), true),
            (false, _) => (self.label(), false),
        })
    }

    /// Whether `bsi rollback` would remove something now.
    pub(crate) fn rollback_available(&self) -> bool {
        matches!(
            (self.staged, self.active),
            (Some(Staged::Install(..)), _) | (None, Some(_))
        )
    }

    pub(crate) fn power_gate_ok(&self) -> bool {
        self.power_ok()
    }
}
