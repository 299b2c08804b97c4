#!/usr/bin/env bash
# Checks hydra-server's footprint against the release limits, failing past
# any of them:
#   - linux/arm64 release binary (static, stripped, -trimpath): <= 8 MiB
#   - RSS of a release server on this host, idle after start:   <= 15 MiB
#   - RSS of that server holding 10 000 registered entries:      <= 60 MiB
# (VmRSS from /proc/PID/status; Linux only.) The measuring is the Go test
# TestFootprint in cmd/hydra-server, which builds both binaries itself.
# Limits in bytes can be changed with HYDRA_FOOTPRINT_MAX_BINARY,
# HYDRA_FOOTPRINT_MAX_IDLE_RSS and HYDRA_FOOTPRINT_MAX_LOADED_RSS.
#
#   scripts/footprint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(HYDRA_FOOTPRINT=1 go test -run '^TestFootprint$' -count=1 -v ./cmd/hydra-server/ 2>&1) && rc=0 || rc=$?
figures=$(grep '^footprint: ' <<<"$out" || true)
if [ -z "$figures" ]; then
  echo "$out" >&2
  echo "footprint: FAILED: the test printed no figures" >&2
  exit 1
fi
sed 's/^footprint: //' <<<"$figures" | awk '
  $3 == "bytes" && $4 == "(limit" {
    lim = $5; sub(/\)$/, "", lim)
    printf "  %-42s %9d bytes = %5.2f MiB  (limit %d bytes = %.2f MiB)\n", $1, $2, $2 / 1048576, lim, lim / 1048576
    next
  }
  { print "  " $0 }'
if [ "$rc" != 0 ]; then
  grep -v '^footprint: ' <<<"$out" >&2
  echo "footprint: FAILED" >&2
  exit 1
fi
echo "footprint: OK"
