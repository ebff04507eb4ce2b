//! The install paths in deploy/: the user-data script installs the real agent binary into a
//! temporary root (enrollment and service start skipped with PICKET_SKIP_ENROLL=1 and
//! PICKET_SKIP_START=1: they need a live aggregator and systemd as PID 1), refuses a wrong
//! checksum, and is idempotent; the SSM document is the script's, wrapped; the systemd units
//! pass `systemd-analyze verify` and carry the hardening the docs promise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use picket_tests::ops::{repo_root, ssm_document};
use sha2::{Digest, Sha256};

fn script() -> PathBuf {
    repo_root().join("deploy/install/user-data.sh")
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read binary");
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn install(root: &Path, url: &str, sha: &str, extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PICKET_ROOT", root)
        .env("PICKET_BINARY_URL", url)
        .env("PICKET_BINARY_SHA256", sha)
        .env("PICKET_AGGREGATOR_URL", "https://aggregator.internal:7443")
        .env("PICKET_SKIP_ENROLL", "1")
        .env("PICKET_SKIP_START", "1");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().expect("run bash")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_shell_script_parses() {
    for rel in [
        "deploy/install/user-data.sh",
        "scripts/release.sh",
        "scripts/quickstart.sh",
    ] {
        let path = repo_root().join(rel);
        let out = Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .expect("bash -n");
        assert!(out.status.success(), "{rel}: {}", text(&out));
    }
}

#[test]
fn the_user_data_script_installs_the_real_agent_with_its_config_and_unit_into_a_root() {
    let agent = picket_tests::bin("picket-agent");
    let sha = sha256_hex(&agent);
    let root = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", agent.display());
    let out = install(
        root.path(),
        &url,
        &sha.to_uppercase(),
        &[
            ("PICKET_INTERFACES", "ens5,eth1"),
            ("PICKET_METRICS_LISTEN", "127.0.0.1:9464"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SHA-256") && stderr.contains("verified"),
        "{stderr}"
    );
    assert!(
        stderr.contains("PICKET_SKIP_ENROLL=1: not enrolling"),
        "{stderr}"
    );
    assert!(
        stderr.contains("PICKET_SKIP_START=1: not starting"),
        "{stderr}"
    );

    // The installed binary is the built one, executable, and runs.
    let bin = root.path().join("usr/local/bin/picket-agent");
    assert_eq!(sha256_hex(&bin), sha);
    let version = Command::new(&bin).arg("--version").output().expect("run");
    assert!(version.status.success(), "{}", text(&version));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("picket-agent "));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&bin).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    // The config is one the agent accepts (unknown keys would be refused) and says what was asked.
    let conf = root.path().join("etc/picket/agent.toml");
    let file =
        picket_agent::config::ConfigFile::load(&conf).expect("the agent parses the written config");
    assert_eq!(
        file.aggregator.url.as_deref(),
        Some("https://aggregator.internal:7443")
    );
    assert_eq!(
        file.sensor.interfaces,
        Some(vec!["ens5".to_owned(), "eth1".to_owned()])
    );
    assert_eq!(
        file.metrics.listen,
        Some("127.0.0.1:9464".parse().expect("addr"))
    );
    assert_eq!(
        file.agent.data_dir.as_deref(),
        Some(Path::new("/var/lib/picket-agent"))
    );

    // The unit is the shipped one.
    let unit = std::fs::read_to_string(root.path().join("etc/systemd/system/picket-agent.service"))
        .expect("unit installed");
    let shipped = std::fs::read_to_string(repo_root().join("deploy/systemd/picket-agent.service"))
        .expect("shipped unit");
    assert_eq!(unit, shipped);

    // A second run changes nothing.
    let before = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .expect("mtime");
    let again = install(
        root.path(),
        agent.to_str().expect("utf-8 path"),
        &sha,
        &[
            ("PICKET_INTERFACES", "ens5,eth1"),
            ("PICKET_METRICS_LISTEN", "127.0.0.1:9464"),
        ],
    );
    assert!(again.status.success(), "{}", text(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("binary already installed"), "{stderr}");
    assert!(stderr.contains("unchanged"), "{stderr}");
    let after = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(before, after, "the binary was rewritten");
}

#[test]
fn the_user_data_script_refuses_a_wrong_checksum_and_installs_nothing() {
    let agent = picket_tests::bin("picket-agent");
    let mut wrong = sha256_hex(&agent).into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).expect("hex");
    let root = tempfile::tempdir().expect("tempdir");
    let out = install(
        root.path(),
        &format!("file://{}", agent.display()),
        &wrong,
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SHA-256 mismatch"), "{stderr}");
    assert!(!root.path().join("usr/local/bin/picket-agent").exists());
    assert!(!root.path().join("etc/picket/agent.toml").exists());
}

#[test]
fn the_user_data_script_rejects_bad_parameters_by_name() {
    let root = tempfile::tempdir().expect("tempdir");
    let agent = picket_tests::bin("picket-agent");
    let sha = sha256_hex(&agent);
    let url = format!("file://{}", agent.display());
    for (extra, expect) in [
        (
            vec![("PICKET_BINARY_SHA256", "abc")],
            "PICKET_BINARY_SHA256 must be 64 hex",
        ),
        (
            vec![("PICKET_AGGREGATOR_URL", "http://x:1")],
            "PICKET_AGGREGATOR_URL must be https://HOST:PORT",
        ),
        (
            vec![("PICKET_BINARY_URL", "ftp://x/y")],
            "PICKET_BINARY_URL must start with",
        ),
        (
            vec![("PICKET_INTERFACES", "eth0,bad name")],
            "PICKET_INTERFACES: bad interface name",
        ),
        // Enrollment asked for but no token.
        (
            vec![("PICKET_SKIP_ENROLL", "0")],
            "PICKET_ENROLL_TOKEN is not set",
        ),
    ] {
        let out = install(root.path(), &url, &sha, &extra);
        assert!(!out.status.success(), "{extra:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expect),
            "{extra:?}: {}",
            text(&out)
        );
    }
}

#[test]
fn the_ssm_document_is_the_install_script_wrapped_with_parameters() {
    let script = std::fs::read_to_string(script()).expect("script");
    let path = repo_root().join("deploy/ssm/picket-agent-install.json");
    let expected = ssm_document(&script);
    if std::env::var_os("PICKET_UPDATE_SSM").is_some() {
        let mut text = serde_json::to_string_pretty(&expected).expect("json");
        text.push('\n');
        std::fs::write(&path, text).expect("write the SSM document");
    }
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("SSM document"))
            .expect("the SSM document is valid JSON");
    assert_eq!(committed["schemaVersion"], "2.2");
    let step = &committed["mainSteps"][0];
    assert_eq!(step["action"], "aws:runShellScript");
    let commands: Vec<&str> = step["inputs"]["runCommand"]
        .as_array()
        .expect("runCommand")
        .iter()
        .map(|c| c.as_str().expect("string command"))
        .collect();
    // Every script line is there, in order, unchanged.
    let start = commands
        .iter()
        .position(|c| *c == "cat > \"$script\" <<'PICKET_SCRIPT'")
        .expect("script start");
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(&commands[start + 1..start + 1 + lines.len()], &lines[..]);
    // Every parameter is declared and exported into the script's variable.
    for (name, var, ..) in picket_tests::ops::SSM_PARAMETERS {
        assert!(
            committed["parameters"][name].is_object(),
            "{name} not declared"
        );
        let export = format!("export {var}='{{{{ {name} }}}}'");
        assert!(commands.contains(&export.as_str()), "{export} missing");
        assert!(
            script.contains(&format!("{var}=\"${{{var}")),
            "script does not read {var}"
        );
    }
    assert_eq!(
        committed, expected,
        "deploy/ssm/picket-agent-install.json is stale: rerun with PICKET_UPDATE_SSM=1"
    );
    // SSM's patterns keep quotes out of the substituted values.
    for (name, _, _, default, pattern) in picket_tests::ops::SSM_PARAMETERS {
        assert!(!pattern.contains('\''), "{name}");
        if let Some(d) = default {
            assert!(!d.contains('\''), "{name}");
        }
    }
}

#[test]
fn the_ssm_commands_run_by_sh_install_like_the_script() {
    // What SSM does: substitute {{ Name }} and run the commands with sh.
    let agent = picket_tests::bin("picket-agent");
    let sha = sha256_hex(&agent);
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/ssm/picket-agent-install.json"))
            .expect("SSM document"),
    )
    .expect("json");
    let values = [
        ("BinaryUrl", format!("file://{}", agent.display())),
        ("BinarySha256", sha.clone()),
        (
            "AggregatorUrl",
            "https://aggregator.internal:7443".to_owned(),
        ),
        ("EnrollUrl", String::new()),
        ("EnrollToken", "unused".to_owned()),
        ("CaFingerprint", "ab".repeat(32)),
        ("Interfaces", String::new()),
        ("MetricsListen", String::new()),
    ];
    let mut body = String::new();
    for c in doc["mainSteps"][0]["inputs"]["runCommand"]
        .as_array()
        .expect("runCommand")
    {
        let mut line = c.as_str().expect("string").to_owned();
        for (name, v) in &values {
            line = line.replace(&format!("{{{{ {name} }}}}"), v);
        }
        body.push_str(&line);
        body.push('\n');
    }
    assert!(!body.contains("{{"), "unsubstituted parameter");
    let root = tempfile::tempdir().expect("tempdir");
    let out = Command::new("sh")
        .arg("-c")
        .arg(&body)
        .env("PICKET_ROOT", root.path())
        .env("PICKET_SKIP_ENROLL", "1")
        .env("PICKET_SKIP_START", "1")
        .output()
        .expect("sh");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        sha256_hex(&root.path().join("usr/local/bin/picket-agent")),
        sha
    );
    let conf = picket_agent::config::ConfigFile::load(&root.path().join("etc/picket/agent.toml"))
        .expect("config");
    assert_eq!(
        conf.metrics.listen, None,
        "MetricsListen '' turns metrics off"
    );
    assert_eq!(conf.sensor.interfaces, None);
}

#[test]
fn the_systemd_units_verify_and_are_hardened() {
    let units = repo_root().join("deploy/systemd");
    let agent = std::fs::read_to_string(units.join("picket-agent.service")).expect("agent unit");
    let aggregator =
        std::fs::read_to_string(units.join("picket-aggregator.service")).expect("aggregator unit");
    for (unit, text) in [("agent", &agent), ("aggregator", &aggregator)] {
        for line in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "Restart=on-failure",
        ] {
            assert!(text.lines().any(|l| l == line), "{unit}: {line} missing");
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("StateDirectory=picket-")),
            "{unit}"
        );
        assert!(text.lines().any(|l| l.starts_with("User=picket")), "{unit}");
    }
    assert!(agent.contains("\nAmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN\n"));
    assert!(agent.contains("\nCapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN\n"));
    assert!(agent.contains("AF_PACKET"));
    assert!(aggregator.contains("\nCapabilityBoundingSet=\n"));
    assert!(aggregator.contains("\nAmbientCapabilities=\n"));
    assert!(!aggregator.contains("AF_PACKET"));

    let have = Command::new("systemd-analyze").arg("--version").output();
    if !have.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: systemd-analyze is not installed, units not verified");
        return;
    }
    // verify insists the ExecStart binaries exist: point them at the built ones.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    for (name, text) in [("picket-agent", &agent), ("picket-aggregator", &aggregator)] {
        let built = picket_tests::bin(name);
        let unit = text.replace(
            &format!("/usr/local/bin/{name}"),
            built.to_str().expect("utf-8 path"),
        );
        let path = dir.path().join(format!("{name}.service"));
        std::fs::write(&path, unit).expect("write unit");
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .expect("systemd-analyze");
    // verify exits 0 on unknown or malformed keys, warning on stderr: require silence.
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out)
    );
}
