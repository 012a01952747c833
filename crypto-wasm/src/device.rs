//! `Device`: one SPOTS device (the core's `SignalTransport` over a `MemoryStore`) for web tools
//! and tests. Every method converts its arguments, calls one facade operation with fresh OS
//! randomness and the caller's clock, and converts the result; state lives only in the store.

use rand_chacha::ChaCha20Rng;
use rand_core::{SeedableRng, TryRng};
use serde::{Deserialize, Serialize};
use spots_signal::community::share::ShareRow;
use spots_signal::community::{
    CommunityId, EpochId, EpochInfo, GroupReceive, OpenedShare, RotationKind, validate_blob,
};
use spots_signal::keys::IdentityKey;
use spots_signal::pqxdh::PreKeyBundle;
use spots_signal::transport::{OutgoingMessage, TransportConfig};
use spots_signal::{
    Address, AgentId, DeviceId, DeviceTarget, ErrorClass, MemoryStore, SignalTransport,
};
use wasm_bindgen::prelude::*;

use crate::bytes::Bytes;
use crate::error::{core, from_js, invalid_argument, js_error, to_js};
use crate::sealed::{self, SealError};
use crate::validator::timestamp;

/// Fresh randomness for one operation: a ChaCha20 stream seeded from the OS
/// (`crypto.getRandomValues` in WASM). Failing to read it is an error, never a panic.
fn rng() -> Result<ChaCha20Rng, JsValue> {
    let mut seed = [0u8; 32];
    getrandom::SysRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| js_error("randomness_unavailable", None, &e.to_string()))?;
    Ok(ChaCha20Rng::from_seed(seed))
}

fn address(agent_id: &str, device_id: u32) -> Result<Address, JsValue> {
    let agent = AgentId::new(agent_id).map_err(|e| invalid_argument(&e.to_string()))?;
    let device = DeviceId::new(device_id).map_err(|e| invalid_argument(&e.to_string()))?;
    Ok(Address::new(agent, device))
}

fn fail<E: core::fmt::Display>(class: ErrorClass) -> impl Fn(E) -> JsValue {
    move |e| core(class, &e.to_string())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadyJs {
    needs_upload: bool,
    identity_created: bool,
    upload: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutgoingJs {
    agent_id: String,
    device_id: u32,
    message_type: u8,
    body: Bytes,
}

impl From<OutgoingMessage> for OutgoingJs {
    fn from(message: OutgoingMessage) -> Self {
        Self {
            agent_id: message.destination.agent_id.to_string(),
            device_id: message.destination.device_id.get(),
            message_type: message.message_type as u8,
            body: Bytes(message.body),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DecryptedJs {
    plaintext: Bytes,
    identity_changed: bool,
    new_session: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BundleOutcomeJs {
    identity_changed: bool,
    new_device: bool,
}

/// A `community_sender_key_state` row as the key server returns it (`keyId` is its integer
/// epoch number; the epoch's UUID is derived from it and the community).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EpochRowJs {
    key_id: u32,
    rotated_at_ms: f64,
    rotation: String,
    #[serde(default)]
    grace_until_ms: Option<f64>,
}

impl EpochRowJs {
    fn to_info(&self, community: CommunityId) -> Result<EpochInfo, JsValue> {
        if self.key_id == 0 {
            return Err(invalid_argument(
                "keyId is the key server's epoch number (1, 2, ...)",
            ));
        }
        Ok(EpochInfo::from_server_row(
            community,
            self.key_id,
            timestamp(self.rotated_at_ms)?,
            RotationKind::parse(&self.rotation)
                .ok_or_else(|| invalid_argument("rotation is soft or hard"))?,
            self.grace_until_ms.map(timestamp).transpose()?,
        ))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EpochJs {
    key_id: u32,
    epoch_id: String,
    rotated_at_ms: f64,
    rotation: String,
    grace_until_ms: Option<f64>,
}

impl EpochJs {
    #[allow(clippy::cast_precision_loss)]
    fn from_info(info: &EpochInfo) -> Self {
        Self {
            key_id: info.server_key_id,
            epoch_id: info.key_id.to_string(),
            rotated_at_ms: info.rotated_at.as_millis() as f64,
            rotation: info.rotation.as_str().to_owned(),
            grace_until_ms: info.grace_until.map(|t| t.as_millis() as f64),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecipientJs {
    agent_id: String,
    device_id: u32,
    #[serde(default)]
    bundle: Option<PreKeyBundle>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShareJs {
    community_id: String,
    key_id: u32,
    from_agent_id: String,
    from_device_id: u32,
    to_agent_id: String,
    to_device_id: u32,
    encryption_type: &'static str,
    share_kind: &'static str,
    message_type: u8,
    body: Bytes,
}

impl ShareJs {
    /// `row` of the epoch `server_key_id` (the row's `key_id` column).
    fn from_row(row: ShareRow, server_key_id: u32) -> Self {
        Self {
            community_id: row.community_id.to_string(),
            key_id: server_key_id,
            from_agent_id: row.from.agent_id.to_string(),
            from_device_id: row.from.device_id.get(),
            to_agent_id: row.to.agent_id.to_string(),
            to_device_id: row.to.device_id.get(),
            encryption_type: row.encryption_type(),
            share_kind: row.share_kind.as_str(),
            message_type: row.message_type as u8,
            body: Bytes(row.body),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RotationJs {
    epoch: EpochJs,
    shares: Vec<ShareJs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingShareJs {
    from_agent_id: String,
    from_device_id: u32,
    community_id: String,
    key_id: u32,
    encryption_type: String,
    share_kind: String,
    message_type: u8,
    body: Bytes,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OpenedShareJs {
    from_agent_id: String,
    from_device_id: u32,
    community_id: String,
    key_id: u32,
    epoch_id: String,
    share_kind: &'static str,
    first_for_community: bool,
}

impl OpenedShareJs {
    fn from_opened(opened: OpenedShare, server_key_id: u32) -> Self {
        Self {
            from_agent_id: opened.from.agent_id.to_string(),
            from_device_id: opened.from.device_id.get(),
            community_id: opened.community_id.to_string(),
            key_id: server_key_id,
            epoch_id: opened.key_id.to_string(),
            share_kind: opened.kind.as_str(),
            first_for_community: opened.first_for_community,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommunityPostJs {
    blob: Bytes,
    key_id: u32,
    chain_id: Option<u32>,
    iteration: Option<u32>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum GroupReceiveJs {
    #[serde(rename_all = "camelCase")]
    Message {
        plaintext: Bytes,
        key_id: u32,
        epoch_id: String,
        sent_at_ms: f64,
    },
    #[serde(rename_all = "camelCase")]
    MissingSeed {
        agent_id: String,
        device_id: u32,
        request: Bytes,
    },
}

fn community_id(text: &str) -> Result<CommunityId, JsValue> {
    text.parse()
        .map_err(|_| invalid_argument("community id is a UUID"))
}

/// The devices to seal a share for, each with its bundle when there is no session yet.
fn share_recipients(recipients: JsValue) -> Result<Vec<(Address, Option<PreKeyBundle>)>, JsValue> {
    let recipients: Vec<RecipientJs> = from_js(recipients, "recipients")?;
    recipients
        .into_iter()
        .map(|r| Ok((address(&r.agent_id, r.device_id)?, r.bundle)))
        .collect()
}

/// The epoch id of the key server's epoch `key_id` (1, 2, ...) of `community`.
fn server_epoch(community: CommunityId, key_id: u32) -> Result<EpochId, JsValue> {
    if key_id == 0 {
        return Err(invalid_argument(
            "keyId is the key server's epoch number (1, 2, ...)",
        ));
    }
    Ok(EpochId::for_server_epoch(community, key_id))
}

/// A SPOTS device: identity, prekeys, sessions, trust, device lists and community state, held
/// in memory; export it sealed under a key to keep it.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Device {
    inner: SignalTransport<MemoryStore>,
}

impl Device {
    /// The key server's number of an epoch this device knows (every epoch it decrypts in).
    fn server_key_id(&self, community: CommunityId, key_id: EpochId) -> Result<u32, JsValue> {
        let state = self
            .inner
            .community_state(community)
            .map_err(|e| core(e.class(), &e.to_string()))?;
        state
            .and_then(|state| {
                state
                    .epochs()
                    .find(|epoch| epoch.key_id == key_id)
                    .map(|epoch| epoch.server_key_id)
            })
            .ok_or_else(|| core(ErrorClass::InvalidState, "epoch no longer known"))
    }
}

#[wasm_bindgen]
impl Device {
    /// A new device with an empty store; call `ensureReady` to create its keys.
    pub fn create(agent_id: &str, device_id: u32) -> Result<Device, JsValue> {
        Ok(Self {
            inner: SignalTransport::with_config(
                MemoryStore::new(),
                address(agent_id, device_id)?,
                TransportConfig::default(),
            ),
        })
    }

    /// The agent id.
    #[wasm_bindgen(getter, js_name = agentId)]
    pub fn agent_id(&self) -> String {
        self.inner.local_address().agent_id.to_string()
    }

    /// The device id.
    #[wasm_bindgen(getter, js_name = deviceId)]
    pub fn device_id(&self) -> u32 {
        self.inner.local_address().device_id.get()
    }

    /// Creates the identity on first use, rotates and replenishes prekeys; returns the upload
    /// JSON (`PublishPlan`) and whether it needs uploading.
    #[wasm_bindgen(js_name = ensureReady, unchecked_return_type = "ReadyResult")]
    pub fn ensure_ready(&mut self, now_ms: f64) -> Result<JsValue, JsValue> {
        let report = self
            .inner
            .ensure_ready(timestamp(now_ms)?, &mut rng()?)
            .map_err(|e| core(e.class(), &e.to_string()))?;
        to_js(&ReadyJs {
            needs_upload: report.needs_upload(),
            identity_created: report.rotation.identity_created,
            upload: report.plan.to_json(),
        })
    }

    /// The long-lived keys and every one-time key still held, as upload JSON (drift repair).
    #[wasm_bindgen(js_name = currentUpload)]
    pub fn current_upload(&self) -> Result<String, JsValue> {
        self.inner
            .current_publish_plan()
            .map(|plan| plan.to_json())
            .map_err(|e| core(e.class(), &e.to_string()))
    }

    /// This device's 33-byte identity key.
    #[wasm_bindgen(js_name = identityKey)]
    pub fn identity_key(&self) -> Result<Vec<u8>, JsValue> {
        self.inner
            .current_publish_plan()
            .map(|plan| plan.identity_key.serialize().to_vec())
            .map_err(|e| core(e.class(), &e.to_string()))
    }

    /// Starts a session with `agentId.deviceId` from a fetched bundle (the stored JSON object).
    #[wasm_bindgen(js_name = processBundle, unchecked_return_type = "BundleOutcome")]
    pub fn process_bundle(
        &mut self,
        agent_id: &str,
        device_id: u32,
        #[wasm_bindgen(unchecked_param_type = "PreKeyBundleJson")] bundle: JsValue,
        now_ms: f64,
    ) -> Result<JsValue, JsValue> {
        let bundle: PreKeyBundle = from_js(bundle, "bundle")?;
        let outcome = self
            .inner
            .process_bundle(
                &address(agent_id, device_id)?,
                &bundle,
                timestamp(now_ms)?,
                &mut rng()?,
            )
            .map_err(|e| core(e.class(), &e.to_string()))?;
        to_js(&BundleOutcomeJs {
            identity_changed: outcome.identity_changed,
            new_device: outcome.new_device,
        })
    }

    /// Encrypts to one device (`target` a number) or every device of the agent plus our own
    /// other devices (`"all"`). All or nothing.
    #[wasm_bindgen(unchecked_return_type = "OutgoingMessage[]")]
    pub fn encrypt(
        &mut self,
        agent_id: &str,
        #[wasm_bindgen(unchecked_param_type = "number | \"all\"")] target: JsValue,
        plaintext: &[u8],
        now_ms: f64,
    ) -> Result<JsValue, JsValue> {
        let agent = AgentId::new(agent_id).map_err(|e| invalid_argument(&e.to_string()))?;
        let target = if target.as_string().as_deref() == Some("all") {
            DeviceTarget::All
        } else {
            let id = target
                .as_f64()
                .filter(|n| n.fract() == 0.0 && (1.0..=127.0).contains(n))
                .ok_or_else(|| invalid_argument("target is a device id 1..127 or \"all\""))?;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            DeviceTarget::One(
                DeviceId::new(id as u32).map_err(|e| invalid_argument(&e.to_string()))?,
            )
        };
        let out = self
            .inner
            .encrypt_to_agent(&agent, target, plaintext, timestamp(now_ms)?)
            .map_err(|e| core(e.class(), &e.to_string()))?;
        to_js(&out.into_iter().map(OutgoingJs::from).collect::<Vec<_>>())
    }

    /// Decrypts a Signal message (type 2 or 3) from `agentId.deviceId`.
    #[wasm_bindgen(unchecked_return_type = "Decrypted")]
    pub fn decrypt(
        &mut self,
        agent_id: &str,
        device_id: u32,
        message_type: u8,
        body: &[u8],
        now_ms: f64,
    ) -> Result<JsValue, JsValue> {
        let decrypted = self
            .inner
            .decrypt_from_agent(
                &address(agent_id, device_id)?,
                message_type,
                body,
                timestamp(now_ms)?,
                &mut rng()?,
            )
            .map_err(|e| core(e.class(), &e.to_string()))?;
        to_js(&DecryptedJs {
            plaintext: Bytes(decrypted.plaintext.to_vec()),
            identity_changed: decrypted.identity_changed,
            new_session: decrypted.new_session,
        })
    }

    /// Approves `identityKey` (33 bytes), the key of `agentId.deviceId` the user was shown after
    /// an identity change; refused with `untrusted_identity` if a newer key arrived since.
    #[wasm_bindgen(js_name = approveIdentity)]
    pub fn approve_identity(
        &mut self,
        agent_id: &str,
        device_id: u32,
        identity_key: &[u8],
    ) -> Result<(), JsValue> {
        let expected =
            IdentityKey::deserialize(identity_key).map_err(|e| core(e.class(), &e.to_string()))?;
        self.inner
            .approve_identity(&address(agent_id, device_id)?, &expected)
            .map(|_| ())
            .map_err(|e| core(e.class(), &e.to_string()))
    }

    /// Replaces the known device list of an agent (from the server).
    #[wasm_bindgen(js_name = updateDeviceList)]
    pub fn update_device_list(&mut self, agent_id: &str, devices: Vec<u32>) -> Result<(), JsValue> {
        let agent = AgentId::new(agent_id).map_err(|e| invalid_argument(&e.to_string()))?;
        let devices = devices
            .into_iter()
            .map(DeviceId::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid_argument(&e.to_string()))?;
        self.inner
            .update_device_list(&agent, &devices)
            .map(|_| ())
            .map_err(|e| core(e.class(), &e.to_string()))
    }

    /// The safety number with `agentId.deviceId`.
    #[wasm_bindgen(js_name = safetyNumber, unchecked_return_type = "SafetyNumber")]
    pub fn safety_number(&self, agent_id: &str, device_id: u32) -> Result<JsValue, JsValue> {
        let fingerprint = self
            .inner
            .safety_number(&address(agent_id, device_id)?)
            .map_err(|e| core(e.class(), &e.to_string()))?;
        to_js(&serde_json::json!({
            "displayable": fingerprint.display.to_string(),
        }))
        .and_then(|object| {
            let scannable = js_sys::Uint8Array::from(fingerprint.scannable.serialize().as_slice());
            js_sys::Reflect::set(&object, &"scannable".into(), &scannable)?;
            Ok(object)
        })
    }

    /// Starts the epoch the key server opened for our rotation (`epoch`: the row
    /// `community-keys/rotate` returned) and seals its key for every recipient device (with a
    /// bundle where there is no session yet).
    #[wasm_bindgen(js_name = communityRotate, unchecked_return_type = "CommunityRotation")]
    pub fn community_rotate(
        &mut self,
        community: &str,
        #[wasm_bindgen(unchecked_param_type = "CommunityEpochRow")] epoch: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ShareRecipient[]")] recipients: JsValue,
        now_ms: f64,
    ) -> Result<JsValue, JsValue> {
        let id = community_id(community)?;
        let row: EpochRowJs = from_js(epoch, "epoch")?;
        let info = row.to_info(id)?;
        let recipients = share_recipients(recipients)?;
        let now = timestamp(now_ms)?;
        let mut rng = rng()?;
        let payload = self
            .inner
            .rotate_community(id, info, now, &mut rng)
            .map_err(|e| core(e.class(), &e.to_string()))?;
        let shares = self
            .inner
            .create_shares(&recipients, &payload, now, &mut rng)
            .map_err(|e| core(e.class(), &e.to_string()))?;
        to_js(&RotationJs {
            epoch: EpochJs::from_info(&info),
            shares: shares
                .into_iter()
                .map(|row| ShareJs::from_row(row, info.server_key_id))
                .collect(),
        })
    }

    /// Creates this device's sender chain for the key server's epoch `keyId` (on first use) and
    /// seals its seed for every recipient device (all member devices, our own other ones
    /// included), with a bundle where there is no session yet. Afterwards this device's blobs
    /// in that epoch use the sender-chain scheme.
    #[wasm_bindgen(js_name = communityStartSenderChain, unchecked_return_type = "ShareRowJs[]")]
    pub fn community_start_sender_chain(
        &mut self,
        community: &str,
        key_id: u32,
        #[wasm_bindgen(unchecked_param_type = "ShareRecipient[]")] recipients: JsValue,
        now_ms: f64,
    ) -> Result<JsValue, JsValue> {
        let id = community_id(community)?;
        let epoch = server_epoch(id, key_id)?;
        let recipients = share_recipients(recipients)?;
        let now = timestamp(now_ms)?;
        let mut rng = rng()?;
        let payload = self
            .inner
            .start_sender_chain(id, epoch, now, &mut rng)
            .map_err(|e| core(e.class(), &e.to_string()))?;
        let shares = self
            .inner
            .create_shares(&recipients, &payload, now, &mut rng)
            .map_err(|e| core(e.class(), &e.to_string()))?;
        to_js(
            &shares
                .into_iter()
                .map(|row| ShareJs::from_row(row, key_id))
                .collect::<Vec<_>>(),
        )
    }

    /// Records the community's epoch rows (oldest first).
    #[wasm_bindgen(js_name = communityApplyEpochs)]
    pub fn community_apply_epochs(
        &mut self,
        community: &str,
        #[wasm_bindgen(unchecked_param_type = "CommunityEpochRow[]")] epochs: JsValue,
    ) -> Result<(), JsValue> {
        let id = community_id(community)?;
        let epochs: Vec<EpochRowJs> = from_js(epochs, "epochs")?;
        let rows = epochs
            .iter()
            .map(|row| row.to_info(id))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner
            .apply_epoch_rows(id, &rows)
            .map(|_| ())
            .map_err(|e| core(e.class(), &e.to_string()))
    }

    /// Opens a share addressed to this device.
    #[wasm_bindgen(js_name = communityOpenShare, unchecked_return_type = "OpenedShare")]
    pub fn community_open_share(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "IncomingShare")] share: JsValue,
        now_ms: f64,
    ) -> Result<JsValue, JsValue> {
        let share: IncomingShareJs = from_js(share, "share")?;
        let community = community_id(&share.community_id)?;
        let opened = self
            .inner
            .open_share_columns(
                &address(&share.from_agent_id, share.from_device_id)?,
                community,
                server_epoch(community, share.key_id)?,
                &share.encryption_type,
                &share.share_kind,
                share.message_type,
                &share.body.0,
                timestamp(now_ms)?,
                &mut rng()?,
            )
            .map_err(|e| core(e.class(), &e.to_string()))?;
        to_js(&OpenedShareJs::from_opened(opened, share.key_id))
    }

    /// Makes the key server's epoch `keyId` the one this device sends in.
    #[wasm_bindgen(js_name = communityStartUsing)]
    pub fn community_start_using(&mut self, community: &str, key_id: u32) -> Result<(), JsValue> {
        let id = community_id(community)?;
        self.inner
            .start_using_epoch(id, server_epoch(id, key_id)?)
            .map_err(|e| core(e.class(), &e.to_string()))
    }

    /// Encrypts a community message once for all members, in the epoch this device sends in:
    /// the blob and the other columns of its `community_message_blobs` row (the key server's
    /// `keyId`; chain id and iteration for a sender-chain blob, null for an epoch-scheme one).
    #[wasm_bindgen(js_name = communityEncrypt, unchecked_return_type = "CommunityPost")]
    pub fn community_encrypt(
        &mut self,
        community: &str,
        payload: &[u8],
        now_ms: f64,
    ) -> Result<JsValue, JsValue> {
        let id = community_id(community)?;
        let blob = self
            .inner
            .community_encrypt(id, payload, timestamp(now_ms)?, &mut rng()?)
            .map_err(|e| core(e.class(), &e.to_string()))?;
        let header = validate_blob(&blob).map_err(|e| core(e.class(), &e.to_string()))?;
        to_js(&CommunityPostJs {
            key_id: self.server_key_id(id, header.key_id)?,
            chain_id: header.chain.map(|c| c.chain_id),
            iteration: header.chain.map(|c| c.iteration),
            blob: Bytes(blob),
        })
    }

    /// Decrypts a community blob from `agentId.deviceId`; a missing sender chain comes back as
    /// `{kind: "missing_seed", ...}` with the repair request to send.
    #[wasm_bindgen(js_name = communityDecrypt, unchecked_return_type = "CommunityReceive")]
    pub fn community_decrypt(
        &mut self,
        community: &str,
        agent_id: &str,
        device_id: u32,
        blob: &[u8],
        now_ms: f64,
    ) -> Result<JsValue, JsValue> {
        let id = community_id(community)?;
        let received = self
            .inner
            .community_decrypt(id, &address(agent_id, device_id)?, blob, timestamp(now_ms)?)
            .map_err(|e| core(e.class(), &e.to_string()))?;
        #[allow(clippy::cast_precision_loss)]
        let out = match received {
            GroupReceive::Message { header, plaintext } => GroupReceiveJs::Message {
                plaintext: Bytes(plaintext.to_vec()),
                key_id: self.server_key_id(id, header.key_id)?,
                epoch_id: header.key_id.to_string(),
                sent_at_ms: header.sent_at.as_millis() as f64,
            },
            GroupReceive::MissingSeed { to, request } => GroupReceiveJs::MissingSeed {
                agent_id: to.agent_id.to_string(),
                device_id: to.device_id.get(),
                request: Bytes(
                    request
                        .encode()
                        .map_err(fail(ErrorClass::InvalidMessage))?
                        .to_vec(),
                ),
            },
        };
        to_js(&out)
    }

    /// The whole state (every private key), sealed with AES-256-GCM under `key` (32 bytes) and
    /// bound to this device's address.
    #[wasm_bindgen(js_name = exportState)]
    pub fn export_state(&self, key: &[u8]) -> Result<Vec<u8>, JsValue> {
        let mut nonce = [0u8; 12];
        getrandom::SysRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| js_error("randomness_unavailable", None, &e.to_string()))?;
        let plaintext = self.inner.store().export();
        sealed::seal(key, self.inner.local_address(), nonce, &plaintext).map_err(seal_error)
    }

    /// Opens a state sealed by `exportState` for the same `agentId.deviceId` and key.
    #[wasm_bindgen(js_name = importState)]
    pub fn import_state(
        sealed_state: &[u8],
        key: &[u8],
        agent_id: &str,
        device_id: u32,
    ) -> Result<Device, JsValue> {
        let local = address(agent_id, device_id)?;
        let plaintext = sealed::open(key, &local, sealed_state).map_err(seal_error)?;
        let store = MemoryStore::import(&plaintext).map_err(fail(ErrorClass::InvalidState))?;
        Ok(Self {
            inner: SignalTransport::with_config(store, local, TransportConfig::default()),
        })
    }
}

fn seal_error(error: SealError) -> JsValue {
    match error {
        SealError::KeyLength => invalid_argument("the state key is 32 bytes"),
        SealError::Truncated => js_error(
            "invalid_state",
            Some(ErrorClass::InvalidState),
            "sealed state is truncated",
        ),
        SealError::Version(v) => js_error(
            "unsupported_version",
            Some(ErrorClass::InvalidState),
            &format!("sealed state version {v} is not supported"),
        ),
        SealError::Authentication => js_error(
            "authentication_failed",
            Some(ErrorClass::InvalidState),
            "sealed state does not open with this key for this device",
        ),
    }
}
