//! Response bundles (DESIGN section 3): the format a response travels in, how bsi makes one, and
//! how it decides to trust one.
//!
//! A bundle is a directory (`NAME.bsi/`) or the same packed as one uncompressed tar: `Info.plist`
//! (the [`manifest`]), `Info.plist.sig` (an Ed25519 [`signature`] over the manifest's exact bytes),
//! then the `OS/` and `App/` trees. [`source::Bundle`] reads either form in the order the checks
//! need, and [`stream`] carries the payload through a single read that writes and hashes it.
//! Keys live in [`keys`] (the device's trust store is `device::trust`). Making bundles is [`create`],
//! packing them [`pack`], checking them [`inspect`]. Every rejection is a [`BundleError`].

pub(crate) mod create;
pub(crate) mod digest;
pub(crate) mod dir_form;
mod error;
pub(crate) mod inspect;
pub(crate) mod keys;
pub(crate) mod limits;
pub(crate) mod manifest;
pub(crate) mod manifest_write;
pub(crate) mod manifest_xml;
pub(crate) mod pack;
pub(crate) mod paths;
pub(crate) mod signature;
pub(crate) mod source;
pub(crate) mod stream;
mod tar_form;

pub(crate) use error::BundleError;
pub(crate) use source::Bundle;
