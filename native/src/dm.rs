//! The direct-message calls: readiness and publishing, sessions from bundles, encrypt and
//! decrypt, trust and safety numbers, device lists.
//!
//! Structured results are JSON in a [`SpotsBuffer`] (bytes inside JSON are lowercase hex);
//! a decrypted plaintext is returned raw. Every call that changes state runs as one store
//! transaction ([`operation`]).

use std::ffi::c_char;

use serde_json::{Value, json};
use spots_core::devices::DeviceListChange;
use spots_core::pqxdh::PreKeyBundle;
use spots_core::transport::ReadyReport;
use spots_core::trust::TrustRecord;
use spots_core::{DeviceId, DeviceTarget, Timestamp};

use crate::buffer::SpotsBuffer;
use crate::call::{bytes, ffi_call, out, out_buffer};
use crate::error::{FfiError, SpotsStatus};
use crate::handle::{SpotsTransport, address, agent, handle, operation, os_rng};

/// `spots_decrypt_from_agent` flag: the sender's identity key is not the approved one (show
/// the change; sending to that device fails until `spots_approve_identity`).
pub const SPOTS_DECRYPT_IDENTITY_CHANGED: u32 = 1;
/// `spots_decrypt_from_agent` flag: the message started a new session.
pub const SPOTS_DECRYPT_NEW_SESSION: u32 = 2;

fn json_buffer(out: &mut SpotsBuffer, value: &Value) {
    *out = SpotsBuffer::from_vec(value.to_string().into_bytes());
}

fn upload_json(plan: &spots_core::prekey_lifecycle::PublishPlan) -> Result<Value, FfiError> {
    serde_json::from_str(&plan.to_json())
        .map_err(|e| FfiError::new(SpotsStatus::Internal, e.to_string()))
}

fn ready_json(report: &ReadyReport) -> Result<Value, FfiError> {
    let rotation = &report.rotation;
    Ok(json!({
        "needs_upload": report.needs_upload(),
        "identity_created": rotation.identity_created,
        "new_signed_pre_key": rotation.new_signed_pre_key.map(|id| id.0),
        "new_last_resort_kyber_pre_key": rotation.new_last_resort_kyber_pre_key.map(|id| id.0),
        "removed_signed_pre_keys": rotation.removed_signed_pre_keys.iter().map(|id| id.0).collect::<Vec<_>>(),
        "removed_last_resort_kyber_pre_keys": rotation.removed_last_resort_kyber_pre_keys.iter().map(|id| id.0).collect::<Vec<_>>(),
        "upload": upload_json(&report.plan)?,
    }))
}

fn device_ids(ids: &[u32]) -> Result<Vec<DeviceId>, FfiError> {
    ids.iter()
        .map(|id| DeviceId::new(*id).map_err(FfiError::from))
        .collect()
}

fn change_json(change: &DeviceListChange) -> Value {
    json!({
        "added": change.added.iter().map(|d| d.get()).collect::<Vec<_>>(),
        "removed": change.removed.iter().map(|d| d.get()).collect::<Vec<_>>(),
    })
}

/// Makes the device ready (creates its identity on first use, rotates the signed prekey and
/// the last-resort Kyber key when due, replenishes one-time prekeys) and returns JSON:
/// `{"needs_upload": bool, "identity_created": bool, "new_signed_pre_key": id|null,
/// "new_last_resort_kyber_pre_key": id|null, "removed_signed_pre_keys": [..],
/// "removed_last_resort_kyber_pre_keys": [..], "upload": <upload JSON>}`. When `needs_upload`
/// is true, send `upload` to the key server's `prekeys` publish endpoint. Call at start-up and
/// periodically (e.g. daily) with the current time.
///
/// # Safety
/// `handle` is an open handle; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_ensure_ready(
    handle: *const SpotsTransport,
    now_ms: u64,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json) =
            unsafe { (self::handle(handle)?, out_buffer(out_json, "out_json")?) };
        let mut transport = handle.lock();
        let report = operation(&mut transport, |t| {
            t.ensure_ready(Timestamp::from_millis(now_ms), &mut os_rng())
        })?;
        json_buffer(out_json, &ready_json(&report)?);
        Ok(())
    })
}

/// Every key currently published (long-lived keys and all one-time keys still held) as the
/// upload JSON: re-upload it when the key server's stock disagrees with the device (e.g. an
/// earlier upload failed). Reads only.
///
/// # Safety
/// `handle` is an open handle; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_publish_plan(
    handle: *const SpotsTransport,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json) =
            unsafe { (self::handle(handle)?, out_buffer(out_json, "out_json")?) };
        let plan = handle.lock().current_publish_plan()?;
        json_buffer(out_json, &upload_json(&plan)?);
        Ok(())
    })
}

/// Starts a session with `agent_id`.`device_id` from its bundle as fetched from the key
/// server (the `PreKeyBundle` JSON). Returns `{"identity_changed": bool, "new_device": bool}`.
///
/// # Safety
/// `handle` is an open handle; `agent_id` NUL-terminated; `bundle_json` points to
/// `bundle_json_len` bytes; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_process_bundle(
    handle: *const SpotsTransport,
    agent_id: *const c_char,
    device_id: u32,
    bundle_json: *const u8,
    bundle_json_len: usize,
    now_ms: u64,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, peer, bundle) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                address(agent_id, device_id)?,
                bytes(bundle_json, bundle_json_len, "bundle_json")?,
            )
        };
        let bundle: PreKeyBundle = serde_json::from_slice(bundle)
            .map_err(|e| FfiError::argument(format!("bundle JSON: {e}")))?;
        let mut transport = handle.lock();
        let outcome = operation(&mut transport, |t| {
            t.process_bundle(
                &peer,
                &bundle,
                Timestamp::from_millis(now_ms),
                &mut os_rng(),
            )
        })?;
        json_buffer(
            out_json,
            &json!({"identity_changed": outcome.identity_changed, "new_device": outcome.new_device}),
        );
        Ok(())
    })
}

/// Encrypts `plaintext` to `agent_id`: to one device, or with `device_id` 0 to every known
/// device of the agent plus this user's own other devices. All or nothing: on
/// `MISSING_SESSIONS` fetch the bundles named in `spots_last_error_json`, process them and
/// retry; on `UNTRUSTED_IDENTITY` ask the user to approve. Returns a JSON array, one entry per
/// device: `[{"agent_id": "bob", "device_id": 1, "type": 3, "body": "<hex>"}]` (`type` 3 =
/// PreKey, 2 = Whisper), for the mailbox. The sessions are durably advanced before the call
/// returns.
///
/// # Safety
/// `handle` is an open handle; `agent_id` NUL-terminated; `plaintext` points to
/// `plaintext_len` bytes; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_encrypt_to_agent(
    handle: *const SpotsTransport,
    agent_id: *const c_char,
    device_id: u32,
    plaintext: *const u8,
    plaintext_len: usize,
    now_ms: u64,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, agent, plaintext) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                agent(agent_id)?,
                bytes(plaintext, plaintext_len, "plaintext")?,
            )
        };
        let target = match device_id {
            0 => DeviceTarget::All,
            id => DeviceTarget::One(DeviceId::new(id)?),
        };
        let mut transport = handle.lock();
        let messages = operation(&mut transport, |t| {
            t.encrypt_to_agent(&agent, target, plaintext, Timestamp::from_millis(now_ms))
        })?;
        let list: Vec<Value> = messages
            .iter()
            .map(|m| {
                json!({
                    "agent_id": m.destination.agent_id.as_str(),
                    "device_id": m.destination.device_id.get(),
                    "type": m.message_type as u8,
                    "body": hex::encode(&m.body),
                })
            })
            .collect();
        json_buffer(out_json, &Value::Array(list));
        Ok(())
    })
}

/// Decrypts a message from `agent_id`.`device_id` with the envelope's `message_type` (2 or 3).
/// The plaintext is returned raw in `out_plaintext`; `out_flags` gets
/// `SPOTS_DECRYPT_IDENTITY_CHANGED` / `SPOTS_DECRYPT_NEW_SESSION` bits. Everything the message
/// changed (session, consumed prekeys, trust, device list) is committed durably together
/// before the call returns; on any error nothing changed. `DUPLICATE_MESSAGE` means it was
/// already decrypted: acknowledge it.
///
/// # Safety
/// `handle` is an open handle; `agent_id` NUL-terminated; `body` points to `body_len` bytes;
/// `out_plaintext` and `out_flags` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_decrypt_from_agent(
    handle: *const SpotsTransport,
    agent_id: *const c_char,
    device_id: u32,
    message_type: u8,
    body: *const u8,
    body_len: usize,
    now_ms: u64,
    out_plaintext: *mut SpotsBuffer,
    out_flags: *mut u32,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_plaintext, out_flags, sender, body) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_plaintext, "out_plaintext")?,
                out(out_flags, "out_flags")?,
                address(agent_id, device_id)?,
                bytes(body, body_len, "body")?,
            )
        };
        *out_flags = 0;
        let mut transport = handle.lock();
        let decrypted = operation(&mut transport, |t| {
            t.decrypt_from_agent(
                &sender,
                message_type,
                body,
                Timestamp::from_millis(now_ms),
                &mut os_rng(),
            )
        })?;
        let mut flags = 0;
        if decrypted.identity_changed {
            flags |= SPOTS_DECRYPT_IDENTITY_CHANGED;
        }
        if decrypted.new_session {
            flags |= SPOTS_DECRYPT_NEW_SESSION;
        }
        *out_flags = flags;
        *out_plaintext = SpotsBuffer::from_vec(decrypted.plaintext.to_vec());
        Ok(())
    })
}

/// What this device believes about a peer device's identity key, as JSON:
/// `{"state": "unknown"}`, `{"state": "trusted", "verified": bool, "identity_key": hex}` or
/// `{"state": "changed", "identity_key": hex (the new key), "previous_identity_key": hex}`.
///
/// # Safety
/// `handle` is an open handle; `agent_id` NUL-terminated; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_trust(
    handle: *const SpotsTransport,
    agent_id: *const c_char,
    device_id: u32,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, peer) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                address(agent_id, device_id)?,
            )
        };
        let record = handle.lock().trust(&peer)?;
        let value = match record {
            None => json!({"state": "unknown"}),
            Some(TrustRecord::Trusted { identity, verified }) => json!({
                "state": "trusted",
                "verified": verified,
                "identity_key": hex::encode(identity.serialize()),
            }),
            Some(TrustRecord::Changed { previous, current }) => json!({
                "state": "changed",
                "identity_key": hex::encode(current.serialize()),
                "previous_identity_key": hex::encode(previous.serialize()),
            }),
        };
        json_buffer(out_json, &value);
        Ok(())
    })
}

/// The user accepts a peer device's new identity key after an identity change: sending works
/// again and `verified` is cleared. `identity_key` (33 bytes) is the key the user was shown
/// (`spots_trust`'s `identity_key`): approval names it so it cannot land on a key that arrived
/// later. `UNTRUSTED_IDENTITY` (nothing changed) if a newer key arrived since; show it and ask
/// again. `INVALID_ARGUMENT` if no key is known for the device or the key is malformed.
///
/// # Safety
/// `handle` is an open handle; `agent_id` NUL-terminated; `identity_key` points to
/// `identity_key_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_approve_identity(
    handle: *const SpotsTransport,
    agent_id: *const c_char,
    device_id: u32,
    identity_key: *const u8,
    identity_key_len: usize,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, peer, key) = unsafe {
            (
                self::handle(handle)?,
                address(agent_id, device_id)?,
                bytes(identity_key, identity_key_len, "identity_key")?,
            )
        };
        let expected = spots_core::keys::IdentityKey::deserialize(key)
            .map_err(|_| FfiError::argument("identity_key is not a 33-byte identity key"))?;
        let mut transport = handle.lock();
        operation(&mut transport, |t| t.approve_identity(&peer, &expected))?;
        Ok(())
    })
}

/// Marks the trusted key of a peer device as verified (the user compared safety numbers).
/// `UNTRUSTED_IDENTITY` while an identity change is pending: approve first.
///
/// # Safety
/// `handle` is an open handle; `agent_id` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_mark_verified(
    handle: *const SpotsTransport,
    agent_id: *const c_char,
    device_id: u32,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, peer) = unsafe { (self::handle(handle)?, address(agent_id, device_id)?) };
        let mut transport = handle.lock();
        operation(&mut transport, |t| t.mark_verified(&peer))
    })
}

/// The safety number with a peer device (version 2, agent ids as stable ids) over the newest
/// key seen for it: `{"displayable": "60 digits", "scannable": "<hex QR payload>"}`.
///
/// # Safety
/// `handle` is an open handle; `agent_id` NUL-terminated; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_safety_number(
    handle: *const SpotsTransport,
    agent_id: *const c_char,
    device_id: u32,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, peer) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                address(agent_id, device_id)?,
            )
        };
        let fingerprint = handle.lock().safety_number(&peer)?;
        json_buffer(
            out_json,
            &json!({
                "displayable": fingerprint.display.to_string(),
                "scannable": hex::encode(fingerprint.scannable.serialize()),
            }),
        );
        Ok(())
    })
}

/// Compares a QR payload scanned from the peer's screen with our safety number for that
/// device; `*out_matches` is true when they match. A different version is
/// `FINGERPRINT_VERSION_MISMATCH` (tell the user to update), not a mismatch.
///
/// # Safety
/// `handle` is an open handle; `agent_id` NUL-terminated; `scanned` points to `scanned_len`
/// bytes; `out_matches` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_compare_safety_number(
    handle: *const SpotsTransport,
    agent_id: *const c_char,
    device_id: u32,
    scanned: *const u8,
    scanned_len: usize,
    out_matches: *mut bool,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_matches, peer, scanned) = unsafe {
            (
                self::handle(handle)?,
                out(out_matches, "out_matches")?,
                address(agent_id, device_id)?,
                bytes(scanned, scanned_len, "scanned")?,
            )
        };
        *out_matches = false;
        let fingerprint = handle.lock().safety_number(&peer)?;
        *out_matches = fingerprint
            .scannable
            .compare(scanned)
            .map_err(|e| FfiError::new(SpotsStatus::from_class(e.class()), e.to_string()))?;
        Ok(())
    })
}

/// The known devices of an agent (for the local agent: its other devices) as a JSON array of
/// device ids.
///
/// # Safety
/// `handle` is an open handle; `agent_id` NUL-terminated; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_devices(
    handle: *const SpotsTransport,
    agent_id: *const c_char,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, agent) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                agent(agent_id)?,
            )
        };
        let devices = handle.lock().devices(&agent)?;
        json_buffer(
            out_json,
            &json!(devices.iter().map(|d| d.get()).collect::<Vec<_>>()),
        );
        Ok(())
    })
}

/// Replaces an agent's device list by the key server's (`devices`, `count` ids); sessions of
/// devices no longer listed are deleted with them. Returns `{"added": [..], "removed": [..]}`.
///
/// # Safety
/// `handle` is an open handle; `agent_id` NUL-terminated; `devices` points to `count` ids;
/// `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_update_device_list(
    handle: *const SpotsTransport,
    agent_id: *const c_char,
    devices: *const u32,
    count: usize,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, agent, devices) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                agent(agent_id)?,
                bytes(devices, count, "devices")?,
            )
        };
        let devices = device_ids(devices)?;
        let mut transport = handle.lock();
        let change = operation(&mut transport, |t| t.update_device_list(&agent, &devices))?;
        json_buffer(out_json, &change_json(&change));
        Ok(())
    })
}

/// Drops devices the key server reported stale (`stale`, `count` ids) from an agent's list,
/// with their sessions. Returns `{"added": [], "removed": [..]}`.
///
/// # Safety
/// `handle` is an open handle; `agent_id` NUL-terminated; `stale` points to `count` ids;
/// `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_drop_stale_devices(
    handle: *const SpotsTransport,
    agent_id: *const c_char,
    stale: *const u32,
    count: usize,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, agent, stale) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                agent(agent_id)?,
                bytes(stale, count, "stale")?,
            )
        };
        let stale = device_ids(stale)?;
        let mut transport = handle.lock();
        let change = operation(&mut transport, |t| t.drop_stale_devices(&agent, &stale))?;
        json_buffer(out_json, &change_json(&change));
        Ok(())
    })
}
