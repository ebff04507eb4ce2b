//! Log lines on standard error, set up the same way by both daemons' binaries.

use tracing_subscriber::EnvFilter;

/// Log line formats (`--log-format`, `PICKET_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber: `RUST_LOG` filters (default `info`), lines in `format` on
/// standard error so standard output stays free for records and findings.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// `error` and its causes on one line, outermost first and joined by `: `, as a binary's last
/// words on standard error. A cause is left out when the text before it already ends with it:
/// many errors print their source inside their own message, and `anyhow`'s `{:#}` would then
/// print it twice (`a.toml: No such file (os error 2): No such file (os error 2)`).
pub fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    /// An error with a message and an optional source, as thiserror would make.
    #[derive(Debug)]
    struct E(String, Option<Box<E>>);

    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    fn chain(messages: &[&str]) -> E {
        messages
            .iter()
            .rev()
            .fold(None, |inner, m| {
                Some(E((*m).to_owned(), inner.map(Box::new)))
            })
            .unwrap_or_else(|| E(String::new(), None))
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = "No such file or directory (os error 2)";
        let e = chain(&[&format!("/etc/a.toml: {io}"), io]);
        assert_eq!(error_line(&e), format!("/etc/a.toml: {io}"));
        // Through a context that does not repeat it, and a wrapper that does.
        let e = chain(&[
            "starting the agent",
            &format!("outbox /d: {io}"),
            &format!("outbox /d: {io}"),
            io,
        ]);
        assert_eq!(
            error_line(&e),
            format!("starting the agent: outbox /d: {io}")
        );
    }

    #[test]
    fn causes_not_in_the_message_are_appended_in_order() {
        let e = chain(&["reading intel", "feed.txt", "line 3: bad address"]);
        assert_eq!(
            error_line(&e),
            "reading intel: feed.txt: line 3: bad address"
        );
        assert_eq!(error_line(&chain(&["alone"])), "alone");
    }
}
