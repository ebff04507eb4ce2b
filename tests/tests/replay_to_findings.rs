//! From a real capture to GuardDuty findings with the real binaries: `picket-agent replay`
//! with a threat list, then `picket-aggregator analyze` on its records. The capture is nmap's
//! SYN scan of scanme.nmap.org (ntop/nDPI `synscan.pcap`, LGPL-3.0, see
//! agent/tests/fixtures/pcap/README.md).

use anyhow::{Result, ensure};
use picket_tests::bin;

#[test]
fn a_syn_scan_of_a_listed_host_gives_a_portscan_and_a_custom_threat_finding() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pcap = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agent/tests/fixtures/pcap/ndpi_synscan.pcap");
    let list = dir.path().join("threats.txt");
    std::fs::write(
        &list,
        "# scanme, listed for the test\n64.13.134.52\nnot an entry!\n",
    )?;
    let records = dir.path().join("records.jsonl");
    let out = std::process::Command::new(bin("picket-agent"))
        .args(["replay", "--pcap"])
        .arg(&pcap)
        .arg("--threat-list")
        .arg(&list)
        .arg("--out")
        .arg(&records)
        .output()?;
    ensure!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("threats.txt:3:"),
        "bad list line not reported: {stderr}"
    );

    let out = std::process::Command::new(bin("picket-aggregator"))
        .args(["analyze", "--agent-records"])
        .arg(&records)
        .output()?;
    ensure!(
        out.status.success(),
        "analyze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let mut types: Vec<&str> = findings.iter().filter_map(|f| f["type"].as_str()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "Recon:EC2/Portscan",
            "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"
        ]
    );
    for f in &findings {
        assert_eq!(
            f["service"]["action"]["networkConnectionAction"]["remoteIpDetails"]["ipAddressV4"],
            "64.13.134.52"
        );
    }
    Ok(())
}
