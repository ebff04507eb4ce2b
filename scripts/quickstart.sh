#!/usr/bin/env bash
# Picket quick start: builds both binaries, makes a CA and certificates in a scratch folder,
# starts an aggregator and an agent on loopback, and shows the agent connected with its
# batches acked. Everything it writes stays in the scratch folder it prints.
#
#   scripts/quickstart.sh            # port 7443 on 127.0.0.1
#   PICKET_PORT=17443 scripts/quickstart.sh
set -euo pipefail

cd "$(dirname "$0")/.."
port="${PICKET_PORT:-7443}"
account="123456789012"
instance="i-0quickstart00000"

echo "==> building (cargo build --release)"
cargo build --release --bins --quiet
bin="$PWD/target/release"

work="$(mktemp -d -t picket-quickstart.XXXXXX)"
echo "==> scratch folder: $work"

echo "==> certificates"
"$bin/picket-aggregator" certs init --dir "$work/pki" >/dev/null
"$bin/picket-aggregator" certs issue --dir "$work/pki" --server --name 127.0.0.1 --out "$work/pki/server" >/dev/null
"$bin/picket-aggregator" certs issue --dir "$work/pki" --agent --account-id "$account" \
  --instance-id "$instance" --out "$work/pki/agent" >/dev/null
ls -l "$work/pki"

cat >"$work/aggregator.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
data_dir = "aggregator-data"

[tls]
ca = "pki/ca.pem"
cert = "pki/server.pem"
key = "pki/server.key"
TOML

cat >"$work/agent.toml" <<TOML
[aggregator]
url = "https://127.0.0.1:$port"

[tls]
ca = "pki/ca.pem"
cert = "pki/agent.pem"
key = "pki/agent.key"

[identity]
account_id = "$account"
instance_id = "$instance"
region = "us-east-1"

[agent]
data_dir = "agent-data"
heartbeat_interval_secs = 2
summary_interval_secs = 2
TOML

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "==> starting the aggregator on 127.0.0.1:$port"
"$bin/picket-aggregator" --log-format json serve --config "$work/aggregator.toml" 2>"$work/aggregator.log" &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q '"message":"listening"' "$work/aggregator.log" && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "aggregator exited:"; cat "$work/aggregator.log"; exit 1
  fi
  sleep 0.1
done

echo "==> starting an agent ($account/$instance)"
"$bin/picket-agent" --log-format json run --config "$work/agent.toml" 2>"$work/agent.log" &
pids+=($!)

acked=0
for _ in $(seq 1 300); do
  acked=$(grep -c '"message":"acked"' "$work/agent.log" || true)
  [ "$acked" -ge 2 ] && break
  if ! kill -0 "${pids[1]}" 2>/dev/null; then
    echo "agent exited:"; cat "$work/agent.log"; exit 1
  fi
  sleep 0.1
done

echo
echo "==> aggregator log"
grep -E '"message":"(listening|agent session opened)"' "$work/aggregator.log"
echo "==> agent log"
grep -E '"message":"(connected|acked)"' "$work/agent.log"
echo
if [ "$acked" -ge 2 ]; then
  echo "OK: the agent is connected over mTLS and $acked batches were acked (stored in sled under $work/aggregator-data)."
else
  echo "FAILED: no acks after 30 s; logs are in $work"; exit 1
fi

# Detection on real traffic: nmap's SYN scan of scanme.nmap.org (a public capture shipped as a
# test fixture), replayed with a threat list naming the scanned host, then every detector.
echo
echo "==> findings from a real capture (replay + analyze)"
printf '# quick-start threat list\n64.13.134.52\n' >"$work/threats.txt"
"$bin/picket-agent" replay --pcap agent/tests/fixtures/pcap/ndpi_synscan.pcap \
  --threat-list "$work/threats.txt" --out "$work/records.jsonl" 2>/dev/null
"$bin/picket-aggregator" analyze --agent-records "$work/records.jsonl" \
  --account-id "$account" --instance-id "$instance" --region us-east-1 >"$work/findings.jsonl" 2>/dev/null
python3 - "$work/findings.jsonl" <<'PY' 2>/dev/null || cat "$work/findings.jsonl"
import json, sys
for line in open(sys.argv[1]):
    f = json.loads(line)
    print(f"  {f['severity']:>4}  {f['type']:<50} {f['title']}")
PY
echo "(GuardDuty-format JSON in $work/findings.jsonl)"
