#!/usr/bin/env bash
# bpfleet: fetch the pinned Debian test kernels into the cache and regenerate
# the derived, committed files (bpf/vmlinux/*/vmlinux.h, toolchains/btf/<arch>/*.btf.xz).
#
#   bash toolchains/kernels.sh [--host-x86] [--rebuild-btf] [--update] [--keep-dbg]
#   bash toolchains/kernels.sh --candidates
#
# Pins live in toolchains/kernels.conf. Cache: ${BPFLEET_CACHE:-$HOME/.cache/bpfleet}/kernels/.
# See toolchains/KERNELS.md.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CONF=${BPFLEET_KERNELS_CONF:-$HERE/kernels.conf}
CACHE=${BPFLEET_CACHE:-$HOME/.cache/bpfleet}
KDIR=$CACHE/kernels
APTDIR=$KDIR/_apt
DEBDIR=$KDIR/_debs
BBDIR=$KDIR/_busybox
BTFDIR=$REPO/toolchains/btf
VMLDIR=$REPO/bpf/vmlinux
# Bump when the layout of an extracted kernel directory changes.
LAYOUT=2

step() { printf '==> %s\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
warn() { printf 'kernels.sh: warning: %s\n' "$*" >&2; }
die()  { printf 'kernels.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --host-x86     also regenerate bpf/vmlinux/x86/vmlinux.h from this host's
                 /sys/kernel/btf/vmlinux (off by default: CI hosts differ)
  --rebuild-btf  regenerate toolchains/btf/<arch>/<release>.btf.xz from the -dbg
                 package even if it is already committed
  --keep-dbg     keep the (large) -dbg .deb in the cache after use
  --update       force `apt-get update` of the private apt configuration
  --candidates   list the newest kernel packages the mirror offers, then exit
  --fetch-debs PKG:ARCH=VER...  download these .debs (verified) into the cache, print their paths, exit
EOF
}

HOST_X86=0 REBUILD_BTF=0 KEEP_DBG=0 FORCE_UPDATE=0 CANDIDATES=0
FETCH_DEBS=()
while (($#)); do
  case $1 in
    --host-x86) HOST_X86=1 ;;
    --rebuild-btf) REBUILD_BTF=1 ;;
    --keep-dbg) KEEP_DBG=1 ;;
    --update) FORCE_UPDATE=1 ;;
    --candidates) CANDIDATES=1 ;;
    --fetch-debs) shift; FETCH_DEBS=("$@"); break ;; # used by boards/ (agent runtime libraries)
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

[[ -f $CONF ]] || die "missing pin file $CONF"
# shellcheck source=kernels.conf
source "$CONF"

need() { # need CMD DEBIAN-PACKAGE
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found; install it with: apt-get install $2"
}
need apt-get apt
need dpkg-deb dpkg
need sha256sum coreutils
need python3 python3
need bpftool bpftool
need xz xz-utils

# ---------------------------------------------------------------------------
# Private apt configuration (never touches the system's sources or state).
# ---------------------------------------------------------------------------
host_mirror() { # host_mirror debian|debian-security -> first matching URI of the system sources
  local want=$1
  {
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^[[:space:]]*URIs:[[:space:]]*//p' | tr -s ' \t' '\n'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -nE 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p'
  } | sed 's:/*$::' | grep -E "/${want}\$" | head -n1 || true
}

APT_OPTS=()
apt_configure() {
  local main=${DEBIAN_MIRROR:-$(host_mirror debian)}
  local sec=${DEBIAN_SECURITY_MIRROR:-$(host_mirror debian-security)}
  [[ -n $main ]] || die "cannot find a .../debian URI in the system apt sources; set BPFLEET_DEBIAN_MIRROR"
  [[ -n $sec ]] || die "cannot find a .../debian-security URI in the system apt sources; set BPFLEET_DEBIAN_SECURITY_MIRROR"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [[ -f $keyring ]] || die "missing $keyring; install it with: apt-get install debian-archive-keyring"
  mkdir -p "$APTDIR/etc/preferences.d" "$APTDIR/state/lists/partial" "$APTDIR/cache/archives/partial"
  [[ -f $APTDIR/state/status ]] || : >"$APTDIR/state/status"
  local new=$APTDIR/etc/sources.list.new line kind suite archs uri
  : >"$new"
  for line in "${APT_SUITES[@]}"; do
    read -r kind suite archs <<<"$line"
    case $kind in main) uri=$main ;; security) uri=$sec ;; *) die "kernels.conf: bad APT_SUITES entry: $line" ;; esac
    printf 'deb [arch=%s signed-by=%s] %s %s main\n' "$archs" "$keyring" "$uri" "$suite" >>"$new"
  done
  if ! cmp -s "$new" "$APTDIR/etc/sources.list"; then
    mv "$new" "$APTDIR/etc/sources.list"
    rm -f "$APTDIR/.updated"
  else
    rm -f "$new"
  fi
  APT_OPTS=(
    -o "Dir::Etc::sourcelist=$APTDIR/etc/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::Etc::preferencesparts=$APTDIR/etc/preferences.d"
    -o "Dir::State=$APTDIR/state"
    -o "Dir::State::status=$APTDIR/state/status"
    -o "Dir::Cache=$APTDIR/cache"
    -o "APT::Sandbox::User=root"
    -o "Acquire::Languages=none"
  )
}

APT_UPDATED_NOW=0
apt_update() {
  step "apt-get update (private config: $APTDIR)"
  local log=$APTDIR/update.log try
  # A mirror mid-sync fails one index at a time: retry, then go on with what apt has (a
  # package that is really missing still fails loudly when it is downloaded).
  for try in 1 2 3; do
    if apt-get -q "${APT_OPTS[@]}" update >"$log" 2>&1; then
      touch "$APTDIR/.updated"
      APT_UPDATED_NOW=1
      return 0
    fi
    warn "apt-get update failed (try $try of 3)"
    sleep $((try * 3))
  done
  sed 's/^/    | /' "$log" >&2
  if [[ -f $APTDIR/.updated ]] || compgen -G "$APTDIR/state/lists/*_Packages*" >/dev/null; then
    warn "apt-get update incomplete; continuing with the package lists apt has"
    APT_UPDATED_NOW=1
  else
    die "apt-get update of the private apt configuration failed (log above)"
  fi
}

apt_ready=0
apt_ensure() { # lazily configure + update apt only when something must be downloaded
  ((apt_ready)) && return 0
  apt_configure
  if ((FORCE_UPDATE)) || [[ ! -f $APTDIR/.updated ]] ||
    [[ -n $(find "$APTDIR/.updated" -mmin +1440 2>/dev/null) ]]; then
    apt_update
  fi
  apt_ready=1
}

# apt_uri PKG:ARCH=VER -> "URL FILENAME SIZE SHA256" (refreshing the lists once if unknown)
apt_uri() {
  local spec=$1 out
  apt_ensure
  if ! out=$(cd "$APTDIR" && apt-get -q "${APT_OPTS[@]}" --print-uris download "$spec" 2>&1) ||
    ! grep -q "^'" <<<"$out"; then
    if ((APT_UPDATED_NOW == 0)); then
      apt_update
      apt_uri "$spec"
      return
    fi
    printf '%s\n' "$out" | sed 's/^/    | /' >&2
    die "package $spec is not available from the mirror; re-pin it in $CONF (see --candidates)"
  fi
  grep "^'" <<<"$out" | head -n1 | sed -E "s/^'([^']*)' ([^ ]*) ([0-9]*) SHA256:([0-9a-f]*).*/\1 \2 \3 \4/"
}

# fetch_deb PKG ARCH VER -> prints the path of the verified .deb in the cache
fetch_deb() {
  local pkg=$1 arch=$2 ver=$3 spec fname path _url name size sha
  spec="$pkg:$arch=$ver"
  fname="${pkg}_${ver//:/%3a}_${arch}.deb"
  path=$DEBDIR/$fname
  mkdir -p "$DEBDIR"
  if [[ -f $path && -f $path.sha256 ]] &&
    [[ $(sha256sum "$path" | cut -d' ' -f1) == "$(<"$path.sha256")" ]]; then
    info "cached $fname"
    printf '%s\n' "$path"
    return
  fi
  apt_ensure # here, not inside the $(...) below, so APT_OPTS is set in this shell
  read -r _url name size sha < <(apt_uri "$spec")
  [[ -n ${sha:-} ]] || die "no SHA256 for $spec in apt's metadata"
  info "downloading $spec ($((size / 1024 / 1024)) MiB)"
  rm -rf "$DEBDIR/partial" && mkdir -p "$DEBDIR/partial"
  (cd "$DEBDIR/partial" && apt-get -q "${APT_OPTS[@]}" download "$spec" >&2) ||
    die "apt-get download $spec failed"
  [[ -f $DEBDIR/partial/$name ]] || die "apt-get download did not produce $name"
  [[ $(sha256sum "$DEBDIR/partial/$name" | cut -d' ' -f1) == "$sha" ]] ||
    die "sha256 mismatch for $name (expected $sha from the Packages index)"
  mv "$DEBDIR/partial/$name" "$path"
  printf '%s\n' "$sha" >"$path.sha256"
  rmdir "$DEBDIR/partial"
  printf '%s\n' "$path"
}

if ((${#FETCH_DEBS[@]})); then
  for spec in "${FETCH_DEBS[@]}"; do
    [[ $spec =~ ^([^:=]+):([a-z0-9]+)=(.+)$ ]] || die "--fetch-debs: expected PKG:ARCH=VER, got '$spec'"
    fetch_deb "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
  done
  exit 0
fi

# ---------------------------------------------------------------------------
# BTF helpers
# ---------------------------------------------------------------------------

# kimage btf VMLINUZ OUT | kimage banner FILE
#   Decompress a kernel image (arm64 Image, gzip'd Image, EFI zboot, ARM zImage
#   with an xz/gzip payload, or an ELF vmlinux) and either cut the raw .BTF blob
#   out of it or print its "Linux version ..." banner.
kimage() { python3 -c "$PY_KIMAGE" "$@"; }
PY_KIMAGE=$(cat <<'PY'
import lzma, struct, subprocess, sys, zlib

mode, src = sys.argv[1], sys.argv[2]
blob = open(src, "rb").read()

def gunzip(data):
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)   # gzip wrapper; trailing bytes ignored
    return d.decompress(data) + d.flush()

def unxz(data):
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)   # stops at stream end

def unpack(data):
    if data[:2] == b"\x1f\x8b":
        return gunzip(data), "gzip"
    if data[:2] == b"MZ" and data[4:8] == b"zimg":    # EFI zboot: payload offset/size, compression name
        off, size = struct.unpack_from("<II", data, 8)
        comp = data[24:32].rstrip(b"\0").decode()
        payload = data[off:off + size]
        if comp == "gzip":
            return gunzip(payload), "zboot/gzip"
        tool = {"zstd": ["zstd", "-dc"], "xzkern": ["xz", "-dc"], "lzma": ["xz", "-dc"]}.get(comp)
        if tool is None:
            sys.exit("kimage: unsupported zboot compression %r" % comp)
        return subprocess.run(tool, input=payload, check=True, capture_output=True).stdout, "zboot/" + comp
    if data[0x24:0x28] == struct.pack("<I", 0x016F2818):   # ARM zImage: find the payload
        for magic, fn, name in ((b"\xfd7zXZ\x00", unxz, "zImage/xz"), (b"\x1f\x8b\x08", gunzip, "zImage/gzip")):
            at = data.find(magic)
            while at > 0:   # the decompressor stub can contain the magic bytes too
                try:
                    return fn(data[at:]), name
                except (lzma.LZMAError, zlib.error):
                    at = data.find(magic, at + 1)
        sys.exit("kimage: zImage payload compression not recognised")
    return data, "uncompressed"

img, how = unpack(blob)
at = img.find(b"Linux version ")
banner = img[at:img.index(b"\n", at)].decode(errors="replace") if at >= 0 else "?"
if mode == "banner":
    print(banner)
    sys.exit(0)
print("    image: %s, %d bytes, %s" % (how, len(img), banner.split(" (")[0]), file=sys.stderr)

# struct btf_header { u16 magic=0xeB9F; u8 version=1; u8 flags=0; u32 hdr_len;
#                     u32 type_off, type_len, str_off, str_len; }  (little endian)
magic = struct.pack("<HBB", 0xEB9F, 1, 0)
found = []
pos = img.find(magic)
while pos >= 0:
    if pos + 24 <= len(img):
        hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<5I", img, pos + 4)
        data = pos + hdr_len
        end = data + str_off + str_len
        if (hdr_len == 24 and type_off == 0 and type_len > 0 and type_len % 4 == 0
                and str_off >= type_off + type_len and str_len > 0 and end <= len(img)
                and img[data + str_off] == 0 and img[end - 1] == 0):
            found.append((end - pos, pos, type_len, str_len))
    pos = img.find(magic, pos + 1)
if not found:
    sys.exit("kimage: no valid BTF header found in %s" % src)
size, pos, type_len, str_len = max(found)
print("    BTF at image offset %#x: %d bytes (types %d, strings %d; %d candidate(s))"
      % (pos, size, type_len, str_len, len(found)), file=sys.stderr)
with open(sys.argv[3], "wb") as f:
    f.write(img[pos:pos + size])
PY
)

# btf_check FILE ARCH: the BTF parses and the types bpfleet's probes use exist
# with the expected shape for that architecture.
btf_check() {
  local btf=$1 arch=$2 raw
  raw=$(bpftool btf dump file "$btf") || die "bpftool cannot parse $btf"
  python3 -c "$PY_BTF_CHECK" "$arch" "$btf" <<<"$raw" || die "BTF type check failed for $btf"
}
PY_BTF_CHECK=$(cat <<'PY'
import re, sys
arch, path = sys.argv[1], sys.argv[2]
types, cur = {}, None
ints = {}
for line in sys.stdin:
    m = re.match(r"\[(\d+)\] (\w+) '([^']*)'(.*)", line)
    if m:
        kind, name, rest = m.group(2), m.group(3), m.group(4)
        cur = None
        if kind in ("STRUCT", "UNION") and name and name not in types:
            size = int(re.search(r"size=(\d+)", rest).group(1))
            cur = types[name] = {"size": size, "members": {}}
        elif kind == "INT":
            ints[name] = int(re.search(r"size=(\d+)", rest).group(1))
        continue
    m = re.match(r"\s+'([^']*)' type_id=\d+ bits_offset=(\d+)", line)
    if m and cur is not None:
        cur["members"][m.group(1)] = int(m.group(2)) // 8

want = {
    "sock": [], "sk_buff": [], "task_struct": ["pid", "tgid", "comm"],
    "tcp_sock": ["snd_cwnd", "snd_ssthresh", "srtt_us", "bytes_acked", "bytes_received"],
    "trace_event_raw_inet_sock_set_state": ["skaddr", "oldstate", "newstate", "sport", "dport",
                                            "family", "protocol", "saddr", "daddr"],
    "pt_regs": [],
}
bad = []
for name, members in want.items():
    t = types.get(name)
    if not t or t["size"] == 0:
        bad.append("struct %s missing" % name)
        continue
    bad += ["%s.%s missing" % (name, m) for m in members if m not in t["members"]]
ptr = 4 if arch == "arm" else 8
if ints.get("long int") != ptr:
    bad.append("sizeof(long)=%s, want %d" % (ints.get("long int"), ptr))
ev = types.get("trace_event_raw_inet_sock_set_state", {"members": {}})["members"]
if ev.get("oldstate") is not None and ev["oldstate"] - ev.get("skaddr", 0) != ptr:
    bad.append("inet_sock_set_state.skaddr is not a %d-byte pointer" % ptr)
regs = types.get("pt_regs")
if regs:
    if arch == "arm" and (list(regs["members"]) != ["uregs"] or regs["size"] != 72):
        bad.append("pt_regs is not ARM's { unsigned long uregs[18]; } (size %d)" % regs["size"])
    if arch == "arm64" and regs["size"] < 34 * 8:   # regs[31], sp, pc, pstate (+ more)
        bad.append("pt_regs too small for arm64 (size %d)" % regs["size"])
if bad:
    sys.exit("btf_check %s: %s" % (path, "; ".join(bad)))
tcp = types["tcp_sock"]
print("    types ok: %d structs/unions; sizeof sock=%d sk_buff=%d task_struct=%d tcp_sock=%d pt_regs=%d;"
      " tcp_sock snd_cwnd@%d snd_ssthresh@%d srtt_us@%d bytes_acked@%d bytes_received@%d"
      % (len(types), types["sock"]["size"], types["sk_buff"]["size"], types["task_struct"]["size"],
         tcp["size"], types["pt_regs"]["size"], *(tcp["members"][m] for m in want["tcp_sock"])),
      file=sys.stderr)
PY
)

# write_if_changed DEST: stdin -> DEST, leaving DEST untouched when identical
write_if_changed() {
  local dest=$1 tmp
  mkdir -p "$(dirname "$dest")"
  tmp=$(mktemp "$dest.XXXXXX")
  cat >"$tmp"
  if cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
    info "unchanged ${dest#"$REPO"/}"
  else
    chmod 644 "$tmp"
    mv "$tmp" "$dest"
    info "wrote ${dest#"$REPO"/} ($(stat -c %s "$dest") bytes)"
  fi
}

# gen_vmlinux_h DIR BTF PROVENANCE
gen_vmlinux_h() {
  local dir=$1 btf=$2 prov=$3 body
  body=$(bpftool btf dump file "$btf" format c) || die "bpftool btf dump format c failed for $btf"
  { printf '/* %s */\n' "$prov"; printf '%s\n' "$body"; } | write_if_changed "$VMLDIR/$dir/vmlinux.h"
}

BPFTOOL_VER=$(bpftool version 2>/dev/null | sed -n '1s/^bpftool //p')

# ---------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------
kfield() { # kfield NAME FIELD#  (1=name 2=arch 3=package 4=version 5=btf-source)
  local line f
  for line in "${KERNELS[@]}"; do
    read -r -a f <<<"$line"
    if [[ ${f[0]} == "$1" ]]; then
      printf '%s\n' "${f[$(($2 - 1))]}"
      return
    fi
  done
  die "kernel '$1' is not defined in $CONF"
}

# prepare_kernel NAME ARCH PKG VER: cache/kernels/NAME/{vmlinuz,config,System.map,modules,release,...}
prepare_kernel() {
  local name=$1 arch=$2 pkg=$3 ver=$4 kd=$KDIR/$1 want deb tmp rel mods
  want="$pkg:$arch=$ver layout=$LAYOUT"
  if [[ -f $kd/.stamp && $(<"$kd/.stamp") == "$want" ]]; then
    info "cached $name ($pkg $ver, $(<"$kd/release"))"
    return
  fi
  deb=$(fetch_deb "$pkg" "$arch" "$ver")
  tmp=$KDIR/.$name.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  info "extracting $(basename "$deb")"
  dpkg-deb -x "$deb" "$tmp/pkg"
  local vmlinuz=("$tmp"/pkg/boot/vmlinuz-*)
  [[ ${#vmlinuz[@]} -eq 1 && -f ${vmlinuz[0]} ]] || die "$pkg: expected exactly one /boot/vmlinuz-*"
  rel=${vmlinuz[0]##*/vmlinuz-}
  if [[ -d $tmp/pkg/lib/modules/$rel ]]; then mods=pkg/lib/modules/$rel
  elif [[ -d $tmp/pkg/usr/lib/modules/$rel ]]; then mods=pkg/usr/lib/modules/$rel
  else die "$pkg: no modules directory for $rel"; fi
  ln -s "pkg/boot/vmlinuz-$rel" "$tmp/vmlinuz"
  ln -s "pkg/boot/config-$rel" "$tmp/config"
  ln -s "pkg/boot/System.map-$rel" "$tmp/System.map"
  ln -s "$mods" "$tmp/modules"
  for f in config System.map; do [[ -f $tmp/$f ]] || die "$pkg: /boot/$f-$rel missing"; done
  printf '%s\n' "$rel" >"$tmp/release"
  printf '%s %s %s\n' "$pkg" "$ver" "$arch" >"$tmp/package"
  rm -rf "$kd"
  mv "$tmp" "$kd"
  printf '%s\n' "$want" >"$kd/.stamp"
  info "$name: $rel, modules in $kd/modules"
}

# btf_from_image NAME: .BTF carved out of the kernel image -> cache/kernels/NAME/vmlinux.btf
btf_from_image() {
  local name=$1 kd=$KDIR/$1 arch
  arch=$(kfield "$name" 2)
  grep -q '^CONFIG_DEBUG_INFO_BTF=y' "$kd/config" || die "$name: config has no CONFIG_DEBUG_INFO_BTF=y"
  if [[ -f $kd/vmlinux.btf && $kd/vmlinux.btf -nt $kd/.stamp ]]; then
    info "cached $name/vmlinux.btf ($(stat -c %s "$kd/vmlinux.btf") bytes)"
  else
    kimage btf "$kd/vmlinuz" "$kd/vmlinux.btf.tmp" || die "$name: could not extract BTF from vmlinuz"
    bpftool btf dump file "$kd/vmlinux.btf.tmp" >/dev/null || die "$name: carved BTF does not parse"
    mv "$kd/vmlinux.btf.tmp" "$kd/vmlinux.btf"
  fi
  btf_check "$kd/vmlinux.btf" "${arch/armhf/arm}"
}

# btf_from_dbg NAME: pahole BTF from the -dbg package's DWARF -> toolchains/btf/<arch>/<rel>.btf.xz,
# then cache/kernels/NAME/vmlinux.btf from that committed file.
btf_from_dbg() {
  local name=$1 kd=$KDIR/$1 arch pkg ver rel xzf
  arch=$(kfield "$name" 2) pkg=$(kfield "$name" 3) ver=$(kfield "$name" 4)
  rel=$(<"$kd/release")
  # Per bpf/Makefile ARCH (arm for armhf): the build minimizes and embeds every BTF of its arch.
  xzf=$BTFDIR/${arch/armhf/arm}/$rel.btf.xz
  mkdir -p "${xzf%/*}"
  if grep -q '^CONFIG_DEBUG_INFO_BTF=y' "$kd/config"; then
    warn "$name has CONFIG_DEBUG_INFO_BTF=y; 'image' would be the better btf-source"
  fi
  if ((REBUILD_BTF)) || [[ ! -f $xzf ]]; then
    need pahole dwarves
    local pv
    pv=$(pahole --version | sed 's/^v//')
    [[ $(printf '%s\n1.24\n' "$pv" | sort -V | head -n1) == 1.24 ]] || die "pahole >= 1.24 needed (have $pv)"
    local dbg work vml
    dbg=$(fetch_deb "$pkg-dbg" "$arch" "$ver")
    work=$(mktemp -d "$KDIR/.dbg.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    info "extracting vmlinux-$rel from $(basename "$dbg") (streams the whole package)"
    dpkg-deb --fsys-tarfile "$dbg" |
      tar -x -C "$work" "./usr/lib/debug/boot/vmlinux-$rel" "./usr/lib/debug/boot/System.map-$rel" ||
      die "cannot extract vmlinux-$rel from $dbg"
    vml=$work/usr/lib/debug/boot/vmlinux-$rel
    # Same package version was requested; also prove the DWARF is for this exact build
    # (the image package's System.map is only a placeholder, so compare the banners).
    local b_img b_dbg
    b_img=$(kimage banner "$kd/vmlinuz") b_dbg=$(kimage banner "$vml")
    [[ $b_img == "$b_dbg" && $b_img == "Linux version $rel "* ]] ||
      die "$pkg-dbg does not match $pkg: image '$b_img' vs debug '$b_dbg'"
    info "banner match: $b_img"
    cp "$work/usr/lib/debug/boot/System.map-$rel" "$kd/System.map-dbg"
    info "pahole $pv: encoding BTF from DWARF ($(($(stat -c %s "$vml") / 1024 / 1024)) MiB vmlinux)"
    # Keep to BTF kinds a 5.10 kernel itself would emit (no ENUM64/FLOAT/DECL_TAG/TYPE_TAG),
    # so older libbpf versions on the boards can read the file too. No -j: pahole 1.24's
    # parallel encoder orders types nondeterministically, and the output is committed.
    pahole --btf_encode_detached="$work/vmlinux.btf" \
      --skip_encoding_btf_enum64 --skip_encoding_btf_decl_tag --skip_encoding_btf_type_tag \
      "$vml" >&2 || die "pahole failed on $vml"
    bpftool btf dump file "$work/vmlinux.btf" >/dev/null || die "pahole output does not parse"
    btf_check "$work/vmlinux.btf" "${arch/armhf/arm}"
    if [[ -f $xzf ]] && xz -dc "$xzf" | cmp -s - "$work/vmlinux.btf"; then
      info "unchanged ${xzf#"$REPO"/}"
    else
      xz -T1 -9e -c "$work/vmlinux.btf" | write_if_changed "$xzf"
    fi
    rm -rf "$work"
    trap - EXIT
    if ((!KEEP_DBG)); then rm -f "$dbg" "$dbg.sha256"; info "removed $(basename "$dbg") from the cache (--keep-dbg keeps it)"; fi
  else
    info "using committed ${xzf#"$REPO"/} (--rebuild-btf regenerates it from $pkg-dbg)"
  fi
  if [[ ! -f $kd/vmlinux.btf ]] || ! xz -dc "$xzf" | cmp -s - "$kd/vmlinux.btf"; then
    xz -dc "$xzf" >"$kd/vmlinux.btf.tmp" && mv "$kd/vmlinux.btf.tmp" "$kd/vmlinux.btf"
  fi
  btf_check "$kd/vmlinux.btf" "${arch/armhf/arm}"
}

prepare_busybox() {
  local arch=$1 pkg=$2 ver=$3 bd=$BBDIR/$1 deb want
  want="$pkg:$arch=$ver"
  if [[ -x $bd/busybox && -f $bd/.stamp && $(<"$bd/.stamp") == "$want" ]]; then
    info "cached busybox $arch ($ver)"
    return
  fi
  deb=$(fetch_deb "$pkg" "$arch" "$ver")
  rm -rf "$bd.tmp" && mkdir -p "$bd.tmp"
  dpkg-deb -x "$deb" "$bd.tmp/pkg"
  [[ -x $bd.tmp/pkg/bin/busybox ]] || die "$pkg ($arch) has no /bin/busybox"
  cp "$bd.tmp/pkg/bin/busybox" "$bd.tmp/busybox"
  rm -rf "$bd.tmp/pkg" "$bd"
  mv "$bd.tmp" "$bd"
  printf '%s\n' "$want" >"$bd/.stamp"
  info "busybox $arch ready: $bd/busybox"
}

candidates() {
  apt_configure
  apt_update
  local flavour
  step "newest kernel packages on the mirror (pinned: see $CONF)"
  for flavour in '5\.10\.0-[0-9]+-arm64' '6\.1\.0-[0-9]+-arm64' '5\.10\.0-[0-9]+-armmp'; do
    local p
    p=$(apt-cache "${APT_OPTS[@]}" pkgnames linux-image- | grep -E "^linux-image-${flavour}\$" | sort -V | tail -n1)
    [[ -n $p ]] && apt-cache "${APT_OPTS[@]}" madison "$p" | sed 's/^/    /'
  done
  apt-cache "${APT_OPTS[@]}" madison busybox-static | sed 's/^/    /'
}

main() {
  mkdir -p "$KDIR"
  if ((CANDIDATES)); then candidates; return; fi
  local line name arch pkg ver src rel dir kname kd
  for line in "${KERNELS[@]}"; do
    read -r name arch pkg ver src <<<"$line"
    step "kernel $name: $pkg $ver ($arch)"
    prepare_kernel "$name" "$arch" "$pkg" "$ver"
    case $src in
      image) btf_from_image "$name" ;;
      dbg) btf_from_dbg "$name" ;;
      none) ;;
      *) die "kernels.conf: bad btf-source '$src' for $name" ;;
    esac
  done
  for line in "${BUSYBOX[@]}"; do
    read -r arch pkg ver <<<"$line"
    step "busybox-static $arch $ver"
    prepare_busybox "$arch" "$pkg" "$ver"
  done
  for line in "${VMLINUX_H[@]}"; do
    read -r dir kname <<<"$line"
    kd=$KDIR/$kname
    read -r pkg ver arch <"$kd/package"
    rel=$(<"$kd/release")
    src=$(kfield "$kname" 5)
    step "bpf/vmlinux/$dir/vmlinux.h from $kname"
    local how
    case $src in
      image) how=".BTF carved from its vmlinuz" ;;
      dbg) how="BTF made by pahole from $pkg-dbg $ver DWARF (toolchains/btf/arm/$rel.btf.xz)" ;;
    esac
    gen_vmlinux_h "$dir" "$kd/vmlinux.btf" \
      "bpfleet vmlinux.h: kernel $rel ($arch), Debian $pkg $ver; $how; bpftool $BPFTOOL_VER btf dump format c; regenerate: bash toolchains/kernels.sh"
  done
  if ((HOST_X86)); then
    step "bpf/vmlinux/x86/vmlinux.h from this host's /sys/kernel/btf/vmlinux"
    [[ $(uname -m) == x86_64 ]] || die "--host-x86 needs an x86_64 host (this is $(uname -m))"
    [[ -r /sys/kernel/btf/vmlinux ]] || die "/sys/kernel/btf/vmlinux not readable (kernel without CONFIG_DEBUG_INFO_BTF?)"
    gen_vmlinux_h x86 /sys/kernel/btf/vmlinux \
      "bpfleet vmlinux.h: kernel $(uname -r) (x86_64), host /sys/kernel/btf/vmlinux (not a Debian package); bpftool $BPFTOOL_VER btf dump format c; regenerate: bash toolchains/kernels.sh --host-x86"
  else
    info "bpf/vmlinux/x86/vmlinux.h left as committed (--host-x86 regenerates it from this host)"
  fi
  step "done: kernels in $KDIR"
}

main
