#!/usr/bin/env bash
# Release build of hydra-server: static (CGO_ENABLED=0), stripped (-s -w),
# -trimpath binaries for every release platform, into dist/, with
# SHA256SUMS and the version from `git describe --always --dirty` stamped
# into main.version (what --version prints).
#
#   scripts/dist.sh                    # every platform
#   TARGETS="linux/arm64 linux/armv7" scripts/dist.sh
#   VERSION=v1.2.3 DIST_DIR=out scripts/dist.sh
#
# Platforms are GOOS/ARCH, where ARCH is a GOARCH or armv6/armv7 (GOARCH=arm
# with GOARM=6/7). The binaries are dist/hydra-server-GOOS-ARCH[.exe] (the
# names Docker's TARGETARCH+TARGETVARIANT give: linux-armv7, linux-arm64);
# dist/VERSION holds the version. linux/mipsle is built with
# GOMIPS=softfloat, which runs on MIPS routers with or without an FPU.
# When `file` is installed, every Linux binary must be reported
# "statically linked" and "stripped", or the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${DIST_DIR:-dist}"
targets="${TARGETS:-linux/amd64 linux/arm64 linux/armv7 linux/armv6 linux/386 linux/riscv64 linux/mipsle darwin/amd64 darwin/arm64 windows/amd64}"
buildvcs=()
if [ -z "${VERSION:-}" ]; then
  if VERSION=$(git describe --always --dirty 2>/dev/null); then :; else
    VERSION=unknown
    buildvcs=(-buildvcs=false) # no usable git: do not let go build ask it
  fi
fi
case "$VERSION" in
  *[!A-Za-z0-9._+-]*) echo "dist: version $VERSION has characters unfit for a -X flag" >&2; exit 1 ;;
esac

rm -rf "$out"
mkdir -p "$out"
echo "hydra-server $VERSION ($(go version | awk '{print $3}')) -> $out/"
for t in $targets; do
  goos=${t%%/*} arch=${t#*/}
  goarch=$arch goarm="" gomips=""
  case "$arch" in
    armv6) goarch=arm goarm=6 ;;
    armv7) goarch=arm goarm=7 ;;
    arm) goarm=7 arch=armv7 ;;
    mips | mipsle) gomips=softfloat ;;
  esac
  name="hydra-server-$goos-$arch"
  # nethttpomithttp2: net/http without HTTP/2 (the Consul API, metrics and
  # status page speak HTTP/1.1; h2 would add 390 KB to each binary).
  tags=nethttpomithttp2
  [ "$goos" = windows ] && name="$name.exe"
  env CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" GOARM="$goarm" GOMIPS="$gomips" \
    go build "${buildvcs[@]}" -trimpath -tags "$tags" -ldflags "-s -w -X main.version=$VERSION" -o "$out/$name" ./cmd/hydra-server
done

echo "$VERSION" >"$out/VERSION"
(
  cd "$out"
  if command -v sha256sum >/dev/null; then sha256sum hydra-server-*; else shasum -a 256 hydra-server-*; fi >SHA256SUMS
)

# Each Linux binary must be static and stripped.
fail=0
if command -v file >/dev/null; then
  for f in "$out"/hydra-server-linux-*; do
    desc=$(file -b "$f")
    case "$desc" in
      *"statically linked"*stripped* | *"static-pie linked"*stripped*) ;;
      *) echo "dist: $f is not a static, stripped executable: $desc" >&2; fail=1 ;;
    esac
  done
else
  echo "dist: 'file' not installed: static linking not checked" >&2
fi

# The host's own binary reports the stamped version.
host="$out/hydra-server-$(go env GOHOSTOS)-$(go env GOHOSTARCH)"
if [ -x "$host" ]; then
  v=$("$host" --version)
  case "$v" in
    "hydra-server $VERSION "*) ;;
    *) echo "dist: $host --version says '$v', want version $VERSION" >&2; fail=1 ;;
  esac
fi

printf '%-36s %10s  %s\n' binary bytes type
for f in "$out"/hydra-server-*; do
  desc=""
  command -v file >/dev/null &&
    desc=$(file -b "$f" | sed -e 's/, version 1 ([^)]*)//' -e 's/, Go BuildID=[^,]*//' -e 's/, BuildID\[[^]]*\]=[^,]*//' | cut -c1-90)
  printf '%-36s %10s  %s\n' "$(basename "$f")" "$(wc -c <"$f" | tr -d ' ')" "$desc"
done
[ "$fail" = 0 ] || exit 1
echo "dist: OK ($out/SHA256SUMS)"
