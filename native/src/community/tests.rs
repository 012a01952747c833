//! The community calls through the C ABI, with on-disk stores: an admin and two members
//! through rotations, shares, both schemes, restarts, repair and refusals that must leave the
//! store exactly as it was.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::buffer::spots_buffer_free;
use crate::dm::{spots_decrypt_from_agent, spots_encrypt_to_agent, spots_ensure_ready};
use crate::error::spots_last_error_json;
use crate::handle::{spots_transport_close, spots_transport_open};
use crate::store::tests::TempDir;

const T0: u64 = 1_800_000_000_000;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const COMMUNITY: &str = "c0c0c0c0-0000-4000-8000-000000000001";

/// A failed call: its status and `spots_last_error_json`.
#[derive(Debug)]
struct Failure {
    status: SpotsStatus,
    json: Value,
}

type Outcome<T> = Result<T, Failure>;

/// `spots_community_share_sender_chain` and `spots_community_reset_sender_chain`.
type SealChainCall = unsafe extern "C" fn(
    *const SpotsTransport,
    *const std::ffi::c_char,
    u32,
    *const u8,
    usize,
    u64,
    *mut SpotsBuffer,
) -> SpotsStatus;

fn cs(text: &str) -> CString {
    CString::new(text).unwrap()
}

fn take(buffer: &mut SpotsBuffer) -> Vec<u8> {
    let bytes = if buffer.data.is_null() {
        Vec::new()
    } else {
        // SAFETY: a buffer filled by the library: `len` bytes at `data`.
        unsafe { core::slice::from_raw_parts(buffer.data, buffer.len) }.to_vec()
    };
    // SAFETY: filled by the library, freed once.
    unsafe { spots_buffer_free(buffer) };
    bytes
}

fn check(status: SpotsStatus) -> Outcome<()> {
    if status == SpotsStatus::Ok {
        return Ok(());
    }
    let raw = spots_last_error_json();
    let json = if raw.is_null() {
        Value::Null
    } else {
        // SAFETY: a NUL-terminated string valid until this thread's next call.
        serde_json::from_str(unsafe { CStr::from_ptr(raw) }.to_str().unwrap()).unwrap()
    };
    Err(Failure { status, json })
}

fn json_of(status: SpotsStatus, buffer: &mut SpotsBuffer) -> Outcome<Value> {
    let bytes = take(buffer);
    check(status)?;
    Ok(serde_json::from_slice(&bytes).unwrap())
}

fn status_of<T: core::fmt::Debug>(outcome: Outcome<T>) -> SpotsStatus {
    outcome.expect_err("the call should fail").status
}

/// Every row of a store file (sealed values included: an unchanged store has the same
/// bytes, since every write seals with a fresh nonce).
fn snapshot(path: &Path) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = conn
        .prepare("SELECT kind, key, value FROM records ORDER BY kind, key")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// One device with its own store file, driven through the C ABI.
struct Device {
    handle: *mut SpotsTransport,
    path: PathBuf,
    key: [u8; 32],
    agent: String,
    /// The next one-time prekey handed out in a bundle.
    next_bundle: usize,
}

impl Device {
    fn new(dir: &TempDir, agent: &str, key: u8) -> Self {
        let mut device = Self {
            handle: core::ptr::null_mut(),
            path: dir.file(&format!("{agent}.db")),
            key: [key; 32],
            agent: agent.to_owned(),
            next_bundle: 0,
        };
        device.open();
        let mut out = SpotsBuffer::EMPTY;
        // SAFETY: an open handle and a writable buffer.
        let status = unsafe { spots_ensure_ready(device.handle, T0, &mut out) };
        json_of(status, &mut out).unwrap();
        device
    }

    fn open(&mut self) {
        let path = cs(self.path.to_str().unwrap());
        let agent = cs(&self.agent);
        // SAFETY: valid strings, a 32-byte key and a writable out-pointer.
        let status = unsafe {
            spots_transport_open(
                path.as_ptr(),
                self.key.as_ptr(),
                32,
                agent.as_ptr(),
                1,
                &mut self.handle,
            )
        };
        check(status).unwrap();
    }

    /// Closes the handle and opens the store again (a restart of the app).
    fn reopen(&mut self) {
        // SAFETY: the open handle, closed once.
        unsafe { spots_transport_close(self.handle) };
        self.handle = core::ptr::null_mut();
        self.open();
    }

    fn snapshot(&self) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
        snapshot(&self.path)
    }

    /// A bundle of this device as the key server hands it out (a fresh one-time prekey each
    /// time).
    fn bundle(&mut self) -> Value {
        // SAFETY: an open handle (read through its lock, as the key server would serve it).
        let plan = unsafe { &*self.handle }
            .lock()
            .current_publish_plan()
            .unwrap();
        let bundle = plan.bundles().one_time.swap_remove(self.next_bundle);
        self.next_bundle += 1;
        serde_json::to_value(bundle).unwrap()
    }

    fn apply(&self, epochs: &Value) -> Outcome<Value> {
        let community = cs(COMMUNITY);
        let epochs = epochs.to_string();
        let mut out = SpotsBuffer::EMPTY;
        // SAFETY: an open handle, valid strings and buffers.
        let status = unsafe {
            spots_community_apply_epochs(
                self.handle,
                community.as_ptr(),
                epochs.as_ptr(),
                epochs.len(),
                &mut out,
            )
        };
        json_of(status, &mut out)
    }

    fn state(&self) -> Value {
        let community = cs(COMMUNITY);
        let mut out = SpotsBuffer::EMPTY;
        // SAFETY: an open handle, valid strings and buffers.
        let status = unsafe { spots_community_state(self.handle, community.as_ptr(), &mut out) };
        json_of(status, &mut out).unwrap()
    }

    #[allow(clippy::too_many_arguments)]
    fn rotate(
        &self,
        key_id: u32,
        rotated_at: u64,
        rotation: &str,
        grace_until: u64,
        recipients: &Value,
        now: u64,
    ) -> Outcome<Value> {
        let community = cs(COMMUNITY);
        let rotation = cs(rotation);
        let recipients = recipients.to_string();
        let mut out = SpotsBuffer::EMPTY;
        // SAFETY: an open handle, valid strings and buffers.
        let status = unsafe {
            spots_community_rotate(
                self.handle,
                community.as_ptr(),
                key_id,
                rotated_at,
                rotation.as_ptr(),
                grace_until,
                recipients.as_ptr(),
                recipients.len(),
                now,
                &mut out,
            )
        };
        json_of(status, &mut out)
    }

    fn share_chain(&self, key_id: u32, recipients: &Value, now: u64) -> Outcome<Value> {
        self.seal_chain(spots_community_share_sender_chain, key_id, recipients, now)
    }

    fn reset_chain(&self, key_id: u32, recipients: &Value, now: u64) -> Outcome<Value> {
        self.seal_chain(spots_community_reset_sender_chain, key_id, recipients, now)
    }

    /// Calls one of the two calls that seal a sender chain (same arguments).
    fn seal_chain(
        &self,
        call: SealChainCall,
        key_id: u32,
        recipients: &Value,
        now: u64,
    ) -> Outcome<Value> {
        let community = cs(COMMUNITY);
        let recipients = recipients.to_string();
        let mut out = SpotsBuffer::EMPTY;
        // SAFETY: an open handle, valid strings and buffers.
        let status = unsafe {
            call(
                self.handle,
                community.as_ptr(),
                key_id,
                recipients.as_ptr(),
                recipients.len(),
                now,
                &mut out,
            )
        };
        json_of(status, &mut out)
    }

    /// Opens a share row as `community-keys/mine` would return it (the row JSON a sharing
    /// call produced), with some columns possibly overridden.
    fn open_share_with(&self, row: &Value, key_id: u32, encryption_type: &str) -> Outcome<Value> {
        let from = cs(row["from_agent_id"].as_str().unwrap());
        let community = cs(row["community_id"].as_str().unwrap());
        let encryption_type = cs(encryption_type);
        let kind = cs(row["share_kind"].as_str().unwrap());
        let body = hex::decode(row["body"].as_str().unwrap()).unwrap();
        let mut out = SpotsBuffer::EMPTY;
        // SAFETY: an open handle, valid strings and buffers.
        let status = unsafe {
            spots_community_open_share(
                self.handle,
                from.as_ptr(),
                u32::try_from(row["from_device_id"].as_u64().unwrap()).unwrap(),
                community.as_ptr(),
                key_id,
                encryption_type.as_ptr(),
                kind.as_ptr(),
                u8::try_from(row["message_type"].as_u64().unwrap()).unwrap(),
                body.as_ptr(),
                body.len(),
                T0,
                &mut out,
            )
        };
        json_of(status, &mut out)
    }

    fn open_share(&self, row: &Value) -> Outcome<Value> {
        let key_id = u32::try_from(row["key_id"].as_u64().unwrap()).unwrap();
        self.open_share_with(row, key_id, "signal_protocol")
    }

    /// Opens the one share among `rows` addressed to this device.
    fn open_mine(&self, rows: &Value) -> Value {
        let mine: Vec<&Value> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row["to_agent_id"] == self.agent.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "{} in {rows}", self.agent);
        self.open_share(mine[0]).unwrap()
    }

    fn start_using(&self, key_id: u32) -> Outcome<()> {
        let community = cs(COMMUNITY);
        // SAFETY: an open handle and a valid string.
        check(unsafe { spots_community_start_using(self.handle, community.as_ptr(), key_id) })
    }

    fn observe(&self, now: u64) -> Outcome<Value> {
        let community = cs(COMMUNITY);
        let mut out = SpotsBuffer::EMPTY;
        // SAFETY: an open handle, valid strings and buffers.
        let status =
            unsafe { spots_community_observe(self.handle, community.as_ptr(), now, &mut out) };
        json_of(status, &mut out)
    }

    fn encrypt(&self, text: &str, now: u64) -> Outcome<(Vec<u8>, u32)> {
        let community = cs(COMMUNITY);
        let mut out = SpotsBuffer::EMPTY;
        let mut key_id = 99;
        // SAFETY: an open handle, valid strings and buffers.
        let status = unsafe {
            spots_community_encrypt(
                self.handle,
                community.as_ptr(),
                text.as_ptr(),
                text.len(),
                now,
                &mut out,
                &mut key_id,
            )
        };
        let blob = take(&mut out);
        check(status).inspect_err(|_| assert_eq!(key_id, 0, "out_key_id is reset on failure"))?;
        Ok((blob, key_id))
    }

    /// `(info JSON, plaintext)`.
    fn decrypt(&self, from: &str, blob: &[u8], now: u64) -> Outcome<(Value, String)> {
        let community = cs(COMMUNITY);
        let from = cs(from);
        let (mut plaintext, mut info) = (SpotsBuffer::EMPTY, SpotsBuffer::EMPTY);
        // SAFETY: an open handle, valid strings and buffers.
        let status = unsafe {
            spots_community_decrypt(
                self.handle,
                community.as_ptr(),
                from.as_ptr(),
                1,
                blob.as_ptr(),
                blob.len(),
                now,
                &mut plaintext,
                &mut info,
            )
        };
        let plaintext = String::from_utf8(take(&mut plaintext)).unwrap();
        Ok((json_of(status, &mut info)?, plaintext))
    }

    /// Decrypts a message and checks its text; returns the info JSON.
    fn receive(&self, from: &str, blob: &[u8], text: &str, now: u64) -> Value {
        let (info, plaintext) = self.decrypt(from, blob, now).unwrap();
        assert_eq!(info["kind"], "message", "{info}");
        assert_eq!(plaintext, text);
        info
    }

    fn request_repair(&self, key_id: u32, sender: &str, now: u64) -> Outcome<Value> {
        let community = cs(COMMUNITY);
        let sender = cs(sender);
        let mut out = SpotsBuffer::EMPTY;
        // SAFETY: an open handle, valid strings and buffers.
        let status = unsafe {
            spots_community_request_repair(
                self.handle,
                community.as_ptr(),
                key_id,
                sender.as_ptr(),
                1,
                now,
                &mut out,
            )
        };
        json_of(status, &mut out)
    }

    fn answer(&self, requester: &str, request: &[u8], now: u64) -> Outcome<Value> {
        let requester = cs(requester);
        let mut out = SpotsBuffer::EMPTY;
        // SAFETY: an open handle, valid strings and buffers.
        let status = unsafe {
            spots_community_answer_sender_key_request(
                self.handle,
                requester.as_ptr(),
                1,
                request.as_ptr(),
                request.len(),
                now,
                &mut out,
            )
        };
        json_of(status, &mut out)
    }

    /// A DM to `to`.1: `(type, body)`.
    fn dm_send(&self, to: &str, bytes: &[u8]) -> (u8, Vec<u8>) {
        let to = cs(to);
        let mut out = SpotsBuffer::EMPTY;
        // SAFETY: an open handle, valid strings and buffers.
        let status = unsafe {
            spots_encrypt_to_agent(
                self.handle,
                to.as_ptr(),
                1,
                bytes.as_ptr(),
                bytes.len(),
                T0,
                &mut out,
            )
        };
        let list = json_of(status, &mut out).unwrap();
        let m = &list[0];
        (
            u8::try_from(m["type"].as_u64().unwrap()).unwrap(),
            hex::decode(m["body"].as_str().unwrap()).unwrap(),
        )
    }

    fn dm_receive(&self, from: &str, (kind, body): &(u8, Vec<u8>)) -> Vec<u8> {
        let from = cs(from);
        let mut out = SpotsBuffer::EMPTY;
        let mut flags = 0;
        // SAFETY: an open handle, valid strings and buffers.
        let status = unsafe {
            spots_decrypt_from_agent(
                self.handle,
                from.as_ptr(),
                1,
                *kind,
                body.as_ptr(),
                body.len(),
                T0,
                &mut out,
                &mut flags,
            )
        };
        let plaintext = take(&mut out);
        check(status).unwrap();
        plaintext
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: NULL or the open handle, closed once.
        unsafe { spots_transport_close(self.handle) };
    }
}

fn epoch_row(key_id: u32, rotated_at: u64, rotation: &str, grace_until: Option<u64>) -> Value {
    json!({"key_id": key_id, "rotated_at_ms": rotated_at, "rotation": rotation,
           "grace_until_ms": grace_until})
}

fn recipient(agent: &str, bundle: Option<Value>) -> Value {
    json!({"agent_id": agent, "device_id": 1, "bundle": bundle})
}

fn actions(list: &Value) -> Vec<(String, u64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_owned(),
                a["key_id"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn action(name: &str, key_id: u64) -> (String, u64) {
    (name.to_owned(), key_id)
}

/// Admin, bob and carol with their own stores; the admin has started epoch 1 (the community's
/// initial epoch) and both members opened their shares and send in it.
struct Community {
    _dir: TempDir,
    admin: Device,
    bob: Device,
    carol: Device,
    epoch1: Value,
}

fn community_with_epoch_1(name: &str) -> Community {
    let dir = TempDir::new(name);
    let admin = Device::new(&dir, "admin", 0xA1);
    let mut bob = Device::new(&dir, "bob", 0xB2);
    let mut carol = Device::new(&dir, "carol", 0xC3);
    let rotation = admin
        .rotate(
            1,
            T0,
            "initial",
            0,
            &json!([
                recipient("bob", Some(bob.bundle())),
                recipient("carol", Some(carol.bundle()))
            ]),
            T0,
        )
        .unwrap();
    let epoch = &rotation["epoch"];
    assert_eq!(epoch["key_id"], 1);
    assert_eq!(epoch["rotation"], "hard");
    assert_eq!(epoch["grace_until_ms"], Value::Null);
    // The derived epoch id (docs/COMMUNITY.md pins it for this community and key_id 1).
    assert_eq!(epoch["epoch_id"], "cbbe61b0-99e2-82db-968f-bc3f3535d6ec");
    let shares = &rotation["shares"];
    assert_eq!(shares.as_array().unwrap().len(), 2);
    for share in shares.as_array().unwrap() {
        assert_eq!(share["key_id"], 1);
        assert_eq!(share["share_kind"], "epoch_key_v1");
        assert_eq!(share["encryption_type"], "signal_protocol");
        assert_eq!(share["message_type"], 3, "a PreKey message: first contact");
        assert_eq!(share["from_agent_id"], "admin");
    }
    let state = admin.state();
    assert_eq!(state["sending_key_id"], 1);
    assert_eq!(state["epochs"][0]["has_epoch_key"], true);

    let epoch1 = epoch_row(1, T0, "initial", None);
    for member in [&bob, &carol] {
        assert_eq!(member.state(), Value::Null);
        let state = member.apply(&json!([epoch1])).unwrap();
        assert_eq!(state["epochs"][0]["epoch_id"], epoch["epoch_id"]);
        assert_eq!(state["epochs"][0]["has_epoch_key"], false);
        assert_eq!(
            actions(&member.observe(T0).unwrap()),
            [action("fetch_my_share", 1)]
        );
        let opened = member.open_mine(shares);
        assert_eq!(opened["first_for_community"], true);
        assert_eq!(opened["from_agent_id"], "admin");
        assert_eq!(opened["key_id"], 1);
        assert_eq!(
            actions(&member.observe(T0).unwrap()),
            [action("start_using_epoch", 1)]
        );
        member.start_using(1).unwrap();
        assert_eq!(member.observe(T0).unwrap(), json!([]));
        assert_eq!(member.state()["first_share_from"], "admin.1");
    }
    Community {
        _dir: dir,
        admin,
        bob,
        carol,
        epoch1,
    }
}

#[test]
fn rotations_shares_and_both_schemes_across_restarts() {
    let Community {
        _dir,
        mut admin,
        mut bob,
        mut carol,
        epoch1,
    } = community_with_epoch_1("scenario");

    // Epoch scheme, every direction.
    let (blob, key_id) = bob.encrypt("hello from bob", T0 + 1).unwrap();
    assert_eq!((blob[0], key_id), (1, 1), "a version-1 blob in epoch 1");
    for reader in [&admin, &carol] {
        let info = reader.receive("bob", &blob, "hello from bob", T0 + 2);
        assert_eq!(info["key_id"], 1);
        assert_eq!(info["scheme"], "epoch");
        assert_eq!(info["sent_at_ms"], T0 + 1);
        assert_eq!(info["chain_id"], Value::Null);
    }
    let (from_admin, _) = admin.encrypt("welcome", T0 + 3).unwrap();
    bob.receive("admin", &from_admin, "welcome", T0 + 4);

    // Everyone restarts in the middle of the conversation.
    let (in_flight, _) = carol.encrypt("sent before the restart", T0 + 5).unwrap();
    for device in [&mut admin, &mut bob, &mut carol] {
        device.reopen();
    }
    bob.receive("carol", &in_flight, "sent before the restart", T0 + 6);
    assert_eq!(admin.state()["sending_key_id"], 1);

    // Sender chains: each device shares its chain with the two others (bob has no session
    // with carol yet: her bundle goes along).
    let carol_bundle = carol.bundle();
    let bob_bundle = bob.bundle();
    let from_admin = admin
        .share_chain(
            1,
            &json!([recipient("bob", None), recipient("carol", None)]),
            T0 + 10,
        )
        .unwrap();
    let from_bob = bob
        .share_chain(
            1,
            &json!([
                recipient("admin", None),
                recipient("carol", Some(carol_bundle))
            ]),
            T0 + 10,
        )
        .unwrap();
    let from_carol = carol
        .share_chain(
            1,
            &json!([recipient("admin", None), recipient("bob", Some(bob_bundle))]),
            T0 + 10,
        )
        .unwrap();
    for rows in [&from_admin, &from_bob, &from_carol] {
        for row in rows.as_array().unwrap() {
            assert_eq!(row["share_kind"], "epoch_sender_chain_seed_v1");
            assert_eq!(row["key_id"], 1);
        }
    }
    let opened = bob.open_mine(&from_admin);
    assert_eq!(opened["first_for_community"], false);
    carol.open_mine(&from_admin);
    admin.open_mine(&from_bob);
    carol.open_mine(&from_bob);
    admin.open_mine(&from_carol);
    // Restart with some seeds still unopened: bob opens carol's after it.
    bob.reopen();
    bob.open_mine(&from_carol);

    let (blob, key_id) = admin.encrypt("chain message", T0 + 20).unwrap();
    assert_eq!((blob[0], key_id), (2, 1), "a version-2 (sender-chain) blob");
    for reader in [&bob, &carol] {
        let info = reader.receive("admin", &blob, "chain message", T0 + 21);
        assert_eq!(info["scheme"], "sender_chain");
        assert_eq!(info["iteration"], 0);
    }
    // The same blob again: its message key is gone.
    assert_eq!(
        status_of(bob.decrypt("admin", &blob, T0 + 22)),
        SpotsStatus::DuplicateMessage
    );
    let (blob, _) = carol.encrypt("chain reply", T0 + 23).unwrap();
    admin.receive("carol", &blob, "chain reply", T0 + 24);
    bob.receive("carol", &blob, "chain reply", T0 + 24);

    // A soft rotation to epoch 2 with a one-hour grace window.
    let rotated_at = T0 + HOUR;
    let grace_until = rotated_at + HOUR;
    let rotation = admin
        .rotate(
            2,
            rotated_at,
            "soft",
            grace_until,
            &json!([recipient("bob", None), recipient("carol", None)]),
            rotated_at,
        )
        .unwrap();
    assert_eq!(rotation["epoch"]["grace_until_ms"], grace_until);
    let epoch2 = epoch_row(2, rotated_at, "soft", Some(grace_until));
    // Bob catches up at once; carol only after a restart, and meanwhile still sends in
    // epoch 1, inside the grace window.
    bob.apply(&json!([epoch1, epoch2])).unwrap();
    assert_eq!(
        actions(&bob.observe(rotated_at + 1).unwrap()),
        [action("fetch_my_share", 2)]
    );
    bob.open_mine(&rotation["shares"]);
    assert_eq!(
        actions(&bob.observe(rotated_at + 1).unwrap()),
        [action("start_using_epoch", 2)]
    );
    bob.start_using(2).unwrap();
    let (blob, key_id) = bob.encrypt("in epoch 2", rotated_at + 2).unwrap();
    assert_eq!(
        (blob[0], key_id),
        (1, 2),
        "epoch 2 has no sender chains yet"
    );
    admin.receive("bob", &blob, "in epoch 2", rotated_at + 3);

    let (late, key_id) = carol.encrypt("still in epoch 1", rotated_at + 10).unwrap();
    assert_eq!(key_id, 1);
    admin.receive("carol", &late, "still in epoch 1", rotated_at + 11);
    let info = bob.receive("carol", &late, "still in epoch 1", rotated_at + 11);
    assert_eq!(info["key_id"], 1);
    let (delayed, _) = carol.encrypt("delivered late", rotated_at + 20).unwrap();
    // A laggard that never saw epoch 2 stamps a message after the grace window: refused,
    // and the refusal changes nothing.
    let (too_late, _) = carol.encrypt("too late", grace_until + 1).unwrap();
    let before = admin.snapshot();
    assert_eq!(
        status_of(admin.decrypt("carol", &too_late, grace_until + 2)),
        SpotsStatus::EpochRejected
    );
    assert_eq!(admin.snapshot(), before);

    carol.reopen();
    carol.apply(&json!([epoch2])).unwrap();
    assert_eq!(
        status_of(carol.decrypt("bob", &blob, rotated_at + 12)),
        SpotsStatus::NoSenderKeyState,
        "no key for epoch 2 yet"
    );
    carol.open_mine(&rotation["shares"]);
    carol.receive("bob", &blob, "in epoch 2", rotated_at + 13);
    carol.start_using(2).unwrap();
    let (blob, key_id) = carol.encrypt("carol in epoch 2", grace_until + 1).unwrap();
    assert_eq!(key_id, 2);
    bob.receive("carol", &blob, "carol in epoch 2", grace_until + 2);
    // Delivered only after the grace window, a message stamped inside it still decrypts.
    bob.receive("carol", &delayed, "delivered late", grace_until + HOUR);

    // A hard rotation that leaves carol out (she was removed): she gets no share, cannot
    // send in epoch 2 any more, and cannot read epoch 3.
    let hard_at = grace_until + HOUR;
    let rotation = admin
        .rotate(
            3,
            hard_at,
            "hard",
            0,
            &json!([recipient("bob", None)]),
            hard_at,
        )
        .unwrap();
    assert_eq!(rotation["shares"].as_array().unwrap().len(), 1);
    let epoch3 = epoch_row(3, hard_at, "hard", None);
    for member in [&bob, &carol] {
        member.apply(&json!([epoch3])).unwrap();
    }
    bob.open_mine(&rotation["shares"]);
    bob.start_using(3).unwrap();
    let (blob, key_id) = bob.encrypt("epoch 3", hard_at + 1).unwrap();
    assert_eq!(key_id, 3);
    admin.receive("bob", &blob, "epoch 3", hard_at + 2);
    assert_eq!(
        status_of(carol.decrypt("bob", &blob, hard_at + 2)),
        SpotsStatus::NoSenderKeyState
    );
    assert_eq!(
        status_of(carol.encrypt("still here?", hard_at + 3)),
        SpotsStatus::InvalidState,
        "epoch 2 is closed for messages stamped after the hard rotation"
    );
    assert_eq!(
        actions(&carol.observe(hard_at + 3).unwrap()),
        [action("fetch_my_share", 3)]
    );
}

#[test]
fn a_missing_seed_is_repaired_through_a_dm_and_a_reset_chain_reaches_everyone() {
    let Community {
        _dir,
        admin,
        bob,
        mut carol,
        ..
    } = community_with_epoch_1("repair");
    let seeds = admin
        .share_chain(
            1,
            &json!([recipient("bob", None), recipient("carol", None)]),
            T0 + 10,
        )
        .unwrap();
    bob.open_mine(&seeds);
    // Carol's seed share is not here yet: she gets the repair request instead of an error.
    let (first, _) = admin.encrypt("first", T0 + 20).unwrap();
    bob.receive("admin", &first, "first", T0 + 21);
    let (info, plaintext) = carol.decrypt("admin", &first, T0 + 21).unwrap();
    assert_eq!(info["kind"], "missing_seed", "{info}");
    assert_eq!(
        (&info["agent_id"], &info["device_id"]),
        (&json!("admin"), &json!(1))
    );
    assert!(plaintext.is_empty());
    let request = hex::decode(info["request"].as_str().unwrap()).unwrap();
    let repairs = &carol.state()["pending_repairs"];
    assert_eq!(repairs[0]["agent_id"], "admin");
    assert_eq!(repairs[0]["key_id"], 1);
    assert_eq!(repairs[0]["requested_at_ms"], T0 + 21);
    // Asked just now: observe asks again only after an hour, and a restart keeps the repair.
    assert_eq!(carol.observe(T0 + 22).unwrap(), json!([]));
    carol.reopen();
    let later = T0 + 2 * HOUR;
    let observed = carol.observe(later).unwrap();
    assert_eq!(actions(&observed), [action("request_repair", 1)]);
    assert_eq!(observed[0]["agent_id"], "admin");
    assert!(observed[0]["chain_id"].is_u64());
    let again = carol.request_repair(1, "admin", later).unwrap();
    assert_eq!(again["agent_id"], "admin");
    assert_eq!(
        carol.state()["pending_repairs"][0]["requested_at_ms"],
        later
    );
    assert_eq!(carol.observe(later + 1).unwrap(), json!([]));

    // The request travels as a DM; what is not a request is refused and changes nothing.
    let dm = carol.dm_send("admin", &request);
    assert_eq!(admin.dm_receive("carol", &dm), request);
    let before = admin.snapshot();
    assert_eq!(
        status_of(admin.answer("carol", b"not an envelope", T0 + 30)),
        SpotsStatus::InvalidMessage
    );
    let text = spots_core::envelope::Envelope::Text("hi".into())
        .encode()
        .unwrap();
    assert_eq!(
        status_of(admin.answer("carol", &text, T0 + 30)),
        SpotsStatus::InvalidArgument
    );
    assert_eq!(admin.snapshot(), before);
    let answer = admin.answer("carol", &request, T0 + 30).unwrap();
    assert_eq!(answer["share_kind"], "re_share_v1");
    assert_eq!(answer["to_agent_id"], "carol");
    assert_eq!(answer["key_id"], 1);
    let opened = carol.open_share(&answer).unwrap();
    assert_eq!(opened["share_kind"], "re_share_v1");
    assert_eq!(carol.state()["pending_repairs"], json!([]));
    // The re-share starts at the chain's current iteration: the first message stays
    // unreadable for carol (forward secrecy), the next one decrypts.
    assert_eq!(
        status_of(carol.decrypt("admin", &first, T0 + 31)),
        SpotsStatus::DuplicateMessage
    );
    let (second, _) = admin.encrypt("second", T0 + 32).unwrap();
    carol.receive("admin", &second, "second", T0 + 33);

    // A reset chain: bob still reads a late message of the old chain, and a message of the
    // new one before its seed arrives is a missing seed, then decrypts.
    let reset = admin
        .reset_chain(
            1,
            &json!([recipient("bob", None), recipient("carol", None)]),
            T0 + 40,
        )
        .unwrap();
    assert_eq!(reset.as_array().unwrap().len(), 2);
    assert_eq!(reset[0]["share_kind"], "epoch_sender_chain_seed_v1");
    let (third, _) = admin.encrypt("third", T0 + 41).unwrap();
    let (info, _) = bob.decrypt("admin", &third, T0 + 42).unwrap();
    assert_eq!(info["kind"], "missing_seed");
    bob.open_mine(&reset);
    carol.open_mine(&reset);
    bob.receive("admin", &second, "second", T0 + 43);
    let new_chain = bob.receive("admin", &third, "third", T0 + 43);
    let old_chain = carol.receive("admin", &third, "third", T0 + 43);
    assert_eq!(new_chain["chain_id"], old_chain["chain_id"]);
    assert_eq!(bob.state()["pending_repairs"], json!([]));
}

#[test]
fn refused_shares_blobs_rows_and_rotations_leave_the_store_unchanged() {
    let dir = TempDir::new("refusals");
    let admin = Device::new(&dir, "admin", 0xA1);
    let mut bob = Device::new(&dir, "bob", 0xB2);
    let mut carol = Device::new(&dir, "carol", 0xC3);
    let mut dave = Device::new(&dir, "dave", 0xD4);
    let epoch1 = epoch_row(1, T0, "initial", None);

    // A rotation with a device that has neither a session nor a bundle: nothing at all is
    // committed (no epoch, no session with bob), and the details name the device.
    let before = admin.snapshot();
    let failure = admin
        .rotate(
            1,
            T0,
            "initial",
            0,
            &json!([
                recipient("bob", Some(bob.bundle())),
                recipient("dave", None)
            ]),
            T0,
        )
        .unwrap_err();
    assert_eq!(failure.status, SpotsStatus::MissingSessions);
    assert_eq!(failure.json["details"]["addresses"], json!(["dave.1"]));
    assert_eq!(admin.snapshot(), before);
    assert_eq!(admin.state(), Value::Null);
    let rotation = admin
        .rotate(
            1,
            T0,
            "initial",
            0,
            &json!([
                recipient("bob", Some(bob.bundle())),
                recipient("carol", Some(carol.bundle())),
                recipient("dave", Some(dave.bundle()))
            ]),
            T0,
        )
        .unwrap();
    let shares = rotation["shares"].as_array().unwrap();
    let for_bob = shares.iter().find(|s| s["to_agent_id"] == "bob").unwrap();
    let for_carol = shares.iter().find(|s| s["to_agent_id"] == "carol").unwrap();
    // The same epoch again: a rotation never replaces a key.
    assert_eq!(
        status_of(admin.rotate(1, T0, "initial", 0, &json!([]), T0)),
        SpotsStatus::InvalidState
    );

    // Epoch rows: one bad row refuses the whole batch.
    bob.apply(&json!([epoch1])).unwrap();
    let before = bob.snapshot();
    let conflicting = epoch_row(1, T0 + 1, "initial", None);
    let fine = epoch_row(2, T0 + HOUR, "soft", Some(T0 + 2 * HOUR));
    assert_eq!(
        status_of(bob.apply(&json!([fine, conflicting]))),
        SpotsStatus::InvalidState
    );
    assert_eq!(
        status_of(bob.apply(&json!([fine, epoch_row(3, T0, "sideways", None)]))),
        SpotsStatus::InvalidArgument
    );
    assert_eq!(bob.snapshot(), before);

    // Shares: the wrong encryption type, kind, epoch or addressee, or a damaged body, is
    // refused without consuming the Signal message: the right share still opens afterwards.
    let altered = |field: &str, value: Value| {
        let mut row = for_bob.clone();
        row[field] = value;
        row
    };
    let mut damaged = hex::decode(for_bob["body"].as_str().unwrap()).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let refusals = [
        (
            bob.open_share_with(for_bob, 1, "plaintext"),
            SpotsStatus::InvalidMessage,
        ),
        (
            bob.open_share_with(for_bob, 2, "signal_protocol"),
            SpotsStatus::InvalidMessage,
        ),
        (
            bob.open_share(&altered("share_kind", json!("epoch_sender_chain_seed_v1"))),
            SpotsStatus::InvalidMessage,
        ),
        (
            bob.open_share(&altered("share_kind", json!("epoch_key_v2"))),
            SpotsStatus::InvalidMessage,
        ),
        (
            bob.open_share(&altered("body", json!(hex::encode(&damaged)))),
            SpotsStatus::InvalidMessage,
        ),
    ];
    for (i, (outcome, status)) in refusals.into_iter().enumerate() {
        assert_eq!(status_of(outcome), status, "refusal {i}");
    }
    // Carol's share cannot be opened by bob (another device's prekeys).
    assert_ne!(status_of(bob.open_share(for_carol)), SpotsStatus::Ok);
    assert_eq!(bob.snapshot(), before);
    bob.open_share(for_bob).unwrap();
    let opened = bob.snapshot();
    assert_eq!(
        status_of(bob.open_share(for_bob)),
        SpotsStatus::DuplicateMessage
    );
    assert_eq!(bob.snapshot(), opened);
    bob.start_using(1).unwrap();

    // Blobs: damaged, attributed to the wrong sender, truncated, of an unknown community:
    // refused, nothing changed.
    carol.apply(&json!([epoch1])).unwrap();
    carol.open_share(for_carol).unwrap();
    let (blob, _) = admin.encrypt("epoch message", T0 + 1).unwrap();
    let before = bob.snapshot();
    let mut tampered = blob.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        status_of(bob.decrypt("admin", &tampered, T0 + 2)),
        SpotsStatus::InvalidMessage
    );
    assert_eq!(
        status_of(bob.decrypt("carol", &blob, T0 + 2)),
        SpotsStatus::InvalidMessage
    );
    assert_eq!(
        status_of(bob.decrypt("admin", &blob[..40], T0 + 2)),
        SpotsStatus::InvalidMessage
    );
    assert_eq!(
        status_of(bob.decrypt("bob", &blob, T0 + 2)),
        SpotsStatus::InvalidArgument,
        "not from ourselves"
    );
    assert_eq!(bob.snapshot(), before);
    bob.receive("admin", &blob, "epoch message", T0 + 2);

    // A sender-chain blob with a broken signature, then a replay of a good one.
    let seeds = admin
        .share_chain(1, &json!([recipient("bob", None)]), T0 + 3)
        .unwrap();
    bob.open_mine(&seeds);
    let (blob, _) = admin.encrypt("chain message", T0 + 4).unwrap();
    assert_eq!(blob[0], 2);
    let before = bob.snapshot();
    let mut forged = blob.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        status_of(bob.decrypt("admin", &forged, T0 + 5)),
        SpotsStatus::InvalidSignature
    );
    assert_eq!(bob.snapshot(), before);
    bob.receive("admin", &blob, "chain message", T0 + 5);
    let after = bob.snapshot();
    assert_eq!(
        status_of(bob.decrypt("admin", &blob, T0 + 6)),
        SpotsStatus::DuplicateMessage
    );
    assert_eq!(bob.snapshot(), after);

    // A blob of a community this device knows nothing about.
    let other = cs("c0c0c0c0-0000-4000-8000-0000000000ff");
    let (mut plaintext, mut info) = (SpotsBuffer::EMPTY, SpotsBuffer::EMPTY);
    let admin_agent = cs("admin");
    // SAFETY: an open handle, valid strings and buffers.
    let status = unsafe {
        spots_community_decrypt(
            bob.handle,
            other.as_ptr(),
            admin_agent.as_ptr(),
            1,
            blob.as_ptr(),
            blob.len(),
            T0 + 7,
            &mut plaintext,
            &mut info,
        )
    };
    take(&mut plaintext);
    take(&mut info);
    assert_eq!(status, SpotsStatus::NoSenderKeyState);
    assert_eq!(bob.snapshot(), after);
    // Dave never applied the epoch rows: his share waits for them.
    let for_dave = shares.iter().find(|s| s["to_agent_id"] == "dave").unwrap();
    let before = dave.snapshot();
    assert_eq!(
        status_of(dave.open_share(for_dave)),
        SpotsStatus::NoSenderKeyState
    );
    assert_eq!(dave.snapshot(), before);
    dave.apply(&json!([epoch1])).unwrap();
    dave.open_share(for_dave).unwrap();
}

#[test]
fn abi_edges() {
    let dir = TempDir::new("community-abi");
    let device = Device::new(&dir, "admin", 0xA1);
    let community = cs(COMMUNITY);
    let mut out = SpotsBuffer::EMPTY;
    let epochs = b"[]";
    // SAFETY: each call gets an open handle or NULL, and valid or NULL pointers, as stated.
    unsafe {
        assert_eq!(
            spots_community_state(core::ptr::null(), community.as_ptr(), &mut out),
            SpotsStatus::NullPointer
        );
        assert_eq!(
            spots_community_state(device.handle, core::ptr::null(), &mut out),
            SpotsStatus::NullPointer
        );
        assert_eq!(
            spots_community_state(device.handle, community.as_ptr(), core::ptr::null_mut()),
            SpotsStatus::NullPointer
        );
        let not_uuid = cs("community-1");
        assert_eq!(
            spots_community_apply_epochs(
                device.handle,
                not_uuid.as_ptr(),
                epochs.as_ptr(),
                epochs.len(),
                &mut out
            ),
            SpotsStatus::InvalidArgument
        );
        assert_eq!(
            spots_community_start_using(device.handle, community.as_ptr(), 0),
            SpotsStatus::InvalidArgument
        );
        let mut key_id = 7;
        assert_eq!(
            spots_community_encrypt(
                device.handle,
                community.as_ptr(),
                b"x".as_ptr(),
                1,
                T0,
                &mut out,
                core::ptr::null_mut()
            ),
            SpotsStatus::NullPointer
        );
        assert_eq!(
            spots_community_encrypt(
                device.handle,
                community.as_ptr(),
                b"x".as_ptr(),
                1,
                T0,
                &mut out,
                &mut key_id
            ),
            SpotsStatus::NoSenderKeyState
        );
        assert_eq!(key_id, 0);
    }
    assert_eq!(device.state(), Value::Null);
    assert_eq!(status_of(device.observe(T0)), SpotsStatus::NoSenderKeyState);
    let failure = device
        .apply(&json!([{"key_id": 1, "rotated_at_ms": T0}]))
        .unwrap_err();
    assert_eq!(failure.status, SpotsStatus::InvalidArgument);
    assert!(
        failure.json["message"]
            .as_str()
            .unwrap()
            .contains("epochs JSON")
    );
    assert_eq!(
        status_of(device.apply(&json!([epoch_row(0, T0, "initial", None)]))),
        SpotsStatus::InvalidArgument
    );
    assert_eq!(
        status_of(device.rotate(1, T0, "sideways", 0, &json!([]), T0)),
        SpotsStatus::InvalidArgument
    );
    assert_eq!(
        status_of(device.rotate(1, T0, "initial", 0, &json!({"bob": 1}), T0)),
        SpotsStatus::InvalidArgument
    );
    assert_eq!(
        status_of(device.rotate(
            1,
            T0,
            "initial",
            0,
            &json!([recipient("no spaces", None)]),
            T0
        )),
        SpotsStatus::InvalidArgument
    );
    assert_eq!(
        status_of(device.rotate(1, T0, "initial", 0, &json!([recipient("admin", None)]), T0)),
        SpotsStatus::InvalidArgument,
        "not to ourselves"
    );
    assert_eq!(device.state(), Value::Null, "nothing was started");
    // A soft row, an epoch with no key yet: known, not usable.
    let state = device
        .apply(&json!([
            epoch_row(1, T0, "initial", Some(0)),
            epoch_row(2, T0 + HOUR, "soft", Some(T0 + 2 * HOUR))
        ]))
        .unwrap();
    assert_eq!(
        state["epochs"][0]["grace_until_ms"],
        Value::Null,
        "0 is none"
    );
    assert_eq!(state["epochs"][1]["rotation"], "soft");
    assert_eq!(state["sending_key_id"], Value::Null);
    assert_eq!(
        status_of(device.start_using(2)),
        SpotsStatus::NoSenderKeyState
    );
    assert_eq!(
        status_of(device.share_chain(3, &json!([]), T0)),
        SpotsStatus::NoSenderKeyState
    );
    assert_eq!(device.share_chain(2, &json!([]), T0).unwrap(), json!([]));
}
