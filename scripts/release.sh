#!/usr/bin/env bash
# Builds release binaries of picket-agent and picket-aggregator and writes them with a
# SHA256SUMS file (the checksums the install script and SSM document verify) into dist/.
#
#   scripts/release.sh [OUT_DIR]
#
# Static musl binaries when the x86_64-unknown-linux-musl target is installed (rustup target
# add x86_64-unknown-linux-musl); otherwise glibc binaries, and the newest glibc symbol
# version they need is printed (and written to OUT_DIR/GLIBC): hosts need that glibc or newer.
set -euo pipefail

cd "$(dirname "$0")/.."
out="${1:-dist}"
bins=(picket-agent picket-aggregator)
mkdir -p "$out"

musl=x86_64-unknown-linux-musl
if rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  cargo build --release --locked --target "$musl" -p picket-agent -p picket-aggregator
  dir="${CARGO_TARGET_DIR:-target}/${musl}/release"
  kind="static (musl)"
else
  echo "release: target $musl not installed; building glibc binaries" >&2
  cargo build --release --locked -p picket-agent -p picket-aggregator
  dir="${CARGO_TARGET_DIR:-target}/release"
  kind="glibc"
fi

for b in "${bins[@]}"; do
  install -m 0755 "${dir}/${b}" "${out}/${b}"
done

if [ "$kind" = glibc ]; then
  if command -v objdump >/dev/null; then
    need="$(for b in "${bins[@]}"; do objdump -T "${out}/${b}"; done \
      | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
    echo "${need#GLIBC_}" > "${out}/GLIBC"
    echo "release: binaries need glibc ${need#GLIBC_} or newer" >&2
  else
    echo "release: objdump not found; minimum glibc not measured" >&2
  fi
fi

(cd "$out" && sha256sum "${bins[@]}" > SHA256SUMS)
echo "release: ${kind} binaries and SHA256SUMS in ${out}/" >&2
cat "${out}/SHA256SUMS"
