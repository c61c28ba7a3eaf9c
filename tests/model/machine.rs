//! The model and the real binary, driven by the same random command sequences with
//! `proptest-state-machine`: after every step the exit code, `status --json` (decoded into a
//! typed, test-only view that refuses unknown keys) and the bytes behind `System/Cryptexes/OS`
//! and `/App` must be what the model says.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

use crate::harness::{Device, Status, Tree, test_pub};
use crate::pool::{pool, targets};
use crate::rules::{Kind, Model, Platform, Src, Staged, Step, version_text};

pub(crate) struct Rules;

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        // A Mac laptop with Apple silicon, an Intel one, a desktop, an iPhone.
        (any::<bool>()).prop_map(|supervised| Kind {
            platform: Platform::Mac,
            intel: false,
            portable: true,
            supervised
        }),
        (any::<bool>()).prop_map(|supervised| Kind {
            platform: Platform::Mac,
            intel: true,
            portable: true,
            supervised
        }),
        (any::<bool>()).prop_map(|supervised| Kind {
            platform: Platform::Mac,
            intel: false,
            portable: false,
            supervised
        }),
        (any::<bool>()).prop_map(|supervised| Kind {
            platform: Platform::IPhone,
            intel: false,
            portable: true,
            supervised
        }),
    ]
}

impl ReferenceStateMachine for Rules {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        kind().prop_map(|k| Model::new(pool().bundles, k)).boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Step> {
        let n = pool().bundles.len();
        let t = targets();
        let tn = t.len();
        let t2 = t.clone();
        prop_oneof![
            8 => (0..n, any::<bool>(), prop::bool::weighted(0.1)).prop_map(|(bundle, restart, dry_run)| Step::Apply { bundle, restart, dry_run }),
            3 => Just(Step::Restart),
            2 => Just(Step::RelaunchSafari),
            2 => any::<bool>().prop_map(|restart| Step::Rollback { restart }),
            1 => (0..tn).prop_map(move |i| Step::Update(t[i].clone())),
            1 => (0..tn).prop_map(move |i| Step::Upgrade(t2[i].clone())),
            2 => (
                prop::option::of(prop::sample::select(vec![0u8, 5, 9, 10, 19, 20, 50, 100])),
                prop::option::of(any::<bool>())
            ).prop_map(|(battery, ac)| Step::Power { battery, ac }),
            1 => any::<bool>().prop_map(|automatic| Step::Settings { automatic }),
            1 => kind().prop_map(Step::Init),
        ]
        .boxed()
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        state.step(step);
        state
    }
}

/// The real device and the base content trees seen so far (bsi makes base content itself, so
/// the test learns it the first time the model says a cryptex holds the base's).
pub(crate) struct Real {
    device: Device,
    bases: BTreeMap<(String, String), Tree>,
}

fn init_flags(kind: Kind) -> Vec<&'static str> {
    let mut flags = Vec::new();
    if kind.platform == Platform::IPhone {
        flags.extend(["--platform", "iOS"]);
    }
    if kind.intel {
        flags.extend(["--chip", "intel"]);
    }
    if !kind.portable {
        flags.push("--desktop");
    }
    if kind.supervised {
        flags.push("--supervised");
    }
    flags
}

fn args(step: &Step) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    match step {
        Step::Apply {
            bundle,
            restart,
            dry_run,
        } => {
            let mut a = vec![
                "apply".to_owned(),
                pool().made[*bundle].path.display().to_string(),
            ];
            if *restart {
                a.push("--restart".to_owned());
            }
            if *dry_run {
                a.push("--dry-run".to_owned());
            }
            a
        }
        Step::Restart => s(&["restart"]),
        Step::RelaunchSafari => s(&["relaunch-safari"]),
        Step::Rollback { restart } => {
            if *restart {
                s(&["rollback", "--restart"])
            } else {
                s(&["rollback"])
            }
        }
        Step::Update(t) | Step::Upgrade(t) => vec![
            if matches!(step, Step::Update(_)) {
                "update"
            } else {
                "upgrade"
            }
            .to_owned(),
            "--version".to_owned(),
            version_text(t.version),
            "--build".to_owned(),
            t.build.0.to_owned(),
        ],
        Step::Power { battery, ac } => {
            let mut a = vec!["power".to_owned()];
            if let Some(b) = battery {
                a.extend(["--battery".to_owned(), b.to_string()]);
            }
            match ac {
                Some(true) => a.push("--ac".to_owned()),
                Some(false) => a.push("--no-ac".to_owned()),
                None => {}
            }
            a
        }
        Step::Settings { automatic } => s(&[
            "settings",
            "--automatic",
            if *automatic { "on" } else { "off" },
        ]),
        Step::Init(kind) => {
            let mut a = s(&["init", "--force", "--trust"]);
            a.push(test_pub().display().to_string());
            a.extend(init_flags(*kind).into_iter().map(str::to_owned));
            a
        }
    }
}

fn sources_of(m: &Model, s: crate::rules::Sources) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("App".to_owned(), m.src_label(s.app)),
        ("OS".to_owned(), m.src_label(s.os)),
    ])
}

#[track_caller]
fn check(real: &mut Real, m: &Model, context: &str) {
    let run = real.device.bsi(["status", "--json"]);
    run.ok();
    let s: Status = serde_json::from_slice(&run.out.stdout)
        .unwrap_or_else(|e| panic!("{context}: status --json does not decode: {e}"));
    let pool = pool();
    assert_eq!(s.schema_version, 1);
    assert_eq!(s.device.platform, m.kind.platform.name(), "{context}");
    assert_eq!(
        s.device.chip,
        if m.kind.intel {
            "intel"
        } else {
            "apple-silicon"
        },
        "{context}"
    );
    assert_eq!(s.device.portable, m.kind.portable, "{context}");
    assert_eq!(s.device.supervised, m.kind.supervised, "{context}");
    // The harness's first device is `TEST-DEVICE`; `init` without --enrollment-id makes a UUID.
    assert!(
        s.device.enrollment_id == "TEST-DEVICE"
            || (s.device.enrollment_id.len() == 36
                && s.device.enrollment_id.matches('-').count() == 4),
        "{context}: enrollment id {}",
        s.device.enrollment_id
    );
    assert_eq!(s.os.version, version_text(m.version), "{context}: os");
    assert_eq!(s.version, m.label(), "{context}: version");
    assert_eq!(s.operation, None, "{context}: nothing in flight");
    assert_eq!(s.recovery_pending, None, "{context}: nothing to recover");
    assert_eq!(s.os.build, m.build.0, "{context}: os build");
    match (m.active, &s.active) {
        (None, None) => {}
        (Some(i), Some(a)) => {
            let b = &pool.bundles[i];
            assert_eq!(a.version, b.label(), "{context}: active");
            assert_eq!(a.build, b.build.0, "{context}: active build");
            assert_eq!(
                a.extra,
                format!("({})", crate::rules::letter_text(b.letter))
            );
            let carried: Vec<String> = [("App", b.app), ("OS", b.os)]
                .iter()
                .filter(|(_, c)| *c)
                .map(|(n, _)| (*n).to_owned())
                .collect();
            assert_eq!(a.cryptexes, carried, "{context}: active cryptexes");
            assert_eq!(a.sources, sources_of(m, m.sources), "{context}: sources");
        }
        (want, got) => panic!("{context}: active is {got:?}, the model says {want:?}"),
    }
    match (m.staged, &s.staged) {
        (None, None) => {}
        (Some(Staged::Install(i, src)), Some(st)) => {
            let b = &pool.bundles[i];
            assert_eq!(st.action, "install", "{context}");
            assert_eq!(st.version, b.label(), "{context}: staged");
            assert_eq!(st.build, b.build.0, "{context}: staged build");
            assert_eq!(
                st.extra,
                format!("({})", crate::rules::letter_text(b.letter))
            );
            assert_eq!(st.sources, sources_of(m, src), "{context}: staged sources");
        }
        (Some(Staged::Remove), Some(st)) => {
            assert_eq!(st.action, "remove", "{context}");
            assert_eq!(Some(&st.version), s.active.as_ref().map(|a| &a.version));
            assert_eq!(
                st.sources,
                sources_of(
                    m,
                    crate::rules::Sources {
                        os: Src::Base,
                        app: Src::Base
                    }
                ),
                "{context}: staged removal sources"
            );
        }
        (want, got) => panic!("{context}: staged is {got:?}, the model says {want:?}"),
    }
    assert_eq!(s.restart_required, m.staged.is_some(), "{context}: restart");
    match (m.safari(), &s.safari) {
        (None, None) => {}
        (Some((version, relaunched)), Some(sf)) => {
            assert_eq!(sf.version, version, "{context}: safari");
            assert_eq!(sf.relaunched, relaunched, "{context}: safari relaunched");
        }
        (want, got) => panic!("{context}: safari is {got:?}, the model says {want:?}"),
    }
    assert_eq!(
        s.rollback.available,
        m.rollback_available(),
        "{context}: rollback"
    );
    assert_eq!(s.rollback.reason.is_none(), s.rollback.available);
    assert_eq!(s.included, m.included, "{context}: included");
    assert_eq!(s.power.ok, m.power_gate_ok(), "{context}: power gate");
    assert_eq!(s.power.on_ac, m.ac || !m.kind.portable, "{context}: ac");
    assert_eq!(s.power.battery_percent, m.battery, "{context}: battery");
    let _ = (&s.power.minimum_percent, &s.power.reason);
    assert_eq!(
        s.automatic_install.enabled, m.automatic,
        "{context}: automatic"
    );
    assert_eq!(s.automatic_install.source, "user");
    assert_eq!(s.automatic_install.declaration, None);
    let active = m.active.map(|i| &pool.bundles[i]);
    let ddm = |k: &str| s.ddm.get(k).cloned();
    assert_eq!(
        ddm("device.operating-system.version"),
        Some(version_text(m.version))
    );
    assert_eq!(
        ddm("device.operating-system.build-version").as_deref(),
        Some(m.build.0),
        "{context}: ddm build stays the base build"
    );
    assert_eq!(
        ddm("device.operating-system.supplemental.build-version").as_deref(),
        Some(active.map_or(m.build.0, |b| b.build.0)),
        "{context}: ddm supplemental build"
    );
    assert_eq!(
        ddm("device.operating-system.supplemental.extra-version"),
        Some(active.map_or_else(String::new, |b| {
            format!("({})", crate::rules::letter_text(b.letter))
        })),
        "{context}: ddm extra version, never null"
    );
    // A staged install waits for the restart the user is prompted for; nothing else prompts.
    match (m.staged, &s.prompt) {
        (Some(Staged::Install(i, _)), Some(p)) => assert_eq!(
            p,
            &format!(
                "restart to finish installing {}: `bsi restart`",
                pool.bundles[i].label()
            ),
            "{context}: prompt"
        ),
        (Some(Staged::Install(..)), None) => panic!("{context}: no prompt for a staged install"),
        (_, None) => {}
        (_, Some(p)) => panic!("{context}: prompt {p:?} with no staged install"),
    }
    let _ = &s.notes;
    // The bytes behind System/Cryptexes.
    for (cryptex, src) in [("OS", m.sources.os), ("App", m.sources.app)] {
        let live = Tree::of(&real.device.path(&format!("System/Cryptexes/{cryptex}/")));
        let want = match src {
            Src::Bundle(i) => {
                let made = &pool.made[i];
                Tree(if cryptex == "OS" {
                    made.os.clone()
                } else {
                    made.app.clone()
                })
            }
            Src::Base => {
                let key = (
                    format!("{}-{}-{}", m.kind.platform.name(), m.kind.intel, m.build.0),
                    cryptex.to_owned(),
                );
                real.bases
                    .entry(key)
                    .or_insert_with(|| live.clone())
                    .clone()
            }
        };
        if live != want {
            live.assert_same(&want);
        }
    }
}

impl StateMachineTest for Real {
    type SystemUnderTest = Real;
    type Reference = Rules;

    fn init_test(m: &Model) -> Real {
        let device = Device::with(&init_flags(m.kind));
        let mut real = Real {
            device,
            bases: BTreeMap::new(),
        };
        check(&mut real, m, "after init");
        real
    }

    fn apply(mut real: Real, m: &Model, step: Step) -> Real {
        let run = real.device.bsi(args(&step));
        let context = format!("after {step:?}");
        assert_eq!(
            run.code(),
            m.exit,
            "{context}: exit code\nstdout:\n{}\nstderr:\n{}",
            run.stdout(),
            run.stderr()
        );
        assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
        if m.exit != 0 {
            assert!(run.stderr().starts_with("error: "), "{}", run.stderr());
        }
        check(&mut real, m, &context);
        real
    }
}

/// Runs `steps` from a device of `kind` through the model and the binary: a named regression.
pub(crate) fn replay(kind: Kind, steps: &[Step]) {
    let mut m = Model::new(pool().bundles, kind);
    let mut real = Real::init_test(&m);
    for step in steps {
        m.step(step);
        real = <Real as StateMachineTest>::apply(real, &m, step.clone());
    }
}
