#!/usr/bin/env bash
# Installs everything a fresh Debian bookworm machine needs to build and test bpfleet.
# Idempotent: a second run only checks. Run as root (apt); CI runs it from .ci/run.
#
#   bash toolchains/setup.sh            # host packages + cross sysroots + npm ci
#   bash toolchains/setup.sh --no-npm   # skip npm ci (toolchain only)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${BPFLEET_CACHE:-$HOME/.cache/bpfleet}
run_npm=1
for a in "$@"; do
  case "$a" in
    --no-npm) run_npm=0 ;;
    *) echo "setup: unknown option $a" >&2; exit 2 ;;
  esac
done

step() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { echo "setup: $*" >&2; exit 1; }
# A mirror mid-sync makes one index fail; apt keeps the others, so retry and then go on:
# a package that is really missing still fails loudly at install/download time.
apt_update() {
  local i
  for i in 1 2 3; do
    apt-get update -qq && return 0
    echo "setup: apt-get update failed (try $i of 3); retrying in 5 s" >&2
    sleep 5
  done
  echo "setup: warning: apt-get update incomplete; continuing with the indexes apt has" >&2
}

[ "$(id -u)" = 0 ] || die "needs root to install Debian packages (run: sudo bash toolchains/setup.sh)"

# Host packages. Foreign-architecture libraries are NOT installed into the system (multiarch
# -dev packages conflict with the host's linux-libc-dev); they are unpacked into a sysroot below.
host_pkgs=(
  clang-16 llvm-16 bpftool libbpf-dev libelf-dev zlib1g-dev libzstd-dev pahole
  gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross libc6-dev-armhf-cross
  qemu-system-arm qemu-system-x86 busybox-static cpio xz-utils file iproute2 iptables
  libbpf-tools ca-certificates iputils-ping
  mosquitto mosquitto-clients chromium postgresql linux-perf
)
missing=()
for p in "${host_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${#missing[@]} Debian packages: ${missing[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  step "Debian packages present"
fi

# Cross sysroots: static libbpf, libelf, zlib and zstd for arm64 and armhf, from Debian's own
# builds of the same versions the host uses.
sysroot_pkgs=(libbpf-dev libelf-dev zlib1g-dev libzstd-dev)
for darch in arm64 armhf; do
  dpkg --print-foreign-architectures | grep -qx "$darch" || { dpkg --add-architecture "$darch"; need_update=1; }
done
if [ "${need_update:-0}" = 1 ]; then apt_update; fi
for darch in arm64 armhf; do
  root="$cache/sysroot/$darch"
  stamp="$root/.bpfleet-stamp"
  want=""
  for p in "${sysroot_pkgs[@]}"; do
    v=$(apt-cache policy "$p:$darch" | awk '/Candidate:/ {print $2}')
    [ -n "$v" ] && [ "$v" != "(none)" ] || die "no candidate for $p:$darch (run apt-get update)"
    want+="$p=$v "
  done
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    step "sysroot $darch up to date ($root)"
    continue
  fi
  step "unpacking $darch sysroot into $root"
  rm -rf "$root" "$cache/debs/$darch"
  mkdir -p "$root" "$cache/debs/$darch"
  (cd "$cache/debs/$darch" && apt-get download -qq -o APT::Sandbox::User=root $(for p in "${sysroot_pkgs[@]}"; do echo "$p:$darch"; done))
  for deb in "$cache/debs/$darch"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  echo "$want" > "$stamp"
done

# tracefs is where tracepoint ids and availability live; some machines do not mount it.
if [ ! -e /sys/kernel/tracing/events ]; then
  step "mounting tracefs on /sys/kernel/tracing"
  mount -t tracefs nodev /sys/kernel/tracing || echo "setup: warning: could not mount tracefs" >&2
fi

# The real Debian kernels the emulated boards boot (cached; the committed BTF is reused).
step "Debian test kernels (toolchains/kernels.sh)"
bash "$here/kernels.sh"

if [ "$run_npm" = 1 ] && [ -f "$repo/package-lock.json" ]; then
  # `npm install`, not `npm ci`: npm 11's ci rejects this lock file because @bufbuild/buf's
  # per-platform optional packages for other systems are (correctly) not in it. install
  # still takes the locked versions.
  step "npm install (locked versions)"
  (cd "$repo" && npm install --no-audit --no-fund --loglevel=error)
fi

if [ -f "$repo/node_modules/.bin/tsx" ]; then
  # Node.js for arm64/armv7 (npm pack into the cache) and the glibc libraries it needs (Debian),
  # so `bpfleet board image/up` and test/boards/fleet-on-boards.test.ts only rebuild the bundle.
  step "agent runtime for the emulated boards (bpfleet board runtime arm64, arm)"
  for a in arm64 arm; do (cd "$repo" && node controller/bin/bpfleet.js board runtime "$a"); done
fi
step "done"
