//! The host's own addresses while the agent runs, shared by the live capture threads.
//!
//! Addresses change under a running agent: an IPv6 address or a DHCP lease that arrives after
//! the service started, a secondary private IP assigned to an ENI, an ENI attached. Direction
//! (ingress or egress) is decided by whether an end is the host's, so a capture holding its
//! start-time list would leave flows of a new address without a direction. One thread reads
//! the interfaces' addresses every few seconds and publishes a changed list under a new
//! version; each capture thread compares versions at its one-second tick (an atomic load) and
//! takes the new list only when it changed, so nothing is added to the per-packet path.
//!
//! The list also says which containers are counted on their own links (`pipeline::vantage`):
//! pods' networks from the reading, and bridged containers that a port's capture saw sending,
//! which the capture threads hand in ([`HostAddresses::learn`]) and take back when they end.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::flow_table::{Cidr, LocalNets};

/// The host's addresses as last read, with a version that moves on each change.
#[derive(Debug, Default)]
pub struct HostAddresses {
    version: AtomicU64,
    state: Mutex<State>,
}

/// Most addresses of bridged containers a link's capture takes as its own: a container
/// sending from more (spoofing) only has the rest counted where they are seen.
pub const LEARNED_PER_LINK: usize = 8;

#[derive(Debug, Default)]
struct State {
    /// As last read from the interfaces and routes.
    read: LocalNets,
    /// Bridged containers' addresses, each with the link whose capture saw the container send
    /// from it: a bridge's network says nothing of which port a container is on, so its
    /// containers are counted on their links once their links' captures have seen them.
    learned: BTreeMap<IpAddr, String>,
}

impl State {
    /// The list as published: what was read, with the learned addresses counted at links.
    fn published(&self) -> LocalNets {
        let mut at_links: Vec<Cidr> = self.read.counted_at_links().to_vec();
        at_links.extend(self.learned.keys().filter_map(|a| {
            let bits = if a.is_ipv4() { 32 } else { 128 };
            Cidr::new(*a, bits).ok()
        }));
        self.read.clone().with_counted_at_links(at_links)
    }
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
            state: Mutex::new(State {
                read: nets,
                learned: BTreeMap::new(),
            }),
        }
    }

    /// The current list and its version.
    pub fn current(&self) -> (u64, LocalNets) {
        let state = self.lock();
        (self.version.load(Ordering::Acquire), state.published())
    }

    /// Takes `addrs`, seen sending from the container behind `link` (a bridge's port), as
    /// that container's: those in a hosted network, not the host's own and not counted at a
    /// link already are counted on `link` from the next version, up to
    /// [`LEARNED_PER_LINK`] per link. Says whether the list changed.
    pub fn learn(&self, link: &str, addrs: &[IpAddr]) -> bool {
        let mut state = self.lock();
        let mut changed = false;
        for &addr in addrs {
            let taken = state.learned.values().filter(|l| *l == link).count();
            let hosted = state.read.hosted().iter().any(|n| n.contains(addr));
            let own = state.read.host_addresses().any(|a| a == addr);
            let routed = state
                .read
                .counted_at_links()
                .iter()
                .any(|n| n.contains(addr));
            if taken >= LEARNED_PER_LINK || !hosted || own || routed {
                continue;
            }
            if state.learned.get(&addr).is_none_or(|l| l != link) {
                state.learned.insert(addr, link.to_owned());
                changed = true;
            }
        }
        if changed {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        changed
    }

    /// Drops what `link`'s capture learned (its capture ended): its containers' addresses are
    /// counted where they are seen again.
    pub fn forget(&self, link: &str) {
        let mut state = self.lock();
        let before = state.learned.len();
        state.learned.retain(|_, l| l != link);
        if state.learned.len() != before {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Publishes `nets` if it differs from the current list, returning what changed. An empty
    /// list is not published: a host always has an address (loopback's at least), so an empty
    /// read is a failed one, and publishing it would switch every capture to guessing
    /// direction from private ranges.
    pub fn update(&self, nets: LocalNets) -> Option<AddressChange> {
        if nets.is_inferred() {
            return None;
        }
        let mut state = self.lock();
        let current = &state.read;
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
        state.read = nets;
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

    /// The state, even if a thread panicked while holding the lock (each change is a single
    /// assignment or insertion).
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
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

    #[test]
    fn a_bridged_container_is_counted_at_the_link_that_saw_it_until_that_link_goes() {
        let bridge: Cidr = "172.17.0.0/16".parse().expect("cidr");
        let pod: Cidr = "10.0.1.23/32".parse().expect("cidr");
        let shared = HostAddresses::new(
            nets(&["10.0.0.5", "172.17.0.1"])
                .with_counted_at_links([pod])
                .with_hosted([bridge, pod]),
        );
        let (mut seen, _) = shared.current();
        let ip = |a: &str| -> IpAddr { a.parse().expect("address") };
        // Outside the hosted networks, the host's own, a routed pod's: nothing to learn.
        for addr in ["192.0.2.1", "172.17.0.1", "10.0.1.23"] {
            assert!(!shared.learn("veth1", &[ip(addr)]), "{addr}");
        }
        assert_eq!(shared.changed_since(&mut seen), None);
        assert!(shared.learn("veth1", &[ip("172.17.0.2")]));
        assert!(!shared.learn("veth1", &[ip("172.17.0.2")]), "known");
        let got = shared.changed_since(&mut seen).expect("a new version");
        assert!(
            got.counted_at_links()
                .contains(&"172.17.0.2/32".parse().expect("cidr"))
        );
        assert!(got.counted_at_links().contains(&pod));
        // A rescan keeps what was learned.
        shared.update(
            nets(&["10.0.0.5", "172.17.0.1", "10.0.0.6"])
                .with_counted_at_links([pod])
                .with_hosted([bridge, pod]),
        );
        let got = shared.changed_since(&mut seen).expect("a new version");
        assert_eq!(got.counted_at_links().len(), 2, "{got:?}");
        // A spoofing container gets no more than its share.
        let many: Vec<IpAddr> = (10..40).map(|n| ip(&format!("172.17.1.{n}"))).collect();
        assert!(shared.learn("veth2", &many));
        assert_eq!(
            shared.current().1.counted_at_links().len(),
            2 + LEARNED_PER_LINK
        );
        shared.forget("veth1");
        shared.forget("veth2");
        let got = shared.changed_since(&mut seen).expect("a new version");
        assert_eq!(got.counted_at_links(), [pod]);
    }
}
