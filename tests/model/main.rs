//! The model-based test of the lifecycle (issue 10): a reference model of Apple's rules
//! (`rules`), written from DESIGN.md and the seed and sharing no code with `src/`, and the real
//! binary are driven by the same random command sequences (`machine`), and must agree after
//! every step. Shrunk failures are kept below as named regression tests.
//!
//! CI runs 256 sequences of up to 24 steps. A long run:
//! `PROPTEST_CASES=10000 PROPTEST_RNG_SEED=20261130 cargo test --release --all-features --test model`
//! (docs/reliability.md has the result).

// A scenario test walks one device through one story, top to bottom; functions in src/ stay
// under clippy's 100 lines, scenarios may run longer.
#![allow(
    clippy::too_many_lines,
    clippy::print_stderr,
    clippy::too_many_arguments,
    clippy::fn_params_excessive_bools,
    clippy::many_single_char_names,
    clippy::format_push_string,
    clippy::format_collect,
    dead_code
)]

#[path = "../integration/harness.rs"]
mod harness;
mod machine;
#[path = "../common/outputs.rs"]
mod outputs;
mod pool;
mod rules;
#[path = "../common/status_view.rs"]
mod status_view;

use proptest::test_runner::Config;
use proptest_state_machine::prop_state_machine;

use machine::{Real, replay};
use rules::{Build, Kind, Platform, Step, Target};

/// Sequences and steps: `PROPTEST_CASES` overrides the 256 sequences CI runs.
fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 256;
    }
    config.failure_persistence = None;
    config.max_shrink_iters = 2048;
    config
}

prop_state_machine! {
    #![proptest_config(config())]

    #[test]
    fn the_binary_follows_the_model(sequential 1..=24 => Real);
}

const MAC: Kind = Kind {
    platform: Platform::Mac,
    intel: false,
    portable: true,
    supervised: false,
};

fn apply(bundle: &str, restart: bool) -> Step {
    let i = pool::BUNDLES.iter().position(|b| b.name == bundle).unwrap();
    Step::Apply {
        bundle: i,
        restart,
        dry_run: false,
    }
}

#[test]
fn regression_app_only_over_staged_os_content_takes_the_active_os() {
    replay(
        MAC,
        &[
            apply("m-a", true),
            apply("m-c", false),
            apply("m-d-app", false),
            Step::Restart,
        ],
    );
}

#[test]
fn regression_os_only_over_an_app_only_response_keeps_its_app() {
    replay(
        MAC,
        &[
            apply("m-d-app", false),
            apply("m-e-clash", false),
            Step::RelaunchSafari,
            Step::Rollback { restart: false },
            apply("m-c", true),
        ],
    );
}

#[test]
fn regression_update_after_a_removal_includes_what_was_seen() {
    replay(
        MAC,
        &[
            apply("m-c", true),
            Step::Rollback { restart: true },
            Step::Update(Target {
                version: (26, 4, 0),
                build: Build("25E100"),
            }),
            apply("m-a", false),
            apply("m-26.4-b", true),
            Step::Upgrade(Target {
                version: (27, 0, 0),
                build: Build("26A100"),
            }),
            apply("m-26.4-b", false),
        ],
    );
}
