//! The opaque handle: one local device's facade over its on-disk store, behind a mutex.

use std::ffi::c_char;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rand_core::UnwrapErr;
use spots_core::{Address, AgentId, DeviceId, SignalTransport};

use crate::call::{bytes, c_str, ffi_call, out};
use crate::error::{FfiError, SpotsStatus};
use crate::store::SqliteStore;

/// The facade type behind a handle.
pub(crate) type Transport = SignalTransport<SqliteStore>;

/// The operating system's generator (getrandom). It fails only when the OS cannot provide
/// randomness at all; that panic is caught at the boundary and reported as `INTERNAL`.
pub(crate) fn os_rng() -> UnwrapErr<getrandom::SysRng> {
    UnwrapErr(getrandom::SysRng)
}

/// An open device: its store and facade. Opaque to C. Safe to use from several threads at
/// once: calls on one handle are serialized by an internal lock.
#[derive(Debug)]
pub struct SpotsTransport {
    inner: Mutex<Transport>,
}

impl SpotsTransport {
    /// The facade, locked. A panic in an earlier call cannot leave a half-applied state (its
    /// transaction was never committed, and is rolled back here), so a poisoned lock is taken
    /// over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Transport> {
        let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // A transaction left open by a call that panicked is rolled back before anything
        // else reads through the handle.
        guard.store().abort_operation();
        guard
    }
}

/// Runs one state-changing protocol operation in one store transaction: everything it reads
/// and writes is committed durably before its result is returned, or nothing is. The body may
/// make several facade calls (a rotation and its shares): they commit together or not at all.
pub(crate) fn operation<T, E: Into<FfiError>>(
    transport: &mut Transport,
    body: impl FnOnce(&mut Transport) -> Result<T, E>,
) -> Result<T, FfiError> {
    transport.store().begin_operation()?;
    match body(transport) {
        Ok(value) => {
            transport.store().finish_operation()?;
            Ok(value)
        }
        Err(error) => {
            transport.store().abort_operation();
            Err(error.into())
        }
    }
}

/// An address argument.
///
/// # Safety
/// `agent_id` is NULL or a NUL-terminated string.
pub(crate) unsafe fn address(agent_id: *const c_char, device_id: u32) -> Result<Address, FfiError> {
    // SAFETY: forwarded contract.
    let agent = unsafe { agent(agent_id) }?;
    Ok(Address::new(agent, DeviceId::new(device_id)?))
}

/// An agent id argument.
///
/// # Safety
/// `agent_id` is NULL or a NUL-terminated string.
pub(crate) unsafe fn agent(agent_id: *const c_char) -> Result<AgentId, FfiError> {
    // SAFETY: forwarded contract.
    let text = unsafe { c_str(agent_id, "agent_id") }?;
    Ok(AgentId::new(text)?)
}

/// Opens (creating on first use) the store at `store_path` for the local device
/// `agent_id`.`device_id`, with the app's 32-byte store key, and returns a handle in
/// `*out_handle`. The key must be the same at every open; keep it in the iOS Keychain /
/// Android Keystore. A wrong key fails with `STORE_WRONG_KEY`, a file that is not a store or
/// is damaged with `STORE_CORRUPT`, a store of another device with `STORE_ADDRESS_MISMATCH`,
/// a newer store with `STORE_TOO_NEW`; none of these changes the file.
///
/// # Safety
/// `store_path` and `agent_id` are NUL-terminated UTF-8; `store_key` points to
/// `store_key_len` bytes; `out_handle` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_transport_open(
    store_path: *const c_char,
    store_key: *const u8,
    store_key_len: usize,
    agent_id: *const c_char,
    device_id: u32,
    out_handle: *mut *mut SpotsTransport,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let out_handle = unsafe { out(out_handle, "out_handle") }?;
        *out_handle = core::ptr::null_mut();
        // SAFETY: as above.
        let path = unsafe { c_str(store_path, "store_path") }?;
        // SAFETY: as above.
        let key = unsafe { bytes(store_key, store_key_len, "store_key") }?;
        let key: &[u8; 32] = key
            .try_into()
            .map_err(|_| FfiError::argument("the store key must be 32 bytes"))?;
        // SAFETY: as above.
        let local = unsafe { address(agent_id, device_id) }?;
        let store = SqliteStore::open(Path::new(path), key, &local)?;
        let handle = Box::new(SpotsTransport {
            inner: Mutex::new(SignalTransport::new(store, local)),
        });
        *out_handle = Box::into_raw(handle);
        Ok(())
    })
}

/// Closes a handle and its store. NULL is a no-op. No other call may use the handle during
/// or after this one.
///
/// # Safety
/// `handle` is NULL or was returned by [`spots_transport_open`] and not closed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_transport_close(handle: *mut SpotsTransport) {
    if handle.is_null() {
        return;
    }
    let _ = ffi_call(|| {
        // SAFETY: a handle from `spots_transport_open` (Box::into_raw), closed once.
        drop(unsafe { Box::from_raw(handle) });
        Ok(())
    });
}

/// The handle argument of a call.
///
/// # Safety
/// `handle` is NULL or an open handle.
pub(crate) unsafe fn handle<'a>(
    handle: *const SpotsTransport,
) -> Result<&'a SpotsTransport, FfiError> {
    // SAFETY: forwarded contract.
    unsafe { crate::call::reference(handle, "handle") }
}
