//! DDM declarations as a device receives and keeps them (DESIGN section 5), and the status items
//! it reports about itself ([`items`], the one registry of them): the [`declaration`]
//! envelope and the payloads bsi understands, validated as a device validates them; what the
//! device [`support`]s on its OS version and enrollment; activation [`predicate`]s; the
//! [`state`] of each declaration (`active`, `valid`, reasons) as `management.declarations`
//! reports it; and the [`store`] under `private/var/db/bsi/declarations`. What the declarations
//! in effect mean for an install is the policy gate's (`gates::policy`); what a background pass
//! does with them is `ddm`'s.

pub(crate) mod declaration;
pub(crate) mod items;
mod payload;
pub(crate) mod predicate;
pub(crate) mod state;
pub(crate) mod store;
pub(crate) mod support;
