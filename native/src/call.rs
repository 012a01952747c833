//! Running a call: panics caught, errors recorded per thread, arguments checked.

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::buffer::SpotsBuffer;
use crate::error::{FfiError, SpotsStatus, clear_last_error, set_last_error};

/// Runs the body of an exported function: nothing unwinds across the C boundary, and every
/// failure becomes a status plus the thread's last error.
pub(crate) fn ffi_call(body: impl FnOnce() -> Result<(), FfiError>) -> SpotsStatus {
    clear_last_error();
    let error = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return SpotsStatus::Ok,
        Ok(Err(error)) => error,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            FfiError::new(
                SpotsStatus::Internal,
                format!("internal error (panic): {what}"),
            )
        }
    };
    set_last_error(&error);
    error.status
}

fn null(what: &str) -> FfiError {
    FfiError::new(SpotsStatus::NullPointer, format!("{what} is NULL"))
}

/// A NUL-terminated UTF-8 argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for the call.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str()
        .map_err(|_| FfiError::new(SpotsStatus::InvalidUtf8, format!("{what} is not UTF-8")))
}

/// A `(pointer, length)` argument; NULL is accepted for length 0.
///
/// # Safety
/// When `len > 0`, `ptr` points to `len` readable bytes valid for the call.
pub(crate) unsafe fn bytes<'a, T>(
    ptr: *const T,
    len: usize,
    what: &str,
) -> Result<&'a [T], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-NULL and `len` elements readable per the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// A required reference argument.
///
/// # Safety
/// `ptr` is NULL or valid for reads for the call.
pub(crate) unsafe fn reference<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, FfiError> {
    // SAFETY: NULL or valid per the caller's contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| null(what))
}

/// A required out-parameter.
///
/// # Safety
/// `ptr` is NULL or valid for writes for the call, and not aliased.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, FfiError> {
    // SAFETY: NULL or valid and exclusive per the caller's contract.
    unsafe { ptr.as_mut() }.ok_or_else(|| null(what))
}

/// A buffer out-parameter, reset to empty so the caller can free it whatever the outcome.
///
/// # Safety
/// As [`out`].
pub(crate) unsafe fn out_buffer<'a>(
    ptr: *mut SpotsBuffer,
    what: &str,
) -> Result<&'a mut SpotsBuffer, FfiError> {
    // SAFETY: forwarded contract.
    let buffer = unsafe { out(ptr, what) }?;
    *buffer = SpotsBuffer::EMPTY;
    Ok(buffer)
}
