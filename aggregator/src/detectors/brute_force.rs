//! `UnauthorizedAccess:EC2/SSHBruteForce`, `UnauthorizedAccess:EC2/RDPBruteForce` and
//! `Impact:EC2/WinRMBruteForce`: many short connections to a login service.
//!
//! Input: TCP flow summaries in either direction. The service comes from the payload tag when
//! the agent recognised one (`app_protocol = "ssh"` on any port), else from the port (22,
//! 3389, 5985/5986). A summary whose payload says another protocol (e.g. `ftp` on port 22) is
//! not labelled. Short connections are summed per (instance, direction, remote, service) in a
//! tumbling window. Inbound (instance as TARGET) is Low severity; outbound (instance as ACTOR,
//! i.e. compromised) is High, as GuardDuty does. The evidence keeps up to five summaries
//! from the second half of the way to the threshold, so windows that stay quiet copy none.

use std::num::{NonZeroU32, NonZeroUsize};

use picket_proto::v1::FlowSummary;
use serde::Deserialize;

use super::summary::{self, MAX_EXAMPLES};
use super::window::{NameKey, RemoteKey, WindowTable, keep_example};
use super::{
    BehaviourEvidence, ConnectionDirection, Detector, DetectorCounter, Event, EventFacts,
    EventKind, Observation, ResourceRole, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// Severity with the instance as target (GuardDuty: Low).
pub const TARGET_SEVERITY: f64 = 2.0;
/// Severity with the instance as actor (GuardDuty: High).
pub const ACTOR_SEVERITY: f64 = 8.0;

/// Bytes per connection (both ways) up to which a connection counts as one login attempt: a
/// failed password exchange is a few kilobytes, a working session or a copy is far more.
pub const MAX_ATTEMPT_BYTES: u64 = 16 * 1024;
/// Packets per connection (both ways) up to which a connection counts as one login attempt.
pub const MAX_ATTEMPT_PACKETS: u64 = 60;

/// Login attempts a summary holds: its short connections (refused or cut off at once), or all
/// of its connections when they were all small, as the full handshakes of failed logins are.
fn attempts(f: &picket_proto::v1::FlowSummary) -> u64 {
    let small = f.connections > 0
        && (f.bytes_in.saturating_add(f.bytes_out)) / f.connections <= MAX_ATTEMPT_BYTES
        && (f.packets_in.saturating_add(f.packets_out)) / f.connections <= MAX_ATTEMPT_PACKETS;
    if small {
        f.connections.max(f.short_connections)
    } else {
        f.short_connections
    }
}

/// A summary's login attempts, its service and whether it came in, when it has attempts at a
/// service this detector watches in a known direction; what `prefetch` and `observe` both ask.
fn candidate(f: &picket_proto::v1::FlowSummary) -> Option<(u64, Service, bool)> {
    let attempts = attempts(f);
    if attempts == 0 {
        return None;
    }
    let service = Service::of(f)?;
    let inbound = match summary::direction(f) {
        ConnectionDirection::Inbound => true,
        ConnectionDirection::Outbound => false,
        ConnectionDirection::Unknown => return None,
    };
    Some((attempts, service, inbound))
}

/// `[detectors.brute_force]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BruteForceConfig {
    /// Short connections between one remote and one service within a window that make an attack.
    #[serde(default = "default_min_short_connections")]
    pub min_short_connections: NonZeroU32,
    /// Window length in seconds.
    #[serde(default = "default_window_secs")]
    pub window_secs: NonZeroU32,
    /// (remote, service) pairs tracked at once; the least recently seen is evicted beyond this.
    #[serde(default = "super::default_max_keys")]
    pub max_keys: NonZeroUsize,
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        Self {
            min_short_connections: default_min_short_connections(),
            window_secs: default_window_secs(),
            max_keys: super::default_max_keys(),
        }
    }
}

fn default_min_short_connections() -> NonZeroU32 {
    // A person mistyping a password a few times, or a deploy tool opening a handful of
    // sessions, stays well below 20 failed-looking logins in five minutes.
    NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN)
}
fn default_window_secs() -> NonZeroU32 {
    NonZeroU32::new(300).unwrap_or(NonZeroU32::MIN)
}

/// A login service brute force is detected against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Secure shell.
    Ssh,
    /// Remote Desktop.
    Rdp,
    /// Windows Remote Management.
    WinRm,
}

impl Service {
    /// The service of a TCP summary, or `None` when it is not one of these (or the payload
    /// says it is something else).
    pub fn of(f: &FlowSummary) -> Option<Self> {
        if f.protocol != 6 {
            return None;
        }
        let app = f.app_protocol.trim();
        let is = |name: &str| app.eq_ignore_ascii_case(name);
        if is("ssh") {
            return Some(Self::Ssh);
        }
        if is("rdp") {
            return Some(Self::Rdp);
        }
        if is("winrm") {
            return Some(Self::WinRm);
        }
        // RDP and WinRM run inside TLS or HTTP, so those tags do not contradict the port.
        match f.service_port {
            22 if app.is_empty() => Some(Self::Ssh),
            3389 if app.is_empty() || is("tls") => Some(Self::Rdp),
            5985 | 5986 if app.is_empty() || is("tls") || is("http") => Some(Self::WinRm),
            _ => None,
        }
    }

    fn finding_type(self) -> FindingType {
        match self {
            Self::Ssh => FindingType::UnauthorizedAccessSshBruteForce,
            Self::Rdp => FindingType::UnauthorizedAccessRdpBruteForce,
            Self::WinRm => FindingType::ImpactWinRmBruteForce,
        }
    }
}

// (instance, (inbound, remote, service)); the instance is the event's shared key, looked up
// borrowed, and the remote its parsed address, so a record allocates no key and hashes no
// string.
type Key = (NameKey, (bool, RemoteKey, Service));

#[derive(Debug, Default)]
struct Attempts {
    short: u64,
    flows: Vec<FlowSummary>,
}

/// Sums short connections per remote and service.
#[derive(Debug)]
pub struct BruteForceDetector {
    config: BruteForceConfig,
    table: WindowTable<Key, Attempts>,
}

impl BruteForceDetector {
    /// A detector with `config`.
    pub fn new(config: BruteForceConfig) -> Self {
        let window_ms = i64::from(config.window_secs.get()) * 1000;
        Self {
            table: WindowTable::new(config.max_keys, window_ms),
            config,
        }
    }
}

impl Detector for BruteForceDetector {
    fn name(&self) -> &'static str {
        "brute_force"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    fn prefetch_inputs(&self) -> &'static [EventKind] {
        &[EventKind::Flow]
    }

    // As denial of service: a summary with short connections is mostly a new (remote,
    // service) whose index slot has left the cache; asked for here, it arrives meanwhile.
    fn prefetch(&self, event: &Event, facts: &EventFacts<'_>) {
        let (Some((_, f)), Some(name)) = (summary::flow(event), facts.instance()) else {
            return;
        };
        let Some((_, service, inbound)) = candidate(f) else {
            return;
        };
        // A remote that is not an address would be copied into its key: not worth a hint.
        if let Some(remote) = facts.remote() {
            let rest = (inbound, RemoteKey::Addr(remote.ip), service);
            self.table.prefetch_named(name, &rest);
        }
    }

    fn observe(&mut self, event: &Event, facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let (Some((source, f)), Some(name)) = (summary::flow(event), facts.instance()) else {
            return;
        };
        let Some((attempts, service, inbound)) = candidate(f) else {
            return;
        };
        let at = summary::flow_time(f);
        let rest = (
            inbound,
            RemoteKey::parsed(facts.remote().map(|a| a.ip), &f.remote_addr),
            service,
        );
        let min = self.config.min_short_connections.get();
        let window_ms = i64::from(self.config.window_secs.get()) * 1000;
        let w = self.table.window_named(name, rest, at);
        w.state.short = w.state.short.saturating_add(attempts);
        // Examples come from the second half of the way to the threshold: a window that never
        // gets there (nearly all of them) then never copies a summary.
        if w.state.short.saturating_mul(2) >= u64::from(min) {
            keep_example(&mut w.state.flows, MAX_EXAMPLES, || f.clone());
        }
        if w.fired || w.state.short < u64::from(min) {
            return;
        }
        w.fired = true;
        let (role, severity) = if inbound {
            (ResourceRole::Target, TARGET_SEVERITY)
        } else {
            (ResourceRole::Actor, ACTOR_SEVERITY)
        };
        let evidence = BehaviourEvidence {
            detector: "brute_force".to_owned(),
            window_ms,
            thresholds: vec![ThresholdCrossed {
                key: "detectors.brute_force.min_short_connections".into(),
                limit: f64::from(min),
                observed: w.state.short as f64,
            }],
            example_names: Vec::new(),
            flows: std::mem::take(&mut w.state.flows),
            dns: Vec::new(),
            note: (!f.app_protocol.is_empty())
                .then(|| format!("service identified by payload as {:?}", f.app_protocol)),
        };
        out.push(
            summary::ObservationParts {
                finding_type: service.finding_type(),
                source,
                local_addr: &f.local_addr,
                role,
                activity: summary::network_activity(f),
                at_ms: at,
                severity: Some(severity),
            }
            .observation(evidence),
        );
    }

    fn on_tick(&mut self, now_ms: i64, _out: &mut Vec<Observation>) {
        self.table.expire(now_ms);
    }

    fn tracked_keys(&self) -> usize {
        self.table.len()
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        self.table.counters(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testing::{T0, flow, flow_event, run};

    fn attempts(
        egress: bool,
        local: &str,
        remote: &str,
        port: u32,
        app: &str,
        short: u64,
    ) -> Event {
        let mut f = flow(egress, local, remote, 6, port, T0);
        f.connections = short;
        f.short_connections = short;
        f.app_protocol = app.into();
        flow_event(f)
    }

    fn detector() -> BruteForceDetector {
        BruteForceDetector::new(BruteForceConfig::default())
    }

    /// `n` completed SSH connections of `bytes` and `packets` each (both ways together).
    fn sessions(n: u64, bytes: u64, packets: u64) -> Event {
        let mut f = flow(false, "10.0.0.5", "198.51.100.7", 6, 22, T0);
        f.connections = n;
        f.short_connections = 0;
        f.bytes_in = n * bytes / 2;
        f.bytes_out = n * bytes / 2;
        f.packets_in = n * packets / 2;
        f.packets_out = n * packets / 2;
        flow_event(f)
    }

    #[test]
    fn failed_logins_with_full_handshakes_count_as_attempts() {
        // A password guess that completes the key exchange: ~5 KB and ~25 packets.
        let out = run(&mut detector(), [sessions(25, 5_000, 25)]);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].finding_type,
            FindingType::UnauthorizedAccessSshBruteForce
        );
    }

    #[test]
    fn many_working_sessions_are_not_attempts() {
        // Sessions that moved data (a deploy copying files) are not guesses.
        let out = run(&mut detector(), [sessions(25, 200_000, 300)]);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn inbound_ssh_attempts_are_low_severity_with_the_instance_as_target() {
        let out = run(
            &mut detector(),
            [attempts(false, "10.0.0.5", "198.51.100.7", 22, "", 25)],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].finding_type,
            FindingType::UnauthorizedAccessSshBruteForce
        );
        assert_eq!(out[0].role, ResourceRole::Target);
        assert_eq!(out[0].severity, Some(TARGET_SEVERITY));
    }

    #[test]
    fn outbound_ssh_over_ipv6_on_an_odd_port_is_high_severity_with_the_instance_as_actor() {
        let out = run(
            &mut detector(),
            [attempts(
                true,
                "2001:db8::5",
                "2001:db8:1::7",
                2222,
                "ssh",
                25,
            )],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].finding_type,
            FindingType::UnauthorizedAccessSshBruteForce
        );
        assert_eq!(out[0].role, ResourceRole::Actor);
        assert_eq!(out[0].severity, Some(ACTOR_SEVERITY));
    }

    #[test]
    fn rdp_and_winrm_attempts_get_their_own_types() {
        let out = run(
            &mut detector(),
            [
                attempts(false, "10.0.0.5", "198.51.100.7", 3389, "", 30),
                attempts(false, "2001:db8::5", "2001:db8:1::7", 5986, "tls", 30),
            ],
        );
        let types: Vec<_> = out.iter().map(|o| o.finding_type).collect();
        assert_eq!(
            types,
            vec![
                FindingType::UnauthorizedAccessRdpBruteForce,
                FindingType::ImpactWinRmBruteForce
            ]
        );
    }

    #[test]
    fn ftp_brute_force_even_on_port_22_is_not_labelled_ssh() {
        let out = run(
            &mut detector(),
            [
                attempts(false, "10.0.0.5", "198.51.100.7", 21, "ftp", 100),
                attempts(false, "2001:db8::5", "2001:db8:1::7", 22, "ftp", 100),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn nineteen_short_connections_are_a_near_miss_and_the_twentieth_fires() {
        let mut d = detector();
        assert!(
            run(
                &mut d,
                [attempts(false, "10.0.0.5", "198.51.100.7", 22, "", 19)]
            )
            .is_empty()
        );
        assert!(
            run(
                &mut d,
                [attempts(false, "2001:db8::5", "2001:db8:1::7", 22, "", 19)]
            )
            .is_empty()
        );
        assert_eq!(
            run(
                &mut d,
                [attempts(false, "10.0.0.5", "198.51.100.7", 22, "", 1)]
            )
            .len(),
            1
        );
    }

    #[test]
    fn min_short_connections_from_config_is_honoured() {
        let mut d = BruteForceDetector::new(BruteForceConfig {
            min_short_connections: NonZeroU32::new(100).expect("100"),
            ..BruteForceConfig::default()
        });
        assert!(
            run(
                &mut d,
                [attempts(false, "10.0.0.5", "198.51.100.7", 22, "", 99)]
            )
            .is_empty()
        );
    }
}
