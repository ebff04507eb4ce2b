//! Helpers for tests that build hosts out of network namespaces: run code or `ip` inside one,
//! send datagrams from one, and remove an extra namespace when done.

use std::fs::File;
use std::net::UdpSocket;

use anyhow::{Context, Result};

use crate::sh;

/// Runs `f` on a thread inside network namespace `ns`; sockets it returns stay there.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).with_context(|| path.clone())?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
}

/// Runs `ip -n NS ARGS...`.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<()> {
    let mut full = vec!["-n", ns];
    full.extend(args);
    sh("ip", &full)
}

/// Sends `count` datagrams of `what` from `from` (any port) to `to`, inside namespace `ns`.
pub fn send_datagrams(
    ns: &str,
    from: &str,
    to: (&str, u16),
    what: &'static [u8],
    count: usize,
) -> Result<()> {
    let (from, to) = (from.to_owned(), (to.0.to_owned(), to.1));
    in_netns(ns, move || {
        let sock = UdpSocket::bind((from.as_str(), 0))?;
        for _ in 0..count {
            sock.send_to(what, (to.0.as_str(), to.1))?;
        }
        Ok(())
    })
}

/// A network namespace of the test's own, removed on drop.
pub struct ExtraNs(pub String);

impl Drop for ExtraNs {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "del", &self.0]);
    }
}
