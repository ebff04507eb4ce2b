# shellcheck shell=bash
# Shared by quickstart.sh and live_load.sh (sourced, not run): finding the binaries and
# building the lab's network of namespaces.

# Sets `agg` and `agent` to the binaries in PICKET_BIN_DIR, or builds release binaries in the
# repository at $1 first.
lab_binaries() { # repo
  local bin
  if [ -z "${PICKET_BIN_DIR:-}" ]; then
    echo "==> building (cargo build --release)"
    (cd "$1" && cargo build --release --bins --quiet)
    bin="$1/target/release"
  else
    bin="$(cd "$PICKET_BIN_DIR" && pwd)"
  fi
  agg="$bin/picket-aggregator"
  agent="$bin/picket-agent"
}

# A bridge NAME holding ADDRESS/24 (the hosts' gateway), made afresh.
lab_bridge() { # name address
  ip link del "$1" 2>/dev/null || true
  ip link add "$1" type bridge
  ip addr add "$2/24" dev "$1"
  ip link set "$1" up
}

# A namespace `pk-NAME` whose eth0 holds ADDRESS/24 and routes through GATEWAY, its veth peer
# `pkv-NAME` a port of BRIDGE.
lab_host() { # name address bridge gateway
  local ns="pk-$1"
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  ip link add "pkv-$1" type veth peer name eth0 netns "$ns"
  ip link set "pkv-$1" master "$3" up
  ip -n "$ns" addr add "$2/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" route add default via "$4"
}
