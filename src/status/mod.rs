//! `bsi status`: the [`model`] of `status --json` (schema version 1, DESIGN section 7, the source
//! of `docs/status.schema.json`), its [`collect`](mod@collect)ion from the device's records, and
//! `--require` ([`require`]).
//!
//! Collecting status reads only bsi's small records and the `SystemVersion.plist` files, never
//! cryptex content or the history, so it costs the same with a 4 GiB response active and 10,000
//! history entries as on a new device.

pub(crate) mod collect;
pub(crate) mod model;
pub(crate) mod require;
mod text;

pub(crate) use collect::collect;
pub(crate) use model::Status;
