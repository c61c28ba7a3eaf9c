//! Which directory is the device: `--root DIR`, else `$BSI_ROOT`, else the default device in the
//! user's data directory, `${XDG_DATA_HOME:-~/.local/share}/bsi/device` (DESIGN section 2).

use std::path::PathBuf;

use crate::{Error, Result};

/// Resolves the device root from the flag, the environment and the default, in that order.
/// (`--root` and `BSI_ROOT` reach this as one value through clap's `env` support.)
pub(crate) fn resolve(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = flag.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(path);
    }
    default_root()
}

/// The default device root.
pub(crate) fn default_root() -> Result<PathBuf> {
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local/share"),
            None => {
                return Err(Error::usage(
                    "no device root: neither --root, BSI_ROOT, XDG_DATA_HOME nor HOME is set",
                    "pass --root DIR",
                ));
            }
        },
    };
    Ok(data.join("bsi/device"))
}
