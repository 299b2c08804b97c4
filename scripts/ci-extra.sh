#!/usr/bin/env bash
# Extra CI for releases (called by .ci/run): the release build, the ARM
# builds proven under qemu, 32-bit checks, and the footprint limits.
#
#   1. scripts/dist.sh         static stripped binaries for every platform
#   2. scripts/qemu-smoke.sh   arm64 and armv7 binaries serve under qemu; the
#                              zmtp and registry tests pass under qemu
#   3. GOARCH=386 go vet ./... and the zmtp tests as a 386 binary, natively
#   4. scripts/footprint.sh    binary size and RSS limits
#
# Installs qemu-user-static and file with apt-get when missing. Runs every
# step even after a failure, then exits non-zero if any failed. About 5
# minutes on 2 cores with a warm build cache (most of it cross-compiling).
set -uo pipefail
cd "$(dirname "$0")/.."

need=()
{ command -v qemu-aarch64-static && command -v qemu-arm-static; } >/dev/null || need+=(qemu-user-static)
command -v file >/dev/null || need+=(file)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "ci-extra: installing ${need[*]}"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || {
      echo "ci-extra: could not install ${need[*]}" >&2; exit 1; }
  else
    echo "ci-extra: need ${need[*]} (no apt-get here)" >&2; exit 1
  fi
fi

failed=()
total_start=$(date +%s)
step() {
  local name=$1 start rc
  shift
  echo
  echo "=== ci-extra: $name"
  start=$(date +%s)
  "$@"
  rc=$?
  echo "=== ci-extra: $name: $([ $rc = 0 ] && echo ok || echo "FAILED (status $rc)") in $(($(date +%s) - start))s"
  [ $rc = 0 ] || failed+=("$name")
}

thirtytwo() {
  local rc=0 tmp
  echo "GOARCH=386 go vet ./..."
  GOARCH=386 CGO_ENABLED=0 go vet ./... || rc=1
  if [ "$(go env GOHOSTOS)/$(go env GOHOSTARCH)" != linux/amd64 ]; then
    echo "not on linux/amd64: no native 386 test run"
    return $rc
  fi
  tmp=$(mktemp -d)
  # Whether this kernel runs 386 binaries (IA32 emulation may be off).
  if GOARCH=386 CGO_ENABLED=0 go build -o "$tmp/hydra-server-386" ./cmd/hydra-server && "$tmp/hydra-server-386" --version; then
    echo "GOARCH=386 go test ./zmtp"
    GOARCH=386 CGO_ENABLED=0 go test -count=1 -timeout 10m ./zmtp || rc=1
  else
    echo "this kernel does not run 386 binaries: no native 386 test run"
  fi
  rm -rf "$tmp"
  return $rc
}

step "release build (scripts/dist.sh)" scripts/dist.sh
step "ARM under qemu (scripts/qemu-smoke.sh)" scripts/qemu-smoke.sh
step "32-bit: 386 vet and zmtp tests" thirtytwo
step "footprint (scripts/footprint.sh)" scripts/footprint.sh

echo
echo "ci-extra: $(($(date +%s) - total_start))s in all"
if [ ${#failed[@]} -gt 0 ]; then
  echo "ci-extra: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "ci-extra: OK"
