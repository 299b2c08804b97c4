#!/usr/bin/env bash
# Proves the ARM release builds run, under qemu-user-static (Debian package
# qemu-user-static; binfmt_misc need not be registered: the emulators are
# invoked explicitly).
#
# For arm64 and armv7:
#   1. the release binary (dist/hydra-server-linux-ARCH) prints its version,
#      starts a server on a free port, serves a register from the host's own
#      binary and from its own CLI, and lookups from both;
#   2. `bench zmtp` and `bench registry` run under emulation, and the host's
#      `bench zmtp --target` measures an emulated `bench serve` (the
#      figures are emulation's, not the hardware's: it proves they run);
#   3. the server exits with status 0 on SIGTERM, logging "shutting down";
#   4. the unit tests of zmtp and registry, cross-compiled with GOARCH and run
#      through the emulator with `go test -exec`, all of them (catching
#      32-bit alignment and endianness faults).
#
#   scripts/qemu-smoke.sh            # builds what dist/ lacks
#   ARCHES=arm64 scripts/qemu-smoke.sh
#   QEMU_GO_TEST_FLAGS='-short' scripts/qemu-smoke.sh   # extra go test flags
#   QEMU_SKIP_TESTS=1 scripts/qemu-smoke.sh             # only the binary smoke
#
# Takes about 2 minutes on 2 cores (most of it the test suites, which sleep
# more than they compute). Exits non-zero when any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."

dist="${DIST_DIR:-dist}"
arches="${ARCHES:-arm64 armv7}"
hostos=$(go env GOHOSTOS) hostarch=$(go env GOHOSTARCH)
hostbin="$dist/hydra-server-$hostos-$hostarch"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

failed=()
ok() { echo "  ok   $*"; }
bad() { echo "  FAIL $*" >&2; failed+=("$*"); }

qemu_for() {
  case "$1" in
    arm64) echo qemu-aarch64-static ;;
    armv7 | armv6) echo qemu-arm-static ;;
    riscv64) echo qemu-riscv64-static ;;
    386) echo qemu-i386-static ;;
    mipsle) echo qemu-mipsel-static ;;
    *) return 1 ;;
  esac
}
goenv_for() { # GOARCH and GOARM of a release arch
  case "$1" in
    armv7) echo "GOARCH=arm GOARM=7" ;;
    armv6) echo "GOARCH=arm GOARM=6" ;;
    mipsle) echo "GOARCH=mipsle GOMIPS=softfloat" ;;
    *) echo "GOARCH=$1" ;;
  esac
}

for a in $arches; do
  q=$(qemu_for "$a") || { echo "qemu-smoke: no emulator known for $a" >&2; exit 2; }
  command -v "$q" >/dev/null || { echo "qemu-smoke: $q not found: apt-get install qemu-user-static" >&2; exit 2; }
done

# Build what is missing (into a scratch directory: dist/ stays as it was).
missing=""
for t in "$hostos/$hostarch" $(printf 'linux/%s ' $arches); do
  [ -x "$dist/hydra-server-${t/\//-}" ] || missing="$missing $t"
done
if [ -n "$missing" ]; then
  echo "qemu-smoke: building$missing"
  TARGETS="$hostos/$hostarch $(printf 'linux/%s ' $arches)" DIST_DIR="$tmp/dist" scripts/dist.sh >/dev/null || exit 1
  dist="$tmp/dist"
  hostbin="$dist/hydra-server-$hostos-$hostarch"
fi

# wait_line FILE REGEX SECONDS: prints the first line of FILE matching REGEX.
wait_line() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

smoke() {
  local a=$1 q bin goarch out port pid rc
  q=$(qemu_for "$a")
  bin="$dist/hydra-server-linux-$a"
  goarch=$(goenv_for "$a" | sed 's/GOARCH=\([^ ]*\).*/\1/')
  echo "== linux/$a: $bin under $q"

  out=$("$q" "$bin" --version 2>&1)
  if [[ "$out" == "hydra-server "*"linux/$goarch)" ]]; then ok "--version: $out"; else bad "$a --version: $out"; fi

  # bench registry below registers 3000 entries from this one address.
  "$q" "$bin" --port 0 --log-level info --max-entries-per-client 4000 >"$tmp/$a.out" 2>"$tmp/$a.err" &
  pid=$!
  pids+=("$pid")
  if ! line=$(wait_line "$tmp/$a.out" '^\[Hydra Server\] Bound to ' 60); then
    bad "$a server: no banner in 60s: $(cat "$tmp/$a.out" "$tmp/$a.err")"
    return
  fi
  port=${line##*:}
  ok "server under emulation: $line"

  out=$("$hostbin" register --once --port "$port" --ttl 10m "smoke-$a" "tcp://10.1.2.3:4567" --meta "arch=$a" 2>&1)
  if [[ "$out" == *'"instance"'* ]]; then ok "register from the $hostarch binary: $out"; else bad "$a register from host: $out"; fi
  out=$("$hostbin" lookup --json --port "$port" "smoke-$a" 2>&1)
  if [[ "$out" == *'"10.1.2.3"'* && "$out" == *4567* && "$out" == *"\"arch\": \"$a\""* ]]; then
    ok "lookup from the $hostarch binary finds 10.1.2.3:4567 arch=$a"
  else bad "$a lookup from host: $out"; fi

  out=$("$q" "$bin" register --once --port "$port" --ttl 10m "smoke-self-$a" "tcp://10.9.8.7:99" 2>&1)
  if [[ "$out" == *'"instance"'* ]]; then ok "register from its own CLI under emulation"; else bad "$a register from own CLI: $out"; fi
  out=$("$q" "$bin" lookup --port "$port" "smoke-$a" 2>&1)
  if [[ "$out" == *"10.1.2.3:4567"* ]]; then ok "lookup from its own CLI under emulation"; else bad "$a lookup from own CLI: $out"; fi
  out=$("$hostbin" lookup --port "$port" "smoke-self-$a" 2>&1)
  if [[ "$out" == *"10.9.8.7:99"* ]]; then ok "the $hostarch binary sees what the emulated CLI registered"; else bad "$a host lookup of own-CLI entry: $out"; fi

  if out=$("$q" "$bin" bench registry --target "tcp://127.0.0.1:$port" --count 2000 --concurrency 4 --pipeline 2 2>&1); then
    ok "bench registry --target (emulated client and server):"; echo "$out" | sed -n '1,3p' | sed 's/^/         /'
  else bad "$a bench registry: $out"; fi
  if out=$("$q" "$bin" bench zmtp --count 2000 --size 64 2>&1); then
    ok "bench zmtp (in-process, emulated):"; echo "$out" | sed -n '1,4p' | sed 's/^/         /'
  else bad "$a bench zmtp: $out"; fi

  # The emulated binary as the far end of a zmtp bench driven from the host.
  "$q" "$bin" bench serve --listen tcp://127.0.0.1:0 >"$tmp/$a.bench.out" 2>"$tmp/$a.bench.err" &
  local bpid=$!
  pids+=("$bpid")
  if line=$(wait_line "$tmp/$a.bench.out" '^\[Hydra Bench\] Listening on ' 60); then
    local target
    target=$(sed 's/^\[Hydra Bench\] Listening on \([^;]*\);.*/\1/' <<<"$line")
    if out=$("$hostbin" bench zmtp --target "$target" --count 2000 --size 64 2>&1); then
      ok "bench zmtp from the $hostarch binary against 'bench serve' under emulation:"; echo "$out" | sed -n '1,4p' | sed 's/^/         /'
    else bad "$a bench zmtp --target (emulated bench serve): $out"; fi
  else bad "$a bench serve: no banner: $(cat "$tmp/$a.bench.out" "$tmp/$a.bench.err")"; fi
  kill -TERM "$bpid"
  wait "$bpid" || bad "$a bench serve: exit status $? after SIGTERM"

  kill -TERM "$pid"
  wait "$pid"
  rc=$?
  if [ "$rc" = 0 ] && grep -q "shutting down" "$tmp/$a.err"; then
    ok "SIGTERM: exit status 0, logged shutting down"
  else bad "$a SIGTERM: exit status $rc; stderr: $(cat "$tmp/$a.err")"; fi
}

unit_tests() {
  local a=$1 q start
  q=$(qemu_for "$a")
  echo "== go test ./zmtp ./registry for linux/$a under $q"
  start=$(date +%s)
  # shellcheck disable=SC2046,SC2086
  if env CGO_ENABLED=0 GOOS=linux $(goenv_for "$a") go test -exec "$q" -count=1 -timeout 10m ${QEMU_GO_TEST_FLAGS:-} ./zmtp ./registry 2>&1 | sed 's/^/  /'; then
    ok "unit tests of zmtp and registry on linux/$a ($(($(date +%s) - start))s)"
  else bad "unit tests of zmtp and registry on linux/$a"; fi
}

for a in $arches; do smoke "$a"; done
if [ -z "${QEMU_SKIP_TESTS:-}" ]; then
  for a in $arches; do unit_tests "$a"; done
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "qemu-smoke: ${#failed[@]} step(s) failed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "qemu-smoke: OK ($arches)"
