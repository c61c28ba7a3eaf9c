//! The arguments of `bsi key`, `bsi trust` and `bsi bundle`: signing keys, the keys a device
//! trusts, and making, signing, packing and inspecting bundles.

// The doc comments here are help text for people, not rustdoc: no Markdown backticks in them.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};

use super::values::PlatformArg;

/// `bsi key`.
#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Write a new Ed25519 private key (mode 0600) to PATH and its public half to PATH.pub.
    #[command(after_help = "Example:\n  bsi key generate --out signing.key")]
    Generate {
        /// Where to write the private key.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

/// `bsi trust`.
#[derive(Debug, Subcommand)]
pub(crate) enum TrustCommand {
    /// Trust a public key (the .pub file `bsi key generate` writes).
    Add {
        /// The public key file.
        #[arg(value_name = "KEY.pub")]
        key: PathBuf,
        /// Show what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List trusted keys with their fingerprints.
    List,
    /// Stop trusting a key, by fingerprint prefix (8+ hex digits) or key file.
    Remove {
        /// Fingerprint prefix or .pub file.
        #[arg(value_name = "FINGERPRINT|KEY.pub")]
        key: String,
        /// Show what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `bsi bundle`.
#[derive(Debug, Subcommand)]
pub(crate) enum BundleCommand {
    /// Make a bundle directory from an OS tree and/or an App tree.
    #[command(
        after_help = "Example:\n  bsi bundle create --product macOS --version 26.3.1 --prerequisite 25D2128 \\\n    --extra \"(a)\" --build 25D771280a --os os-tree/ --app app-tree/ --out macos-26.3.1-a.bsi"
    )]
    Create(CreateArgs),
    /// Sign a bundle directory's manifest (writes Info.plist.sig).
    Sign {
        /// The bundle directory.
        #[arg(value_name = "BUNDLE")]
        bundle: PathBuf,
        /// The Ed25519 private key.
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
    /// Pack a bundle directory into the single-file (tar) form.
    Pack {
        /// The bundle directory.
        #[arg(value_name = "BUNDLE")]
        bundle: PathBuf,
        /// The tar file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Show a bundle's manifest and whether its signature and every digest hold.
    #[command(
        after_help = "The signature is checked against --key, else against the trusted keys of the device\n(--root). Exit 6 when any check fails."
    )]
    Inspect {
        /// The bundle, either form.
        #[arg(value_name = "BUNDLE")]
        bundle: PathBuf,
        /// Check the signature against this public key instead of the device's trust.
        #[arg(long, value_name = "KEY.pub")]
        key: Option<PathBuf>,
    },
}

/// `bsi bundle create`.
#[derive(Debug, ClapArgs)]
pub(crate) struct CreateArgs {
    /// `ProductName`.
    #[arg(long, value_enum, ignore_case = true)]
    pub product: PlatformArg,
    /// `ProductVersion`: the base OS version.
    #[arg(long, value_name = "VERSION")]
    pub version: String,
    /// `PrerequisiteBuild`: the base build.
    #[arg(long, value_name = "BUILD")]
    pub prerequisite: String,
    /// `ProductVersionExtra`, e.g. "(a)".
    #[arg(long, value_name = "EXTRA")]
    pub extra: String,
    /// `ProductBuildVersion`: the supplemental build, e.g. 25D771280a.
    #[arg(long, value_name = "BUILD")]
    pub build: String,
    /// Directory holding the OS cryptex tree.
    #[arg(long, value_name = "DIR")]
    pub os: Option<PathBuf>,
    /// Directory holding the App cryptex tree (Safari and associated processes).
    #[arg(long, value_name = "DIR")]
    pub app: Option<PathBuf>,
    /// Description.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// `PostingDate` (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub posting_date: Option<String>,
    /// `SupportedDevices` entry (repeatable).
    #[arg(long = "supported-device", value_name = "MODEL")]
    pub supported_devices: Vec<String>,
    /// The bundle directory to write.
    #[arg(long, value_name = "NAME.bsi")]
    pub out: PathBuf,
    /// Replace an existing bundle.
    #[arg(long)]
    pub force: bool,
}
