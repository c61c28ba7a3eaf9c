//! The device's trusted keys (`private/var/db/bsi/trust/<fingerprint>.pub`): `bsi trust add`,
//! `list` and `remove`, and loading them to check a bundle's signature.

use std::path::{Path, PathBuf};

use super::keys::{self, PublicKey};
use crate::device::Root;
use crate::device::layout::TRUST;
use crate::error::IoContext;
use crate::{Error, Result};

pub use keys::read_public_key;

/// Shortest fingerprint prefix `trust remove` accepts.
const MIN_PREFIX: usize = 8;

/// A key the device trusts.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrustedKey {
    /// Hex SHA-256 of the raw public key.
    pub fingerprint: String,
    /// The file under the device root.
    pub file: PathBuf,
}

fn key_path(fingerprint: &str) -> PathBuf {
    Path::new(TRUST).join(format!("{fingerprint}.pub"))
}

/// Adds `key` to the device's trust. Returns false if it was already trusted.
pub fn install(root: &Root, key: &PublicKey) -> Result<bool> {
    let rel = key_path(&key.fingerprint);
    if root.exists_nofollow(&rel).ctx("reading", root.show(&rel))? {
        return Ok(false);
    }
    root.dir()
        .create_dir_all(TRUST)
        .ctx("creating", root.show(TRUST))?;
    root.write_atomic(&rel, key.to_pem().as_bytes(), 0o644)
        .ctx("writing", root.show(&rel))?;
    Ok(true)
}

/// Every trusted key, by fingerprint.
pub fn load(root: &Root) -> Result<Vec<PublicKey>> {
    let mut out = Vec::new();
    let entries = match root.dir().read_dir(TRUST) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("listing", root.show(TRUST), e)),
    };
    for entry in entries {
        let name = entry.ctx("listing", root.show(TRUST))?.file_name();
        let name = name.to_string_lossy();
        if !name.ends_with(".pub") {
            continue;
        }
        let rel = Path::new(TRUST).join(name.as_ref());
        let bytes = root.read_small(&rel).ctx("reading", root.show(&rel))?;
        let text = String::from_utf8_lossy(&bytes);
        let key = keys::parse_public_key(&text, &root.show(&rel)).map_err(|e| {
            Error::damaged(format!("trusted key {}: {e}", root.show(&rel).display()))
        })?;
        out.push(key);
    }
    out.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    Ok(out)
}

/// The trusted keys with their files.
pub fn list(root: &Root) -> Result<Vec<TrustedKey>> {
    Ok(load(root)?
        .into_iter()
        .map(|k| TrustedKey {
            file: root.show(key_path(&k.fingerprint)),
            fingerprint: k.fingerprint,
        })
        .collect())
}

/// Stops trusting the key whose fingerprint starts with `prefix` (at least 8 hex digits, or
/// the path of the `.pub` file). Returns the full fingerprint.
pub fn remove(root: &Root, which: &str) -> Result<String> {
    let wanted = if Path::new(which).exists() {
        keys::read_public_key(Path::new(which))?.fingerprint
    } else {
        which.trim().to_lowercase()
    };
    if wanted.len() < MIN_PREFIX || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::usage(
            format!("`{which}` is neither a key file nor a fingerprint prefix"),
            format!("give at least {MIN_PREFIX} hex digits of a fingerprint from `bsi trust list`"),
        ));
    }
    let matches: Vec<PublicKey> = load(root)?
        .into_iter()
        .filter(|k| k.fingerprint.starts_with(&wanted))
        .collect();
    match matches.as_slice() {
        [key] => {
            let rel = key_path(&key.fingerprint);
            root.remove_durable(&rel).ctx("removing", root.show(&rel))?;
            Ok(key.fingerprint.clone())
        }
        [] => Err(Error::not_applicable(
            format!("the device trusts no key with fingerprint {wanted}"),
            "see `bsi trust list`",
        )),
        _ => Err(Error::usage(
            format!("{} trusted keys match {wanted}", matches.len()),
            "give more digits of the fingerprint",
        )),
    }
}
