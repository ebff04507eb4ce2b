//! RITA-style beacon scores: how machine-like a series of connections is, from its
//! inter-connection intervals and its connection sizes. Pure functions over caller-owned
//! buffers, so the beaconing detector scores without allocating.
//!
//! Each component is in [0, 1], 1 being perfectly regular:
//! - skew: `1 - |Bowley skew|` (quartile skew, robust to outliers) — a jittered beacon's
//!   intervals are symmetric around its period;
//! - dispersion: `1 - MAD / median` — a beacon's intervals (sizes) cluster tightly;
//! - connection count: connections per hour of span, capped at 1 — a beacon keeps calling;
//! - smallness: `1 - median size / 64 KiB` — check-ins are small.
//!
//! The interval score is the mean of skew, dispersion and count; the size score the mean of
//! skew, dispersion and smallness; the beacon score the mean of the two (as RITA does).

use serde::Serialize;

/// Sizes at or above this score 0 for smallness (RITA uses the same 64 KiB).
const SMALL_BYTES: f64 = 65_535.0;

/// The scores of one (instance, remote, port) series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BeaconScore {
    /// The overall score, mean of the interval and size scores.
    pub score: f64,
    /// Mean of the interval components.
    pub ts_score: f64,
    /// `1 - |Bowley skew|` of the intervals.
    pub ts_skew: f64,
    /// `1 - MAD/median` of the intervals.
    pub ts_madm: f64,
    /// Connections per hour of span, capped at 1.
    pub ts_conn_count: f64,
    /// Mean of the size components.
    pub ds_score: f64,
    /// `1 - |Bowley skew|` of the sizes.
    pub ds_skew: f64,
    /// `1 - MAD/median` of the sizes.
    pub ds_madm: f64,
    /// `1 - median/64 KiB` of the sizes.
    pub ds_smallness: f64,
    /// Median interval, seconds.
    pub median_interval_secs: f64,
    /// Median absolute deviation of the intervals, seconds.
    pub interval_mad_secs: f64,
    /// Median bytes per connection.
    pub median_bytes: f64,
}

/// Quartiles (Q1, median, Q3) of sorted `v` by linear interpolation; zeros when empty.
fn quartiles(sorted: &[f64]) -> (f64, f64, f64) {
    (
        quantile(sorted, 0.25),
        quantile(sorted, 0.5),
        quantile(sorted, 0.75),
    )
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0.0;
    };
    let pos = q * last as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (a, b) = (
        sorted.get(lo).copied().unwrap_or(0.0),
        sorted.get(hi).copied().unwrap_or(0.0),
    );
    a + (b - a) * (pos - lo as f64)
}

/// `1 - |Bowley skew|` of sorted `v`; 1 when the quartiles coincide (no spread, no skew).
fn skew_score(q1: f64, q2: f64, q3: f64) -> f64 {
    let spread = q3 - q1;
    if spread <= f64::EPSILON {
        return 1.0;
    }
    (1.0 - ((q1 + q3 - 2.0 * q2) / spread).abs()).clamp(0.0, 1.0)
}

/// Median absolute deviation of `v` around `median`, using `scratch` for the deviations.
fn mad(v: &[f64], median: f64, scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    scratch.extend(v.iter().map(|x| (x - median).abs()));
    scratch.sort_by(f64::total_cmp);
    quantile(scratch, 0.5)
}

fn dispersion_score(mad: f64, median: f64) -> f64 {
    if median <= f64::EPSILON {
        return if mad <= f64::EPSILON { 1.0 } else { 0.0 };
    }
    (1.0 - mad / median).clamp(0.0, 1.0)
}

/// Reusable buffers for [`score`].
#[derive(Debug, Default)]
pub struct Scratch {
    times: Vec<i64>,
    intervals: Vec<f64>,
    sizes: Vec<f64>,
    deviations: Vec<f64>,
}

impl Scratch {
    /// The sorted intervals of the last [`score`] call, in seconds.
    pub fn intervals(&self) -> &[f64] {
        &self.intervals
    }
}

/// Scores connection start times `times_ms` (any order) and sizes `sizes` (bytes per
/// connection), `None` when there are fewer than three times (no two intervals).
pub fn score(
    times_ms: impl Iterator<Item = i64>,
    sizes: impl Iterator<Item = u64>,
    s: &mut Scratch,
) -> Option<BeaconScore> {
    s.times.clear();
    s.times.extend(times_ms);
    if s.times.len() < 3 {
        return None;
    }
    s.times.sort_unstable();
    let (first, last) = (*s.times.first()?, *s.times.last()?);
    s.intervals.clear();
    s.intervals.extend(
        s.times
            .windows(2)
            .map(|w| (w[1].saturating_sub(w[0])) as f64 / 1000.0),
    );
    s.intervals.sort_by(f64::total_cmp);
    let (q1, q2, q3) = quartiles(&s.intervals);
    let ts_skew = skew_score(q1, q2, q3);
    let ts_mad = mad(&s.intervals, q2, &mut s.deviations);
    let ts_madm = dispersion_score(ts_mad, q2);
    let span_hours = (last.saturating_sub(first)) as f64 / 3_600_000.0;
    let ts_conn_count = if span_hours <= 1.0 {
        1.0
    } else {
        (s.times.len() as f64 / span_hours).min(1.0)
    };

    s.sizes.clear();
    s.sizes.extend(sizes.map(|b| b as f64));
    s.sizes.sort_by(f64::total_cmp);
    let (d1, d2, d3) = quartiles(&s.sizes);
    let ds_skew = skew_score(d1, d2, d3);
    let ds_mad = mad(&s.sizes, d2, &mut s.deviations);
    let ds_madm = dispersion_score(ds_mad, d2);
    let ds_smallness = (1.0 - d2 / SMALL_BYTES).clamp(0.0, 1.0);

    let ts_score = (ts_skew + ts_madm + ts_conn_count) / 3.0;
    let ds_score = if s.sizes.is_empty() {
        0.0
    } else {
        (ds_skew + ds_madm + ds_smallness) / 3.0
    };
    Some(BeaconScore {
        score: (ts_score + ds_score) / 2.0,
        ts_score,
        ts_skew,
        ts_madm,
        ts_conn_count,
        ds_score,
        ds_skew,
        ds_madm,
        ds_smallness,
        median_interval_secs: q2,
        interval_mad_secs: ts_mad,
        median_bytes: d2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(times: &[i64], sizes: &[u64]) -> BeaconScore {
        score(
            times.iter().copied(),
            sizes.iter().copied(),
            &mut Scratch::default(),
        )
        .expect("enough times")
    }

    #[test]
    fn a_perfect_beacon_scores_one() {
        let times: Vec<i64> = (0..50).map(|i| i * 60_000).collect();
        let s = run(&times, &[512; 50]);
        assert!((s.ts_score - 1.0).abs() < 1e-9, "{s:?}");
        assert!(
            (s.ds_skew - 1.0).abs() < 1e-9 && (s.ds_madm - 1.0).abs() < 1e-9,
            "{s:?}"
        );
        // Only smallness is short of 1: 512 bytes of 64 KiB.
        assert!(s.score > 0.99, "{s:?}");
        assert!((s.median_interval_secs - 60.0).abs() < 1e-9);
    }

    #[test]
    fn a_jittered_beacon_scores_high_and_random_traffic_scores_low() {
        // 20% jitter below a 60 s period, sizes within a few bytes.
        let mut t = 0;
        let mut times = Vec::new();
        let mut sizes = Vec::new();
        for i in 0..60i64 {
            t += 60_000 - (i * 7_919 % 12_000);
            times.push(t);
            sizes.push(600 + (i as u64 * 13 % 20));
        }
        let beacon = run(&times, &sizes);
        assert!(beacon.score > 0.85, "{beacon:?}");
        // Human-like: intervals from seconds to an hour, sizes from bytes to megabytes.
        let mut t = 0;
        let mut times = Vec::new();
        let mut sizes = Vec::new();
        for i in 0..60i64 {
            t += [2_000, 45_000, 900_000, 7_000, 3_600_000, 120_000][i as usize % 6] + i * 1_000;
            times.push(t);
            sizes.push([300u64, 2_000_000, 45_000, 900, 8_000_000, 12_000][i as usize % 6]);
        }
        let human = run(&times, &sizes);
        assert!(human.score < 0.6, "{human:?}");
    }

    #[test]
    fn fewer_than_three_times_cannot_be_scored() {
        assert!(
            score(
                [0, 1].into_iter(),
                [1, 1].into_iter(),
                &mut Scratch::default()
            )
            .is_none()
        );
    }
}
