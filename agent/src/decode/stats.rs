//! Per-kind decode counters, kept by the capture loop without locks and shipped as `HostStats`.

use super::Outcome;
use super::error::{DecodeError, ErrorKind, Layer, SkipKind};

/// Counts of decode outcomes: decoded packets, errors by layer and kind, skips by kind.
///
/// Plain counters updated by the one thread that decodes; readers take a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeStats {
    /// Packets decoded down to a transport header (or a later fragment).
    pub decoded: u64,
    errors: [[u64; ErrorKind::COUNT]; Layer::ALL.len()],
    skipped: [u64; SkipKind::COUNT],
}

impl Default for DecodeStats {
    fn default() -> Self {
        Self {
            decoded: 0,
            errors: [[0; ErrorKind::COUNT]; Layer::ALL.len()],
            skipped: [0; SkipKind::COUNT],
        }
    }
}

impl DecodeStats {
    /// Counts one decode result.
    pub fn record(&mut self, result: &Result<Outcome<'_>, DecodeError>) {
        match result {
            Ok(Outcome::Decoded(_)) => self.record_decoded(),
            Ok(Outcome::Skipped(kind)) => self.record_skip(*kind),
            Err(err) => self.record_error(*err),
        }
    }

    /// Counts one packet decoded into a flow's fields (by either lane).
    #[inline]
    pub fn record_decoded(&mut self) {
        self.decoded = self.decoded.saturating_add(1);
    }

    /// Counts one decode error.
    pub fn record_error(&mut self, err: DecodeError) {
        if let Some(n) = self
            .errors
            .get_mut(err.layer.index())
            .and_then(|row| row.get_mut(err.kind.index()))
        {
            *n = n.saturating_add(1);
        }
    }

    /// Counts one skipped packet.
    pub fn record_skip(&mut self, kind: SkipKind) {
        if let Some(n) = self.skipped.get_mut(kind.index()) {
            *n = n.saturating_add(1);
        }
    }

    /// Errors counted for one layer and kind label.
    pub fn errors(&self, layer: Layer, kind: ErrorKind) -> u64 {
        self.errors
            .get(layer.index())
            .and_then(|row| row.get(kind.index()))
            .copied()
            .unwrap_or(0)
    }

    /// Packets skipped for one reason.
    pub fn skipped(&self, kind: SkipKind) -> u64 {
        self.skipped.get(kind.index()).copied().unwrap_or(0)
    }

    /// All errors, over every layer and kind.
    pub fn total_errors(&self) -> u64 {
        self.errors
            .iter()
            .flatten()
            .fold(0_u64, |acc, n| acc.saturating_add(*n))
    }

    /// All skipped packets, over every kind.
    pub fn total_skipped(&self) -> u64 {
        self.skipped
            .iter()
            .fold(0_u64, |acc, n| acc.saturating_add(*n))
    }

    /// Non-zero error counters as (layer label, kind label, count), for metrics and `HostStats`.
    pub fn error_counts(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        Layer::ALL
            .iter()
            .zip(self.errors.iter())
            .flat_map(|(layer, row)| {
                ErrorKind::LABELS
                    .iter()
                    .zip(row.iter())
                    .filter(|(_, n)| **n > 0)
                    .map(move |(kind, n)| (layer.as_str(), *kind, *n))
            })
    }

    /// Non-zero skip counters as (kind label, count).
    pub fn skip_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SkipKind::ALL
            .iter()
            .zip(self.skipped.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(kind, n)| (kind.as_str(), *n))
    }
}
