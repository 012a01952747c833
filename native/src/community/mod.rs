//! The community calls: epoch rows, rotation, shares sealed and opened through the DM
//! sessions, community blobs, sender chains and their repair (the core's community facade,
//! docs/COMMUNITY.md).
//!
//! Conventions are the DM calls': agent ids and the community id (a UUID, hyphenated) are
//! NUL-terminated strings; device ids and the key server's epoch numbers (`key_id` 1, 2, ...,
//! the integer the `community_sender_key_state`, share and blob rows carry) are integers. The
//! epoch's UUID is always derived from the community and `key_id`
//! (`EpochId::for_server_epoch`), never passed in. Structured input and results are JSON
//! (bytes inside JSON are lowercase hex); plaintexts and blobs cross raw. Every call that
//! changes state runs as one store transaction ([`operation`]): a rotation together with
//! every share it seals, a decrypt with its chain step or repair note, all or nothing.

#[cfg(test)]
mod tests;

use std::ffi::c_char;

use serde::Deserialize;
use serde_json::{Value, json};
use spots_core::community::share::ShareRow;
use spots_core::community::{
    BlobScheme, CommunityId, CommunityState, EpochAction, EpochId, EpochInfo, GroupReceive,
    OpenedShare, RotationKind, validate_blob,
};
use spots_core::envelope::Envelope;
use spots_core::pqxdh::PreKeyBundle;
use spots_core::{Address, AgentId, DeviceId, Timestamp};

use crate::buffer::SpotsBuffer;
use crate::call::{bytes, c_str, ffi_call, out, out_buffer};
use crate::error::{FfiError, SpotsStatus};
use crate::handle::{SpotsTransport, Transport, address, handle, operation, os_rng};

fn json_buffer(out: &mut SpotsBuffer, value: &Value) {
    *out = SpotsBuffer::from_vec(value.to_string().into_bytes());
}

/// The community id argument: a UUID string.
///
/// # Safety
/// `community_id` is NULL or a NUL-terminated string.
unsafe fn community(community_id: *const c_char) -> Result<CommunityId, FfiError> {
    // SAFETY: forwarded contract.
    let text = unsafe { c_str(community_id, "community_id") }?;
    text.parse()
        .map_err(|_| FfiError::argument("community_id is not a UUID"))
}

/// The epoch id of the key server's epoch `key_id` of `community`.
fn server_epoch(community: CommunityId, key_id: u32) -> Result<EpochId, FfiError> {
    if key_id == 0 {
        return Err(FfiError::argument(
            "key_id is the key server's epoch number (1, 2, ...)",
        ));
    }
    Ok(EpochId::for_server_epoch(community, key_id))
}

/// The key server's number of an epoch the device knows.
fn server_key_id(state: &CommunityState, key_id: EpochId) -> Option<u32> {
    state
        .epochs()
        .find(|epoch| epoch.key_id == key_id)
        .map(|epoch| epoch.server_key_id)
}

/// [`server_key_id`] from the stored state; `INVALID_STATE` if the epoch is not known (it
/// always is after a call that used it).
fn stored_server_key_id(
    transport: &Transport,
    community: CommunityId,
    key_id: EpochId,
) -> Result<u32, FfiError> {
    transport
        .community_state(community)?
        .and_then(|state| server_key_id(&state, key_id))
        .ok_or_else(|| FfiError::new(SpotsStatus::InvalidState, "epoch no longer known"))
}

/// A `community_sender_key_state.rotation_kind`: `initial` (a community's first epoch) is
/// hard.
fn rotation(text: &str) -> Result<RotationKind, FfiError> {
    match text {
        "initial" => Ok(RotationKind::Hard),
        other => RotationKind::parse(other)
            .ok_or_else(|| FfiError::argument("rotation is initial, hard or soft")),
    }
}

/// An epoch row; a `grace_until_ms` of 0 means none.
fn epoch_info(
    community: CommunityId,
    key_id: u32,
    rotated_at_ms: u64,
    rotation_kind: &str,
    grace_until_ms: Option<u64>,
) -> Result<EpochInfo, FfiError> {
    server_epoch(community, key_id)?;
    Ok(EpochInfo::from_server_row(
        community,
        key_id,
        Timestamp::from_millis(rotated_at_ms),
        rotation(rotation_kind)?,
        grace_until_ms
            .filter(|ms| *ms != 0)
            .map(Timestamp::from_millis),
    ))
}

/// An element of the `epochs_json` array of [`spots_community_apply_epochs`].
#[derive(Deserialize)]
struct EpochRow {
    key_id: u32,
    rotated_at_ms: u64,
    rotation: String,
    #[serde(default)]
    grace_until_ms: Option<u64>,
}

/// An element of a `recipients_json` array.
#[derive(Deserialize)]
struct Recipient {
    agent_id: String,
    device_id: u32,
    #[serde(default)]
    bundle: Option<PreKeyBundle>,
}

fn recipients(json: &[u8]) -> Result<Vec<(Address, Option<PreKeyBundle>)>, FfiError> {
    let list: Vec<Recipient> = serde_json::from_slice(json)
        .map_err(|e| FfiError::argument(format!("recipients JSON: {e}")))?;
    list.into_iter()
        .map(|r| -> Result<_, FfiError> {
            let address = Address::new(AgentId::new(r.agent_id)?, DeviceId::new(r.device_id)?);
            Ok((address, r.bundle))
        })
        .collect()
}

/// `object` with one more field.
fn with_field(mut object: Value, name: &str, value: Value) -> Value {
    if let Value::Object(map) = &mut object {
        map.insert(name.to_owned(), value);
    }
    object
}

fn epoch_json(info: &EpochInfo) -> Value {
    json!({
        "key_id": info.server_key_id,
        "epoch_id": info.key_id.to_string(),
        "rotated_at_ms": info.rotated_at.as_millis(),
        "rotation": info.rotation.as_str(),
        "grace_until_ms": info.grace_until.map(Timestamp::as_millis),
    })
}

fn state_json(state: &CommunityState) -> Value {
    let epochs: Vec<Value> = state
        .epochs()
        .map(|info| {
            with_field(
                epoch_json(info),
                "has_epoch_key",
                Value::Bool(state.epoch_key(info.key_id).is_some()),
            )
        })
        .collect();
    let repairs: Vec<Value> = state
        .pending_repairs()
        .iter()
        .map(|repair| {
            json!({
                "key_id": server_key_id(state, repair.key_id),
                "agent_id": repair.sender.agent_id.as_str(),
                "device_id": repair.sender.device_id.get(),
                "chain_id": repair.chain_id,
                "requested_at_ms": repair.requested_at.map(Timestamp::as_millis),
            })
        })
        .collect();
    json!({
        "community_id": state.community_id().to_string(),
        "epochs": epochs,
        "sending_key_id": state.sending_epoch_id().and_then(|id| server_key_id(state, id)),
        "first_share_from": state.first_share_from().map(ToString::to_string),
        "pending_repairs": repairs,
    })
}

/// A share row for `community-keys/shares`, of the epoch `key_id` (the row's integer column).
fn share_json(row: &ShareRow, key_id: u32) -> Value {
    json!({
        "community_id": row.community_id.to_string(),
        "key_id": key_id,
        "from_agent_id": row.from.agent_id.as_str(),
        "from_device_id": row.from.device_id.get(),
        "to_agent_id": row.to.agent_id.as_str(),
        "to_device_id": row.to.device_id.get(),
        "encryption_type": row.encryption_type(),
        "share_kind": row.share_kind.as_str(),
        "message_type": row.message_type as u8,
        "body": hex::encode(&row.body),
    })
}

fn shares_json(rows: &[ShareRow], key_id: u32) -> Value {
    Value::Array(rows.iter().map(|row| share_json(row, key_id)).collect())
}

fn opened_json(opened: &OpenedShare, key_id: u32) -> Value {
    json!({
        "from_agent_id": opened.from.agent_id.as_str(),
        "from_device_id": opened.from.device_id.get(),
        "community_id": opened.community_id.to_string(),
        "key_id": key_id,
        "epoch_id": opened.key_id.to_string(),
        "share_kind": opened.kind.as_str(),
        "first_for_community": opened.first_for_community,
    })
}

fn action_json(state: &CommunityState, action: &EpochAction) -> Value {
    match action {
        EpochAction::FetchMyShare { key_id } => json!({
            "action": "fetch_my_share",
            "key_id": server_key_id(state, *key_id),
        }),
        EpochAction::RequestRepair {
            key_id,
            sender,
            chain_id,
        } => json!({
            "action": "request_repair",
            "key_id": server_key_id(state, *key_id),
            "agent_id": sender.agent_id.as_str(),
            "device_id": sender.device_id.get(),
            "chain_id": chain_id,
        }),
        EpochAction::StartUsingEpoch { key_id } => json!({
            "action": "start_using_epoch",
            "key_id": server_key_id(state, *key_id),
        }),
    }
}

/// A repair request to send as a DM (its plaintext) to `to`.
fn request_json(to: &Address, request: &Envelope) -> Result<Value, FfiError> {
    let bytes = request
        .encode()
        .map_err(|e| FfiError::new(SpotsStatus::Internal, e.to_string()))?;
    Ok(json!({
        "agent_id": to.agent_id.as_str(),
        "device_id": to.device_id.get(),
        "request": hex::encode(bytes.as_slice()),
    }))
}

/// Records the community's epoch rows (`community_sender_key_state`, any order), creating its
/// state on first contact. `epochs_json` is a JSON array of
/// `{"key_id": 1, "rotated_at_ms": ms, "rotation": "initial" | "hard" | "soft",
/// "grace_until_ms": ms | null}` (`initial` is hard; a `grace_until_ms` of 0 or null means
/// none). A known epoch keeps its start and kind (`INVALID_STATE` otherwise); only its
/// `grace_until` may change. All rows or none are recorded. Returns the state as
/// [`spots_community_state`] does.
///
/// # Safety
/// `handle` is an open handle; `community_id` NUL-terminated; `epochs_json` points to
/// `epochs_json_len` bytes; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_community_apply_epochs(
    handle: *const SpotsTransport,
    community_id: *const c_char,
    epochs_json: *const u8,
    epochs_json_len: usize,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, id, epochs) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                community(community_id)?,
                bytes(epochs_json, epochs_json_len, "epochs_json")?,
            )
        };
        let rows: Vec<EpochRow> = serde_json::from_slice(epochs)
            .map_err(|e| FfiError::argument(format!("epochs JSON: {e}")))?;
        let rows = rows
            .iter()
            .map(|r| epoch_info(id, r.key_id, r.rotated_at_ms, &r.rotation, r.grace_until_ms))
            .collect::<Result<Vec<_>, _>>()?;
        let mut transport = handle.lock();
        let state = operation(&mut transport, |t| t.apply_epoch_rows(id, &rows))?;
        json_buffer(out_json, &state_json(&state));
        Ok(())
    })
}

/// This device's state for a community, or JSON `null` if it has none: `{"community_id",
/// "epochs": [{"key_id", "epoch_id", "rotated_at_ms", "rotation", "grace_until_ms",
/// "has_epoch_key"}] (oldest first), "sending_key_id": n | null, "first_share_from":
/// "agent.device" | null, "pending_repairs": [{"key_id", "agent_id", "device_id", "chain_id",
/// "requested_at_ms"}]}`. Reads only.
///
/// # Safety
/// `handle` is an open handle; `community_id` NUL-terminated; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_community_state(
    handle: *const SpotsTransport,
    community_id: *const c_char,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, id) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                community(community_id)?,
            )
        };
        let state = handle.lock().community_state(id)?;
        json_buffer(out_json, &state.as_ref().map_or(Value::Null, state_json));
        Ok(())
    })
}

/// Admins: starts the epoch the key server opened for our rotation and seals its key for
/// every recipient. The epoch is the row `community-keys/rotate` returned (`key_id`,
/// `rotated_at_ms`, `rotation` "initial" | "hard" | "soft", `grace_until_ms` or 0); the
/// community's first epoch (`key_id` 1, "initial") is started the same way. `recipients_json`
/// is a JSON array `[{"agent_id", "device_id", "bundle": <bundle JSON> | null}]`: every
/// remaining member device, our own other devices included, with the bundle fetched from the
/// key server where there is no session yet. Returns `{"epoch": {"key_id", "epoch_id",
/// "rotated_at_ms", "rotation", "grace_until_ms"}, "shares": [share rows]}`, each share row
/// `{"community_id", "key_id", "from_agent_id", "from_device_id", "to_agent_id",
/// "to_device_id", "encryption_type": "signal_protocol", "share_kind": "epoch_key_v1",
/// "message_type": 3 | 2, "body": hex}` to post to `community-keys/shares`. From now on this
/// device sends in the new epoch.
///
/// One transaction: the new key, the sessions started from bundles and every share commit
/// together. `MISSING_SESSIONS` (details name the devices): nothing changed; fetch their
/// bundles and call again with the same row. An epoch whose key this device already holds is
/// `INVALID_STATE` (a rotation never replaces a key).
///
/// # Safety
/// `handle` is an open handle; `community_id` and `rotation` NUL-terminated;
/// `recipients_json` points to `recipients_json_len` bytes; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_community_rotate(
    handle: *const SpotsTransport,
    community_id: *const c_char,
    key_id: u32,
    rotated_at_ms: u64,
    rotation: *const c_char,
    grace_until_ms: u64,
    recipients_json: *const u8,
    recipients_json_len: usize,
    now_ms: u64,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, id, rotation, list) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                community(community_id)?,
                c_str(rotation, "rotation")?,
                bytes(recipients_json, recipients_json_len, "recipients_json")?,
            )
        };
        let info = epoch_info(id, key_id, rotated_at_ms, rotation, Some(grace_until_ms))?;
        let list = recipients(list)?;
        let now = Timestamp::from_millis(now_ms);
        let mut transport = handle.lock();
        let shares = operation(&mut transport, |t| {
            let mut rng = os_rng();
            let payload = t.rotate_community(id, info, now, &mut rng)?;
            t.create_shares(&list, &payload, now, &mut rng)
        })?;
        json_buffer(
            out_json,
            &json!({"epoch": epoch_json(&info), "shares": shares_json(&shares, key_id)}),
        );
        Ok(())
    })
}

/// Sender chains: our chain for the epoch `key_id` (created on first use; later calls carry
/// it at its current iteration) sealed as `epoch_sender_chain_seed_v1` shares for every
/// recipient (`recipients_json` as for [`spots_community_rotate`]: every member device, our
/// own other devices included). Returns a JSON array of share rows to post. Distribute it
/// before sending in the epoch: once this device holds its own chain for the epoch it sends
/// sender-chain blobs there. One transaction; `MISSING_SESSIONS` changes nothing.
///
/// # Safety
/// `handle` is an open handle; `community_id` NUL-terminated; `recipients_json` points to
/// `recipients_json_len` bytes; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_community_share_sender_chain(
    handle: *const SpotsTransport,
    community_id: *const c_char,
    key_id: u32,
    recipients_json: *const u8,
    recipients_json_len: usize,
    now_ms: u64,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    // SAFETY: the caller's contract is the helper's.
    unsafe {
        seal_sender_chain(
            SenderChain::Start,
            handle,
            community_id,
            key_id,
            recipients_json,
            recipients_json_len,
            now_ms,
            out_json,
        )
    }
}

/// Replaces our sender chain in the epoch `key_id` by a fresh one (new chain id, keys) without
/// a rotation, and seals it for every recipient like [`spots_community_share_sender_chain`].
/// Receivers keep the old chain for late messages. One transaction.
///
/// # Safety
/// As [`spots_community_share_sender_chain`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_community_reset_sender_chain(
    handle: *const SpotsTransport,
    community_id: *const c_char,
    key_id: u32,
    recipients_json: *const u8,
    recipients_json_len: usize,
    now_ms: u64,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    // SAFETY: the caller's contract is the helper's.
    unsafe {
        seal_sender_chain(
            SenderChain::Reset,
            handle,
            community_id,
            key_id,
            recipients_json,
            recipients_json_len,
            now_ms,
            out_json,
        )
    }
}

/// Which chain [`seal_sender_chain`] seals: our first in the epoch, or a fresh replacement.
#[derive(Clone, Copy)]
enum SenderChain {
    Start,
    Reset,
}

/// Starts or resets our sender chain in the epoch `key_id` and seals it for every recipient,
/// in one transaction; the shares JSON goes to `out_json`.
///
/// # Safety
/// As [`spots_community_share_sender_chain`].
#[allow(clippy::too_many_arguments)] // the C arguments of both calls, forwarded
unsafe fn seal_sender_chain(
    chain: SenderChain,
    handle: *const SpotsTransport,
    community_id: *const c_char,
    key_id: u32,
    recipients_json: *const u8,
    recipients_json_len: usize,
    now_ms: u64,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, id, list) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                community(community_id)?,
                bytes(recipients_json, recipients_json_len, "recipients_json")?,
            )
        };
        let epoch = server_epoch(id, key_id)?;
        let list = recipients(list)?;
        let now = Timestamp::from_millis(now_ms);
        let mut transport = handle.lock();
        let shares = operation(&mut transport, |t| {
            let mut rng = os_rng();
            let payload = match chain {
                SenderChain::Start => t.start_sender_chain(id, epoch, now, &mut rng)?,
                SenderChain::Reset => t.reset_sender_chain(id, epoch, now, &mut rng)?,
            };
            t.create_shares(&list, &payload, now, &mut rng)
        })?;
        json_buffer(out_json, &shares_json(&shares, key_id));
        Ok(())
    })
}

/// Opens a share addressed to this device, from the columns of a fetched
/// `community_sender_key_shares` row: the sender, the community, the epoch's `key_id`,
/// `encryption_type` (must be `signal_protocol`), `share_kind`, the Signal `message_type` (3
/// or 2) and the body. Apply the epoch rows first. Returns `{"from_agent_id",
/// "from_device_id", "community_id", "key_id", "epoch_id", "share_kind",
/// "first_for_community"}`. The Signal session, the epoch key or the sender's chain and the
/// community state commit together; on any error nothing changed: a malformed or foreign row
/// is `INVALID_MESSAGE`, a sharer whose identity changed without approval
/// `UNTRUSTED_IDENTITY`, a different key for an epoch already keyed `INVALID_STATE`, an
/// unknown epoch `NO_SENDER_KEY_STATE`, a share already opened `DUPLICATE_MESSAGE`.
///
/// # Safety
/// `handle` is an open handle; `from_agent_id`, `community_id`, `encryption_type` and
/// `share_kind` NUL-terminated; `body` points to `body_len` bytes; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_community_open_share(
    handle: *const SpotsTransport,
    from_agent_id: *const c_char,
    from_device_id: u32,
    community_id: *const c_char,
    key_id: u32,
    encryption_type: *const c_char,
    share_kind: *const c_char,
    message_type: u8,
    body: *const u8,
    body_len: usize,
    now_ms: u64,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, from, id, encryption_type, share_kind, body) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                address(from_agent_id, from_device_id)?,
                community(community_id)?,
                c_str(encryption_type, "encryption_type")?,
                c_str(share_kind, "share_kind")?,
                bytes(body, body_len, "body")?,
            )
        };
        let epoch = server_epoch(id, key_id)?;
        let mut transport = handle.lock();
        let opened = operation(&mut transport, |t| {
            t.open_share_columns(
                &from,
                id,
                epoch,
                encryption_type,
                share_kind,
                message_type,
                body,
                Timestamp::from_millis(now_ms),
                &mut os_rng(),
            )
        })?;
        json_buffer(out_json, &opened_json(&opened, key_id));
        Ok(())
    })
}

/// Makes the epoch `key_id` the one this device sends in (the `start_using_epoch` action of
/// [`spots_community_observe`]; in a sender-chain community share our chain for it first).
/// `NO_SENDER_KEY_STATE` while no key material for it has arrived.
///
/// # Safety
/// `handle` is an open handle; `community_id` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_community_start_using(
    handle: *const SpotsTransport,
    community_id: *const c_char,
    key_id: u32,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, id) = unsafe { (self::handle(handle)?, community(community_id)?) };
        let epoch = server_epoch(id, key_id)?;
        let mut transport = handle.lock();
        operation(&mut transport, |t| t.start_using_epoch(id, epoch))
    })
}

/// What this device must do for a community now, in order, as a JSON array (none needs the
/// user): `{"action": "fetch_my_share", "key_id"}` (fetch and open our shares of that epoch),
/// `{"action": "request_repair", "key_id", "agent_id", "device_id", "chain_id"}` (call
/// [`spots_community_request_repair`] and send its request), `{"action":
/// "start_using_epoch", "key_id"}` (share our sender chain first in a sender-chain community,
/// then [`spots_community_start_using`]). Call it after applying epoch rows, opening shares,
/// and periodically. Reads only; `NO_SENDER_KEY_STATE` for a community this device has no
/// state for.
///
/// # Safety
/// `handle` is an open handle; `community_id` NUL-terminated; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_community_observe(
    handle: *const SpotsTransport,
    community_id: *const c_char,
    now_ms: u64,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, id) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                community(community_id)?,
            )
        };
        let transport = handle.lock();
        let actions = transport.observe_community(id, Timestamp::from_millis(now_ms))?;
        // Read under the same lock: it exists, or observe_community had failed.
        let state = transport
            .community_state(id)?
            .ok_or_else(|| FfiError::new(SpotsStatus::InvalidState, "no community state"))?;
        json_buffer(
            out_json,
            &Value::Array(actions.iter().map(|a| action_json(&state, a)).collect()),
        );
        Ok(())
    })
}

/// The seed repair request for a `request_repair` action: returns `{"agent_id",
/// "device_id", "request": hex}`; send the `request` bytes as a DM
/// (`spots_encrypt_to_agent`) to that device. Records the request as made at
/// `now_ms` (observe asks again after an hour).
///
/// # Safety
/// `handle` is an open handle; `community_id` and `sender_agent_id` NUL-terminated; `out_json`
/// is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_community_request_repair(
    handle: *const SpotsTransport,
    community_id: *const c_char,
    key_id: u32,
    sender_agent_id: *const c_char,
    sender_device_id: u32,
    now_ms: u64,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, id, sender) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                community(community_id)?,
                address(sender_agent_id, sender_device_id)?,
            )
        };
        let epoch = server_epoch(id, key_id)?;
        let mut transport = handle.lock();
        let value = operation(&mut transport, |t| {
            let request = t.request_repair(id, epoch, &sender, Timestamp::from_millis(now_ms))?;
            request_json(&sender, &request)
        })?;
        json_buffer(out_json, &value);
        Ok(())
    })
}

/// Encrypts `payload` (an encoded envelope) once for the whole community, in the epoch this
/// device sends in: with our sender chain when we hold one for that epoch (a version-2 blob),
/// else with the epoch key (version 1). `out_blob` gets the blob for
/// `community_message_blobs.ciphertext`, `out_key_id` the epoch's `key_id` for the row's
/// `key_id` column. `INVALID_STATE` when no epoch accepts messages stamped `now_ms` (act on
/// [`spots_community_observe`] first), `NO_SENDER_KEY_STATE` for a community this device has
/// no state for. A sender-chain step is committed before the blob is returned.
///
/// # Safety
/// `handle` is an open handle; `community_id` NUL-terminated; `payload` points to
/// `payload_len` bytes; `out_blob` and `out_key_id` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_community_encrypt(
    handle: *const SpotsTransport,
    community_id: *const c_char,
    payload: *const u8,
    payload_len: usize,
    now_ms: u64,
    out_blob: *mut SpotsBuffer,
    out_key_id: *mut u32,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_blob, out_key_id, id, payload) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_blob, "out_blob")?,
                out(out_key_id, "out_key_id")?,
                community(community_id)?,
                bytes(payload, payload_len, "payload")?,
            )
        };
        *out_key_id = 0;
        let mut transport = handle.lock();
        let (blob, key_id) = operation(&mut transport, |t| {
            let blob =
                t.community_encrypt(id, payload, Timestamp::from_millis(now_ms), &mut os_rng())?;
            let header = validate_blob(&blob)
                .map_err(|e| FfiError::new(SpotsStatus::Internal, e.to_string()))?;
            let key_id = stored_server_key_id(t, id, header.key_id)?;
            Ok::<_, FfiError>((blob, key_id))
        })?;
        *out_key_id = key_id;
        *out_blob = SpotsBuffer::from_vec(blob);
        Ok(())
    })
}

/// Decrypts a blob fetched from the community, from the sender device its row names. Either
/// a message: the payload raw in `out_plaintext` and `{"kind": "message", "key_id",
/// "epoch_id", "sent_at_ms", "scheme": "epoch" | "sender_chain", "chain_id", "iteration"}` in
/// `out_json` (chain fields null for the epoch scheme); or, when we lack the sender's chain,
/// `{"kind": "missing_seed", "agent_id", "device_id", "request": hex}` with an empty
/// plaintext: send the `request` bytes as a DM to that device; its answer comes back as a
/// `re_share_v1` share (the repair is recorded; messages before the re-shared iteration stay
/// unreadable). Errors change nothing: `EPOCH_REJECTED` (stamped after its epoch closed),
/// `NO_SENDER_KEY_STATE` (epoch key not here yet: fetch the share, or unknown epoch: apply
/// the rows), `DUPLICATE_MESSAGE`, `INVALID_MESSAGE`, `INVALID_SIGNATURE`.
///
/// # Safety
/// `handle` is an open handle; `community_id` and `sender_agent_id` NUL-terminated; `blob`
/// points to `blob_len` bytes; `out_plaintext` and `out_json` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_community_decrypt(
    handle: *const SpotsTransport,
    community_id: *const c_char,
    sender_agent_id: *const c_char,
    sender_device_id: u32,
    blob: *const u8,
    blob_len: usize,
    now_ms: u64,
    out_plaintext: *mut SpotsBuffer,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_plaintext, out_json, id, sender, blob) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_plaintext, "out_plaintext")?,
                out_buffer(out_json, "out_json")?,
                community(community_id)?,
                address(sender_agent_id, sender_device_id)?,
                bytes(blob, blob_len, "blob")?,
            )
        };
        let mut transport = handle.lock();
        let (info, plaintext) = operation(&mut transport, |t| {
            match t.community_decrypt(id, &sender, blob, Timestamp::from_millis(now_ms))? {
                GroupReceive::Message { header, plaintext } => {
                    let info = json!({
                        "kind": "message",
                        "key_id": stored_server_key_id(t, id, header.key_id)?,
                        "epoch_id": header.key_id.to_string(),
                        "sent_at_ms": header.sent_at.as_millis(),
                        "scheme": match header.scheme {
                            BlobScheme::Epoch => "epoch",
                            BlobScheme::SenderChain => "sender_chain",
                        },
                        "chain_id": header.chain.map(|c| c.chain_id),
                        "iteration": header.chain.map(|c| c.iteration),
                    });
                    Ok::<_, FfiError>((info, Some(plaintext)))
                }
                GroupReceive::MissingSeed { to, request } => {
                    let info =
                        with_field(request_json(&to, &request)?, "kind", json!("missing_seed"));
                    Ok((info, None))
                }
            }
        })?;
        json_buffer(out_json, &info);
        if let Some(plaintext) = plaintext {
            *out_plaintext = SpotsBuffer::from_vec(plaintext.to_vec());
        }
        Ok(())
    })
}

/// Answers a seed repair request received as a DM from the device (`requester_agent_id`,
/// `requester_device_id`); `request` is that DM's plaintext, a `sender_key_request_v1`
/// envelope. Returns our chain for the requested epoch at its current iteration, sealed as one
/// `re_share_v1` share row for the requester (the share row JSON, to post). Check first that
/// the requester is a member device of the community: the library does not know the
/// membership. Not a request: `INVALID_MESSAGE` (undecodable) or `INVALID_ARGUMENT` (another
/// envelope kind); an epoch that no longer accepts messages is not re-shared
/// (`EPOCH_REJECTED`); no chain of ours in it: `NO_SENDER_KEY_STATE`; no session with the
/// requester (its request came over one, so only if that session was since removed):
/// `MISSING_SESSIONS`. One transaction.
///
/// # Safety
/// `handle` is an open handle; `requester_agent_id` NUL-terminated; `request` points to
/// `request_len` bytes; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spots_community_answer_sender_key_request(
    handle: *const SpotsTransport,
    requester_agent_id: *const c_char,
    requester_device_id: u32,
    request: *const u8,
    request_len: usize,
    now_ms: u64,
    out_json: *mut SpotsBuffer,
) -> SpotsStatus {
    ffi_call(|| {
        // SAFETY: the caller's contract covers every pointer argument.
        let (handle, out_json, requester, request) = unsafe {
            (
                self::handle(handle)?,
                out_buffer(out_json, "out_json")?,
                address(requester_agent_id, requester_device_id)?,
                bytes(request, request_len, "request")?,
            )
        };
        let envelope = Envelope::decode(request)
            .map_err(|e| FfiError::new(SpotsStatus::from_class(e.class()), e.to_string()))?;
        let request = match envelope {
            Envelope::SenderKeyRequest(request) => request,
            other => {
                return Err(FfiError::argument(format!(
                    "a {} envelope is not a sender_key_request_v1",
                    other.kind()
                )));
            }
        };
        let now = Timestamp::from_millis(now_ms);
        let mut transport = handle.lock();
        let share = operation(&mut transport, |t| {
            let payload = t.answer_sender_key_request(&requester, &request, now)?;
            let row = t.create_share(&requester, None, &payload, now, &mut os_rng())?;
            let key_id = stored_server_key_id(t, payload.community_id, payload.key_id)?;
            Ok::<_, FfiError>(share_json(&row, key_id))
        })?;
        json_buffer(out_json, &share);
        Ok(())
    })
}
