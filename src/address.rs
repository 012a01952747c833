//! Who a message is for: an agent (a SPOTS user identity from AgentIdService) and one of its
//! devices. Each device has its own identity key, sessions and trust record, so everything
//! per-peer in the core is keyed by [`Address`].
//!
//! Validation happens at construction, so a value of these types is always well-formed: an
//! [`AgentId`] is 1..=128 bytes of `[A-Za-z0-9_.:-]` and a [`DeviceId`] is in `1..=127`.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ErrorClass;

/// Why an agent id, device id or address was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The agent id is empty.
    #[error("agent id is empty")]
    EmptyAgentId,
    /// The agent id is longer than [`AgentId::MAX_LEN`] bytes.
    #[error("agent id is {0} bytes, at most 128 allowed")]
    AgentIdTooLong(usize),
    /// The agent id contains a byte outside `[A-Za-z0-9_.:-]`.
    #[error("agent id contains an invalid character at byte {0}")]
    InvalidAgentIdCharacter(usize),
    /// The device id is outside `1..=127`.
    #[error("device id {0} is outside 1..=127")]
    InvalidDeviceId(u32),
    /// An address string is not `agent.device`.
    #[error("address must be written `agent.device`")]
    Malformed,
}

impl AddressError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        ErrorClass::InvalidArgument
    }
}

/// A validated agent id: 1..=128 bytes of `[A-Za-z0-9_.:-]`.
///
/// The character set keeps ids safe to embed in logs, file names and the `agent.device`
/// notation, and the bytes are the stable id of safety numbers.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentId(String);

impl AgentId {
    /// Longest accepted agent id in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, AddressError> {
        let id = id.into();
        if id.is_empty() {
            return Err(AddressError::EmptyAgentId);
        }
        if id.len() > Self::MAX_LEN {
            return Err(AddressError::AgentIdTooLong(id.len()));
        }
        if let Some(position) = id
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')))
        {
            return Err(AddressError::InvalidAgentIdCharacter(position));
        }
        Ok(Self(id))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's bytes (the stable id used in safety numbers).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl TryFrom<String> for AgentId {
    type Error = AddressError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<AgentId> for String {
    fn from(value: AgentId) -> Self {
        value.0
    }
}

impl FromStr for AgentId {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({})", self.0)
    }
}

/// A validated device id in `1..=127` (Signal's device-id range; 0 is never a device).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct DeviceId(u8);

impl DeviceId {
    /// Smallest device id.
    pub const MIN: u32 = 1;
    /// Largest device id.
    pub const MAX: u32 = 127;

    /// Validates `id`.
    pub fn new(id: u32) -> Result<Self, AddressError> {
        match u8::try_from(id) {
            Ok(small) if (Self::MIN..=Self::MAX).contains(&id) => Ok(Self(small)),
            _ => Err(AddressError::InvalidDeviceId(id)),
        }
    }

    /// The id as a number.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0 as u32
    }
}

impl TryFrom<u32> for DeviceId {
    type Error = AddressError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<DeviceId> for u32 {
    fn from(value: DeviceId) -> Self {
        value.get()
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.0)
    }
}

impl FromStr for DeviceId {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only plain decimal digits: "+1" or " 1" are not device ids.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddressError::Malformed);
        }
        let id = s.parse::<u32>().map_err(|_| AddressError::Malformed)?;
        Self::new(id)
    }
}

/// One device of one agent, written `agent.device` (e.g. `alice.1`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address {
    /// The agent.
    pub agent_id: AgentId,
    /// The device.
    pub device_id: DeviceId,
}

impl Address {
    /// Builds an address from validated parts.
    #[must_use]
    pub const fn new(agent_id: AgentId, device_id: DeviceId) -> Self {
        Self {
            agent_id,
            device_id,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.agent_id, self.device_id)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressError;

    /// Splits at the last `.`: agent ids may contain dots, device ids never do.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (agent, device) = s.rsplit_once('.').ok_or(AddressError::Malformed)?;
        Ok(Self::new(AgentId::new(agent)?, device.parse()?))
    }
}

impl TryFrom<String> for Address {
    type Error = AddressError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Address> for String {
    fn from(value: Address) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids_are_validated() {
        assert!(AgentId::new("a").is_ok());
        assert!(AgentId::new("agent_01.x:y-z").is_ok());
        assert!(AgentId::new("x".repeat(128)).is_ok());
        assert_eq!(AgentId::new(""), Err(AddressError::EmptyAgentId));
        assert_eq!(
            AgentId::new("x".repeat(129)),
            Err(AddressError::AgentIdTooLong(129))
        );
        assert_eq!(
            AgentId::new("ab c"),
            Err(AddressError::InvalidAgentIdCharacter(2))
        );
        assert_eq!(
            AgentId::new("é"),
            Err(AddressError::InvalidAgentIdCharacter(0))
        );
        assert_eq!(
            AgentId::new("a/b").unwrap_err().class(),
            ErrorClass::InvalidArgument
        );
    }

    #[test]
    fn device_ids_are_validated() {
        assert_eq!(DeviceId::new(1).unwrap().get(), 1);
        assert_eq!(DeviceId::new(127).unwrap().get(), 127);
        for bad in [0, 128, 256, 257, u32::MAX] {
            assert_eq!(DeviceId::new(bad), Err(AddressError::InvalidDeviceId(bad)));
        }
        assert_eq!("+1".parse::<DeviceId>(), Err(AddressError::Malformed));
        assert_eq!("".parse::<DeviceId>(), Err(AddressError::Malformed));
        assert_eq!(
            "99999999999".parse::<DeviceId>(),
            Err(AddressError::Malformed)
        );
    }

    #[test]
    fn addresses_round_trip_through_text_and_json() {
        let address: Address = "agent.v2.7".parse().unwrap();
        assert_eq!(address.agent_id.as_str(), "agent.v2");
        assert_eq!(address.device_id.get(), 7);
        assert_eq!(address.to_string(), "agent.v2.7");
        assert_eq!(format!("{address:?}"), "Address(agent.v2.7)");
        let json = serde_json::to_string(&address).unwrap();
        assert_eq!(json, "\"agent.v2.7\"");
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), address);
        for bad in ["alice", "alice.", ".1", "alice.0", "alice.x", "a b.1"] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<DeviceId>("0").is_err());
        assert!(serde_json::from_str::<AgentId>("\"\"").is_err());
    }
}
