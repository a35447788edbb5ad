#!/usr/bin/env bash
# bpfleet: boot a cached Debian test kernel under QEMU (TCG, no KVM) with a tiny
# busybox initramfs, run one command in it, print its output between markers,
# power off, and exit with the guest command's exit status.
#
#   bash toolchains/qemu-run.sh ARCH KERNEL [options] [-- CMD [ARGS...]]
#
#   ARCH    arm64 | arm (armv7; armhf is accepted too)
#   KERNEL  a kernel name from toolchains/kernels.conf (bullseye-arm64, bookworm-arm64,
#           bullseye-armmp); fetched by `bash toolchains/kernels.sh` if not cached
#   CMD     a host file (copied to /bin/<name> in the guest and run) or a guest command
#
# Options:
#   --add FILE[=GUEST_PATH]  put a host file into the initramfs (default /bin/<name>); repeatable
#   --sh 'SHELL CODE'        run this shell code as the command (instead of -- CMD)
#   --pre 'SHELL CODE'       run before the command, outside the markers; repeatable
#   --modules 'M1 M2'        insmod these kernel modules (and their dependencies) at boot
#   --timeout SECS           whole-run limit, default 600 (TCG is slow)
#   --mem MB                 default 2048 (arm64) / 1024 (arm)
#   --smp N                  default 1
#   --append 'ARGS'          extra kernel command line
#   --verbose                also show the boot console on stderr
#   --keep                   keep the work directory (initramfs, console log)
#
# Guest output protocol (stdout):
#   BPFLEET-BEGIN
#   ...command output...
#   BPFLEET-END
#   BPFLEET-EXIT=<n>
# A "BPFLEET-FACTS ..." line (kernel release, BTF and kprobe_events presence, guest uptime)
# and the measured boot-to-command time go to stderr. Exit status: the command's own, or
# 124 on timeout / 125 if the guest never reached or finished the command.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${BPFLEET_CACHE:-$HOME/.cache/bpfleet}
KDIR=$CACHE/kernels

say() { printf 'qemu-run: %s\n' "$*" >&2; }
die() { printf 'qemu-run: error: %s\n' "$*" >&2; exit 125; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

ADDS=() PRES=() SH_CODE="" MODULES="" TIMEOUT=600 MEM="" SMP=1 APPEND_EXTRA="" VERBOSE=0 KEEP=0
POS=()
while (($#)); do
  case $1 in
    --add) ADDS+=("${2:?--add needs FILE}"); shift ;;
    --sh) SH_CODE=${2:?--sh needs code}; shift ;;
    --pre) PRES+=("${2:?--pre needs code}"); shift ;;
    --modules) MODULES=${2:?--modules needs a list}; shift ;;
    --timeout) TIMEOUT=${2:?}; shift ;;
    --mem) MEM=${2:?}; shift ;;
    --smp) SMP=${2:?}; shift ;;
    --append) APPEND_EXTRA=${2:?}; shift ;;
    --verbose) VERBOSE=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) POS+=("$1") ;;
  esac
  shift
done
((${#POS[@]} == 2)) || { usage >&2; die "need exactly ARCH and KERNEL before --, got: ${POS[*]:-nothing}"; }
ARCH=${POS[0]} KNAME=${POS[1]}
CMD=("$@")
[[ ${#CMD[@]} -gt 0 || -n $SH_CODE ]] || die "nothing to run: give -- CMD [ARGS] or --sh 'code'"
[[ ${#CMD[@]} -eq 0 || -z $SH_CODE ]] || die "give either -- CMD or --sh, not both"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout must be seconds"

case $ARCH in
  arm64|aarch64) ARCH=arm64 DEBARCH=arm64 QEMU=qemu-system-aarch64 MACHINE=virt CPU=cortex-a53 MEM=${MEM:-2048} ;;
  arm|armv7|armhf) ARCH=arm DEBARCH=armhf QEMU=qemu-system-arm MACHINE=virt,highmem=off CPU=cortex-a15 MEM=${MEM:-1024} ;;
  *) die "unknown ARCH '$ARCH' (arm64 or arm)" ;;
esac
command -v "$QEMU" >/dev/null || die "$QEMU not found; install it with: apt-get install qemu-system-arm"
command -v cpio >/dev/null || die "cpio not found; install it with: apt-get install cpio"

KD=$KDIR/$KNAME
BB=$KDIR/_busybox/$DEBARCH/busybox
grep -qE "^[[:space:]]*\"${KNAME}[[:space:]]" "$HERE/kernels.conf" ||
  die "unknown kernel '$KNAME'; known: $(sed -nE 's/^[[:space:]]*"([a-z0-9.-]+) (arm64|armhf) linux-image.*/\1/p' "$HERE/kernels.conf" | tr '\n' ' ')"
if [[ ! -f $KD/.stamp || ! -x $BB ]]; then
  say "kernel '$KNAME' or busybox ($DEBARCH) not cached; running toolchains/kernels.sh"
  bash "$HERE/kernels.sh" >&2 || die "toolchains/kernels.sh failed"
fi
[[ -f $KD/.stamp ]] || die "unknown kernel '$KNAME' (not in toolchains/kernels.conf?)"
read -r _pkg _ver KARCH <"$KD/package"
[[ $KARCH == "$DEBARCH" ]] || die "kernel '$KNAME' is $KARCH, not $DEBARCH"
REL=$(<"$KD/release")

# ---------------------------------------------------------------------------
# initramfs
# ---------------------------------------------------------------------------
mkdir -p "$KDIR/_qemu"
WORK=$(mktemp -d "$KDIR/_qemu/run.XXXXXX")
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() { if ((KEEP)); then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,sbin,dev,proc,sys,tmp,run,etc,root,bpfleet,lib/modules}
cp "$BB" "$ROOT/bin/busybox"
chmod 755 "$ROOT/bin/busybox"
mknod -m 600 "$ROOT/dev/console" c 5 1 2>/dev/null || true # init re-opens it after devtmpfs anyway

q() { # POSIX-sh single quoting
  local s=${1//\'/\'\\\'\'}
  printf "'%s'" "$s"
}

add_file() { # add_file HOSTFILE GUESTPATH
  local src=$1 dst=$2
  [[ -f $src ]] || die "--add: no such file: $src"
  [[ $dst == /* ]] || dst=/$dst
  mkdir -p "$ROOT$(dirname "$dst")"
  cp "$src" "$ROOT$dst"
  [[ -x $src ]] && chmod 755 "$ROOT$dst"
  return 0
}
for a in "${ADDS[@]}"; do
  if [[ $a == *=* ]]; then add_file "${a%%=*}" "${a#*=}"; else add_file "$a" "/bin/$(basename "$a")"; fi
done

# The command: a host file is copied in and run; anything else is a guest command.
if ((${#CMD[@]})); then
  if [[ -f ${CMD[0]} ]]; then
    add_file "${CMD[0]}" "/bin/$(basename "${CMD[0]}")"
    chmod 755 "$ROOT/bin/$(basename "${CMD[0]}")"
    CMD[0]=/bin/$(basename "${CMD[0]}")
  fi
  line=""
  for a in "${CMD[@]}"; do line+="$(q "$a") "; done
  printf '%s\n' "$line" >"$ROOT/bpfleet/cmd.sh"
else
  printf '%s\n' "$SH_CODE" >"$ROOT/bpfleet/cmd.sh"
fi
: >"$ROOT/bpfleet/pre.sh"
for p in "${PRES[@]}"; do printf '%s\n' "$p" >>"$ROOT/bpfleet/pre.sh"; done

# Kernel modules: copy each requested module plus its dependencies (the "depends="
# field of .modinfo; Debian ships no modules.dep, depmod runs at install time), load in order.
: >"$ROOT/bpfleet/modules"
if [[ -n $MODULES ]]; then
  declare -A kopath=() seen=()
  while IFS= read -r f; do
    n=${f##*/}; n=${n%%.ko*}; kopath[${n//-/_}]=$f
  done < <(find -L "$KD/modules/kernel" -name '*.ko*')
  order=()
  visit() { # post-order walk over the dependency graph
    local m=${1//-/_} f deps d
    [[ -n ${seen[$m]:-} ]] && return
    seen[$m]=1
    f=${kopath[$m]:-}
    [[ -n $f ]] || die "module '$m' not found in $KNAME (built in? see $KD/config)"
    [[ $f == *.ko ]] || die "compressed module $f is not supported (busybox insmod)"
    deps=$(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | head -n1)
    for d in ${deps//,/ }; do visit "$d"; done
    order+=("$f")
  }
  for m in $MODULES; do visit "$m"; done
  for f in "${order[@]}"; do
    rel=${f#"$KD/modules/"}
    mkdir -p "$ROOT/lib/modules/$REL/$(dirname "$rel")"
    cp "$f" "$ROOT/lib/modules/$REL/$rel"
    printf '/lib/modules/%s/%s\n' "$REL" "$rel" >>"$ROOT/bpfleet/modules"
  done
  say "modules: $(for f in "${order[@]}"; do printf '%s ' "$(basename "$f" .ko)"; done)"
fi

cat >"$ROOT/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mkdir -p /dev /proc /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec 0<>/dev/console 1>&0 2>&0
/bin/busybox --install -s /bin
export PATH=/bin:/sbin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf 2>/dev/null
ip link set lo up
while read -r m; do insmod "$m" || echo "BPFLEET-WARN insmod $m failed"; done </bpfleet/modules
[ -n "$BPFLEET_VERBOSE" ] || dmesg -n 1
yn() { if [ -e "$1" ]; then echo yes; else echo no; fi; }
echo "BPFLEET-FACTS release=$(uname -r) machine=$(uname -m) btf=$(yn /sys/kernel/btf/vmlinux) kprobe_events=$(yn /sys/kernel/tracing/kprobe_events) uptime=$(cut -d' ' -f1 /proc/uptime)"
. /bpfleet/pre.sh
cd /root
echo "BPFLEET-BEGIN"
sh /bpfleet/cmd.sh
rc=$?
echo "BPFLEET-END"
echo "BPFLEET-EXIT=$rc"
sync
poweroff -f
INIT
chmod 755 "$ROOT/init"
(cd "$ROOT" && find . -print0 | LC_ALL=C sort -z | cpio --quiet -o -0 -H newc -R 0:0) | gzip -1 >"$WORK/initrd.cpio.gz"

# ---------------------------------------------------------------------------
# boot
# ---------------------------------------------------------------------------
APPEND="console=ttyAMA0 rdinit=/init panic=-1 loglevel=4"
((VERBOSE)) && APPEND+=" BPFLEET_VERBOSE=1"
[[ -n $APPEND_EXTRA ]] && APPEND+=" $APPEND_EXTRA"
QARGS=(-M "$MACHINE" -cpu "$CPU" -m "$MEM" -smp "$SMP" -display none -monitor none -serial stdio -nic none
  -no-reboot -kernel "$KD/vmlinuz" -initrd "$WORK/initrd.cpio.gz" -append "$APPEND")
LOG=$WORK/console.log
say "booting $KNAME ($REL) on $QEMU -M $MACHINE -cpu $CPU -m $MEM (TCG), timeout ${TIMEOUT}s"

RESULT=$WORK/result
START=$EPOCHREALTIME
set +e
timeout -k 10 "$TIMEOUT" "$QEMU" "${QARGS[@]}" </dev/null 2>&1 | {
  state=boot rc="" t_begin=""
  while IFS= read -r line; do
    line=${line%$'\r'}
    printf '%s\n' "$line" >>"$LOG"
    case $state in
      boot)
        if [[ $line == BPFLEET-FACTS* ]]; then
          printf 'qemu-run: %s\n' "$line" >&2
        elif [[ $line == *BPFLEET-BEGIN ]]; then
          t_begin=$EPOCHREALTIME
          printf 'BPFLEET-BEGIN\n'
          state=cmd
        elif ((VERBOSE)); then
          printf '  | %s\n' "$line" >&2
        fi
        ;;
      cmd)
        if [[ $line == *BPFLEET-END ]]; then
          [[ -n ${line%BPFLEET-END} ]] && printf '%s\n' "${line%BPFLEET-END}"
          printf 'BPFLEET-END\n'
          state=end
        else
          printf '%s\n' "$line"
        fi
        ;;
      end)
        if [[ $line =~ ^BPFLEET-EXIT=([0-9]+)$ ]]; then
          rc=${BASH_REMATCH[1]}
          printf '%s\n' "$line"
          state=finished
        fi
        ;;
    esac
  done
  printf 'state=%s\nrc=%s\nt_begin=%s\n' "$state" "$rc" "$t_begin" >"$RESULT"
}
pst=("${PIPESTATUS[@]}")
set -e
END=$EPOCHREALTIME
# shellcheck disable=SC1090
source "$RESULT"

LASTLOG=$KDIR/_qemu/$KNAME.console.log
cp "$LOG" "$LASTLOG" 2>/dev/null || true
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
if [[ -n $t_begin ]]; then
  say "boot-to-command $(secs "$START" "$t_begin")s, total $(secs "$START" "$END")s ($KNAME, $REL)"
fi
if [[ $state != finished ]]; then
  if [[ ${pst[0]} == 124 || ${pst[0]} == 137 ]]; then why="timed out after ${TIMEOUT}s"; st=124
  else why="qemu exited (status ${pst[0]})"; st=125; fi
  say "FAILED: $why before the guest printed BPFLEET-EXIT (stage: $state); last console lines:"
  tail -n 40 "$LOG" | sed 's/^/  | /' >&2
  say "full console log: $LASTLOG"
  exit "$st"
fi
exit "$rc"
