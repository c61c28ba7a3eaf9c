//! Declarative device management (DESIGN section 5): the [`declaration`]s an MDM server sends, as
//! a device stores and validates them; [`store`] keeps them under `private/var/db/bsi/declarations`;
//! the [`catalog`] of the Apple Software Lookup Service; [`auto`], the background pass that
//! installs what automatic install or an enforcement deadline calls for; and [`report`], the
//! `StatusReport` a server reads back.

pub mod auto;
pub mod catalog;
pub mod declaration;
pub mod report;
pub mod store;
