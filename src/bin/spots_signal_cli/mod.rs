//! The commands of the `spots-signal` CLI. Each command loads a state file, runs one facade
//! operation and saves the state only when the operation succeeded, exactly as an app commits.

mod group;
mod state;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};
use spots_signal::address::AddressError;
use spots_signal::fingerprint::Fingerprint;
use spots_signal::keys::{
    IdentityKey, IdentityKeyPair, KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord,
    RegistrationId, SignedPreKeyId, SignedPreKeyRecord,
};
use spots_signal::pqxdh::{PreKeyBundle, SessionOptions};
use spots_signal::prekey_lifecycle::PreKeyState;
use spots_signal::store::{Changes, LocalIdentity};
use spots_signal::transport::TransportConfig;
use spots_signal::{
    Address, DeviceTarget, ErrorClass, MemoryStore, ProtocolStore, SignalTransport, Timestamp,
};
use state::PartyState;

/// The usage text.
pub(crate) const USAGE: &str = "\
usage: spots-signal <command> ...   (bytes are hex; PEER is name.device)
  new-party STATE NAME DEVICE_ID REG_ID SEED [--no-kyber] [--no-one-time-prekey]
            [--key-ids SIGNED,ONE_TIME,KYBER]
                                   create a party (ChaCha20 seeded by SEED); prints its bundle
  bundle STATE                     print the party's bundle (the reference vectors' JSON shape)
  process-bundle STATE PEER BUNDLE_JSON_FILE
                                   start a session with PEER from its bundle
  encrypt STATE PEER TEXT          -> {\"type\":3|2,\"body\":hex}
  decrypt STATE PEER TYPE BODY_HEX -> {\"plaintext_utf8\":...}
  approve-identity STATE PEER [IKEY_HEX]
                                   accept PEER's changed identity key: IKEY_HEX (refused if
                                   it is not the newest key seen), or the newest key as shown
  safety-number STATE PEER         -> {\"displayable\":...,\"scannable\":hex}
  group-create STATE DIST_UUID     -> {\"skdm\":hex} (our Sender Keys distribution message)
  group-encrypt STATE DIST_UUID TEXT
                                   -> {\"skm\":hex} (a SenderKeyMessage)
  group-process STATE SENDER SKDM_HEX
                                   -> {\"ok\":true} (SENDER is name.device)
  group-decrypt STATE SENDER SKM_HEX
                                   -> {\"plaintext_utf8\":...}
  fingerprint VERSION ITERATIONS LOCAL_ID_HEX LOCAL_IKEY_HEX REMOTE_ID_HEX REMOTE_IKEY_HEX
                                   -> {\"displayable\":...,\"scannable\":hex}
A debugging and interop tool: state files hold private keys in clear, the random stream is
reproducible from SEED, and X3DH peers (bundles without Kyber) are accepted.
Time comes from the clock, or from SPOTS_SIGNAL_NOW_MS when set.";

/// A failure: printed as `{"error": ..., "class": ...}` with a non-zero exit status.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) message: String,
    pub(crate) class: Option<ErrorClass>,
}

impl CliError {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            class: None,
        }
    }

    fn protocol(message: impl ToString, class: ErrorClass) -> Self {
        Self {
            message: message.to_string(),
            class: Some(class),
        }
    }

    /// The JSON printed for this error.
    pub(crate) fn to_json(&self) -> Value {
        match self.class {
            Some(class) => json!({"error": self.message, "class": format!("{class:?}")}),
            None => json!({"error": self.message}),
        }
    }
}

impl From<AddressError> for CliError {
    fn from(error: AddressError) -> Self {
        Self::protocol(&error, error.class())
    }
}

impl<E: std::error::Error> From<spots_signal::TransportError<E>> for CliError {
    fn from(error: spots_signal::TransportError<E>) -> Self {
        Self::protocol(&error, error.class())
    }
}

fn now() -> Result<Timestamp, CliError> {
    if let Ok(text) = std::env::var("SPOTS_SIGNAL_NOW_MS") {
        let millis = text
            .parse()
            .map_err(|_| CliError::usage("SPOTS_SIGNAL_NOW_MS is not a number"))?;
        return Ok(Timestamp::from_millis(millis));
    }
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CliError::usage("the clock is before 1970"))?;
    Ok(Timestamp::from_millis(
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    ))
}

fn number<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, CliError> {
    text.parse()
        .map_err(|_| CliError::usage(format!("{what} must be a number, got {text:?}")))
}

fn unhex(what: &str, text: &str) -> Result<Vec<u8>, CliError> {
    hex::decode(text).map_err(|_| CliError::usage(format!("{what} is not hex")))
}

fn identity_key(what: &str, text: &str) -> Result<IdentityKey, CliError> {
    IdentityKey::deserialize(&unhex(what, text)?).map_err(|e| CliError::protocol(&e, e.class()))
}

/// Runs one command line (without the program name) and returns the JSON to print.
pub(crate) fn run(args: &[String]) -> Result<Value, CliError> {
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Some(result) = group::run(&strs) {
        return result;
    }
    match strs.as_slice() {
        ["new-party", state, name, device, reg, seed, flags @ ..] => {
            new_party(Path::new(state), name, device, reg, seed, flags)
        }
        ["bundle", state] => {
            let party = PartyState::load(Path::new(state))?;
            bundle_for(
                &party.store,
                &party.address,
                (party.publish_one_time_pre_key, party.publish_kyber),
            )
        }
        ["process-bundle", state, peer, file] => {
            let peer: Address = peer.parse()?;
            let text = std::fs::read_to_string(file)
                .map_err(|e| CliError::usage(format!("cannot read {file}: {e}")))?;
            let bundle: PreKeyBundle = serde_json::from_str(&text)
                .map_err(|e| CliError::protocol(e, ErrorClass::InvalidArgument))?;
            with_party(Path::new(state), |transport, rng| {
                let outcome = transport.process_bundle(&peer, &bundle, now()?, rng)?;
                Ok(json!({
                    "identity_changed": outcome.identity_changed,
                    "new_device": outcome.new_device,
                }))
            })
        }
        ["encrypt", state, peer, text] => {
            let peer: Address = peer.parse()?;
            with_party(Path::new(state), |transport, _| {
                let target = DeviceTarget::One(peer.device_id);
                let mut out =
                    transport.encrypt_to_agent(&peer.agent_id, target, text.as_bytes(), now()?)?;
                let message = out
                    .pop()
                    .ok_or_else(|| CliError::usage("nothing was encrypted"))?;
                Ok(json!({"type": message.message_type as u8, "body": hex::encode(message.body)}))
            })
        }
        ["decrypt", state, peer, message_type, body] => {
            let peer: Address = peer.parse()?;
            let message_type: u8 = number("TYPE", message_type)?;
            let body = unhex("BODY_HEX", body)?;
            with_party(Path::new(state), |transport, rng| {
                let got = transport.decrypt_from_agent(&peer, message_type, &body, now()?, rng)?;
                if got.identity_changed {
                    let newest = transport
                        .trust(&peer)?
                        .map(|record| hex::encode(record.current_identity().serialize()))
                        .unwrap_or_default();
                    eprintln!(
                        "note: the identity key of {peer} changed to {newest} \
                         (approve-identity STATE {peer} {newest})"
                    );
                }
                Ok(match std::str::from_utf8(&got.plaintext) {
                    Ok(text) => json!({"plaintext_utf8": text}),
                    Err(_) => {
                        json!({"plaintext_utf8": null, "plaintext_hex": hex::encode(&*got.plaintext)})
                    }
                })
            })
        }
        ["approve-identity", state, peer, key @ ..] if key.len() <= 1 => {
            let peer: Address = peer.parse()?;
            let expected = key
                .first()
                .map(|text| identity_key("IKEY_HEX", text))
                .transpose()?;
            with_party(Path::new(state), |transport, _| {
                // Without IKEY_HEX: the key `trust` shows now, named explicitly.
                let expected = match expected {
                    Some(key) => key,
                    None => *transport
                        .trust(&peer)?
                        .ok_or_else(|| {
                            CliError::protocol(
                                format!("no identity known for {peer}"),
                                ErrorClass::InvalidArgument,
                            )
                        })?
                        .current_identity(),
                };
                let key = transport.approve_identity(&peer, &expected)?;
                Ok(json!({"approved_identity_key": hex::encode(key.serialize())}))
            })
        }
        ["safety-number", state, peer] => {
            let peer: Address = peer.parse()?;
            with_party(Path::new(state), |transport, _| {
                Ok(fingerprint_json(&transport.safety_number(&peer)?))
            })
        }
        [
            "fingerprint",
            version,
            iterations,
            local_id,
            local_key,
            remote_id,
            remote_key,
        ] => {
            let fingerprint = Fingerprint::new(
                number("VERSION", version)?,
                number("ITERATIONS", iterations)?,
                &unhex("LOCAL_ID_HEX", local_id)?,
                &identity_key("LOCAL_IKEY_HEX", local_key)?,
                &unhex("REMOTE_ID_HEX", remote_id)?,
                &identity_key("REMOTE_IKEY_HEX", remote_key)?,
            )
            .map_err(|e| CliError::protocol(&e, e.class()))?;
            Ok(fingerprint_json(&fingerprint))
        }
        _ => Err(CliError::usage(USAGE)),
    }
}

fn fingerprint_json(fingerprint: &Fingerprint) -> Value {
    json!({
        "displayable": fingerprint.display.to_string(),
        "scannable": hex::encode(fingerprint.scannable.serialize()),
    })
}

type CliTransport = SignalTransport<MemoryStore>;

/// Loads a party, runs `operation` on its facade, and saves the state only when the operation
/// succeeded and changed the store or used randomness; a failed or read-only command leaves
/// the file byte for byte as it was.
fn with_party(
    path: &Path,
    operation: impl FnOnce(&mut CliTransport, &mut ChaCha20Rng) -> Result<Value, CliError>,
) -> Result<Value, CliError> {
    let mut party = PartyState::load(path)?;
    let store_before = party.store.clone();
    let rng_before = party.rng.get_word_pos();
    let config = TransportConfig {
        session_options: SessionOptions { accept_x3dh: true },
        ..TransportConfig::default()
    };
    let mut transport = SignalTransport::with_config(
        core::mem::take(&mut party.store),
        party.address.clone(),
        config,
    );
    let output = operation(&mut transport, &mut party.rng)?;
    party.store = transport.into_store();
    if party.store != store_before || party.rng.get_word_pos() != rng_before {
        party.save(path)?;
    }
    Ok(output)
}

/// The party's current bundle: its signed prekey, the lowest unused one-time prekey and the
/// last-resort Kyber key, as chosen at `new-party`.
fn bundle_for(
    store: &MemoryStore,
    address: &Address,
    (one_time, kyber): (bool, bool),
) -> Result<Value, CliError> {
    let transport = SignalTransport::new(store.clone(), address.clone());
    let plan = transport.current_publish_plan()?;
    let bundle = PreKeyBundle {
        registration_id: plan.registration_id,
        device_id: plan.device_id.get(),
        identity_key: plan.identity_key,
        signed_pre_key: plan.signed_pre_key,
        pre_key: if one_time {
            plan.one_time_pre_keys.into_iter().next()
        } else {
            None
        },
        kyber_pre_key: kyber.then_some(plan.last_resort_kyber_pre_key),
    };
    serde_json::to_value(&bundle).map_err(|e| CliError::usage(e.to_string()))
}

fn key_ids(flags: &[&str]) -> Result<(u32, u32, u32), CliError> {
    let Some(position) = flags.iter().position(|flag| *flag == "--key-ids") else {
        return Ok((1, 1, 1));
    };
    let text = flags
        .get(position + 1)
        .ok_or_else(|| CliError::usage("--key-ids needs SIGNED,ONE_TIME,KYBER"))?;
    let ids: Vec<u32> = text
        .split(',')
        .map(|id| number("--key-ids", id))
        .collect::<Result<_, _>>()?;
    match ids.as_slice() {
        [signed, one_time, kyber] => Ok((*signed, *one_time, *kyber)),
        _ => Err(CliError::usage("--key-ids needs SIGNED,ONE_TIME,KYBER")),
    }
}

/// Creates a party. The draws are in libsignal's test order — identity key, signed prekey and
/// its signature, one-time prekey, Kyber key and its signature — and all four keys are always
/// generated (the flags only leave keys out of the bundle), so with the reference vectors'
/// seed, registration id and key ids the printed bundle equals the vectors' `bundle`.
fn new_party(
    path: &Path,
    name: &str,
    device: &str,
    registration_id: &str,
    seed: &str,
    flags: &[&str],
) -> Result<Value, CliError> {
    let known = ["--no-kyber", "--no-one-time-prekey", "--key-ids"];
    let mut rest = flags.iter();
    while let Some(flag) = rest.next() {
        if !known.contains(flag) {
            return Err(CliError::usage(format!("unknown option {flag}\n{USAGE}")));
        }
        if *flag == "--key-ids" {
            rest.next();
        }
    }
    if path.exists() {
        return Err(CliError::usage(format!(
            "{} already exists",
            path.display()
        )));
    }
    let address = Address::new(name.parse()?, device.parse()?);
    let registration_id = RegistrationId(number("REG_ID", registration_id)?);
    let (signed_id, one_time_id, kyber_id) = key_ids(flags)?;
    let next = |id: u32| {
        id.checked_add(1)
            .ok_or_else(|| CliError::usage("key ids must be below 4294967295"))
    };
    let now = now()?;
    let mut rng = ChaCha20Rng::seed_from_u64(number("SEED", seed)?);
    let identity = IdentityKeyPair::generate(&mut rng);
    let signed = SignedPreKeyRecord::generate(SignedPreKeyId(signed_id), &identity, now, &mut rng);
    let one_time = PreKeyRecord::generate(PreKeyId(one_time_id), &mut rng);
    let kyber =
        KyberPreKeyRecord::generate(KyberPreKeyId(kyber_id), &identity, now, true, &mut rng);
    let mut store = MemoryStore::new();
    store
        .commit(Changes {
            identity: Some(LocalIdentity {
                key_pair: identity,
                registration_id,
            }),
            signed_pre_keys: vec![signed],
            pre_keys: vec![one_time],
            kyber_pre_keys: vec![kyber],
            prekey_state: Some(PreKeyState {
                next_pre_key_id: next(one_time_id)?,
                next_signed_pre_key_id: next(signed_id)?,
                next_kyber_pre_key_id: next(kyber_id)?,
                current_signed_pre_key: Some(SignedPreKeyId(signed_id)),
                current_last_resort: Some(KyberPreKeyId(kyber_id)),
                ..PreKeyState::default()
            }),
            ..Changes::default()
        })
        .map_err(|e| CliError::usage(e.to_string()))?;
    let party = PartyState {
        address,
        store,
        rng,
        publish_one_time_pre_key: !flags.contains(&"--no-one-time-prekey"),
        publish_kyber: !flags.contains(&"--no-kyber"),
    };
    let bundle = bundle_for(
        &party.store,
        &party.address,
        (party.publish_one_time_pre_key, party.publish_kyber),
    )?;
    party.save(path)?;
    Ok(bundle)
}
