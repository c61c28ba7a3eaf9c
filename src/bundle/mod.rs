//! Response bundles (DESIGN section 3): the format a response travels in, how bsi makes one, and
//! how it decides to trust one.
//!
//! A bundle is a directory (`NAME.bsi/`) or the same packed as one uncompressed tar: `Info.plist`
//! (the [`manifest`]), `Info.plist.sig` (an Ed25519 [`signature`] over the manifest's exact bytes),
//! then the `OS/` and `App/` trees. [`source::Bundle`] reads either form in the order the checks
//! need, and [`stream`] carries the payload through a single read that writes and hashes it.
//! Keys live in [`keys`] (the device's trust store is `device::trust`). Making bundles is [`create`],
//! packing them [`pack`], checking them [`inspect`]. Every rejection is a [`BundleError`].

pub mod create;
pub mod digest;
mod error;
pub mod inspect;
pub mod keys;
pub mod limits;
pub mod manifest;
pub mod pack;
pub mod paths;
pub mod signature;
pub mod source;
pub mod stream;
mod tar_form;

pub use error::BundleError;
pub use manifest::Manifest;
pub use source::{Bundle, Form};
