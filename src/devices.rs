//! Per-agent device lists (Sesame style): which devices of an agent a user-level message is
//! fanned out to.
//!
//! The list is the local view of the server's device registry. It grows when a session with a
//! new device is made (a processed bundle or an incoming PreKey message) and shrinks when the
//! server reports devices as stale; sessions of removed devices are dropped with them, so
//! nothing is ever encrypted to a device the server no longer has.

use std::collections::BTreeSet;

use crate::address::DeviceId;

/// The active devices of one agent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceList {
    devices: BTreeSet<DeviceId>,
}

/// What a device-list update did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceListChange {
    /// Devices that were not in the list before.
    pub added: Vec<DeviceId>,
    /// Devices that were removed (their sessions are dropped too).
    pub removed: Vec<DeviceId>,
}

impl DeviceListChange {
    /// Whether the update changed nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

impl DeviceList {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The active devices, in ascending order.
    pub fn devices(&self) -> impl ExactSizeIterator<Item = DeviceId> + '_ {
        self.devices.iter().copied()
    }

    /// Whether `device` is active.
    #[must_use]
    pub fn contains(&self, device: DeviceId) -> bool {
        self.devices.contains(&device)
    }

    /// Number of active devices.
    #[must_use]
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether no device is active.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Adds a device; returns whether it was new.
    pub fn insert(&mut self, device: DeviceId) -> bool {
        self.devices.insert(device)
    }

    /// Replaces the list by `devices` (the server's authoritative list).
    pub fn replace(&mut self, devices: impl IntoIterator<Item = DeviceId>) -> DeviceListChange {
        let new: BTreeSet<DeviceId> = devices.into_iter().collect();
        let change = DeviceListChange {
            added: new.difference(&self.devices).copied().collect(),
            removed: self.devices.difference(&new).copied().collect(),
        };
        self.devices = new;
        change
    }

    /// Removes the devices the server reported stale.
    pub fn remove_stale(&mut self, stale: impl IntoIterator<Item = DeviceId>) -> DeviceListChange {
        let mut change = DeviceListChange::default();
        for device in stale {
            if self.devices.remove(&device) {
                change.removed.push(device);
            }
        }
        change
    }
}

impl FromIterator<DeviceId> for DeviceList {
    fn from_iter<T: IntoIterator<Item = DeviceId>>(iter: T) -> Self {
        Self {
            devices: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: u32) -> DeviceId {
        DeviceId::new(id).unwrap()
    }

    #[test]
    fn replace_and_remove_report_changes() {
        let mut list: DeviceList = [d(1), d(2)].into_iter().collect();
        assert!(!list.insert(d(1)));
        assert!(list.insert(d(3)));
        let change = list.replace([d(2), d(3), d(4)]);
        assert_eq!(change.added, vec![d(4)]);
        assert_eq!(change.removed, vec![d(1)]);
        let change = list.remove_stale([d(4), d(9)]);
        assert_eq!(change.removed, vec![d(4)]);
        assert!(change.added.is_empty());
        assert_eq!(list.devices().collect::<Vec<_>>(), vec![d(2), d(3)]);
        assert!(list.replace([d(2), d(3)]).is_empty());
        assert_eq!(list.len(), 2);
    }
}
