//! Helpers for Picket's end-to-end tests: build and start the real binaries, make real
//! certificates, read their JSON logs, and wait for conditions with a deadline.
#![forbid(unsafe_code)]

pub mod api;
pub mod enroll;
pub mod netns;
pub mod ops;
pub mod records;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use picket_aggregator::certs::{self, LeafKind};
use picket_proto::AgentId;

/// How long a test waits for something that should happen within a second or two.
pub const WAIT: Duration = Duration::from_secs(30);

/// Whether `key` is one of the variables Cargo sets for the package whose test is running.
fn is_package_variable(key: &str) -> bool {
    const PREFIXES: [&str; 4] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_",
        "CARGO_CRATE_",
    ];
    const NAMES: [&str; 4] = [
        "OUT_DIR",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p)) || NAMES.contains(&key)
}

/// Path of a workspace binary, built once per test process so tests never run a stale one.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        // target/<profile>/deps/<test-binary> -> target/<profile>
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or("test binary has no target/<profile> folder")?
            .to_owned();
        let target_dir = profile_dir.parent().ok_or("no target folder")?.to_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--bins",
            "-p",
            "picket-agent",
            "-p",
            "picket-aggregator",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        // Cargo gives a running test its package's variables; ring's build script watches
        // some of them, so passing them on made this build rerun it and rebuild everything
        // above ring, and the next plain `cargo` call rebuild it all back.
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(is_package_variable) {
                cmd.env_remove(key);
            }
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .map_err(|e| format!("running cargo build: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build of the binaries failed: {status}"));
        }
        Ok(profile_dir)
    });
    match dir {
        Ok(d) => d.join(name),
        Err(e) => panic!("{e}"),
    }
}

/// A scratch CA with helpers to issue certificates into it.
pub struct Pki {
    /// The folder (kept until the test ends).
    pub dir: tempfile::TempDir,
}

/// Paths of one issued certificate.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Certificate PEM.
    pub cert: PathBuf,
    /// Key PEM.
    pub key: PathBuf,
}

impl Pki {
    /// A new CA in a temporary folder.
    pub fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        certs::init_ca(dir.path())?;
        Ok(Self { dir })
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join(certs::CA_CERT_FILE)
    }

    /// Issues a certificate named `name` of `kind`.
    pub fn issue(&self, name: &str, kind: LeafKind) -> Result<Leaf> {
        let pair = certs::issue(self.dir.path(), &kind, &self.dir.path().join(name))?;
        Ok(Leaf {
            cert: pair.cert,
            key: pair.key,
        })
    }

    /// The server certificate for 127.0.0.1.
    pub fn server(&self) -> Result<Leaf> {
        self.issue("server", LeafKind::Server("127.0.0.1".into()))
    }

    /// An agent certificate.
    pub fn agent(&self, account: &str, instance: &str) -> Result<Leaf> {
        self.issue(
            &format!("agent-{account}-{instance}"),
            LeafKind::Agent(AgentId::new(account, instance)?),
        )
    }
}

/// A running binary whose standard error (JSON logs) is collected line by line.
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl Proc {
    /// Starts `bin(name)` with `args`, logging JSON at `rust_log`.
    pub fn start(name: &str, args: &[&str], rust_log: &str) -> Result<Self> {
        Self::start_in(None, name, args, rust_log)
    }

    /// As [`Proc::start`], inside network namespace `netns` when given (`ip netns exec`
    /// execs the binary, so the child's pid is the binary's own).
    pub fn start_in(
        netns: Option<&str>,
        name: &str,
        args: &[&str],
        rust_log: &str,
    ) -> Result<Self> {
        let mut cmd = match netns {
            None => Command::new(bin(name)),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin(name));
                c
            }
        };
        let mut child = cmd
            .args(args)
            .arg("--log-format=json")
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Ok(Self {
            child,
            lines,
            name: name.to_owned(),
        })
    }

    /// The process id (to read its CPU time in `/proc`, or attach a profiler).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// All log lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Log lines (parsed JSON) whose `message` equals `message`.
    pub fn events(&self, message: &str) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }

    /// Waits until at least `n` log events with `message` satisfy `pred`; returns them.
    pub fn wait_for(
        &self,
        message: &str,
        n: usize,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<Vec<serde_json::Value>> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found: Vec<_> = self
                .events(message)
                .into_iter()
                .filter(|v| pred(v))
                .collect();
            if found.len() >= n {
                return Ok(found);
            }
            if Instant::now() > deadline {
                let tail = self.tail(15);
                bail!(
                    "{}: waited {WAIT:?} for {n} x {message:?}, saw {}; last log lines:\n{}",
                    self.name,
                    found.len(),
                    tail
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `n` log lines, one string, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits for the process to exit by itself, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let tail = self.tail(15);
                bail!(
                    "{} did not exit within {limit:?}; last log lines:\n{}",
                    self.name,
                    tail
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process at once (SIGKILL: a crash, not a shutdown) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        self.send_term()?;
        Ok(self.child.wait()?)
    }

    /// Sends SIGTERM without waiting (pair with [`Proc::wait_exit`] to bound the stop).
    pub fn send_term(&self) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts an aggregator on 127.0.0.1 (port 0 = any) and returns it with its bound address.
pub fn start_aggregator(
    pki: &Pki,
    server: &Leaf,
    data_dir: &Path,
    port: u16,
    extra: &[&str],
) -> Result<(Proc, String)> {
    start_aggregator_in(
        None,
        &format!("127.0.0.1:{port}"),
        pki,
        server,
        data_dir,
        extra,
    )
}

/// Starts an aggregator listening on `listen`, inside `netns` when given.
pub fn start_aggregator_in(
    netns: Option<&str>,
    listen: &str,
    pki: &Pki,
    server: &Leaf,
    data_dir: &Path,
    extra: &[&str],
) -> Result<(Proc, String)> {
    let ca = pki.ca();
    let mut args = vec![
        "serve",
        "--listen",
        listen,
        "--ca",
        path_str(&ca)?,
        "--cert",
        path_str(&server.cert)?,
        "--key",
        path_str(&server.key)?,
        "--data-dir",
        path_str(data_dir)?,
    ];
    args.extend_from_slice(extra);
    let proc = Proc::start_in(
        netns,
        "picket-aggregator",
        &args,
        "info,picket_aggregator=debug",
    )?;
    let ev = proc.wait_for("listening", 1, |_| true)?;
    let addr = ev[0]["local_addr"]
        .as_str()
        .context("listening line has no local_addr")?
        .to_owned();
    Ok((proc, addr))
}

/// Config for test agents: fast heartbeats, summaries and reconnects.
pub const FAST_AGENT_CONFIG: &str = "[agent]\nheartbeat_interval_secs = 1\nsummary_interval_secs = 1\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n# These tests are about delivery, not capture.\n[sensor]\ninterfaces = []\n";

/// Starts an agent that reports every second.
pub fn start_agent(
    pki: &Pki,
    leaf: &Leaf,
    addr: &str,
    data_dir: &Path,
    account: &str,
    instance: &str,
) -> Result<Proc> {
    start_agent_cmd(
        "run",
        &[],
        FAST_AGENT_CONFIG,
        pki,
        leaf,
        addr,
        data_dir,
        account,
        instance,
    )
}

/// Starts `picket-agent <command>` with `extra` arguments, a config file holding
/// `config_text`, and the connection and identity flags.
#[allow(clippy::too_many_arguments)]
pub fn start_agent_cmd(
    command: &str,
    extra: &[&str],
    config_text: &str,
    pki: &Pki,
    leaf: &Leaf,
    addr: &str,
    data_dir: &Path,
    account: &str,
    instance: &str,
) -> Result<Proc> {
    start_agent_cmd_in(
        None,
        command,
        extra,
        config_text,
        pki,
        leaf,
        addr,
        data_dir,
        account,
        instance,
    )
}

/// As [`start_agent_cmd`], inside network namespace `netns` when given.
#[allow(clippy::too_many_arguments)]
pub fn start_agent_cmd_in(
    netns: Option<&str>,
    command: &str,
    extra: &[&str],
    config_text: &str,
    pki: &Pki,
    leaf: &Leaf,
    addr: &str,
    data_dir: &Path,
    account: &str,
    instance: &str,
) -> Result<Proc> {
    let dir = data_dir.join("cfg");
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("agent.toml");
    std::fs::write(&config, config_text)?;
    let url = format!("https://{addr}");
    let ca = pki.ca();
    let mut args: Vec<&str> = vec![command];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--config",
        path_str(&config)?,
        "--aggregator",
        &url,
        "--ca",
        path_str(&ca)?,
        "--cert",
        path_str(&leaf.cert)?,
        "--key",
        path_str(&leaf.key)?,
        "--data-dir",
        path_str(data_dir)?,
        "--account-id",
        account,
        "--instance-id",
        instance,
    ]);
    Proc::start_in(netns, "picket-agent", &args, "info")
}

/// Two network namespaces joined by a veth pair, removed on drop.
pub struct NetnsPair {
    /// Namespace names (a, b).
    pub names: (String, String),
    /// Addresses of the veth ends (a, b).
    pub addrs: (String, String),
    /// The veth end inside b.
    pub b_link: String,
}

/// Runs a command, failing with its stderr.
pub fn sh(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program).args(args).output()?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl NetnsPair {
    /// Creates namespaces `<tag>a`/`<tag>b` with 10.213.<net>.1/.2 on a veth pair.
    pub fn new(tag: &str, net: u8) -> Result<Self> {
        let a = format!("{tag}a");
        let b = format!("{tag}b");
        let (va, vb) = (format!("{tag}va"), format!("{tag}vb"));
        let _ = sh("ip", &["netns", "del", &a]);
        let _ = sh("ip", &["netns", "del", &b]);
        sh("ip", &["netns", "add", &a])?;
        sh("ip", &["netns", "add", &b])?;
        let pair = Self {
            names: (a.clone(), b.clone()),
            addrs: (format!("10.213.{net}.1"), format!("10.213.{net}.2")),
            b_link: vb.clone(),
        };
        sh(
            "ip",
            &["link", "add", &va, "type", "veth", "peer", "name", &vb],
        )?;
        sh("ip", &["link", "set", &va, "netns", &a])?;
        sh("ip", &["link", "set", &vb, "netns", &b])?;
        for (ns, dev, addr) in [(&a, &va, &pair.addrs.0), (&b, &vb, &pair.addrs.1)] {
            sh(
                "ip",
                &["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev],
            )?;
            sh("ip", &["-n", ns, "link", "set", dev, "up"])?;
            sh("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(pair)
    }

    /// Sets b's end of the link down or up.
    pub fn set_b_link(&self, up: bool) -> Result<()> {
        sh(
            "ip",
            &[
                "-n",
                &self.names.1,
                "link",
                "set",
                &self.b_link,
                if up { "up" } else { "down" },
            ],
        )
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "del", &self.names.0]);
        let _ = sh("ip", &["netns", "del", &self.names.1]);
    }
}

/// Whether this process may create network namespaces (root with `ip` available).
pub fn can_use_netns() -> bool {
    nix::unistd::Uid::effective().is_root()
        && Command::new("ip")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// A path as UTF-8, for command lines.
pub fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

/// A gRPC client of the aggregator, over TLS with an optional client certificate, or over
/// plaintext when `tls` is `None`.
pub async fn client(
    addr: &str,
    tls: Option<(&Path, Option<&Leaf>)>,
) -> std::result::Result<
    picket_proto::v1::ingest_client::IngestClient<tonic::transport::Channel>,
    tonic::transport::Error,
> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let endpoint = match tls {
        None => Endpoint::from_shared(format!("http://{addr}"))?,
        Some((ca, leaf)) => {
            let mut cfg = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap_or_default()))
                .domain_name("127.0.0.1");
            if let Some(leaf) = leaf {
                cfg = cfg.identity(Identity::from_pem(
                    std::fs::read(&leaf.cert).unwrap_or_default(),
                    std::fs::read(&leaf.key).unwrap_or_default(),
                ));
            }
            Endpoint::from_shared(format!("https://{addr}"))?.tls_config(cfg)?
        }
    };
    let channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await?;
    Ok(picket_proto::v1::ingest_client::IngestClient::new(channel))
}

/// A `Hello` frame for `account`/`instance`.
pub fn hello(account: &str, instance: &str) -> picket_proto::v1::AgentFrame {
    use picket_proto::v1::{AgentFrame, AgentIdentity, Hello, agent_frame};
    AgentFrame {
        frame: Some(agent_frame::Frame::Hello(Hello {
            identity: Some(AgentIdentity {
                account_id: account.into(),
                instance_id: instance.into(),
                ..AgentIdentity::default()
            }),
            agent_version: "test".into(),
            ..Hello::default()
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::is_package_variable;

    #[test]
    fn only_the_running_packages_variables_are_withheld_from_the_nested_build() {
        for key in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "OUT_DIR",
            "CARGO_CRATE_NAME",
        ] {
            assert!(is_package_variable(key), "{key}");
        }
        for key in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO",
            "PATH",
            "RUSTFLAGS",
        ] {
            assert!(!is_package_variable(key), "{key}");
        }
    }
}
