//! Byte buffers the library hands out: owned by the library, freed (and wiped) with
//! [`spots_buffer_free`].

use zeroize::Zeroize;

/// Bytes owned by the library. `data` is NULL when `len` is 0. Free every buffer a call filled
/// with [`spots_buffer_free`], exactly once; its content is wiped first (buffers may hold
/// plaintext).
#[repr(C)]
#[derive(Debug)]
pub struct SpotsBuffer {
    /// The bytes, or NULL.
    pub data: *mut u8,
    /// Their count.
    pub len: usize,
}

impl SpotsBuffer {
    /// The empty buffer.
    pub(crate) const EMPTY: Self = Self {
        data: core::ptr::null_mut(),
        len: 0,
    };

    /// Hands `bytes` over to the caller.
    pub(crate) fn from_vec(bytes: Vec<u8>) -> Self {
        if bytes.is_empty() {
            return Self::EMPTY;
        }
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        Self {
            data: Box::into_raw(boxed).cast::<u8>(),
            len,
        }
    }
}

/// Wipes and frees a buffer filled by the library and resets it to empty. NULL, or an empty
/// buffer, is a no-op, so freeing twice through the same `SpotsBuffer` is harmless.
///
/// # Safety
/// `buffer` is NULL or points to a `SpotsBuffer` that a `spots_*` call filled (or that is
/// empty); its `data` must not be used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_buffer_free(buffer: *mut SpotsBuffer) {
    // SAFETY: the caller passes NULL or a valid, exclusive pointer to a SpotsBuffer.
    let Some(buffer) = (unsafe { buffer.as_mut() }) else {
        return;
    };
    let data = core::mem::replace(&mut buffer.data, core::ptr::null_mut());
    let len = core::mem::take(&mut buffer.len);
    if data.is_null() {
        return;
    }
    let slice = core::ptr::slice_from_raw_parts_mut(data, len);
    // SAFETY: `data`/`len` came from `Box::into_raw` of a boxed slice of exactly `len` bytes in
    // `SpotsBuffer::from_vec`, and were reset above so they cannot be freed twice.
    let mut boxed = unsafe { Box::from_raw(slice) };
    boxed.zeroize();
}
