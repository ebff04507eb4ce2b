#!/usr/bin/env bash
# Live load: what the agent costs on a host at a given packet rate.
#
# Starts an aggregator and one real `picket-agent run` capturing the veth of a network
# namespace, replays a capture at that veth with tcpreplay (the replay bench's mixed traffic
# unless a pcap is given), then reads the agent's own /metrics and /proc to print what it
# captured, what it dropped, the CPU it spent per packet and its memory. Everything is removed
# on exit but the scratch folder (logs), which is printed; a capture it wrote is removed.
#
# Needs root, `ip` (iproute2) and `tcpreplay` (`apt-get install tcpreplay`).
#
#   scripts/live_load.sh                          # builds release binaries and the bench's mix
#   scripts/live_load.sh capture.pcap             # replays a capture of your own
#   PICKET_BIN_DIR=target/release LOOPS=5 PPS=200000 scripts/live_load.sh
#
# LOOPS: times tcpreplay sends the capture (default 2). PPS: packets per second (default:
# as fast as tcpreplay can send). The figures are the agent's process as a whole (capture,
# pipeline, outbox, transport), at whatever rate tcpreplay reached, which it prints.
set -euo pipefail

cd "$(dirname "$0")/.."
repo="$PWD"
loops="${LOOPS:-2}"
pps="${PPS:-}"
port="${PICKET_PORT:-7643}"
metrics_port=$((port + 1))
bridge="pkload0"
ns="pk-load"
net="10.79.0"

for tool in ip tcpreplay; do
  command -v "$tool" >/dev/null 2>&1 || { echo "needs $tool (apt-get install ${tool/ip/iproute2})" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces and packet capture)" >&2; exit 1; }

# shellcheck source=scripts/lab.sh
. "$repo/scripts/lab.sh"
lab_binaries "$repo"

work="$(mktemp -d -t picket-load.XXXXXX)"
echo "==> scratch folder: $work"

pcap="${1:-}"
if [ -z "$pcap" ]; then
  echo "==> writing the replay bench's mixed capture (2 M packets)"
  pcap="$work/mix.pcap"
  cargo bench --quiet -p picket-agent --bench replay -- --write "$pcap" >/dev/null
fi
[ -f "$pcap" ] || { echo "no such capture: $pcap" >&2; exit 1; }

pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  ip netns del "$ns" 2>/dev/null
  ip link del "$bridge" 2>/dev/null
  rm -f "$work/mix.pcap"
  echo "==> logs kept in $work"
}
trap cleanup EXIT

echo "==> network: bridge $bridge and namespace $ns"
lab_bridge "$bridge" "$net.1"
lab_host load "$net.11" "$bridge" "$net.1"

echo "==> certificates, aggregator and agent"
"$agg" certs init --dir "$work/pki" >/dev/null
"$agg" certs issue --dir "$work/pki" --server --name "$net.1" --out "$work/pki/server" >/dev/null
"$agg" certs issue --dir "$work/pki" --agent --account-id 111111111111 \
  --instance-id i-0load000000000001 --out "$work/pki/agent" >/dev/null
cat >"$work/aggregator.toml" <<TOML
[server]
listen = "$net.1:$port"
data_dir = "aggregator-data"

[tls]
ca = "pki/ca.pem"
cert = "pki/server.pem"
key = "pki/server.key"
TOML
cat >"$work/agent.toml" <<TOML
[aggregator]
url = "https://$net.1:$port"

[tls]
ca = "pki/ca.pem"
cert = "pki/agent.pem"
key = "pki/agent.key"

[identity]
account_id = "111111111111"
instance_id = "i-0load000000000001"
region = "us-east-1"

[agent]
data_dir = "agent-data"
summary_interval_secs = 5

[sensor]
interfaces = ["eth0"]

[metrics]
listen = "127.0.0.1:$metrics_port"
TOML
(cd "$work" && exec "$agg" --log-format json serve --config aggregator.toml) 2>"$work/aggregator.log" &
pids+=($!)
(cd "$work" && exec ip netns exec "$ns" "$agent" --log-format json run --config agent.toml) \
  2>"$work/agent.log" &
agent_pid=$!
pids+=("$agent_pid")
for _ in $(seq 1 100); do
  grep -q '"message":"connected"' "$work/agent.log" && break
  kill -0 "$agent_pid" 2>/dev/null || { echo "agent exited:"; tail -5 "$work/agent.log"; exit 1; }
  sleep 0.1
done
grep -q '"message":"connected"' "$work/agent.log" ||
  { echo "agent did not connect:"; tail -5 "$work/agent.log"; exit 1; }

metric() { # series name (with labels), from the agent's /metrics; 0 when it cannot be read
  ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/127.0.0.1/$metrics_port
    printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3; cat <&3" 2>/dev/null |
    awk -v s="$1" '$1 == s { v = $2 } END { print v + 0 }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$agent_pid/stat"; }
status_kib() { awk -v f="$1" '$1 == f":" { print $2 }' "/proc/$agent_pid/status"; }
# The counters move once per summary interval (5 s here): wait for one to pass.
settle() { sleep 6; }

settle
captured_before="$(metric picket_agent_packets_captured_total)"
kernel_before="$(metric 'picket_agent_packet_drops_total{cause="kernel"}')"
internal_before="$(metric 'picket_agent_packet_drops_total{cause="internal"}')"
ticks_before="$(cpu_ticks)"
rss_idle="$(status_kib VmRSS)"

echo "==> tcpreplay: $pcap, $loops time(s), ${pps:-top speed}${pps:+ packets/s}"
rate=(--topspeed)
[ -n "$pps" ] && rate=(--pps="$pps")
tcpreplay -i pkv-load "${rate[@]}" --loop="$loops" "$pcap" 2>&1 | tee "$work/tcpreplay.log" |
  grep -E '^(Actual|Rated):' | sed 's/^/    /'
sent="$(awk '/^Actual:/ { print $2; exit }' "$work/tcpreplay.log")"
settle
ticks_after="$(cpu_ticks)"
captured=$(( $(metric picket_agent_packets_captured_total) - captured_before ))
kernel=$(( $(metric 'picket_agent_packet_drops_total{cause="kernel"}') - kernel_before ))
internal=$(( $(metric 'picket_agent_packet_drops_total{cause="internal"}') - internal_before ))
hz="$(getconf CLK_TCK)"
cpu_ms=$(( (ticks_after - ticks_before) * 1000 / hz ))

echo "==> the agent"
printf '    sent by tcpreplay:        %12s packets\n' "$sent"
printf '    captured:                 %12s packets (other traffic on the veth included)\n' "$captured"
printf '    dropped:                  %12s kernel, %s internal\n' "$kernel" "$internal"
printf '    CPU:                      %12s ms' "$cpu_ms"
if [ "${captured:-0}" -gt 0 ]; then
  printf ', %s ns per captured packet' "$(( cpu_ms * 1000000 / captured ))"
fi
printf '\n'
printf '    memory:                   %12s KiB RSS idle, %s KiB peak, %s KiB now\n' \
  "$rss_idle" "$(status_kib VmHWM)" "$(status_kib VmRSS)"
