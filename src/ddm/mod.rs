//! Declarative device management in action (DESIGN section 5): [`auto`], the background pass that
//! installs what automatic install or an enforcement deadline calls for; the [`catalog`] of the
//! Apple Software Lookup Service; [`report`], the `StatusReport` a server reads back; and
//! [`software_update`], the install-state lifecycle its software-update items follow; and
//! [`sync`], the device side of the DDM protocol against a real server ([`client`]). The
//! declarations themselves (their validation and store) are `declarations`.

pub(crate) mod auto;
pub(crate) mod catalog;
pub(crate) mod client;
mod enforce;
pub(crate) mod pass;
pub(crate) mod report;
pub(crate) mod software_update;
pub(crate) mod sync;
