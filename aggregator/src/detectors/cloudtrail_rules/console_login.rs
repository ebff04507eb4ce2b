//! Console sign-ins over short windows (event time):
//!
//! - `UnauthorizedAccess:IAMUser/ConsoleLoginSuccess.B`: one principal signs in successfully
//!   from at least `success_min_networks` distinct networks (/24 or /48) within
//!   `success_window_secs` — the same credentials used from several places at once.
//! - `UnauthorizedAccess:IAMUser/ConsoleLoginBruteForce` (Picket's name, in GuardDuty's
//!   grammar; GuardDuty has no console brute-force type): at least `failure_min` failed
//!   sign-ins from one address within `failure_window_secs`, whatever users they tried.
//!
//! Each window reports once. Both tables are capped at `max_keys` (least recent evicted).

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};

use serde::Deserialize;

use super::api_observation::{Extra, access_key, observation};
use super::root_usage::console_success;
use crate::cloudtrail::ApiEvent;
use crate::cloudtrail::address::network_of;
use crate::detectors::window::{DistinctSet, WindowTable, keep_example};
use crate::detectors::{Detector, DetectorCounter, Event, EventFacts, EventKind, Observation};
use crate::findings::types::FindingType;

/// `[detectors.console_login]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleLoginConfig {
    /// Distinct source networks of one principal's successful sign-ins within the window.
    #[serde(default = "default_success_min_networks")]
    pub success_min_networks: NonZeroU32,
    /// Window for successful sign-ins, in seconds.
    #[serde(default = "default_success_window_secs")]
    pub success_window_secs: NonZeroU32,
    /// Failed sign-ins from one address within the window.
    #[serde(default = "default_failure_min")]
    pub failure_min: NonZeroU32,
    /// Window for failed sign-ins, in seconds.
    #[serde(default = "default_failure_window_secs")]
    pub failure_window_secs: NonZeroU32,
    /// Keys (principals, addresses) tracked per table.
    #[serde(default = "crate::detectors::default_max_keys")]
    pub max_keys: NonZeroUsize,
}

fn default_success_min_networks() -> NonZeroU32 {
    NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN)
}
fn default_success_window_secs() -> NonZeroU32 {
    NonZeroU32::new(3600).unwrap_or(NonZeroU32::MIN)
}
fn default_failure_min() -> NonZeroU32 {
    NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN)
}
fn default_failure_window_secs() -> NonZeroU32 {
    NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN)
}

impl Default for ConsoleLoginConfig {
    fn default() -> Self {
        Self {
            success_min_networks: default_success_min_networks(),
            success_window_secs: default_success_window_secs(),
            failure_min: default_failure_min(),
            failure_window_secs: default_failure_window_secs(),
            max_keys: crate::detectors::default_max_keys(),
        }
    }
}

impl ConsoleLoginConfig {
    /// Adds every out-of-range value to `problems`.
    pub fn check(&self, problems: &mut Vec<String>) {
        if self.success_min_networks.get() < 2 {
            problems.push(format!(
                "detectors.console_login.success_min_networks must be at least 2, got {}",
                self.success_min_networks
            ));
        }
    }
}

#[derive(Debug, Default)]
struct Successes {
    networks: DistinctSet<IpAddr>,
    addresses: Vec<String>,
}

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    users: DistinctSet<String>,
}

const EXAMPLES: usize = 8;

/// The console sign-in rules.
#[derive(Debug)]
pub struct ConsoleLoginDetector {
    config: ConsoleLoginConfig,
    successes: WindowTable<(String, String), Successes>,
    failures: WindowTable<(String, IpAddr), Failures>,
}

impl ConsoleLoginDetector {
    /// A detector with `config`'s thresholds.
    pub fn new(config: ConsoleLoginConfig) -> Self {
        Self {
            successes: WindowTable::new(
                config.max_keys,
                i64::from(config.success_window_secs.get()) * 1000,
            ),
            failures: WindowTable::new(
                config.max_keys,
                i64::from(config.failure_window_secs.get()) * 1000,
            ),
            config,
        }
    }

    fn success(&mut self, e: &ApiEvent, ip: IpAddr, out: &mut Vec<Observation>) {
        let key = (e.account_id().to_owned(), e.principal.key().to_owned());
        let min = self.config.success_min_networks.get() as usize;
        let w = self.successes.window(key, e.time_ms);
        w.state.networks.insert(network_of(ip), EXAMPLES.max(min));
        let addr = ip.to_string();
        if !w.state.addresses.contains(&addr) {
            keep_example(&mut w.state.addresses, EXAMPLES, || addr);
        }
        if w.fired || w.state.networks.len() < min {
            return;
        }
        w.fired = true;
        let note = format!(
            "{} distinct networks (detectors.console_login.success_min_networks = {min}) within {} s: {}",
            w.state.networks.len(),
            self.config.success_window_secs,
            w.state.addresses.join(", ")
        );
        out.push(observation(
            "console_login",
            FindingType::UnauthorizedAccessConsoleLoginSuccessB,
            access_key(e),
            e,
            Extra {
                note: Some(note),
                ..Extra::default()
            },
        ));
    }

    fn failure(&mut self, e: &ApiEvent, ip: IpAddr, out: &mut Vec<Observation>) {
        let key = (e.account_id().to_owned(), ip);
        let w = self.failures.window(key, e.time_ms);
        w.state.count = w.state.count.saturating_add(1);
        w.state.users.insert(e.principal.key().to_owned(), EXAMPLES);
        let min = self.config.failure_min.get();
        if w.fired || w.state.count < min {
            return;
        }
        w.fired = true;
        let note = format!(
            "{} failed sign-ins for {} principals (detectors.console_login.failure_min = {min}) within {} s",
            w.state.count,
            w.state.users.len(),
            self.config.failure_window_secs
        );
        out.push(observation(
            "console_login",
            FindingType::UnauthorizedAccessConsoleLoginBruteForce,
            access_key(e),
            e,
            Extra {
                note: Some(note),
                ..Extra::default()
            },
        ));
    }
}

/// Whether a `ConsoleLogin` event records a failed sign-in.
fn console_failure(e: &ApiEvent) -> bool {
    e.response_elements
        .get("ConsoleLogin")
        .and_then(serde_json::Value::as_str)
        == Some("Failure")
        || e.error_message.contains("Failed authentication")
}

impl Detector for ConsoleLoginDetector {
    fn name(&self) -> &'static str {
        "console_login"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Api]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Event::Api(e) = event else { return };
        if e.event_name != "ConsoleLogin" {
            return;
        }
        let Some(ip) = e.source.ip() else { return };
        if console_success(e) {
            self.success(e, ip, out);
        } else if console_failure(e) {
            self.failure(e, ip, out);
        }
    }

    fn on_tick(&mut self, now_ms: i64, _out: &mut Vec<Observation>) {
        self.successes.expire(now_ms);
        self.failures.expire(now_ms);
    }

    fn tracked_keys(&self) -> usize {
        self.successes.len().max(self.failures.len())
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![
            DetectorCounter {
                name: "sign_ins_evicted_full",
                count: self.successes.evicted_full() + self.failures.evicted_full(),
            },
            DetectorCounter {
                name: "sign_in_windows_expired",
                count: self.successes.expired() + self.failures.expired(),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{event_from, record, run};
    use super::*;

    fn login(ip: &str, minute: u32, ok: bool, user: &str) -> ApiEvent {
        let mut extra = json!({
            "sourceIPAddress": ip,
            "eventTime": format!("2024-05-01T10:{minute:02}:00Z"),
            "eventType": "AwsConsoleSignIn",
            "userIdentity": {"type": "IAMUser", "principalId": format!("AIDA{user}"), "arn": format!("arn:aws:iam::111122223333:user/{user}"), "accountId": "111122223333", "userName": user},
            "responseElements": {"ConsoleLogin": if ok { "Success" } else { "Failure" }},
        });
        if !ok {
            extra["errorMessage"] = json!("Failed authentication");
        }
        event_from(&record("signin.amazonaws.com", "ConsoleLogin", extra))
    }

    #[test]
    fn one_user_signing_in_from_three_networks_within_the_hour_fires_once() {
        let mut d = ConsoleLoginDetector::new(ConsoleLoginConfig::default());
        let obs = run(
            &mut d,
            vec![
                login("81.2.69.142", 0, true, "alice"),
                login("175.16.199.1", 5, true, "alice"),
                login("89.160.20.156", 10, true, "alice"),
                login("216.160.83.56", 12, true, "alice"),
            ],
        );
        assert_eq!(obs.len(), 1);
        assert_eq!(
            obs[0].finding_type,
            FindingType::UnauthorizedAccessConsoleLoginSuccessB
        );
    }

    #[test]
    fn sign_ins_from_one_network_or_spread_over_hours_do_not() {
        let mut d = ConsoleLoginDetector::new(ConsoleLoginConfig::default());
        let same_net = vec![
            login("81.2.69.142", 0, true, "bob"),
            login("81.2.69.143", 1, true, "bob"),
            login("81.2.69.144", 2, true, "bob"),
        ];
        assert!(run(&mut d, same_net).is_empty());
        let mut spread = Vec::new();
        for (i, ip) in ["175.16.199.1", "89.160.20.156", "216.160.83.56"]
            .iter()
            .enumerate()
        {
            let mut e = login(ip, 0, true, "carol");
            e.time_ms += i64::try_from(i).expect("small") * 2 * 3_600_000;
            spread.push(e);
        }
        assert!(run(&mut d, spread).is_empty());
    }

    #[test]
    fn ten_failures_from_one_address_are_brute_force_and_nine_are_not() {
        let mut d = ConsoleLoginDetector::new(ConsoleLoginConfig::default());
        let nine: Vec<_> = (0..9)
            .map(|i| login("45.9.148.3", i, false, "alice"))
            .collect();
        assert!(run(&mut d, nine).is_empty());
        let obs = run(&mut d, vec![login("45.9.148.3", 9, false, "bob")]);
        assert_eq!(obs.len(), 1);
        assert_eq!(
            obs[0].finding_type,
            FindingType::UnauthorizedAccessConsoleLoginBruteForce
        );
        // Failures from another address start their own count.
        assert!(run(&mut d, vec![login("45.9.148.4", 9, false, "bob")]).is_empty());
    }
}
