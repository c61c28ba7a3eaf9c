//! The gates an install must pass besides the bundle and version rules: the [`power`] gate (a Mac
//! laptop needs power or enough battery) and the management [`policy`] gate (what supervised
//! devices' declarations and the user's own switch allow).

pub(crate) mod policy;
pub(crate) mod power;
