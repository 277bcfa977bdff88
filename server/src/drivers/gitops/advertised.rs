//! The commit a remote advertises for one ref, read from libgit2's list of the
//! remote's heads byte for byte: git2's `RemoteHead::name` unwraps the name as
//! UTF-8 and panics on any other, and a remote may advertise any name (a ref
//! anyone with push access made there), which would bring down the caller with
//! the repository's locks held.

use std::ffi::CStr;

use git2::{Binding as _, Oid, Remote};

/// The commit `remote` advertised for `wanted` (`refs/heads/main`) on its last
/// connection, if it advertised one.
pub(super) fn advertised(
    remote: &mut Remote<'_>,
    wanted: &str,
) -> Result<Option<Oid>, git2::Error> {
    let mut heads: *mut *const libgit2_sys::git_remote_head = std::ptr::null_mut();
    let mut count: usize = 0;
    // SAFETY: `remote` is a live handle; libgit2 fills `heads` with `count`
    // pointers it owns, valid until the remote is used again or dropped,
    // which the borrow of `remote` rules out while they are read here.
    let code = unsafe { libgit2_sys::git_remote_ls(&mut heads, &mut count, remote.raw()) };
    if code < 0 {
        return Err(git2::Error::last_error(code));
    }
    if heads.is_null() || count == 0 {
        return Ok(None);
    }
    // SAFETY: see above; a non-null list holds `count` head pointers.
    let heads = unsafe { std::slice::from_raw_parts(heads, count) };
    for &head in heads {
        // SAFETY: each head libgit2 lists is valid, its name a NUL-ended string.
        let (name, oid) = unsafe {
            if head.is_null() || (*head).name.is_null() {
                continue;
            }
            (CStr::from_ptr((*head).name).to_bytes(), &(*head).oid)
        };
        if name == wanted.as_bytes() {
            // SAFETY: `oid` points into the live head read above.
            return Ok(Some(unsafe { Oid::from_raw(oid) }));
        }
    }
    Ok(None)
}
