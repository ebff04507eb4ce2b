//! What agents say about their instances: instance → (account, addresses), and the reverse,
//! address → instance, from `HostStats` records.
//!
//! Bounded: at most `max_instances` instances with at most `max_addresses` addresses each
//! (most recent kept); when full, the instance reported least recently is evicted (counted).

use std::collections::HashMap;
use std::net::IpAddr;

use picket_proto::v1::HostStats;

/// One instance as its agent reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEntry {
    /// The instance's account.
    pub account_id: String,
    /// Its addresses, most recent last.
    pub addresses: Vec<IpAddr>,
    /// When its agent last reported, ms since the epoch.
    pub last_report_ms: i64,
}

/// Instance ↔ address table.
#[derive(Debug, Default)]
pub struct InstanceAddresses {
    max_instances: usize,
    max_addresses: usize,
    instances: HashMap<String, InstanceEntry>,
    by_address: HashMap<IpAddr, String>,
    /// Instances evicted to stay within the cap.
    pub evicted: u64,
    /// Reported addresses that did not parse.
    pub bad_addresses: u64,
}

impl InstanceAddresses {
    /// An empty table with the given caps.
    pub fn new(max_instances: usize, max_addresses: usize) -> Self {
        Self {
            max_instances,
            max_addresses,
            ..Self::default()
        }
    }

    /// Records what an agent on `instance_id` in `account_id` reported.
    pub fn report(&mut self, account_id: &str, instance_id: &str, stats: &HostStats, at_ms: i64) {
        let reported: Vec<IpAddr> = stats
            .addresses
            .iter()
            .chain(std::iter::once(&stats.public_ip).filter(|p| !p.is_empty()))
            .filter_map(|a| match a.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    self.bad_addresses += 1;
                    None
                }
            })
            .collect();
        if reported.is_empty() {
            return;
        }
        if !self.instances.contains_key(instance_id) && self.instances.len() >= self.max_instances {
            self.evict_oldest();
        }
        let entry = self
            .instances
            .entry(instance_id.to_owned())
            .or_insert_with(|| InstanceEntry {
                account_id: account_id.to_owned(),
                addresses: Vec::new(),
                last_report_ms: at_ms,
            });
        entry.account_id = account_id.to_owned();
        entry.last_report_ms = entry.last_report_ms.max(at_ms);
        for ip in reported {
            entry.addresses.retain(|a| *a != ip);
            entry.addresses.push(ip);
            self.by_address.insert(ip, instance_id.to_owned());
        }
        while entry.addresses.len() > self.max_addresses {
            let old = entry.addresses.remove(0);
            if self.by_address.get(&old).map(String::as_str) == Some(instance_id) {
                self.by_address.remove(&old);
            }
        }
    }

    fn evict_oldest(&mut self) {
        let Some(oldest) = self
            .instances
            .iter()
            .min_by_key(|(_, e)| e.last_report_ms)
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        if let Some(entry) = self.instances.remove(&oldest) {
            for a in entry.addresses {
                if self.by_address.get(&a) == Some(&oldest) {
                    self.by_address.remove(&a);
                }
            }
            self.evicted += 1;
        }
    }

    /// What is known of `instance_id`.
    pub fn instance(&self, instance_id: &str) -> Option<&InstanceEntry> {
        self.instances.get(instance_id)
    }

    /// The instance (and its entry) an agent reported `ip` for.
    pub fn owner_of(&self, ip: IpAddr) -> Option<(&str, &InstanceEntry)> {
        let id = self.by_address.get(&ip)?;
        self.instances.get(id).map(|e| (id.as_str(), e))
    }

    /// Instances held.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(addrs: &[&str]) -> HostStats {
        HostStats {
            addresses: addrs.iter().map(|s| (*s).to_owned()).collect(),
            ..HostStats::default()
        }
    }

    #[test]
    fn reported_addresses_map_both_ways_and_bad_ones_are_counted() {
        let mut t = InstanceAddresses::new(10, 4);
        t.report("111111111111", "i-1", &stats(&["10.0.0.5", "nonsense"]), 1);
        let (id, e) = t.owner_of("10.0.0.5".parse().expect("ip")).expect("owner");
        assert_eq!(id, "i-1");
        assert_eq!(e.account_id, "111111111111");
        assert_eq!(t.bad_addresses, 1);
    }

    #[test]
    fn the_table_stays_within_its_caps_and_evicts_the_stalest_instance() {
        let mut t = InstanceAddresses::new(2, 2);
        t.report("1", "i-1", &stats(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]), 1);
        assert_eq!(t.instance("i-1").expect("i-1").addresses.len(), 2);
        assert!(t.owner_of("10.0.0.1".parse().expect("ip")).is_none());
        t.report("1", "i-2", &stats(&["10.0.1.1"]), 2);
        t.report("1", "i-3", &stats(&["10.0.2.1"]), 3);
        assert_eq!(t.len(), 2);
        assert_eq!(t.evicted, 1);
        assert!(t.instance("i-1").is_none());
        assert!(t.owner_of("10.0.0.3".parse().expect("ip")).is_none());
    }
}
