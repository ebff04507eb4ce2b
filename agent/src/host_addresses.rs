//! The host's own addresses while the agent runs, shared by the live capture threads.
//!
//! Addresses change under a running agent: an IPv6 address or a DHCP lease that arrives after
//! the service started, a secondary private IP assigned to an ENI, an ENI attached. Direction
//! (ingress or egress) is decided by whether an end is the host's, so a capture holding its
//! start-time list would leave flows of a new address without a direction. One thread reads
//! the interfaces' addresses every few seconds and publishes a changed list under a new
//! version; each capture thread compares versions at its one-second tick (an atomic load) and
//! takes the new list only when it changed, so nothing is added to the per-packet path.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::flow_table::{Cidr, LocalNets};

/// The host's addresses as last read, with a version that moves on each change.
#[derive(Debug, Default)]
pub struct HostAddresses {
    version: AtomicU64,
    nets: Mutex<LocalNets>,
}

/// What changed between two lists, for the log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressChange {
    /// The host's own addresses in the new list only.
    pub added: Vec<IpAddr>,
    /// The host's own addresses in the old list only.
    pub removed: Vec<IpAddr>,
    /// Hosted (container) networks in the new list only.
    pub hosted_added: Vec<Cidr>,
    /// Hosted (container) networks in the old list only.
    pub hosted_removed: Vec<Cidr>,
}

impl AddressChange {
    /// Whether the host's own addresses changed, not only its containers' networks.
    pub fn own(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

impl HostAddresses {
    /// Starts from `nets`, at version 0.
    pub fn new(nets: LocalNets) -> Self {
        Self {
            version: AtomicU64::new(0),
            nets: Mutex::new(nets),
        }
    }

    /// The current list and its version.
    pub fn current(&self) -> (u64, LocalNets) {
        let nets = self.lock();
        (self.version.load(Ordering::Acquire), nets.clone())
    }

    /// Publishes `nets` if it differs from the current list, returning what changed. An empty
    /// list is not published: a host always has an address (loopback's at least), so an empty
    /// read is a failed one, and publishing it would switch every capture to guessing
    /// direction from private ranges.
    pub fn update(&self, nets: LocalNets) -> Option<AddressChange> {
        if nets.is_inferred() {
            return None;
        }
        let mut current = self.lock();
        // Sets: the order interfaces and routes are listed in is not a change.
        let old: BTreeSet<IpAddr> = current.host_addresses().collect();
        let new: BTreeSet<IpAddr> = nets.host_addresses().collect();
        let old_hosted: BTreeSet<Cidr> = current.hosted().iter().copied().collect();
        let new_hosted: BTreeSet<Cidr> = nets.hosted().iter().copied().collect();
        let old_at_links: BTreeSet<Cidr> = current.counted_at_links().iter().copied().collect();
        let new_at_links: BTreeSet<Cidr> = nets.counted_at_links().iter().copied().collect();
        if old == new && old_hosted == new_hosted && old_at_links == new_at_links {
            return None;
        }
        *current = nets;
        // Under the lock, so a reader that sees the new version also gets the new list.
        self.version.fetch_add(1, Ordering::AcqRel);
        Some(AddressChange {
            added: new.difference(&old).copied().collect(),
            removed: old.difference(&new).copied().collect(),
            hosted_added: new_hosted.difference(&old_hosted).copied().collect(),
            hosted_removed: old_hosted.difference(&new_hosted).copied().collect(),
        })
    }

    /// The list, if it changed since version `seen`; `seen` moves on to its version.
    pub fn changed_since(&self, seen: &mut u64) -> Option<LocalNets> {
        if self.version.load(Ordering::Acquire) == *seen {
            return None;
        }
        let (version, nets) = self.current();
        *seen = version;
        Some(nets)
    }

    /// The list, even if a thread panicked while holding the lock (it is replaced whole).
    fn lock(&self) -> std::sync::MutexGuard<'_, LocalNets> {
        self.nets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(addrs: &[&str]) -> LocalNets {
        LocalNets::new(addrs.iter().map(|a| {
            let ip: IpAddr = a.parse().expect("address");
            Cidr::new(ip, if ip.is_ipv4() { 32 } else { 128 }).expect("cidr")
        }))
    }

    #[test]
    fn a_reader_gets_a_changed_list_once_and_an_unchanged_one_never() {
        let shared = HostAddresses::new(nets(&["127.0.0.1", "10.0.0.5"]));
        let (mut seen, _) = shared.current();
        assert_eq!(shared.changed_since(&mut seen), None);
        assert_eq!(shared.update(nets(&["127.0.0.1", "10.0.0.5"])), None);
        assert_eq!(shared.changed_since(&mut seen), None);

        let change = shared.update(nets(&["127.0.0.1", "10.0.0.5", "2600:1f18::7"]));
        let v6: IpAddr = "2600:1f18::7".parse().expect("address");
        assert_eq!(
            change,
            Some(AddressChange {
                added: vec![v6],
                ..AddressChange::default()
            })
        );
        let got = shared.changed_since(&mut seen).expect("the new list");
        assert!(got.contains(v6));
        assert_eq!(shared.changed_since(&mut seen), None, "only once");

        let change = shared.update(nets(&["127.0.0.1", "2600:1f18::7"]));
        let old: IpAddr = "10.0.0.5".parse().expect("address");
        assert_eq!(change.map(|c| c.removed), Some(vec![old]));
        assert!(
            !shared
                .changed_since(&mut seen)
                .expect("changed")
                .contains(old)
        );
    }

    #[test]
    fn a_container_network_coming_or_going_is_a_change_but_not_of_the_hosts_own() {
        let shared = HostAddresses::new(nets(&["10.0.0.5"]));
        let (mut seen, _) = shared.current();
        let pod: Cidr = "10.0.1.23/32".parse().expect("cidr");
        let change = shared
            .update(nets(&["10.0.0.5"]).with_hosted([pod]))
            .expect("a change");
        assert_eq!(change.hosted_added, vec![pod]);
        assert!(!change.own());
        let got = shared.changed_since(&mut seen).expect("the new list");
        assert!(got.contains("10.0.1.23".parse().expect("address")));
        assert_eq!(
            got.host_addresses().count(),
            1,
            "a pod is not the host's own"
        );
        let change = shared.update(nets(&["10.0.0.5"])).expect("a change");
        assert_eq!(change.hosted_removed, vec![pod]);
    }

    #[test]
    fn an_empty_read_is_not_published() {
        let shared = HostAddresses::new(nets(&["127.0.0.1"]));
        let (mut seen, _) = shared.current();
        assert_eq!(shared.update(LocalNets::default()), None);
        assert_eq!(shared.changed_since(&mut seen), None);
        assert!(
            shared
                .current()
                .1
                .contains("127.0.0.1".parse().expect("address"))
        );
    }
}
