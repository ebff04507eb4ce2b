#!/usr/bin/env bash
# Installs the Picket agent on an EC2 instance: downloads the binary, verifies its SHA-256,
# installs it, writes /etc/picket/agent.toml, creates the `picket` user, enrolls with the
# aggregator and starts the systemd unit. Safe to run again (same inputs: nothing changes;
# a new binary: replaced and the service restarted).
#
# Use it as EC2 user-data (fill in the parameters below), from the SSM document
# deploy/ssm/picket-agent-install.json (which embeds this script; parameters come from the
# environment), or by hand. docs/operations.md explains each step.
#
# Parameters: set them here, or in the environment.
#   PICKET_BINARY_URL      where picket-agent is: https://..., s3://bucket/key, file:///path or /path
#   PICKET_BINARY_SHA256   its SHA-256 (64 hex digits, from SHA256SUMS)
#   PICKET_AGGREGATOR_URL  the aggregator's agent endpoint, https://HOST:PORT
#   PICKET_ENROLL_URL      the aggregator's enrollment endpoint (default: PICKET_AGGREGATOR_URL)
#   PICKET_ENROLL_TOKEN    a token from `picket-aggregator enroll-token create`
#   PICKET_CA_FINGERPRINT  SHA-256 of the Picket CA certificate (64 hex digits, colons allowed)
#   PICKET_INTERFACES      interfaces to capture on, comma-separated (default: all that are up)
#   PICKET_METRICS_LISTEN  address for /metrics and /healthz (default 127.0.0.1:9464; "" = off)
# For tests and image builds:
#   PICKET_ROOT            install under this folder instead of / (no user is created)
#   PICKET_SKIP_ENROLL=1   do not enroll;  PICKET_SKIP_START=1  do not enable or start the unit
set -euo pipefail

PICKET_BINARY_URL="${PICKET_BINARY_URL:-}"
PICKET_BINARY_SHA256="${PICKET_BINARY_SHA256:-}"
PICKET_AGGREGATOR_URL="${PICKET_AGGREGATOR_URL:-}"
PICKET_ENROLL_URL="${PICKET_ENROLL_URL:-}"
PICKET_ENROLL_TOKEN="${PICKET_ENROLL_TOKEN:-}"
PICKET_CA_FINGERPRINT="${PICKET_CA_FINGERPRINT:-}"
PICKET_INTERFACES="${PICKET_INTERFACES:-}"
PICKET_METRICS_LISTEN="${PICKET_METRICS_LISTEN-127.0.0.1:9464}"
PICKET_ROOT="${PICKET_ROOT:-}"
PICKET_SKIP_ENROLL="${PICKET_SKIP_ENROLL:-0}"
PICKET_SKIP_START="${PICKET_SKIP_START:-0}"

BIN="${PICKET_ROOT}/usr/local/bin/picket-agent"
CONF_DIR="${PICKET_ROOT}/etc/picket"
CONF="${CONF_DIR}/agent.toml"
UNIT="${PICKET_ROOT}/etc/systemd/system/picket-agent.service"
DATA_DIR_REAL="/var/lib/picket-agent"
DATA_DIR="${PICKET_ROOT}${DATA_DIR_REAL}"

log() { printf 'picket-install: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- check the parameters before touching anything ----
[ -n "$PICKET_BINARY_URL" ] || die "PICKET_BINARY_URL is not set"
printf '%s' "$PICKET_BINARY_SHA256" | grep -Eq '^[0-9a-fA-F]{64}$' \
  || die "PICKET_BINARY_SHA256 must be 64 hex digits, got '${PICKET_BINARY_SHA256}'"
printf '%s' "$PICKET_AGGREGATOR_URL" | grep -Eq '^https://[^/[:space:]]+:[0-9]+/?$' \
  || die "PICKET_AGGREGATOR_URL must be https://HOST:PORT, got '${PICKET_AGGREGATOR_URL}'"
[ -n "$PICKET_ENROLL_URL" ] || PICKET_ENROLL_URL="$PICKET_AGGREGATOR_URL"
if [ "$PICKET_SKIP_ENROLL" != 1 ]; then
  [ -n "$PICKET_ENROLL_TOKEN" ] || die "PICKET_ENROLL_TOKEN is not set"
  printf '%s' "$PICKET_CA_FINGERPRINT" | tr -d ':' | grep -Eq '^[0-9a-fA-F]{64}$' \
    || die "PICKET_CA_FINGERPRINT must be 64 hex digits (colons allowed)"
fi
want_sha="$(printf '%s' "$PICKET_BINARY_SHA256" | tr 'A-F' 'a-f')"

# ---- download and verify ----
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
download="${work}/picket-agent"
case "$PICKET_BINARY_URL" in
  s3://*)
    command -v aws >/dev/null || die "aws CLI needed for $PICKET_BINARY_URL"
    aws s3 cp --only-show-errors "$PICKET_BINARY_URL" "$download" ;;
  https://*)
    curl -fsSL --proto '=https' --retry 5 --retry-delay 2 --connect-timeout 10 \
      -o "$download" "$PICKET_BINARY_URL" ;;
  file://*) cp -- "${PICKET_BINARY_URL#file://}" "$download" ;;
  /*) cp -- "$PICKET_BINARY_URL" "$download" ;;
  *) die "PICKET_BINARY_URL must start with https://, s3://, file:// or /, got '${PICKET_BINARY_URL}'" ;;
esac
got_sha="$(sha256sum "$download" | cut -d' ' -f1)"
if [ "$got_sha" != "$want_sha" ]; then
  die "SHA-256 mismatch for ${PICKET_BINARY_URL}: expected ${want_sha}, got ${got_sha}; nothing installed"
fi
log "downloaded ${PICKET_BINARY_URL} (SHA-256 ${got_sha} verified)"

# ---- install the binary (atomically; unchanged binaries are left alone) ----
mkdir -p "$(dirname "$BIN")"
changed=0
if [ -f "$BIN" ] && [ "$(sha256sum "$BIN" | cut -d' ' -f1)" = "$got_sha" ]; then
  log "binary already installed at ${BIN}"
else
  install -m 0755 "$download" "${BIN}.new"
  mv -f "${BIN}.new" "$BIN"
  changed=1
  log "installed ${BIN}"
fi

# ---- the service user ----
if [ -n "$PICKET_ROOT" ]; then
  log "PICKET_ROOT is set: not creating the picket user"
elif id picket >/dev/null 2>&1; then
  log "user picket exists"
else
  useradd --system --home-dir "$DATA_DIR_REAL" --no-create-home --shell /usr/sbin/nologin picket
  log "created user picket"
fi

# ---- configuration ----
mkdir -p "$CONF_DIR" "$DATA_DIR"
interfaces_line='# interfaces = ["ens5"]'
if [ -n "$PICKET_INTERFACES" ]; then
  list=""
  IFS=',' read -r -a names <<< "$PICKET_INTERFACES"
  for n in "${names[@]}"; do
    printf '%s' "$n" | grep -Eq '^[A-Za-z0-9_.:-]{1,15}$' || die "PICKET_INTERFACES: bad interface name '${n}'"
    list="${list:+${list}, }\"${n}\""
  done
  interfaces_line="interfaces = [${list}]"
fi
metrics_line='# listen = "127.0.0.1:9464"'
if [ -n "$PICKET_METRICS_LISTEN" ]; then
  printf '%s' "$PICKET_METRICS_LISTEN" | grep -Eq '^([0-9.]+|\[[0-9A-Fa-f:]+\]):[0-9]+$' \
    || die "PICKET_METRICS_LISTEN must be ADDRESS:PORT, got '${PICKET_METRICS_LISTEN}'"
  metrics_line="listen = \"${PICKET_METRICS_LISTEN}\""
fi
cat > "${CONF}.new" <<CONF
# Written by the Picket install script; deploy/config/agent.example.toml documents every key.
# Identity (account, region, instance) comes from EC2 instance metadata; the TLS files are
# where \`picket-agent enroll\` writes them (${DATA_DIR_REAL}/tls/).

[aggregator]
url = "${PICKET_AGGREGATOR_URL%/}"

[agent]
data_dir = "${DATA_DIR_REAL}"

[sensor]
${interfaces_line}

[metrics]
${metrics_line}
CONF
if [ -f "$CONF" ] && cmp -s "$CONF" "${CONF}.new"; then
  rm -f "${CONF}.new"
  log "config ${CONF} unchanged"
else
  mv -f "${CONF}.new" "$CONF"
  chmod 0644 "$CONF"
  changed=1
  log "wrote ${CONF}"
fi

# ---- the systemd unit (the same text as deploy/systemd/picket-agent.service) ----
mkdir -p "$(dirname "$UNIT")"
cat > "${UNIT}.new" <<'PICKET_UNIT'
# Picket host agent. Installed by deploy/install/user-data.sh (which embeds this file; a test
# checks they agree). Capture needs CAP_NET_RAW (AF_PACKET sockets) and CAP_NET_ADMIN
# (promiscuous mode, ring setup, connection tracking lookups for NATed containers); the agent
# gets those two and nothing else.
[Unit]
Description=Picket host agent (network metadata to the Picket aggregator)
Documentation=https://example.invalid/picket/docs/operations.md
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=picket
Group=picket
ExecStart=/usr/local/bin/picket-agent run --config /etc/picket/agent.toml
Restart=on-failure
RestartSec=5s
# The outbox flushes on SIGTERM; give it time.
TimeoutStopSec=30s
Environment=RUST_LOG=info
StateDirectory=picket-agent
StateDirectoryMode=0750
ConfigurationDirectory=picket
UMask=0077
LimitNOFILE=65536

AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN
CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# AF_PACKET for capture, AF_NETLINK to list interfaces and addresses, AF_INET/AF_INET6 for the
# aggregator, instance metadata and the metrics endpoint.
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_PACKET AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service

[Install]
WantedBy=multi-user.target
PICKET_UNIT
if [ -f "$UNIT" ] && cmp -s "$UNIT" "${UNIT}.new"; then
  rm -f "${UNIT}.new"
else
  mv -f "${UNIT}.new" "$UNIT"
  changed=1
  log "installed ${UNIT}"
fi

# ---- enrollment: the key is generated here and never leaves the host ----
if [ "$PICKET_SKIP_ENROLL" = 1 ]; then
  log "PICKET_SKIP_ENROLL=1: not enrolling"
elif [ -s "${DATA_DIR}/tls/agent.pem" ] && [ -s "${DATA_DIR}/tls/agent.key" ]; then
  log "already enrolled (${DATA_DIR}/tls/agent.pem exists); the agent renews it itself"
else
  # The token goes through the environment (read by --token), not the command line, so it
  # does not show in the process list.
  PICKET_ENROLL_TOKEN="$PICKET_ENROLL_TOKEN" "$BIN" enroll \
    --aggregator "${PICKET_ENROLL_URL%/}" \
    --ca-fingerprint "$PICKET_CA_FINGERPRINT" \
    --config "$CONF"
  log "enrolled with ${PICKET_ENROLL_URL}"
fi
if [ -z "$PICKET_ROOT" ]; then
  chown -R picket:picket "$DATA_DIR"
  chmod 0750 "$DATA_DIR"
fi

# ---- start ----
if [ "$PICKET_SKIP_START" = 1 ]; then
  log "PICKET_SKIP_START=1: not starting the service"
else
  systemctl daemon-reload
  systemctl enable picket-agent.service
  if [ "$changed" = 1 ]; then
    systemctl restart picket-agent.service
  else
    systemctl start picket-agent.service
  fi
  log "picket-agent.service running"
fi
log "done"
