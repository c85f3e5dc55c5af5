#!/usr/bin/env bash
# An aarch64 Python with the ARM build of LiteRT, run under qemu-user on an x86 machine
# (the recipe of benchmarks/arm_check.py). Needs root for apt-get; idempotent.
#
#   bash benchmarks/arm/setup.sh [ROOT]      # default ROOT: ~/.cache/kdtf-arm
#
# Makes: ROOT/rootfs (Debian 12 arm64, minbase + python3, unpacked without configuring),
# ROOT/site (the aarch64 ai-edge-litert and numpy wheels, unpacked), ROOT/cpuinfo (an
# ARM /proc/cpuinfo: LiteRT's CPU detection reads it and segfaults on the x86 host's),
# ROOT/libinsn_count.so (a QEMU TCG plugin counting guest instructions, for the dynamic
# qemu-aarch64 of Debian's qemu-user: it accepts -plugin, qemu-user-static does not).
set -euo pipefail
ROOT="${1:-$HOME/.cache/kdtf-arm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
LITERT="${LITERT_VERSION:-2.3.0}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$ROOT"

if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  apt-get update -qq && apt-get install -y -qq qemu-user-static qemu-user debootstrap
fi

if [ ! -x "$ROOT/rootfs/usr/bin/python3.11" ]; then
  debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 bookworm "$ROOT/rootfs" "$MIRROR"
  for deb in "$ROOT"/rootfs/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ROOT/rootfs"; done
fi

if [ ! -d "$ROOT/site/ai_edge_litert" ]; then
  mkdir -p "$ROOT/wheels" "$ROOT/site"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_27_aarch64 -d "$ROOT/wheels" "ai-edge-litert==$LITERT"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_17_aarch64 -d "$ROOT/wheels" "numpy<2.3"
  for wheel in "$ROOT"/wheels/*.whl; do "$PYTHON" -m zipfile -e "$wheel" "$ROOT/site"; done
fi

# A Neoverse-N1-like cpuinfo, one block per core.
: > "$ROOT/cpuinfo"
for core in 0 1; do
  cat >> "$ROOT/cpuinfo" <<INFO
processor	: $core
BogoMIPS	: 50.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x3
CPU part	: 0xd0c
CPU revision	: 1

INFO
done

qemu-aarch64-static -L "$ROOT/rootfs" "$ROOT/rootfs/usr/bin/python3.11" -c "import platform; print('arm python:', platform.machine())"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if qemu-aarch64 -h 2>&1 | grep -q -- "-plugin" && command -v gcc >/dev/null; then
  gcc -shared -fPIC -O2 -fvisibility=hidden -o "$ROOT/libinsn_count.so" "$HERE/insn_count.c"
  qemu-aarch64 -plugin "$ROOT/libinsn_count.so" -L "$ROOT/rootfs" "$ROOT/rootfs/usr/bin/python3.11" -c "pass"
else
  echo "no qemu-aarch64 with TCG plugins (-plugin) or no gcc: no instruction counts"
fi
echo "ready: $ROOT"
