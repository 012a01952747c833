//! The `group-*` commands: Signal Sender Keys (libsignal-compatible bytes) on the same state
//! files as the DM commands.

use std::path::Path;

use serde_json::{Value, json};
use spots_signal::community::GroupError;
use spots_signal::wire::{SenderKeyDistributionMessage, SenderKeyMessage};
use spots_signal::{Address, ErrorClass};
use uuid::Uuid;

use super::{CliError, unhex, with_party};

impl<E: std::error::Error> From<GroupError<E>> for CliError {
    fn from(error: GroupError<E>) -> Self {
        Self::protocol(&error, error.class())
    }
}

fn distribution_id(text: &str) -> Result<Uuid, CliError> {
    Uuid::parse_str(text).map_err(|_| CliError::usage(format!("DIST_UUID {text:?} is not a UUID")))
}

fn decode_error(error: &spots_signal::wire::DecodeError) -> CliError {
    CliError::protocol(error, error.class())
}

/// Runs a `group-*` command; `None` when `args` is not one.
pub(crate) fn run(args: &[&str]) -> Option<Result<Value, CliError>> {
    Some(match args {
        ["group-create", state, dist] => (|| {
            let id = distribution_id(dist)?;
            with_party(Path::new(state), |transport, rng| {
                let message = transport.sender_key_distribution_message(id, rng)?;
                Ok(json!({"skdm": hex::encode(message.serialized())}))
            })
        })(),
        ["group-encrypt", state, dist, text] => (|| {
            let id = distribution_id(dist)?;
            with_party(Path::new(state), |transport, rng| {
                let message = transport.sender_key_encrypt(id, text.as_bytes(), rng)?;
                Ok(json!({"skm": hex::encode(message.serialized())}))
            })
        })(),
        ["group-process", state, sender, skdm] => (|| {
            let sender: Address = sender.parse()?;
            let bytes = unhex("SKDM_HEX", skdm)?;
            let message = SenderKeyDistributionMessage::try_from(bytes.as_slice())
                .map_err(|e| decode_error(&e))?;
            with_party(Path::new(state), |transport, _| {
                transport.process_sender_key_distribution(&sender, &message)?;
                Ok(json!({"ok": true}))
            })
        })(),
        ["group-decrypt", state, sender, skm] => (|| {
            let sender: Address = sender.parse()?;
            let bytes = unhex("SKM_HEX", skm)?;
            let message =
                SenderKeyMessage::try_from(bytes.as_slice()).map_err(|e| decode_error(&e))?;
            with_party(Path::new(state), |transport, _| {
                let plaintext = transport.sender_key_decrypt(&sender, &message)?;
                Ok(match std::str::from_utf8(&plaintext) {
                    Ok(text) => json!({"plaintext_utf8": text}),
                    Err(_) => {
                        json!({"plaintext_utf8": null, "plaintext_hex": hex::encode(&*plaintext)})
                    }
                })
            })
        })(),
        [command, ..] if command.starts_with("group-") => Err(CliError::protocol(
            "wrong arguments for a group command",
            ErrorClass::InvalidArgument,
        )),
        _ => return None,
    })
}
