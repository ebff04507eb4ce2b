//! One principal's baseline in 80 bytes: small Bloom filters of the APIs, regions, source
//! networks and user-agent families it has used, its event count and when it was first and
//! last seen.
//!
//! Bloom filters keep the size fixed whatever a principal does. They can only err towards
//! "seen before" (a false positive hides a new value), so a saturated filter makes the
//! detector quieter, never noisier. Hashes are XXH3 (64-bit): a specified algorithm, so stable
//! across processes, builds and crate versions, which persisted filters need (std's and
//! foldhash's seeds and algorithms are not), and several times faster than the byte-at-a-time
//! FNV-1a it replaced (state saved with FNV-1a hashes is refused; see the detector).

use std::net::IpAddr;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::cloudtrail::{ApiEvent, CallerAddress};

/// XXH3 over `parts`, each part's hash seeding the next, so `("ab","c")` and `("a","bc")`
/// differ without copying the parts together.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .fold(0, |seed, part| xxh3_64_with_seed(part, seed))
}

/// The four dimensions a baseline holds, in evidence order.
pub const DIMENSIONS: [&str; 4] = ["api", "region", "network", "user_agent"];

/// The hashed values of one call on each dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallKeys {
    /// `eventSource` + `eventName`.
    pub api: u64,
    /// `awsRegion`.
    pub region: u64,
    /// The caller's /24 (IPv4) or /48 (IPv6), or its AWS service name.
    pub network: u64,
    /// The user agent's family (first product token, lowercased).
    pub user_agent: u64,
}

impl CallKeys {
    /// Hashes `event`'s dimensions without allocating.
    pub fn of(event: &ApiEvent) -> Self {
        let network = match &event.source {
            CallerAddress::AwsService(name) => stable_hash(&[b"svc", name.as_bytes()]),
            CallerAddress::Missing => stable_hash(&[b"missing"]),
            other => match other.ip() {
                Some(IpAddr::V4(v4)) => {
                    let o = v4.octets();
                    stable_hash(&[b"v4", &o[..3]])
                }
                Some(IpAddr::V6(v6)) => {
                    let o = v6.octets();
                    stable_hash(&[b"v6", &o[..6]])
                }
                None => stable_hash(&[b"other"]),
            },
        };
        let family = user_agent_family(&event.user_agent);
        let mut lower = [0u8; 64];
        let n = family.len().min(lower.len());
        for (d, s) in lower.iter_mut().zip(family.as_bytes()) {
            *d = s.to_ascii_lowercase();
        }
        Self {
            api: stable_hash(&[event.event_source.as_bytes(), event.event_name.as_bytes()]),
            region: stable_hash(&[event.region.as_bytes()]),
            network,
            user_agent: stable_hash(&[lower.get(..n).unwrap_or_default()]),
        }
    }
}

/// The user agent's family: its first product token without version
/// (`aws-cli/2.13.5 Python/3.11` → `aws-cli`), so routine upgrades are not "new".
pub fn user_agent_family(ua: &str) -> &str {
    let ua = ua.trim_start_matches(['[', ' ']);
    let end = ua.find(['/', ' ', ',', ']', '(']).unwrap_or(ua.len());
    ua.get(..end).unwrap_or(ua)
}

/// The caller's network as text for evidence: `a.b.c.0/24`, `x:y:z::/48`, or the raw source.
pub fn network_text(source: &CallerAddress) -> String {
    match source {
        CallerAddress::AwsService(name) => name.clone(),
        CallerAddress::Missing => String::new(),
        other => match other.ip() {
            Some(IpAddr::V4(v4)) => {
                let o = v4.octets();
                format!("{}.{}.{}.0/24", o[0], o[1], o[2])
            }
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
            None => String::new(),
        },
    }
}

/// A Bloom filter of `W` 64-bit words with two probes from one hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bloom<const W: usize>(pub [u64; W]);

impl<const W: usize> Default for Bloom<W> {
    fn default() -> Self {
        Self([0; W])
    }
}

impl<const W: usize> Bloom<W> {
    fn probes(h: u64) -> [(usize, u64); 2] {
        let bits = (W * 64) as u64;
        let p = |x: u64| {
            let bit = x % bits;
            // W * 64 bits, so bit / 64 < W.
            ((bit / 64) as usize, 1u64 << (bit % 64))
        };
        [p(h), p(h.rotate_right(32))]
    }

    /// Whether `h` may have been inserted (false means certainly not).
    pub fn contains(&self, h: u64) -> bool {
        Self::probes(h)
            .iter()
            .all(|&(w, m)| self.0.get(w).is_some_and(|word| word & m != 0))
    }

    /// Adds `h`; returns whether it was new.
    pub fn insert(&mut self, h: u64) -> bool {
        let new = !self.contains(h);
        for (w, m) in Self::probes(h) {
            if let Some(word) = self.0.get_mut(w) {
                *word |= m;
            }
        }
        new
    }
}

/// One principal's baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Profile {
    /// First event, minutes since the epoch.
    pub first_seen_min: u32,
    /// Latest event, minutes since the epoch.
    pub last_seen_min: u32,
    /// Events learned from (saturating).
    pub events: u32,
    /// Distinct values added per dimension, in [`DIMENSIONS`] order (saturating).
    pub distinct: [u8; 4],
    /// APIs: 256 bits, for the dozens of APIs one principal uses.
    pub apis: Bloom<4>,
    /// Networks: 128 bits.
    pub networks: Bloom<2>,
    /// Regions: 64 bits.
    pub regions: Bloom<1>,
    /// User-agent families: 64 bits.
    pub agents: Bloom<1>,
}

/// Which dimensions of a call were new to a profile, in [`DIMENSIONS`] order.
pub type Novelty = [bool; 4];

impl Profile {
    /// A profile whose first call is at `minute`.
    pub fn starting(minute: u32) -> Self {
        Self {
            first_seen_min: minute,
            last_seen_min: minute,
            ..Self::default()
        }
    }

    /// Learns `keys` at `minute`; returns which dimensions were new.
    pub fn learn(&mut self, keys: &CallKeys, minute: u32) -> Novelty {
        let novelty = [
            self.apis.insert(keys.api),
            self.regions.insert(keys.region),
            self.networks.insert(keys.network),
            self.agents.insert(keys.user_agent),
        ];
        for (d, new) in self.distinct.iter_mut().zip(novelty) {
            *d = d.saturating_add(u8::from(new));
        }
        self.events = self.events.saturating_add(1);
        self.last_seen_min = self.last_seen_min.max(minute);
        self.first_seen_min = self.first_seen_min.min(minute);
        novelty
    }

    /// Bytes of [`Self::encode`].
    pub const ENCODED_LEN: usize = 4 + 4 + 4 + 4 + 8 * 8;

    /// Little-endian fixed-size encoding for persisted state.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.first_seen_min.to_le_bytes());
        out.extend_from_slice(&self.last_seen_min.to_le_bytes());
        out.extend_from_slice(&self.events.to_le_bytes());
        out.extend_from_slice(&self.distinct);
        for w in self
            .apis
            .0
            .iter()
            .chain(&self.networks.0)
            .chain(&self.regions.0)
            .chain(&self.agents.0)
        {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Reads what [`Self::encode`] wrote; `None` when `b` is not exactly that long.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let (head, words) = b.split_first_chunk::<16>()?;
        if words.len() != 64 {
            return None;
        }
        let u32_at = |i: usize| {
            head.get(i..i + 4)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .map(u32::from_le_bytes)
        };
        let mut w = [0u64; 8];
        for (slot, chunk) in w.iter_mut().zip(words.chunks_exact(8)) {
            *slot = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).ok()?);
        }
        Some(Self {
            first_seen_min: u32_at(0)?,
            last_seen_min: u32_at(4)?,
            events: u32_at(8)?,
            distinct: <[u8; 4]>::try_from(head.get(12..16)?).ok()?,
            apis: Bloom([w[0], w[1], w[2], w[3]]),
            networks: Bloom([w[4], w[5]]),
            regions: Bloom([w[6]]),
            agents: Bloom([w[7]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_80_bytes_and_round_trips_its_encoding() {
        assert_eq!(std::mem::size_of::<Profile>(), 80);
        let mut p = Profile::starting(10);
        p.learn(
            &CallKeys {
                api: 1,
                region: 2,
                network: 3,
                user_agent: 4,
            },
            12,
        );
        let mut b = Vec::new();
        p.encode(&mut b);
        assert_eq!(b.len(), Profile::ENCODED_LEN);
        assert_eq!(Profile::decode(&b), Some(p));
        assert_eq!(Profile::decode(&b[..79]), None);
    }

    #[test]
    fn a_value_learned_once_is_no_longer_new() {
        let mut p = Profile::starting(0);
        let k = CallKeys {
            api: stable_hash(&[b"ListUsers"]),
            region: stable_hash(&[b"eu-west-1"]),
            network: stable_hash(&[b"v4", &[10, 0, 0]]),
            user_agent: stable_hash(&[b"aws-cli"]),
        };
        assert_eq!(p.learn(&k, 1), [true; 4]);
        assert_eq!(p.learn(&k, 2), [false; 4]);
        assert_eq!(p.distinct, [1; 4]);
        assert_eq!(p.events, 2);
    }

    #[test]
    fn user_agent_families_drop_versions_and_brackets() {
        assert_eq!(user_agent_family("aws-cli/2.13.5 Python/3.11.4"), "aws-cli");
        assert_eq!(
            user_agent_family("[S3Console/0.4, aws-internal/3]"),
            "S3Console"
        );
        assert_eq!(user_agent_family("Boto3/1.26.0"), "Boto3");
        assert_eq!(user_agent_family(""), "");
    }

    #[test]
    fn hashes_separate_their_parts() {
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_ne!(stable_hash(&[b"ab"]), stable_hash(&[b"ab", b""]));
        assert_ne!(stable_hash(&[b"a"]), stable_hash(&[b"b"]));
    }

    #[test]
    fn hashes_are_the_specified_xxh3_so_persisted_filters_stay_valid() {
        // XXH3-64 of the empty input with seed 0, from the algorithm's reference test vectors.
        assert_eq!(stable_hash(&[b""]), 0x2d06_8005_38d3_94c2);
        assert_eq!(
            stable_hash(&[b"s3.amazonaws.com", b"GetObject"]),
            xxh3_64_with_seed(b"GetObject", xxh3_64_with_seed(b"s3.amazonaws.com", 0))
        );
    }
}
