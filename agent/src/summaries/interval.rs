//! Summary intervals: fixed-length windows aligned to the epoch, advanced by whatever time the
//! caller gives (packet timestamps in replay, the clock when live), so a replay of the same
//! capture always cuts its intervals at the same instants.

use std::time::Duration;

use crate::capture::Timestamp;

/// One closed interval, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// First instant of the interval.
    pub start: Timestamp,
    /// First instant after it.
    pub end: Timestamp,
}

/// The current summary interval.
#[derive(Debug, Clone, Copy)]
pub struct IntervalClock {
    length_ns: u64,
    current: Option<Interval>,
    /// The open interval's end, or 0 before time starts: one compare tells a packet that
    /// neither starts nor closes an interval, which is nearly every packet.
    open_end: Timestamp,
}

impl IntervalClock {
    /// A clock cutting `length`-long intervals (at least one millisecond).
    pub fn new(length: Duration) -> Self {
        let length_ns = u64::try_from(length.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1_000_000);
        Self {
            length_ns,
            current: None,
            open_end: Timestamp(0),
        }
    }

    /// The interval open now, if time has started.
    pub fn current(&self) -> Option<Interval> {
        self.current
    }

    /// Whether `now` starts time or reaches the open interval's end: when false,
    /// [`IntervalClock::advance`] would change nothing and return `None`.
    #[inline]
    pub fn due(&self, now: Timestamp) -> bool {
        now >= self.open_end
    }

    /// Moves time to `now`. Returns the interval that closed when `now` is past its end;
    /// earlier times (late packets, a second file) stay in the open interval. Empty intervals
    /// between are skipped: nothing happened in them to summarise.
    pub fn advance(&mut self, now: Timestamp) -> Option<Interval> {
        match self.current {
            Some(open) if now < open.end => None,
            previous => {
                let next = self.containing(now);
                self.current = Some(next);
                self.open_end = next.end;
                previous
            }
        }
    }

    /// Ends the open interval (end of a replay, shutdown).
    pub fn close(&mut self) -> Option<Interval> {
        self.open_end = Timestamp(0);
        self.current.take()
    }

    fn containing(&self, now: Timestamp) -> Interval {
        let start = now.0 - now.0 % self.length_ns;
        Interval {
            start: Timestamp(start),
            end: Timestamp(start.saturating_add(self.length_ns)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn intervals_are_aligned_to_their_length_and_close_when_time_passes_their_end() {
        let mut clock = IntervalClock::new(Duration::from_secs(60));
        assert_eq!(clock.advance(Timestamp(61 * SEC)), None);
        let open = clock.current().expect("started");
        assert_eq!(
            (open.start, open.end),
            (Timestamp(60 * SEC), Timestamp(120 * SEC))
        );
        assert_eq!(clock.advance(Timestamp(119 * SEC)), None);
        assert_eq!(
            clock.advance(Timestamp(30 * SEC)),
            None,
            "late packets stay"
        );
        assert_eq!(clock.advance(Timestamp(120 * SEC)), Some(open));
        assert_eq!(clock.current().map(|i| i.start), Some(Timestamp(120 * SEC)));
    }

    #[test]
    fn due_is_false_only_when_advancing_would_change_nothing() {
        let mut clock = IntervalClock::new(Duration::from_secs(60));
        assert!(
            clock.due(Timestamp(0)),
            "before time starts every packet is due"
        );
        let times = [5, 59, 60, 10, 119, 120, 400, 399, 459, 460, 0, 461];
        for t in times.map(|s| Timestamp(s * SEC)) {
            let (due, before) = (clock.due(t), clock.current());
            let closed = clock.advance(t);
            if !due {
                assert_eq!((closed, clock.current()), (None, before), "at {t:?}");
            } else {
                assert_ne!(clock.current(), before, "at {t:?}");
            }
        }
        clock.close();
        assert!(clock.due(Timestamp(0)), "closing starts time over");
    }

    #[test]
    fn a_long_silence_skips_the_empty_intervals() {
        let mut clock = IntervalClock::new(Duration::from_secs(60));
        clock.advance(Timestamp(0));
        let closed = clock.advance(Timestamp(3600 * SEC)).expect("closed");
        assert_eq!(closed.end, Timestamp(60 * SEC));
        assert_eq!(
            clock.current().map(|i| i.start),
            Some(Timestamp(3600 * SEC))
        );
        assert!(clock.close().is_some());
        assert_eq!(clock.close(), None);
    }
}
