//! The sane limits a bundle must stay within (documented in `docs/bundle-format.md`). A manifest
//! that declares more is rejected before anything is read or written, so a hostile manifest
//! cannot make bsi allocate, read or write without bound.

/// Largest `Info.plist` bsi reads: 64 MiB (about 300,000 file entries).
pub(crate) const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;
/// Largest `Info.plist.sig`: an Ed25519 signature is 64 bytes; anything far larger is not one.
pub(crate) const MAX_SIGNATURE_BYTES: u64 = 4096;
/// Largest single payload file: 16 GiB.
pub(crate) const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// Largest total payload: 64 GiB.
pub(crate) const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024 * 1024;
/// Most payload files in one bundle.
pub(crate) const MAX_FILES: usize = 250_000;
/// Longest payload path, in bytes.
pub(crate) const MAX_PATH_BYTES: usize = 1024;
/// Longest path component, in bytes.
pub(crate) const MAX_COMPONENT_BYTES: usize = 255;
/// Deepest payload path.
pub(crate) const MAX_DEPTH: usize = 64;
