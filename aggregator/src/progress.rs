//! Progress lines for long offline runs (`analyze`): at most one a second on standard error,
//! with records per second and files done, only when asked (`--progress`) or when standard
//! error is a terminal. Cheap enough to call per record: the clock is read once per
//! [`CHECK_EVERY`] records.

use std::io::Write;
use std::time::{Duration, Instant};

/// Records between clock reads.
pub const CHECK_EVERY: u64 = 4096;
/// Shortest time between two progress lines.
pub const EVERY: Duration = Duration::from_secs(1);

/// A rate-limited progress reporter; [`Progress::off`] reports nothing.
pub struct Progress {
    out: Option<Box<dyn Write + Send>>,
    what: &'static str,
    files_total: usize,
    files_done: usize,
    records: u64,
    started: Instant,
    last_line: Instant,
    since_check: u64,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("on", &self.out.is_some())
            .field("records", &self.records)
            .finish()
    }
}

impl Progress {
    /// A reporter that prints nothing.
    pub fn off() -> Self {
        Self::to(None, "records", 0)
    }

    /// A reporter writing to standard error when `forced` or when it is a terminal.
    pub fn stderr(forced: bool, what: &'static str, files_total: usize) -> Self {
        use std::io::IsTerminal;
        let on = forced || std::io::stderr().is_terminal();
        Self::to(
            on.then(|| Box::new(std::io::stderr()) as Box<dyn Write + Send>),
            what,
            files_total,
        )
    }

    /// A reporter writing to `out` (tests, or another stream).
    pub fn to(out: Option<Box<dyn Write + Send>>, what: &'static str, files_total: usize) -> Self {
        let now = Instant::now();
        Self {
            out,
            what,
            files_total,
            files_done: 0,
            records: 0,
            started: now,
            last_line: now,
            since_check: 0,
        }
    }

    /// Counts one record; may print a line.
    pub fn record(&mut self) {
        self.records += 1;
        if self.out.is_none() {
            return;
        }
        self.since_check += 1;
        if self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            self.maybe_print(Instant::now());
        }
    }

    /// Counts one finished file; may print a line.
    pub fn file_done(&mut self) {
        self.files_done += 1;
        if self.out.is_some() {
            self.maybe_print(Instant::now());
        }
    }

    /// Prints the final line (when on).
    pub fn finish(&mut self) {
        self.print(Instant::now());
    }

    fn maybe_print(&mut self, now: Instant) {
        if now.duration_since(self.last_line) >= EVERY {
            self.print(now);
        }
    }

    fn print(&mut self, now: Instant) {
        self.last_line = now;
        let line = self.line(now);
        if let Some(out) = self.out.as_mut() {
            // A progress line that cannot be written is not worth failing the run for.
            let _ = writeln!(out, "{line}");
        }
    }

    /// The text of a progress line at `now`.
    pub fn line(&self, now: Instant) -> String {
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
        format!(
            "progress: {} {} ({:.0}/s), {} of {} files done, {:.0} s",
            self.records,
            self.what,
            self.records as f64 / secs,
            self.files_done,
            self.files_total,
            secs
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_rate_limited_and_say_records_rate_and_files() {
        let out = Shared::default();
        let mut p = Progress::to(Some(Box::new(out.clone())), "records", 2);
        for _ in 0..3 * CHECK_EVERY {
            p.record();
        }
        p.file_done();
        // Well under a second: nothing yet.
        assert!(out.0.lock().unwrap().is_empty());
        p.started -= Duration::from_secs(2);
        p.last_line -= Duration::from_secs(2);
        p.file_done();
        p.file_done();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("progress: 12288 records ("), "{text}");
        assert!(text.contains("2 of 2 files done"), "{text}");
    }

    #[test]
    fn an_off_reporter_counts_but_prints_nothing() {
        let mut p = Progress::off();
        for _ in 0..10 {
            p.record();
        }
        p.finish();
        assert_eq!(p.records, 10);
    }
}
