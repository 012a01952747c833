//! The CLI's state file: one party's store export plus its name, device and random stream.
//!
//! ```json
//! {"format": 1, "name": "alice", "device_id": 1, "store": "<hex MemoryStore export>",
//!  "rng_seed": "<hex 32 bytes>", "rng_word_pos": "1234",
//!  "publish_one_time_pre_key": true, "publish_kyber": true}
//! ```
//!
//! The random stream (ChaCha20 seeded by `new-party`'s SEED) continues across commands, so a
//! whole conversation is reproducible from the seeds: this is a test and debugging tool, and
//! its state files hold every private key in clear.

use std::fs;
use std::path::Path;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use spots_signal::{Address, AgentId, DeviceId, MemoryStore};

use super::CliError;

const STATE_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateJson {
    format: u32,
    name: String,
    device_id: u32,
    store: String,
    rng_seed: String,
    rng_word_pos: String,
    publish_one_time_pre_key: bool,
    publish_kyber: bool,
}

/// A loaded party.
pub(crate) struct PartyState {
    pub(crate) address: Address,
    pub(crate) store: MemoryStore,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) publish_one_time_pre_key: bool,
    pub(crate) publish_kyber: bool,
}

impl PartyState {
    pub(crate) fn load(path: &Path) -> Result<Self, CliError> {
        let text = fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
        let json: StateJson = serde_json::from_str(&text)
            .map_err(|e| CliError::usage(format!("bad state file {}: {e}", path.display())))?;
        if json.format != STATE_FORMAT {
            return Err(CliError::usage(format!(
                "unsupported state format {}",
                json.format
            )));
        }
        let address = Address::new(AgentId::new(json.name)?, DeviceId::new(json.device_id)?);
        let store_bytes = zeroize::Zeroizing::new(
            hex::decode(&json.store).map_err(|_| CliError::usage("state: store is not hex"))?,
        );
        let store = MemoryStore::import(&store_bytes)
            .map_err(|e| CliError::usage(format!("state: {e}")))?;
        let seed: [u8; 32] = hex::decode(&json.rng_seed)
            .ok()
            .and_then(|seed| seed.try_into().ok())
            .ok_or_else(|| CliError::usage("state: rng_seed is not 32 hex bytes"))?;
        let word_pos: u128 = json
            .rng_word_pos
            .parse()
            .map_err(|_| CliError::usage("state: rng_word_pos is not a number"))?;
        let mut rng = ChaCha20Rng::from_seed(seed);
        rng.set_word_pos(word_pos);
        Ok(Self {
            address,
            store,
            rng,
            publish_one_time_pre_key: json.publish_one_time_pre_key,
            publish_kyber: json.publish_kyber,
        })
    }

    /// Writes the state through a temporary file and a rename, so an interrupted write never
    /// leaves a half-written state behind.
    pub(crate) fn save(&self, path: &Path) -> Result<(), CliError> {
        let json = StateJson {
            format: STATE_FORMAT,
            name: self.address.agent_id.to_string(),
            device_id: self.address.device_id.get(),
            store: hex::encode(self.store.export()),
            rng_seed: hex::encode(self.rng.get_seed()),
            rng_word_pos: self.rng.get_word_pos().to_string(),
            publish_one_time_pre_key: self.publish_one_time_pre_key,
            publish_kyber: self.publish_kyber,
        };
        let text = serde_json::to_string_pretty(&json)
            .map_err(|e| CliError::usage(format!("cannot encode state: {e}")))?;
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, text + "\n")
            .and_then(|()| fs::rename(&tmp, path))
            .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))
    }
}
