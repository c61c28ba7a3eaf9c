//! The MDM device (DESIGN section 8): a device an MDM server speaking Apple's protocol enrolls
//! and manages. [`profile`] reads the enrollment profile; [`pki`] holds the identity and the CMS
//! the protocol needs; [`scep`] gets the identity from a SCEP CA.
pub(crate) mod channel;
pub(crate) mod cms;
pub(crate) mod commands;
pub(crate) mod enrollment;
pub(crate) mod pkcs12;
pub(crate) mod pki;
pub(crate) mod poll;
pub(crate) mod profile;
pub(crate) mod scep;
pub(crate) mod updates;

use std::sync::Arc;

/// `opts` with DDM going through the MDM server `device` is enrolled in.
pub(crate) fn through(
    device: &crate::device::Device,
    opts: &crate::ddm::sync::SyncOptions,
) -> crate::Result<crate::ddm::sync::SyncOptions> {
    let e = enrollment::require(device).map_err(|_| {
        crate::Error::usage(
            "no DDM server: the device is not enrolled in an MDM server",
            "pass --server URL (a DDM server's device endpoints), or enroll the device with `bsi mdm enroll`",
        )
    })?;
    let channel = enrollment::channel(device, &e, opts.timeout, 1)?;
    Ok(crate::ddm::sync::SyncOptions {
        server: Some(crate::ddm::client::Server::through(Arc::new(channel))),
        enrollment_id: Some(e.udid),
        ..opts.clone()
    })
}
