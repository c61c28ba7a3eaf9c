//! DDM declarations as a device receives and keeps them (DESIGN section 5): the [`declaration`]
//! envelope and the payloads bsi understands, validated as a device validates them, and the
//! [`store`] under `private/var/db/bsi/declarations`. What the declarations mean for an install
//! is the policy gate's (`gates::policy`); what a background pass does with them is `ddm`'s.

pub mod declaration;
pub mod store;
