#!/usr/bin/env bash
# Picket quick start: a small AWS-like lab on this machine, watched by real agents.
#
# Starts an aggregator, creates three network-namespace "hosts" in two accounts, each running a
# real `picket-agent` capturing on its own veth, generates attack traffic between them (a C&C
# DNS lookup, a port scan, an SSH brute force), drops CloudTrail logs that include root usage
# and an instance's role credentials used from outside, and prints the findings as a table.
# Everything is removed on exit (namespaces, bridge, processes); the scratch folder with logs,
# certificates and the aggregator's data stays for a look and is printed at the end.
#
# Needs root and `ip` (iproute2). Without them (or with PICKET_NO_NETNS=1) it replays bundled
# captures into the aggregator instead of running live hosts.
#
#   scripts/quickstart.sh                         # builds release binaries first
#   PICKET_BIN_DIR=target/debug scripts/quickstart.sh   # use binaries already built
set -euo pipefail

cd "$(dirname "$0")/.."
repo="$PWD"
acct_a="111111111111"
acct_b="222222222222"
region="us-east-1"
bridge="pkbr0"
net="10.77.0"
agg_ip="$net.1"
port="${PICKET_PORT:-7443}"
http_port=$((port + 1))
deadline_secs="${PICKET_LAB_TIMEOUT:-90}"

# shellcheck source=scripts/lab.sh
. "$repo/scripts/lab.sh"
lab_binaries "$repo"

work="$(mktemp -d -t picket-lab.XXXXXX)"
echo "==> scratch folder: $work"

use_netns=1
if [ -n "${PICKET_NO_NETNS:-}" ] || [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null 2>&1 || ! ip netns list >/dev/null 2>&1; then
  use_netns=0
  agg_ip="127.0.0.1"
  echo "==> no root or no iproute2: replaying bundled captures instead of live hosts"
fi

# host name, account, instance id, address
hosts=(
  "web1 $acct_a i-0a1a0000000000001 $net.11"
  "app1 $acct_a i-0a1a0000000000002 $net.12"
  "db1  $acct_b i-0b2b0000000000003 $net.21"
)
attacker_ip="$net.66"

pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "$use_netns" = 1 ]; then
    for h in "${hosts[@]}"; do
      read -r name _ <<<"$h"
      ip netns del "pk-$name" 2>/dev/null
    done
    ip netns del pk-attacker 2>/dev/null
    ip link del "$bridge" 2>/dev/null
  fi
}
trap cleanup EXIT

echo "==> certificates"
"$agg" certs init --dir "$work/pki" >/dev/null
"$agg" certs issue --dir "$work/pki" --server --name "$agg_ip" --out "$work/pki/server" >/dev/null
"$agg" certs issue --dir "$work/pki" --admin --name lab --out "$work/pki/admin" >/dev/null
for h in "${hosts[@]}"; do
  read -r name account instance _ <<<"$h"
  "$agg" certs issue --dir "$work/pki" --agent --account-id "$account" \
    --instance-id "$instance" --out "$work/pki/$name" >/dev/null
done

mkdir -p "$work/cloudtrail"
cat >"$work/aggregator.toml" <<TOML
[server]
listen = "$agg_ip:$port"
data_dir = "aggregator-data"

[tls]
ca = "pki/ca.pem"
cert = "pki/server.pem"
key = "pki/server.key"

[cloudtrail]
paths = ["cloudtrail"]

[accounts]
administrator = "$acct_a"
members = ["$acct_a", "$acct_b"]
TOML

if [ "$use_netns" = 1 ]; then
  echo "==> network: bridge $bridge ($agg_ip/24) and a namespace per host"
  lab_bridge "$bridge" "$agg_ip"
  for h in "${hosts[@]}"; do
    read -r name _ _ addr <<<"$h"
    lab_host "$name" "$addr" "$bridge" "$agg_ip"
  done
  lab_host attacker "$attacker_ip" "$bridge" "$agg_ip"
fi

echo "==> starting the aggregator on $agg_ip:$port"
(cd "$work" && exec "$agg" --log-format json serve --config aggregator.toml) 2>"$work/aggregator.log" &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q '"message":"listening"' "$work/aggregator.log" && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "aggregator exited:"; cat "$work/aggregator.log"; exit 1
  fi
  sleep 0.1
done

agent_config() { # name account instance
  cat <<TOML
[aggregator]
url = "https://$agg_ip:$port"

[tls]
ca = "pki/ca.pem"
cert = "pki/$1.pem"
key = "pki/$1.key"

[identity]
account_id = "$2"
instance_id = "$3"
region = "$region"

[agent]
data_dir = "agent-$1"
heartbeat_interval_secs = 2
summary_interval_secs = 2

[sensor]
interfaces = ["eth0"]
TOML
}

if [ "$use_netns" = 1 ]; then
  echo "==> starting an agent in each host"
  for h in "${hosts[@]}"; do
    read -r name account instance addr <<<"$h"
    agent_config "$name" "$account" "$instance" >"$work/agent-$name.toml"
    (cd "$work" && exec ip netns exec "pk-$name" "$agent" --log-format json run \
      --config "agent-$name.toml") 2>"$work/agent-$name.log" &
    pids+=($!)
    printf '    %-5s %s %s %s\n' "$name" "$account" "$instance" "$addr"
  done
  for h in "${hosts[@]}"; do
    read -r name _ <<<"$h"
    for _ in $(seq 1 100); do
      grep -q '"message":"acked"' "$work/agent-$name.log" && break
      sleep 0.1
    done
    grep -q '"message":"acked"' "$work/agent-$name.log" ||
      { echo "agent $name did not connect:"; tail -5 "$work/agent-$name.log"; exit 1; }
  done
  # Capture threads start with the agent; give them a moment to bind before the traffic.
  sleep 1

  echo "==> traffic"
  web_ip="$net.11"
  db_ip="$net.21"
  # web1 runs an SSH-like service that greets and hangs up, as sshd does on a failed login.
  ip netns exec pk-web1 python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 22)); s.listen(128)
while True:
    c, _ = s.accept(); c.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n"); c.close()
' 2>/dev/null &
  pids+=($!)
  sleep 0.3
  echo "    app1 -> resolver: A? guarddutyc2activityb.com (the GuardDuty tester's C&C canary)"
  ip netns exec pk-app1 bash -c "printf '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x14guarddutyc2activityb\x03com\x00\x00\x01\x00\x01' >/dev/udp/$agg_ip/53" || true
  echo "    app1 -> db1: TCP connect scan of ports 1-200"
  ip netns exec pk-app1 bash -c "for p in \$(seq 1 200); do (exec 3<>/dev/tcp/$db_ip/\$p) 2>/dev/null; done" || true
  echo "    attacker ($attacker_ip) -> web1: 40 SSH logins"
  ip netns exec pk-attacker bash -c "for i in \$(seq 1 40); do timeout 1 bash -c 'exec 3<>/dev/tcp/$web_ip/22; printf \"SSH-2.0-libssh_0.9.6\\r\\n\" >&3; head -c 20 <&3 >/dev/null' 2>/dev/null; done" || true
else
  echo "==> replaying bundled captures into the aggregator"
  for h in "${hosts[@]}"; do
    read -r name account instance _ <<<"$h"
    case "$name" in
      web1) pcap="$repo/agent/tests/fixtures/pcap/zeek_ssh_single-conn.pcap" ;;
      app1) pcap="$repo/agent/tests/fixtures/pcap/ndpi_synscan.pcap" ;;
      *) continue ;;
    esac
    [ -f "$pcap" ] || continue
    "$agent" replay --pcap "$pcap" --account-id "$account" --instance-id "$instance" \
      --aggregator "https://$agg_ip:$port" --ca "$work/pki/ca.pem" \
      --cert "$work/pki/$name.pem" --key "$work/pki/$name.key" >/dev/null 2>>"$work/replay.log"
  done
fi

echo "==> CloudTrail: root console use in $acct_a, app1's role credentials used from 5.188.10.10"
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
day="$(date -u +%Y/%m/%d)"
ct_dir="$work/cloudtrail/AWSLogs/$acct_a/CloudTrail/$region/$day"
mkdir -p "$ct_dir"
cat <<JSON | gzip >"$ct_dir/${acct_a}_CloudTrail_${region}_lab.json.gz"
{"Records":[
 {"eventVersion":"1.08","eventTime":"$now","eventSource":"s3.amazonaws.com","eventName":"ListBuckets",
  "awsRegion":"$region","sourceIPAddress":"203.0.113.9","userAgent":"aws-cli/2.15.0",
  "userIdentity":{"type":"Root","principalId":"$acct_a","arn":"arn:aws:iam::$acct_a:root",
    "accountId":"$acct_a","accessKeyId":"AKIALABROOT000000001"},
  "eventID":"lab-0001","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,
  "recipientAccountId":"$acct_a"},
 {"eventVersion":"1.08","eventTime":"$now","eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity",
  "awsRegion":"$region","sourceIPAddress":"5.188.10.10","userAgent":"aws-cli/2.15.0",
  "userIdentity":{"type":"AssumedRole","principalId":"AROALABAPP000000001:i-0a1a0000000000002",
    "arn":"arn:aws:sts::$acct_a:assumed-role/app-role/i-0a1a0000000000002","accountId":"$acct_a",
    "accessKeyId":"ASIALABAPP000000001","sessionContext":{"sessionIssuer":{"type":"Role",
    "principalId":"AROALABAPP000000001","arn":"arn:aws:iam::$acct_a:role/app-role",
    "accountId":"$acct_a","userName":"app-role"},"attributes":{"creationDate":"$now",
    "mfaAuthenticated":"false"},"ec2RoleDelivery":"2.0"}},
  "eventID":"lab-0002","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,
  "recipientAccountId":"$acct_a"},
 {"eventVersion":"1.08","eventTime":"$now","eventSource":"s3.amazonaws.com","eventName":"ListBuckets",
  "awsRegion":"$region","sourceIPAddress":"5.188.10.10","userAgent":"aws-cli/2.15.0",
  "userIdentity":{"type":"AssumedRole","principalId":"AROALABAPP000000001:i-0a1a0000000000002",
    "arn":"arn:aws:sts::$acct_a:assumed-role/app-role/i-0a1a0000000000002","accountId":"$acct_a",
    "accessKeyId":"ASIALABAPP000000001","sessionContext":{"sessionIssuer":{"type":"Role",
    "principalId":"AROALABAPP000000001","arn":"arn:aws:iam::$acct_a:role/app-role",
    "accountId":"$acct_a","userName":"app-role"},"attributes":{"creationDate":"$now",
    "mfaAuthenticated":"false"},"ec2RoleDelivery":"2.0"}},
  "eventID":"lab-0003","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,
  "recipientAccountId":"$acct_a"}
]}
JSON

expected=(
  "Backdoor:EC2/C&CActivity.B!DNS"
  "Recon:EC2/Portscan"
  "UnauthorizedAccess:EC2/SSHBruteForce"
  "Policy:IAMUser/RootCredentialUsage"
  "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
)
[ "$use_netns" = 1 ] || expected=("Recon:EC2/Portscan" "Policy:IAMUser/RootCredentialUsage")

list_findings() { # format
  "$agg" findings list --aggregator "https://$agg_ip:$port" --ca "$work/pki/ca.pem" \
    --cert "$work/pki/admin.pem" --key "$work/pki/admin.key" --format "$1" 2>>"$work/cli.log"
}

echo "==> waiting for findings (up to ${deadline_secs}s)"
missing=("${expected[@]}")
for _ in $(seq 1 "$deadline_secs"); do
  json="$(list_findings json || true)"
  missing=()
  for t in "${expected[@]}"; do
    grep -qF "\"$t\"" <<<"$json" || missing+=("$t")
  done
  [ "${#missing[@]}" = 0 ] && break
  sleep 1
done

echo
list_findings table || { echo "findings list failed:"; tail -5 "$work/cli.log"; }
echo
if [ "${#missing[@]}" = 0 ]; then
  echo "OK: every expected finding type is there. Logs, certificates and data: $work"
else
  echo "MISSING after ${deadline_secs}s: ${missing[*]}"
  echo "Logs, certificates and data: $work"
  exit 1
fi
